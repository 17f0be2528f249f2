"""Soft edit checks declared in the protocol file (X-7.4): each kind raises a query on the item
it names without refusing the save, in the save's transaction; a correction closes the query
automatically with the reason (audited, by the system); a check still failing opens no second
query; hard checks (impossible values) still refuse. Bad ``edit_checks`` sections are refused
naming the field."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annulus.audit.models import AuditEvent
from annulus.errors import RuleViolation
from annulus.queries import services as qs
from annulus.queries.models import Query
from annulus.visits import services as vs

from .test_visits_support import GOOD, aware, at_w1, complete_visit, trial_participant, transplant_dates  # noqa: F401


def _active(p, check_id):
    return list(Query.objects.filter(participant=p, check_id=check_id).exclude(status="closed"))


def _save(user, p, key, form, items, complete=True, reason=""):
    return vs.save_form(actor=user, participant_id=p.pk, visit_key=key, form_id=form, items=items, complete=complete,
                        reason=reason)


@pytest.fixture
def treated(trial_participant, users):  # noqa: F811
    """Transplanted 8 days ago; baseline done 10 days ago, the 1-week visit yesterday."""
    from annulus.participants.models import Consent

    p = trial_participant(lipo_days_ago=30, transplant_days_ago=8)
    # consent before the liposuction (set-up only: the fixture consents 9 days ago)
    Consent.objects.filter(participant=p).update(consented_at=timezone.now() - timedelta(days=45))
    today = timezone.localdate()
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="baseline",
                  visit_date=today - timedelta(days=10))
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w1", visit_date=today - timedelta(days=1))
    return p


@pytest.mark.req("X-7.4")
def test_vas_change_over_50_between_visits_queries_the_item_and_closes_when_corrected(treated, users):
    p, coord = treated, users["coordinator"]
    _save(coord, p, "baseline", "vas", {"vas_mm": 72})
    form = _save(coord, p, "w1", "vas", {"vas_mm": 12})  # a change of 60 mm: saved all the same
    assert form.items == {"vas_mm": 12} and form.state == "complete"
    (q,) = _active(p, "vas_change_50")
    assert (q.visit, q.form, q.record, q.item, q.origin, q.assigned_to, q.raised_by) == (
        "w1", "vas", 0, "vas_mm", "check", "site", None)
    assert "72" in q.messages.get().text and "12" in q.messages.get().text
    # still failing after another change: no second query
    _save(coord, p, "w1", "vas", {"vas_mm": 15}, reason="transcription")
    assert len(_active(p, "vas_change_50")) == 1
    assert Query.objects.filter(participant=p, check_id="vas_change_50").count() == 1
    # corrected: closed by the system with the reason, audited
    _save(coord, p, "w1", "vas", {"vas_mm": 45}, reason="source says 45")
    q = Query.objects.get(pk=q.pk)
    assert q.status == "closed" and q.closed_by is None and q.closed_at is not None
    last = q.messages.order_by("-id").first()
    assert last.kind == "auto_close" and last.author is None and "no longer holds" in last.text
    event = json.loads(AuditEvent.objects.filter(object_type="query", object_id=str(q.pk)).last().payload)
    assert event["actor"] == "system" and event["changes"]["status"] == ["open", "closed"]
    assert "no longer holds" in event["reason"]


@pytest.mark.req("X-7.4")
def test_vas_change_within_50_raises_nothing(treated, users):
    _save(users["coordinator"], treated, "baseline", "vas", {"vas_mm": 70})
    _save(users["coordinator"], treated, "w1", "vas", {"vas_mm": 20})  # exactly 50: not more
    assert not Query.objects.filter(participant=treated).exists()


@pytest.mark.req("X-7.4")
def test_odi_above_80_percent_queries_the_form(treated, users):
    p, coord = treated, users["coordinator"]
    _save(coord, p, "w1", "odi", {f"s{i}": 5 for i in range(1, 11)})  # 100 %
    (q,) = _active(p, "odi_above_80")
    assert (q.visit, q.form, q.item) == ("w1", "odi", "")
    _save(coord, p, "w1", "odi", {f"s{i}": 4 for i in range(1, 11)}, reason="re-read the paper form")  # 80 %: not above
    assert not _active(p, "odi_above_80")
    assert Query.objects.get(pk=q.pk).status == "closed"


@pytest.mark.req("X-7.4")
def test_lab_value_outside_three_times_the_range(treated, users, protocol_version):
    p, coord = treated, users["coordinator"]
    # ALT reference 7-40 U/L: above 120 is queried; albumin 40-55 g/L: below 13.33 is queried
    _save(coord, p, "w1", "liver_kidney", {**GOOD["liver_kidney"], "alt": 130, "alb": 12}, complete=False)
    found = {(q.form, q.item) for q in Query.objects.filter(participant=p, check_id="lab_3x_range")}
    assert found == {("liver_kidney", "alt"), ("liver_kidney", "alb")}
    _save(coord, p, "w1", "liver_kidney", {**GOOD["liver_kidney"], "alt": 118, "alb": 12}, complete=False)
    assert {(q.item, q.status) for q in Query.objects.filter(participant=p, check_id="lab_3x_range")} == {
        ("alt", "closed"), ("alb", "open")}


@pytest.mark.req("X-7.4")
def test_visit_dated_before_consent(treated, users):
    from annulus.participants.models import Consent

    p = treated
    consent = Consent.objects.get(participant=p)
    original = consent.consented_at
    with transaction.atomic():  # the consent's date corrected to after the visits (a data change)
        # late today in the trial's time zone: today's date whatever the hour the test runs at
        consent.consented_at = timezone.make_aware(datetime.combine(timezone.localdate(), time(23, 0)))
        consent.save()
    assert {(q.visit, q.form, q.item) for q in _active(p, "visit_before_consent")} == {
        ("baseline", "", "visit_date"), ("w1", "", "visit_date")}
    with transaction.atomic():
        consent.consented_at = original
        consent.save()
    assert not _active(p, "visit_before_consent")
    assert Query.objects.filter(participant=p, check_id="visit_before_consent", status="closed").count() == 2


@pytest.mark.req("X-7.4")
def test_ae_onset_before_transplant_related_to_the_product(treated, users):
    from annulus.safety import services as ss

    p = treated
    ae = ss.record_adverse_event(
        actor=users["investigator"], participant_id=p.pk, term="Back pain", serious=False, grade=1,
        onset_at=timezone.now() - timedelta(days=12), causality_liposuction="possible", causality_injection="not_related",
        causality_product="probable", expectedness="expected", action_taken="none", outcome="recovering")
    (q,) = _active(p, "ae_before_transplant_related")
    assert (q.visit, q.form, q.record, q.item) == ("", "adverse_event", ae.pk, "onset_at")
    ss.update_adverse_event(actor=users["investigator"], adverse_event_id=ae.pk, reason="re-assessed",
                            causality_product="unlikely")
    assert Query.objects.get(pk=q.pk).status == "closed"


@pytest.mark.req("X-7.4")
def test_a_check_query_closed_by_a_person_stays_closed_until_the_values_change(treated, users):
    p, coord = treated, users["coordinator"]
    _save(coord, p, "baseline", "vas", {"vas_mm": 80})
    _save(coord, p, "w1", "vas", {"vas_mm": 10})
    (q,) = _active(p, "vas_change_50")
    qs.answer_query(actor=coord, query_id=q.pk, text="Confirmed with the patient: pain gone")
    qs.close_query(actor=users["monitor"], query_id=q.pk, text="Accepted")
    qs.run_checks(p.pk, {"form", "visit"})  # re-run on the same data
    assert not _active(p, "vas_change_50")
    _save(coord, p, "w1", "vas", {"vas_mm": 5}, reason="re-measured")  # new failing values: asked again
    assert len(_active(p, "vas_change_50")) == 1


@pytest.mark.req("X-7.4")
def test_hard_checks_still_refuse_and_raise_no_query(treated, users):
    before = Query.objects.count(), AuditEvent.objects.count()
    with pytest.raises(RuleViolation) as exc:
        _save(users["coordinator"], treated, "w1", "vas", {"vas_mm": 140})
    assert exc.value.field == "vas_mm"
    assert (Query.objects.count(), AuditEvent.objects.count()) == before


@pytest.mark.req("X-7.4")
def test_a_whole_visit_saved_at_once_is_checked(treated, users):
    """The visit entry page saves new forms in bulk: the checks see them too."""
    p, coord = treated, users["coordinator"]
    _save(coord, p, "baseline", "vas", {"vas_mm": 90})
    vs.save_visit_forms(actor=coord, participant_id=p.pk, visit_key="w1",
                        forms={"vas": {"vas_mm": 20}, "odi": {f"s{i}": 5 for i in range(1, 11)}})
    assert len(_active(p, "vas_change_50")) == 1 and len(_active(p, "odi_above_80")) == 1


# ---- the protocol's edit_checks section ---------------------------------------------------------

def _problems(checks) -> str:
    from pydantic import ValidationError

    from annulus.protocol.schema import Protocol

    data = yaml.safe_load(Path(settings.ANNULUS_PROTOCOL_FILE).read_text(encoding="utf-8"))
    data["edit_checks"] = checks
    try:
        Protocol.model_validate(data)
    except ValidationError as exc:
        return str(exc)
    return ""


MSG = {"en": "check", "zh": "检查"}


@pytest.mark.req("X-7.4", "X-1.3")
@pytest.mark.parametrize("checks, expected", [
    ([{"id": "a1", "kind": "above", "form": "vas", "item": "vas_cm", "max": 80, "message": MSG}],
     "edit_checks[0].item: 'vas_cm' is not an item of the vas form"),
    ([{"id": "a1", "kind": "above", "form": "nonsense", "item": "x", "max": 80, "message": MSG}],
     "edit_checks[0].form: 'nonsense' is not a declared form"),
    ([{"id": "a1", "kind": "above", "form": "transplant", "item": "x", "max": 80, "message": MSG}],
     "edit_checks[0].form: 'transplant' is a procedure record"),
    ([{"id": "a1", "kind": "visit_before_consent", "message": MSG},
      {"id": "a1", "kind": "visit_before_consent", "message": MSG}], "edit_checks[1].id: 'a1' is used twice"),
    ([{"id": "a1", "kind": "change_between_visits", "form": "vas", "item": "vas_mm", "message": MSG}],
     "max_change"),
    ([{"id": "a1", "kind": "change_between_visits", "form": "vas", "item": "vas_mm", "max_change": 50,
       "colour": "red", "message": MSG}], "colour"),
    ([{"id": "a1", "kind": "lab_outside_range", "factor": 3, "forms": ["vas"], "message": MSG}],
     "edit_checks[0].forms[0]: 'vas' is not a declared laboratory form"),
    ([{"id": "a1", "kind": "lab_outside_range", "factor": 0.5, "message": MSG}], "factor"),
    ([{"id": "a1", "kind": "sometimes", "message": MSG}], "kind"),
    ([{"id": "a1", "kind": "above", "form": "odi", "max": 80, "message": MSG}], "give the item, or a score"),
    ([{"id": "a1", "kind": "visit_before_consent", "message": {"en": "only English"}}], "zh"),
])
def test_bad_edit_checks_sections_are_refused_naming_the_field(checks, expected):
    problems = _problems(checks)
    assert expected in problems, problems


@pytest.mark.req("X-7.4")
def test_the_shipped_protocol_declares_each_kind_of_check():
    from annulus.protocol.schema import Protocol

    data = yaml.safe_load(Path(settings.ANNULUS_PROTOCOL_FILE).read_text(encoding="utf-8"))
    protocol = Protocol.model_validate(data)
    assert {c.kind for c in protocol.edit_checks} == {"change_between_visits", "above", "lab_outside_range",
                                                       "visit_before_consent", "ae_before_treatment"}
    assert _problems(data["edit_checks"]) == ""
