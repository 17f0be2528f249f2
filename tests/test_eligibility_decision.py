"""Deciding eligibility through the services: every criterion is stored with its evidence and
who entered it; a screen failure keeps its reasons (P-2.1, P-2.2, X-2.5)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.utils import timezone

from annulus.audit.models import AuditEvent
from annulus.participants import services as ps
from annulus.participants.models import EligibilityDecision

from .conftest import ELIGIBLE_EVIDENCE, TEST_PASSWORD
from .test_participants_bad_input import refused


@pytest.mark.req("X-2.5", "P-2.1", "P-2.2")
def test_screen_failure_keeps_failing_criteria_and_evidence_with_who_and_when(make_participant, users):
    p = make_participant("screen_failed", vas_mm=39, bmd_t_score=-2.5)
    d = EligibilityDecision.objects.get(participant=p)
    assert d.outcome == "ineligible" and d.failing == ["I4", "E5"]
    assert d.decided_by == users["investigator"] and d.protocol_version.version == "1.0"
    by_id = {c["id"]: c for c in d.criteria}
    assert len(by_id) == 20  # ten inclusion and ten exclusion criteria, every one stored
    vas = by_id["I4"]
    assert (vas["passed"], vas["evidence"]["vas_mm"]["value"], vas["evidence"]["vas_mm"]["entered_by"]) == (
        False, 39, users["coordinator"].username)
    assert vas["evidence"]["vas_mm"]["entered_at"]  # when
    assert by_id["E5"]["holds"] is True and by_id["E5"]["passed"] is False
    assert by_id["I1"]["passed"] is True
    p.refresh_from_db()
    assert p.status == "screen_failed"
    event = AuditEvent.objects.get(object_type="eligibility_decision")
    assert '"failing":[null,["I4","E5"]]' in event.payload


@pytest.mark.req("P-2.1")
def test_age_is_taken_on_the_consent_date(make_participant, users):
    # consent 9 days ago (site time zone): 18th birthday on that day is eligible, one day later is not
    consent_day = timezone.localtime(timezone.now() - timedelta(days=9)).date()
    try:
        born_ok = consent_day.replace(year=consent_day.year - 18)
    except ValueError:  # consent on 29 February: born 28 February is 18, born 1 March is not
        born_ok = date(consent_day.year - 18, 2, 28)
    p = make_participant("eligible", date_of_birth=born_ok.isoformat())
    assert p.status == "eligible"
    q = make_participant("screen_failed", date_of_birth=(born_ok + timedelta(days=1)).isoformat())
    assert q.status == "screen_failed"
    assert EligibilityDecision.objects.get(participant=q).failing == ["I1"]


@pytest.mark.req("X-2.5")
def test_decision_needs_complete_evidence(make_participant, users):
    p = make_participant("consented")
    partial = {k: v for k, v in ELIGIBLE_EVIDENCE.items() if k != "lbp_posture"}
    ps.enter_evidence(actor=users["coordinator"], participant_id=p.pk, values=partial, collected_on=timezone.localdate())
    # three manifestations are enough for I2, yet an eligible record needs every value
    refused(lambda: ps.decide_eligibility(actor=users["investigator"], participant_id=p.pk, password=TEST_PASSWORD),
            "evidence", "evidence missing for: I2")


@pytest.mark.req("X-2.5")
def test_decision_without_evidence(make_participant, users):
    p = make_participant("consented")
    refused(lambda: ps.decide_eligibility(actor=users["investigator"], participant_id=p.pk, password=TEST_PASSWORD),
            "evidence", "no screening evidence")


@pytest.mark.req("X-2.5")
def test_a_screen_failure_is_final(make_participant, users):
    p = make_participant("screen_failed")
    refused(lambda: ps.enter_evidence(actor=users["coordinator"], participant_id=p.pk, values={"vas_mm": 80},
                                      collected_on=timezone.localdate(), reason="re-measured"),
            "status", "cannot be entered for a participant who is screen failure")
    refused(lambda: ps.decide_eligibility(actor=users["investigator"], participant_id=p.pk, password=TEST_PASSWORD),
            "status", "screen failure cannot continue")


@pytest.mark.req("X-2.5")
def test_changed_evidence_after_eligible_needs_a_new_decision(make_participant, users):
    p = make_participant("eligible")
    ps.enter_evidence(actor=users["coordinator"], participant_id=p.pk, values={"vas_mm": 30},
                      collected_on=timezone.localdate(), reason="VAS re-measured")
    p.refresh_from_db()
    assert p.status == "screening"
    assert list(EligibilityDecision.objects.filter(participant=p).values_list("outcome", "superseded")) == [("eligible", True)]
    refused(lambda: ps.enrol(actor=users["investigator"], participant_id=p.pk), "status", "cannot become enrolled")
    ps.decide_eligibility(actor=users["investigator"], participant_id=p.pk, password=TEST_PASSWORD)
    p.refresh_from_db()
    assert p.status == "screen_failed"
