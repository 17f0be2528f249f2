"""Reminder calls the day before each visit (P-4.6)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.errors import RuleViolation

from .test_visits_support import transplant_dates, trial_participant  # noqa: F401


@pytest.mark.req("P-4.6")
def test_call_list_has_tomorrows_visits_only(trial_participant, transplant_dates):
    from annulus.visits.selectors import call_list

    tomorrow_m1 = trial_participant(lipo_days_ago=50, transplant_days_ago=29)  # m1 target = tomorrow
    trial_participant(lipo_days_ago=50, transplant_days_ago=25)  # m1 in 5 days
    rows = call_list(timezone.localdate())
    assert [(r["participant"].pk, r["slot"].visit_id) for r in rows] == [(tomorrow_m1.pk, "m1")]
    row = rows[0]
    assert row["participant"].phone == "13800000000" and row["slot"].window_start is not None
    assert call_list(timezone.localdate() + timedelta(days=4))[0]["slot"].visit_id == "m1"


@pytest.mark.req("P-4.6")
def test_reminder_is_recorded_and_audited(trial_participant, transplant_dates, users):
    from annulus.audit.models import AuditEvent
    from annulus.visits import services as vs
    from annulus.visits.selectors import call_list

    p = trial_participant(lipo_days_ago=50, transplant_days_ago=29)
    tomorrow = timezone.localdate() + timedelta(days=1)
    vs.record_reminder(actor=users["coordinator"], participant_id=p.pk, visit_id="m1", visit_on=tomorrow,
                       outcome="family", note="spoke to husband")
    assert call_list(timezone.localdate())[0]["call"].outcome == "family"
    assert AuditEvent.objects.filter(object_type="reminder_call", participant_id=p.pk).count() == 1
    with pytest.raises(RuleViolation) as e:
        vs.record_reminder(actor=users["coordinator"], participant_id=p.pk, visit_id="m1", visit_on=tomorrow,
                           outcome="shouted")
    assert e.value.field == "outcome"
    with pytest.raises(RuleViolation) as e:
        vs.record_reminder(actor=users["coordinator"], participant_id=p.pk, visit_id="m1",
                           visit_on=timezone.localdate() - timedelta(days=2))
    assert e.value.field == "visit_on"


@pytest.mark.req("P-4.6")
def test_reminders_command(trial_participant, transplant_dates, capsys):
    from annulus.cli import main

    trial_participant(lipo_days_ago=50, transplant_days_ago=29)
    assert main(["reminders", "--date", timezone.localdate().isoformat()]) == 0
    out = capsys.readouterr().out
    assert "Test Person" in out and "13800000000" in out and "1 month" in out
    assert main(["reminders", "--date", "2026-13-01"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--date" in err


@pytest.mark.req("P-4.6", "X-4.8")
def test_booked_date_drives_the_call_list(trial_participant, transplant_dates, users):
    from annulus.visits import services as vs
    from annulus.visits.selectors import call_list, schedule

    p = trial_participant(lipo_days_ago=50, transplant_days_ago=25)  # m1 window tx+23..tx+37: open
    today = timezone.localdate()
    assert call_list(today) == []
    vs.book_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="m1", on=today + timedelta(days=1))
    assert [r["slot"].visit_id for r in call_list(today)] == ["m1"]
    assert {s.key: s for s in schedule(p)}["m1"].appointment == today + timedelta(days=1)
    with pytest.raises(RuleViolation) as e:  # outside the window
        vs.book_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="m1", on=today + timedelta(days=60))
    assert e.value.field == "on"
    vs.book_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="m1", on=today + timedelta(days=3))
    assert call_list(today) == []
    from annulus.visits.models import Appointment

    assert Appointment.objects.filter(participant=p).count() == 2  # the first booking is kept, superseded
