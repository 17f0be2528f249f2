"""Bad input on the participant journey: each is refused with a message naming the field and
the rule, and nothing is written (no row, no audit event). (P-2.3, P-2.4, X-2.5)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.audit.models import AuditEvent
from annulus.errors import RuleViolation
from annulus.participants import services as ps
from annulus.participants.models import Consent, EligibilityDecision, Evidence, Participant, StatusChange, Withdrawal

from .conftest import TEST_PASSWORD

MODELS = (Participant, Consent, Evidence, EligibilityDecision, StatusChange, Withdrawal, AuditEvent)


def counts() -> dict[str, int]:
    return {m.__name__: m.objects.count() for m in MODELS}


def refused(call, field: str, words: str) -> RuleViolation:
    """Run ``call``; it must raise RuleViolation on ``field`` mentioning ``words`` and write nothing."""
    before = counts()
    with pytest.raises(RuleViolation) as info:
        call()
    assert info.value.field == field, info.value
    assert words in info.value.message, info.value.message
    assert counts() == before
    return info.value


def today():
    return timezone.localdate()


@pytest.mark.req("P-2.4")
def test_prescreen_records_recruitment_source_and_protocol_version(users, protocol_version):
    p = ps.prescreen(actor=users["coordinator"], initials="wl", sex="M", recruitment_source="flyers_website",
                     prescreened_on=today())
    p.refresh_from_db()
    assert (p.recruitment_source, p.status, p.initials, p.screening_number) == ("flyers_website", "pre_screened", "WL", "S0001")
    assert p.protocol_version.version == "1.0"
    event = AuditEvent.objects.get(object_type="participant", object_id=str(p.pk), action="create")
    assert '"recruitment_source":[null,"flyers_website"]' in event.payload
    assert event.actor_username == users["coordinator"].username


@pytest.mark.req("P-2.4")
@pytest.mark.parametrize(
    "kwargs, field, words",
    [
        ({"recruitment_source": "newspaper"}, "recruitment_source", "must be one of inpatient_referral"),
        ({"recruitment_source": ""}, "recruitment_source", "must be one of"),
        ({"initials": "<b>"}, "initials", "letters only"),
        ({"initials": "'; DROP"}, "initials", "letters only"),
        ({"initials": ""}, "initials", "is required"),
        ({"sex": "X"}, "sex", "must be F or M"),
        ({"prescreened_on": "2026-01-01"}, "prescreened_on", "must be a date"),
        ({"phone": "call me"}, "phone", "digits"),
        ({"full_name": "x" * 121}, "full_name", "at most 120"),
        ({"full_name": "tab\x00null"}, "full_name", "control characters"),
    ],
)
def test_prescreen_bad_input(users, protocol_version, kwargs, field, words):
    args = {"actor": users["coordinator"], "initials": "AB", "sex": "F",
            "recruitment_source": "inpatient_referral", "prescreened_on": today(), **kwargs}
    refused(lambda: ps.prescreen(**args), field, words)


@pytest.mark.req("P-2.3")
def test_prescreen_date_in_the_future(users, protocol_version):
    refused(lambda: ps.prescreen(actor=users["coordinator"], initials="AB", sex="F",
                                 recruitment_source="inpatient_referral", prescreened_on=today() + timedelta(days=1)),
            "prescreened_on", "cannot be in the future")


@pytest.mark.req("P-2.3")
def test_nothing_can_be_recorded_before_consent(make_participant, users):
    p = make_participant("pre_screened")
    inv = users["investigator"]
    refused(lambda: ps.enter_evidence(actor=inv, participant_id=p.pk, values={"vas_mm": 50}, collected_on=today()),
            "status", "nothing can be recorded before informed consent")
    refused(lambda: ps.decide_eligibility(actor=inv, participant_id=p.pk, password=TEST_PASSWORD),
            "status", "nothing can be recorded before informed consent")
    refused(lambda: ps.enrol(actor=inv, participant_id=p.pk), "status", "cannot become enrolled")
    with pytest.raises(RuleViolation):
        ps.advance(actor=inv, participant_id=p.pk, target="randomised", reason="skip ahead")
    assert Participant.objects.get(pk=p.pk).status == "pre_screened"


@pytest.mark.req("P-2.1", "X-2.5")
@pytest.mark.parametrize(
    "values, field, words",
    [
        ({"vas_mm": 140}, "vas_mm", "must be at most 100 mm, got 140"),
        ({"vas_mm": -1}, "vas_mm", "must be at least 0 mm"),
        ({"odi_percent": 140}, "odi_percent", "must be at most 100 %, got 140"),
        ({"odi_percent": "abc"}, "odi_percent", "must be a number, got 'abc'"),
        ({"odi_percent": "item 7"}, "odi_percent", "must be a number, got 'item 7'"),
        ({"date_of_birth": "2999-01-01"}, "date_of_birth", "cannot be in the future"),
        ({"modic_type": "<script>"}, "modic_type", "must be one of none, I, II, III"),
        ({"pfirrmann_grade": "3; DROP TABLE participants_evidence"}, "pfirrmann_grade", "must be a number"),
        ({"odi_item_7": 3}, "odi_item_7", "is not an evidence field of this protocol"),
    ],
)
def test_bad_screening_evidence(make_participant, users, values, field, words):
    p = make_participant("consented")
    # a valid value next to the bad one is not written either
    refused(lambda: ps.enter_evidence(actor=users["coordinator"], participant_id=p.pk,
                                      values={"lbp_duration_months": 24, **values}, collected_on=today()),
            field, words)


@pytest.mark.req("P-2.3")
def test_evidence_collected_before_consent_is_refused(make_participant, users):
    p = make_participant("consented")  # consent 9 days ago
    refused(lambda: ps.enter_evidence(actor=users["coordinator"], participant_id=p.pk, values={"vas_mm": 50},
                                      collected_on=today() - timedelta(days=20)),
            "collected_on", "before informed consent")
    refused(lambda: ps.enter_evidence(actor=users["coordinator"], participant_id=p.pk, values={"vas_mm": 50},
                                      collected_on=today() + timedelta(days=1)),
            "collected_on", "cannot be in the future")


@pytest.mark.req("X-2.5", "X-7.3")
def test_changing_evidence_needs_a_reason_and_keeps_the_old_value(make_participant, users):
    p = make_participant("screening")
    coord = users["coordinator"]
    refused(lambda: ps.enter_evidence(actor=coord, participant_id=p.pk, values={"vas_mm": 70}, collected_on=today()),
            "reason", "changing vas_mm from 65 needs a reason")
    ps.enter_evidence(actor=coord, participant_id=p.pk, values={"vas_mm": 70}, collected_on=today(),
                      reason="transcription error")
    rows = list(Evidence.objects.filter(participant=p, field="vas_mm").order_by("id").values_list("value", "superseded", "change_reason"))
    assert rows == [(65, True, ""), (70, False, "transcription error")]
    event = AuditEvent.objects.filter(object_type="screening_evidence", action="change").get()
    assert event.reason == "transcription error" and '"vas_mm":[65,70]' in event.payload


@pytest.mark.req("X-7.3")
def test_sql_and_html_are_stored_literally(make_participant, users):
    nasty = "Robert'); DROP TABLE participants_participant;-- <script>alert('x')</script>"
    p = ps.prescreen(actor=users["coordinator"], initials="RT", sex="M", recruitment_source="inpatient_referral",
                     prescreened_on=today(), full_name=nasty[:120])
    assert Participant.objects.get(pk=p.pk).full_name == nasty[:120]
    q = make_participant("screening")
    ps.withdraw(actor=users["coordinator"], participant_id=q.pk, withdrawn_on=today(), category="other", details=nasty)
    assert Withdrawal.objects.get(participant=q).details == nasty
    assert Participant.objects.count() == 2  # the table is still there


@pytest.mark.req("X-2.5")
def test_unchanged_values_write_nothing(make_participant, users):
    from .conftest import ELIGIBLE_EVIDENCE

    p = make_participant("screening")
    before = counts()
    written = ps.enter_evidence(actor=users["coordinator"], participant_id=p.pk, values=dict(ELIGIBLE_EVIDENCE),
                                collected_on=today())
    assert written == [] and counts() == before


@pytest.mark.req("X-7.3")
def test_a_status_change_needs_a_reason(make_participant, users):
    p = make_participant("enrolled")
    refused(lambda: ps.advance(actor=users["investigator"], participant_id=p.pk, target="lost_to_follow_up", reason=" "),
            "reason", "is required")
    ps.advance(actor=users["investigator"], participant_id=p.pk, target="lost_to_follow_up", reason="no answer to calls")
    assert Participant.objects.get(pk=p.pk).status == "lost_to_follow_up"
