"""The consent version is one of the protocol's ethics-approved informed-consent form versions,
approved on or before the day the consent was signed (P-2.3)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from annulus.errors import RuleViolation
from annulus.participants import services as ps
from annulus.participants.models import Consent
from annulus.protocol import ProtocolError, parse_protocol

FIRST = '    - {version: "1.0", approved_on: 2022-03-28}\n'


def _amended(extra: str, version: str = "1.1") -> str:
    text = Path(settings.ANNULUS_PROTOCOL_FILE).read_text(encoding="utf-8")
    assert FIRST in text
    return text.replace('version: "1.0"\n', f'version: "{version}"\n', 1).replace(FIRST, FIRST + extra, 1)


@pytest.fixture
def icf_later(users):
    """An amendment with version 2.0 approved in ten days (an approval recorded ahead, e.g. an
    ethics meeting scheduled) and version 1.5 approved two days ago."""
    from annulus.trial.services import load_protocol_version

    soon = (timezone.localdate() + timedelta(days=10)).isoformat()
    recent = (timezone.localdate() - timedelta(days=2)).isoformat()
    return load_protocol_version(actor=users["admin"], text=_amended(
        f'    - {{version: "1.5", approved_on: {recent}}}\n    - {{version: "2.0", approved_on: {soon}}}\n'))


def test_the_shipped_protocol_lists_its_approved_icf_versions():
    protocol = parse_protocol(Path(settings.ANNULUS_PROTOCOL_FILE).read_bytes())
    assert [(v.version, v.approved_on) for v in protocol.consent.icf_versions] == [("1.0", date(2022, 3, 28))]
    assert any("Informed-consent form" in a.en for a in protocol.assumptions)


@pytest.mark.parametrize("extra, words", [
    ('    - {version: "1.0", approved_on: 2023-01-01}\n', "consent.icf_versions: each version may be listed once"),
    ('    - {version: "2.0", approved_on: 2023-01-01, approved_by: EC}\n', "approved_by"),
    ('    - {version: "2.0"}\n', "approved_on"),
    ('    - {version: "2.0", approved_on: someday}\n', "approved_on"),
    ('    - {version: "", approved_on: 2023-01-01}\n', "version"),
])
def test_a_wrong_icf_list_is_a_schema_error_naming_the_field(extra, words):
    with pytest.raises(ProtocolError) as info:
        parse_protocol(_amended(extra))
    assert any(words in e and "consent.icf_versions" in e for e in info.value.errors), info.value.errors


@pytest.mark.req("P-2.3")
def test_an_unapproved_version_is_refused_naming_the_field(make_participant, users):
    p = make_participant("pre_screened")
    for version in ("ICF v1.0", "3.0"):
        with pytest.raises(RuleViolation) as info:
            ps.record_consent(actor=users["coordinator"], participant_id=p.pk, consent_version=version,
                              consented_at=timezone.now() - timedelta(days=1), taken_by=users["investigator"])
        assert info.value.field == "consent_version" and "not an informed-consent form version approved" in \
            info.value.message
    assert not Consent.objects.filter(participant=p).exists()


@pytest.mark.req("P-2.3")
def test_a_version_approved_after_the_signature_is_refused(make_participant, users, icf_later):
    p = make_participant("pre_screened")  # pre-screened 10 days ago
    with pytest.raises(RuleViolation) as info:  # 1.5 was approved two days ago; signed five days ago
        ps.record_consent(actor=users["coordinator"], participant_id=p.pk, consent_version="1.5",
                          consented_at=timezone.now() - timedelta(days=5), taken_by=users["investigator"])
    assert info.value.field == "consent_version" and "after the day the consent was signed" in info.value.message
    c = ps.record_consent(actor=users["coordinator"], participant_id=p.pk, consent_version="1.5",
                          consented_at=timezone.now() - timedelta(days=1), taken_by=users["investigator"])
    assert c.consent_version == "1.5"


def _browser(user, language="en") -> Client:
    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(user)
    return c


@pytest.mark.req("P-2.3")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_consent_page_offers_the_approved_versions_none_preselected(make_participant, users, icf_later,
                                                                       language):
    p = make_participant("pre_screened")
    c = _browser(users["coordinator"], language)
    page = c.get(f"/participants/{p.pk}/consent/")
    html = page.content.decode()
    select = re.search(r'<select name="consent_version".*?</select>', html, flags=re.S).group(0)
    options = re.findall(r'<option value="([^"]*)"( selected)?', select)
    # approved by today, newest approval first; 2.0 is approved only in ten days
    assert [v for v, _sel in options] == ["", "1.5", "1.0"]
    assert [v for v, sel in options if sel] == [""]  # nothing pre-selected
    assert "2022-03-28" in select
    token = c.cookies["csrftoken"].value
    signed = timezone.localtime() - timedelta(days=1)
    r = c.post(f"/participants/{p.pk}/consent/", {
        "csrfmiddlewaretoken": token, "consent_version": "1.5", "consented_at": signed.strftime("%Y-%m-%dT%H:%M"),
        "taken_by": users["investigator"].pk})
    assert r.status_code == 302, r.content.decode()[-3000:]
    assert Consent.objects.get(participant=p).consent_version == "1.5"


@pytest.mark.req("P-2.3")
def test_the_consent_page_shows_a_refused_version_on_its_field(make_participant, users, icf_later):
    p = make_participant("pre_screened")
    c = _browser(users["coordinator"])
    c.get(f"/participants/{p.pk}/consent/")
    token = c.cookies["csrftoken"].value
    signed = timezone.localtime() - timedelta(days=5)  # before version 1.5 was approved
    r = c.post(f"/participants/{p.pk}/consent/", {
        "csrfmiddlewaretoken": token, "consent_version": "1.5", "consented_at": signed.strftime("%Y-%m-%dT%H:%M"),
        "taken_by": users["investigator"].pk})
    assert r.status_code == 200
    html = r.content.decode()
    field = re.search(r'<div class="field[^"]*">\s*<label for="id_consent_version".*?</div>', html, flags=re.S).group(0)
    assert "after the day the consent was signed" in field
    assert not Consent.objects.filter(participant=p).exists()


@pytest.mark.req("P-2.3")
def test_the_api_refuses_an_unapproved_version(make_participant, users):
    from annulus.accounts.services import issue_token

    p = make_participant("pre_screened")
    raw = issue_token(user=users["coordinator"], name="t")
    c = Client(enforce_csrf_checks=True)
    r = c.post(f"/api/v1/participants/{p.pk}/consent", {
        "consent_version": "ICF v9", "consented_at": (timezone.now() - timedelta(days=1)).isoformat(),
        "taken_by": users["investigator"].username}, content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert r.status_code == 400, r.content
    assert any(d["field"] == "consent_version" for d in r.json()["detail"])
