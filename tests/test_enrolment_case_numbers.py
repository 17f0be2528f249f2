"""Enrolment: case numbers 001-100 in order of enrolment, never reused; only eligible people
(P-1.1, P-2.3)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from annulus.participants import services as ps
from annulus.errors import RuleViolation
from annulus.participants.models import Participant

from .test_participants_bad_input import refused


@pytest.mark.req("P-1.1")
def test_case_numbers_follow_enrolment_order_not_screening_order(make_participant, users):
    a = make_participant("eligible")
    b = make_participant("eligible")
    c = make_participant("eligible")
    inv = users["investigator"]
    for p in (c, a, b):
        ps.enrol(actor=inv, participant_id=p.pk)
    numbers = dict(Participant.objects.values_list("pk", "case_number"))
    assert (numbers[c.pk], numbers[a.pk], numbers[b.pk]) == ("001", "002", "003")


@pytest.mark.req("P-1.1", "P-6.3")
def test_case_number_of_a_withdrawn_participant_is_never_reused(make_participant, users):
    a = make_participant("enrolled")
    b = make_participant("enrolled")
    ps.withdraw(actor=users["investigator"], participant_id=b.pk, withdrawn_on=timezone.localdate(),
                category="participant_request", details="moved away")
    c = make_participant("enrolled")
    assert [Participant.objects.get(pk=x.pk).case_number for x in (a, b, c)] == ["001", "002", "003"]
    assert Participant.objects.get(pk=b.pk).status == "withdrawn"


@pytest.mark.req("P-2.3")
def test_enrolling_a_screen_failure_is_refused(make_participant, users):
    p = make_participant("screen_failed")
    refused(lambda: ps.enrol(actor=users["investigator"], participant_id=p.pk), "status",
            "a screen failure cannot be enrolled")


@pytest.mark.req("P-2.3")
def test_enrolling_twice_is_refused(make_participant, users):
    p = make_participant("enrolled")
    refused(lambda: ps.enrol(actor=users["investigator"], participant_id=p.pk), "status", "already enrolled as case 001")


@pytest.mark.req("P-2.3")
@pytest.mark.parametrize("stage", ["pre_screened", "consented", "screening"])
def test_enrolling_before_eligibility_is_refused(make_participant, users, stage):
    p = make_participant(stage)
    refused(lambda: ps.enrol(actor=users["investigator"], participant_id=p.pk), "status", "cannot become enrolled")


@pytest.mark.req("P-2.3")
def test_enrolment_time_rules(make_participant, users):
    from datetime import timedelta

    p = make_participant("eligible")
    refused(lambda: ps.enrol(actor=users["investigator"], participant_id=p.pk,
                             enrolled_at=timezone.now() + timedelta(days=1)), "enrolled_at", "cannot be in the future")
    refused(lambda: ps.enrol(actor=users["investigator"], participant_id=p.pk,
                             enrolled_at=timezone.now() - timedelta(days=30)), "enrolled_at", "is before informed consent")


@pytest.mark.req("P-1.1")
def test_unknown_participant(users, protocol_version):
    refused(lambda: ps.enrol(actor=users["investigator"], participant_id=999999), "participant", "no such participant")


@pytest.mark.req("P-1.1")
def test_the_101st_enrolment_is_refused(make_participant, users):
    # 100 people through the whole journey (a few seconds)
    for _ in range(100):
        make_participant("enrolled")
    assert sorted(Participant.objects.values_list("case_number", flat=True)) == [f"{i:03d}" for i in range(1, 101)]
    extra = make_participant("eligible")
    refused(lambda: ps.enrol(actor=users["investigator"], participant_id=extra.pk), "case_number",
            "the trial has enrolled all 100 participants")
    assert Participant.objects.get(pk=extra.pk).status == "eligible"


@pytest.mark.req("P-1.1")
def test_first_enrolment_opens_recruitment_and_a_locked_trial_enrols_no_one(make_participant, users):
    from annulus.participants import services as ps
    from annulus.trial.models import TrialState
    from annulus.trial.selectors import trial_state
    from annulus.trial.services import set_trial_state

    make_participant("enrolled")
    assert trial_state() == "recruiting"
    waiting = make_participant("eligible")
    set_trial_state(actor=users["pi"], state="locked", reason="database lock")
    with pytest.raises(RuleViolation) as err:
        ps.enrol(actor=users["investigator"], participant_id=waiting.pk)
    assert err.value.field == "trial"
    waiting.refresh_from_db()
    assert waiting.case_number is None and TrialState.objects.get(id=1).state == "locked"
