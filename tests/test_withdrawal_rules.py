"""Withdrawal at any stage with reason, kept on record; withdrawn people are not replaced (P-6.3)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.audit.models import AuditEvent
from annulus.participants import services as ps
from annulus.participants.models import Withdrawal

from .test_participants_bad_input import refused


@pytest.mark.req("P-6.3")
@pytest.mark.parametrize("stage", ["pre_screened", "consented", "screening", "eligible", "enrolled"])
def test_withdrawal_at_any_stage_keeps_reason_and_stage(make_participant, users, stage):
    p = make_participant(stage)
    w = ps.withdraw(actor=users["investigator"], participant_id=p.pk, withdrawn_on=timezone.localdate(),
                    category="participant_request", details="does not want further visits")
    w.refresh_from_db()
    assert (w.from_status, w.category, w.details, w.recorded_by) == (
        stage, "participant_request", "does not want further visits", users["investigator"])
    p.refresh_from_db()
    assert p.status == "withdrawn"
    event = AuditEvent.objects.get(object_type="withdrawal")
    assert event.reason == "does not want further visits"


@pytest.mark.req("P-6.3")
def test_withdrawing_a_withdrawn_person_is_refused(make_participant, users):
    p = make_participant("enrolled")
    ps.withdraw(actor=users["investigator"], participant_id=p.pk, withdrawn_on=timezone.localdate(),
                category="adverse_event", details="SAE")
    refused(lambda: ps.withdraw(actor=users["investigator"], participant_id=p.pk, withdrawn_on=timezone.localdate(),
                                category="other", details="again"),
            "status", "already withdrawn")
    assert Withdrawal.objects.count() == 1


@pytest.mark.req("P-6.3")
@pytest.mark.parametrize(
    "kwargs, field, words",
    [
        ({"details": ""}, "details", "is required"),
        ({"details": "   "}, "details", "is required"),
        ({"category": "bored"}, "category", "must be one of participant_request"),
        ({"withdrawn_on": "yesterday"}, "withdrawn_on", "must be a date"),
    ],
)
def test_withdrawal_bad_fields(make_participant, users, kwargs, field, words):
    p = make_participant("enrolled")
    args = {"actor": users["investigator"], "participant_id": p.pk, "withdrawn_on": timezone.localdate(),
            "category": "other", "details": "reason", **kwargs}
    refused(lambda: ps.withdraw(**args), field, words)


@pytest.mark.req("P-6.3")
def test_withdrawal_dates(make_participant, users):
    p = make_participant("enrolled")  # pre-screened 10 days ago
    for day, words in ((timezone.localdate() + timedelta(days=1), "cannot be in the future"),
                       (timezone.localdate() - timedelta(days=11), "before the pre-screening date")):
        refused(lambda: ps.withdraw(actor=users["investigator"], participant_id=p.pk, withdrawn_on=day,
                                    category="other", details="x"), "withdrawn_on", words)


@pytest.mark.req("P-6.3")
def test_a_screen_failure_cannot_be_withdrawn(make_participant, users):
    p = make_participant("screen_failed")
    refused(lambda: ps.withdraw(actor=users["investigator"], participant_id=p.pk, withdrawn_on=timezone.localdate(),
                                category="other", details="x"), "status", "screen failure cannot continue")
