"""Informed consent before any study procedure (P-2.3): who took it, when, which version."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.participants import services as ps
from annulus.participants.models import Consent

from .test_participants_bad_input import refused


@pytest.fixture
def icf_v2(users):
    """An amendment bringing informed-consent form version 2.0, approved by the ethics committee
    a month ago."""
    from pathlib import Path

    from django.conf import settings

    from annulus.trial.services import load_protocol_version

    text = Path(settings.ANNULUS_PROTOCOL_FILE).read_text(encoding="utf-8")
    approved = (timezone.localdate() - timedelta(days=30)).isoformat()
    first = '    - {version: "1.0", approved_on: 2022-03-28}\n'
    assert first in text
    text = text.replace('version: "1.0"\n', 'version: "1.1"\n', 1).replace(
        first, first + f'    - {{version: "2.0", approved_on: {approved}}}\n', 1)
    return load_protocol_version(actor=users["admin"], text=text)


@pytest.mark.req("P-2.3")
def test_consent_records_version_who_and_when(make_participant, users):
    p = make_participant("pre_screened")
    at = timezone.now() - timedelta(days=2)
    c = ps.record_consent(actor=users["coordinator"], participant_id=p.pk, consent_version="1.0",
                          consented_at=at, taken_by=users["investigator"])
    c.refresh_from_db()
    assert (c.consent_version, c.consented_at, c.taken_by, c.recorded_by) == (
        "1.0", at, users["investigator"], users["coordinator"])
    assert c.protocol_version.version == "1.0"
    p.refresh_from_db()
    assert p.status == "consented"


@pytest.mark.req("P-2.3")
def test_future_consent_date_is_refused(make_participant, users):
    p = make_participant("pre_screened")
    refused(lambda: ps.record_consent(actor=users["coordinator"], participant_id=p.pk, consent_version="1.0",
                                      consented_at=timezone.now() + timedelta(hours=2), taken_by=users["investigator"]),
            "consented_at", "cannot be in the future")


@pytest.mark.req("P-2.3")
def test_consent_before_prescreening_is_refused(make_participant, users):
    p = make_participant("pre_screened")  # pre-screened 10 days ago
    refused(lambda: ps.record_consent(actor=users["coordinator"], participant_id=p.pk, consent_version="1.0",
                                      consented_at=timezone.now() - timedelta(days=30), taken_by=users["investigator"]),
            "consented_at", "before the pre-screening date")


@pytest.mark.req("P-2.3")
@pytest.mark.parametrize(
    "kwargs, field, words",
    [
        ({"consent_version": ""}, "consent_version", "is required"),
        ({"consent_version": "v" * 41}, "consent_version", "at most 40"),
        ({"consented_at": "2026-01-01T10:00"}, "consented_at", "must be a date and time"),
        ({"taken_by": None}, "taken_by", "is required"),
    ],
)
def test_consent_bad_fields(make_participant, users, kwargs, field, words):
    p = make_participant("pre_screened")
    args = {"actor": users["coordinator"], "participant_id": p.pk, "consent_version": "1.0",
            "consented_at": timezone.now() - timedelta(days=1), "taken_by": users["investigator"], **kwargs}
    refused(lambda: ps.record_consent(**args), field, words)


@pytest.mark.req("P-2.3")
def test_naive_consent_time_is_refused(make_participant, users):
    p = make_participant("pre_screened")
    naive = timezone.now().replace(tzinfo=None) - timedelta(days=1)
    refused(lambda: ps.record_consent(actor=users["coordinator"], participant_id=p.pk, consent_version="1.0",
                                      consented_at=naive, taken_by=users["investigator"]),
            "consented_at", "needs a time zone")


@pytest.mark.req("P-2.3", "X-1.3")
def test_reconsent_on_a_new_version_after_screening_procedures(make_participant, users, icf_v2):
    # an amended consent form is signed after screening has begun; the earlier procedures stay
    # covered by the first consent
    p = make_participant("screening")  # consent 9 days ago, evidence 8 days ago
    ps.record_consent(actor=users["coordinator"], participant_id=p.pk, consent_version="2.0",
                      consented_at=timezone.now() - timedelta(hours=1), taken_by=users["investigator"])
    assert list(Consent.objects.filter(participant=p).values_list("consent_version", flat=True)) == ["1.0", "2.0"]
    p.refresh_from_db()
    assert p.status == "screening"


@pytest.mark.req("P-2.3")
def test_reconsent_cannot_be_backdated_before_the_first_consent(make_participant, users, icf_v2):
    # a back-dated consent would make earlier procedures look covered
    p = make_participant("screening")
    refused(lambda: ps.record_consent(actor=users["coordinator"], participant_id=p.pk, consent_version="2.0",
                                      consented_at=timezone.now() - timedelta(days=9, hours=1),
                                      taken_by=users["investigator"]),
            "consented_at", "a re-consent must be later than the consent")


@pytest.mark.req("P-2.3")
def test_consent_after_a_procedure_is_refused(make_participant, users):
    # a procedure dated before the consent: the consent came after it
    p = make_participant("consented")  # signed 9 days ago
    refused(lambda: ps.enter_evidence(actor=users["coordinator"], participant_id=p.pk, values={"vas_mm": 55},
                                      collected_on=timezone.localdate() - timedelta(days=12)),
            "collected_on", "is before informed consent; no procedure may precede consent")


@pytest.mark.req("P-2.3")
def test_no_consent_for_a_withdrawn_or_screen_failed_person(make_participant, users, icf_v2):
    for stage in ("screen_failed",):
        p = make_participant(stage)
        refused(lambda: ps.record_consent(actor=users["coordinator"], participant_id=p.pk, consent_version="2.0",
                                          consented_at=timezone.now() - timedelta(minutes=5), taken_by=users["investigator"]),
                "status", "screen failure cannot continue")
    p = make_participant("pre_screened")
    ps.withdraw(actor=users["coordinator"], participant_id=p.pk, withdrawn_on=timezone.localdate(),
                category="declined_consent", details="declined after reading the form")
    refused(lambda: ps.record_consent(actor=users["coordinator"], participant_id=p.pk, consent_version="1.0",
                                      consented_at=timezone.now() - timedelta(minutes=5), taken_by=users["investigator"]),
            "status", "has withdrawn")
