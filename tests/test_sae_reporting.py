"""SAE reporting at the service level: one report per protocol recipient with its deadline
(weekends, the Spring Festival, an adjusted working Saturday, and the weekday fallback when the
holiday schedule of a year is not published), notifications, sending and acknowledgement."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.utils import timezone

from annulus.audit.models import AuditEvent
from annulus.errors import RuleViolation
from annulus.participants import services as ps
from annulus.safety import services
from annulus.safety.deadlines import site_deadlines
from annulus.safety.models import SaeReport
from annulus.trial.models import Notification

pytestmark = pytest.mark.django_db
SH = ZoneInfo("Asia/Shanghai")
UTC = dt_timezone.utc


def local(*args) -> datetime:
    return datetime(*args, tzinfo=SH)


def end_of(y, m, d) -> datetime:
    return datetime(y, m, d, 23, 59, 59, 999999, tzinfo=SH).astimezone(UTC)


@pytest.fixture
def early_participant(users):
    """A participant consented in 2025, so events can be dated in early 2026."""
    coord, inv = users["coordinator"], users["investigator"]
    p = ps.prescreen(actor=coord, initials="EP", sex="M", recruitment_source="inpatient_referral",
                     prescreened_on=date(2025, 12, 1))
    ps.record_consent(actor=coord, participant_id=p.pk, consent_version="1.0",
                      consented_at=local(2025, 12, 2, 9, 0), taken_by=inv)
    return p


def sae(users, participant, known, **over):
    fields = dict(term="Discitis", onset_at=known - timedelta(hours=6), serious=True,
                  serious_criteria=["hospitalisation"], first_knowledge_at=known, grade=3,
                  causality_liposuction="not_related", causality_injection="probable", causality_product="possible",
                  expectedness="unexpected", action_taken="hospitalised", outcome="recovering")
    fields.update(over)
    return services.record_adverse_event(actor=users["investigator"], participant_id=participant.pk, **fields)


def due(ae, recipient):
    return ae.sae_reports.get(recipient=recipient).due_at


@pytest.mark.req("P-6.2", "X-6.5")
def test_serious_event_opens_three_reports_and_notifies(users, make_participant):
    p = make_participant("enrolled")
    known = timezone.now() - timedelta(hours=1)
    mail.outbox.clear()
    ae = sae(users, p, known)
    reports = {r.recipient: r for r in ae.sae_reports.filter(expedited=False)}  # (a SUSAR also has an expedited one)
    assert set(reports) == {"head_of_centre", "ethics_committee", "team_leader"}
    assert reports["head_of_centre"].due_at == known + timedelta(hours=12)
    assert reports["team_leader"].due_at >= known + timedelta(hours=24)
    assert reports["head_of_centre"].recipient_name == "Head of the research centre"
    note = Notification.objects.filter(kind="sae", user=users["investigator"]).get()
    assert "SAE recorded" in note.subject
    assert Notification.objects.filter(kind="sae", user=users["coordinator"]).exists()
    assert not Notification.objects.filter(kind="sae", user=users["dsmb"]).exists()


@pytest.mark.req("P-6.2")
def test_stored_in_utc(users, make_participant):
    ae = sae(users, make_participant("enrolled"), timezone.now() - timedelta(hours=2))
    r = ae.sae_reports.first()
    r.refresh_from_db()
    assert r.due_at.utcoffset() == timedelta(0)


@pytest.mark.req("P-6.2")
def test_team_leader_across_a_weekend(users, early_participant):
    ae = sae(users, early_participant, local(2026, 3, 6, 10, 0))  # Friday
    assert due(ae, "team_leader") == end_of(2026, 3, 9)  # Monday
    assert due(ae, "ethics_committee") == local(2026, 3, 6, 22, 0)


@pytest.mark.req("P-6.2")
def test_team_leader_across_the_spring_festival_and_an_adjusted_saturday(users, early_participant):
    # Friday 13 Feb 2026 is day 1; Saturday 14 Feb is an adjusted working day (day 2).
    friday = sae(users, early_participant, local(2026, 2, 13, 10, 0))
    assert due(friday, "team_leader") == end_of(2026, 2, 14)
    # Known on the working Saturday: the holidays of 15-23 Feb are skipped; day 2 is Tuesday 24 Feb.
    saturday = sae(users, early_participant, local(2026, 2, 14, 15, 0))
    assert due(saturday, "team_leader") == end_of(2026, 2, 24)
    # Known in the middle of the Festival: 24 Feb is day 1, 25 Feb day 2. Hours run regardless.
    festival = sae(users, early_participant, local(2026, 2, 18, 9, 0))
    assert due(festival, "team_leader") == end_of(2026, 2, 25)
    assert due(festival, "head_of_centre") == local(2026, 2, 18, 21, 0)
    assert not festival.sae_reports.exclude(calendar_warning="").exists()


@pytest.mark.req("P-6.2")
def test_year_without_holiday_schedule_falls_back_to_weekends_with_a_warning():
    # Thursday 31 Dec 2026: day 2 falls in 2027, whose holiday schedule is not published.
    from annulus.trial.selectors import active_protocol

    rules = active_protocol().safety.sae_recipients
    out = {d.recipient: d for d in site_deadlines(local(2026, 12, 31, 10, 0).astimezone(UTC), "Asia/Shanghai", rules)}
    assert out["team_leader"].due_utc == end_of(2027, 1, 1)
    assert out["team_leader"].warning == "holiday calendar for 2027 not available; weekends only"
    assert out["head_of_centre"].due_utc == local(2026, 12, 31, 22, 0)
    assert out["head_of_centre"].warning == ""
    # Friday 1 Jan 2027 known: Saturday and Sunday skipped, Monday 4 Jan is day 2.
    out = {d.recipient: d for d in site_deadlines(local(2027, 1, 1, 10, 0).astimezone(UTC), "Asia/Shanghai", rules)}
    assert out["team_leader"].due_utc == end_of(2027, 1, 4)


@pytest.mark.req("P-6.2")
def test_fallback_warning_is_stored_and_shown(users, make_participant, monkeypatch, client_for):
    # The first-knowledge time cannot be in the future, so move "now" to New Year's Eve 2026.
    p = make_participant("enrolled")
    real_now = timezone.now
    fake_now = local(2026, 12, 31, 20, 0).astimezone(UTC)
    if fake_now < real_now():
        fake_now = real_now()
    monkeypatch.setattr(timezone, "now", lambda: fake_now)
    known = fake_now - timedelta(minutes=30)
    ae = sae(users, p, known)
    tl = ae.sae_reports.get(recipient="team_leader")
    assert tl.calendar_warning.startswith("holiday calendar for 2027 not available")
    page = client_for("investigator").get("/safety/sae/")
    assert "holiday calendar for 2027 not available; weekends only" in page.content.decode()


@pytest.mark.req("P-6.2")
def test_sent_and_acknowledged_in_order(users, make_participant):
    p = make_participant("enrolled")
    known = timezone.now() - timedelta(hours=5)
    ae = sae(users, p, known)
    r = ae.sae_reports.get(recipient="ethics_committee")
    inv = users["investigator"]
    before = AuditEvent.objects.count()
    with pytest.raises(RuleViolation) as exc:
        services.record_report_acknowledged(actor=inv, report_id=r.pk, acknowledged_at=timezone.now(), acknowledged_by="Dr Qian")
    assert exc.value.field == "acknowledged_at" and "not been sent" in exc.value.message
    with pytest.raises(RuleViolation) as exc:
        services.record_report_sent(actor=inv, report_id=r.pk, sent_at=timezone.now() + timedelta(hours=1), sent_to="EC office")
    assert exc.value.field == "sent_at" and "future" in exc.value.message
    with pytest.raises(RuleViolation) as exc:
        services.record_report_sent(actor=inv, report_id=r.pk, sent_at=known - timedelta(hours=1), sent_to="EC office")
    assert exc.value.field == "sent_at" and "first knowledge" in exc.value.message
    assert AuditEvent.objects.count() == before
    sent = known + timedelta(hours=2)
    services.record_report_sent(actor=inv, report_id=r.pk, sent_at=sent, sent_to="EC office", method="e-mail")
    with pytest.raises(RuleViolation) as exc:  # acknowledged before it was sent
        services.record_report_acknowledged(actor=inv, report_id=r.pk, acknowledged_at=sent - timedelta(minutes=5),
                                            acknowledged_by="Dr Qian")
    assert exc.value.field == "acknowledged_at" and "before the report was sent" in exc.value.message
    services.record_report_acknowledged(actor=inv, report_id=r.pk, acknowledged_at=sent + timedelta(minutes=40),
                                        acknowledged_by="Dr Qian")
    r.refresh_from_db()
    assert r.sent_to == "EC office" and r.acknowledged_by == "Dr Qian"
    assert AuditEvent.objects.filter(object_type="sae_report", object_id=str(r.pk), action="change").count() == 2
    with pytest.raises(RuleViolation, match="already"):
        services.record_report_sent(actor=inv, report_id=r.pk, sent_at=sent, sent_to="EC office")


@pytest.mark.req("P-6.2", "X-6.5")
def test_overdue_is_notified_once(users, make_participant):
    p = make_participant("enrolled")
    ae = sae(users, p, timezone.now() - timedelta(hours=13))
    n = services.notify_overdue()
    assert n == 2  # head of centre and ethics committee: 12 h passed; team leader still running
    assert services.notify_overdue() == 0
    subjects = list(Notification.objects.filter(kind="sae_overdue", user=users["investigator"]).values_list("subject", flat=True))
    assert len(subjects) == 2 and all("OVERDUE" in s for s in subjects)
    assert ae.sae_reports.filter(overdue_notified_at__isnull=False).count() == 2


@pytest.mark.req("P-6.2")
def test_downgrade_stops_clocks_and_correction_moves_them(users, make_participant):
    p = make_participant("enrolled")
    known = timezone.now() - timedelta(hours=3)
    ae = sae(users, p, known)
    later = known + timedelta(hours=1)
    services.update_adverse_event(actor=users["investigator"], adverse_event_id=ae.pk, reason="knowledge time corrected",
                                  first_knowledge_at=later)
    assert due(ae, "head_of_centre") == later + timedelta(hours=12)
    services.update_adverse_event(actor=users["investigator"], adverse_event_id=ae.pk, reason="not hospitalised after all",
                                  serious=False, serious_criteria=[])
    # the three SAE recipients and the expedited SUSAR report (the event was a SUSAR) all stop
    assert ae.sae_reports.filter(not_required_since__isnull=False).count() == 4
    assert SaeReport.objects.count() == 4  # kept, never deleted


@pytest.mark.req("P-6.2")
def test_knowledge_time_frozen_after_a_report_went_out(users, make_participant):
    p = make_participant("enrolled")
    known = timezone.now() - timedelta(hours=3)
    ae = sae(users, p, known)
    r = ae.sae_reports.get(recipient="head_of_centre")
    services.record_report_sent(actor=users["investigator"], report_id=r.pk, sent_at=known + timedelta(hours=1), sent_to="Prof Wang")
    with pytest.raises(RuleViolation) as exc:
        services.update_adverse_event(actor=users["investigator"], adverse_event_id=ae.pk, reason="x",
                                      first_knowledge_at=known + timedelta(minutes=30))
    assert exc.value.field == "first_knowledge_at"
