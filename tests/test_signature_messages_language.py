"""A refused signature speaks the page's language: a wrong password (or a wrong QA signature) on
every signature page - casebook, eligibility decision, database lock, the unblinding steps,
emergency unblinding and the QA release of a quarantined lot - is named in Chinese on a Chinese
page and in English on an English one (translated when raised, never an English phrase on a
Chinese page)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from annulus.allocation import testing
from tests.conftest import TEST_PASSWORD

from .lock_support import STATEMENT, sign_lock

pytestmark = pytest.mark.req("X-7.5")

WRONG = {"en": "is not correct", "zh-hans": "不正确"}
REASON = "Anaphylaxis in the emergency department; treatment must be known"


def _post(user, url: str, data: dict, language: str):
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    c.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    assert c.get(url).status_code == 200
    r = c.post(url, {**data, "csrfmiddlewaretoken": c.cookies["csrftoken"].value})
    assert r.status_code in (200, 400)
    return r.content.decode()


def _check(html: str, language: str, wrong: dict = WRONG):
    assert wrong[language] in html
    if language != "en":
        assert wrong["en"] not in html


LANGUAGES = pytest.mark.parametrize("language", ["en", "zh-hans"])


@LANGUAGES
def test_casebook_signature(users, make_participant, language):
    p = make_participant("enrolled")
    html = _post(users["pi"], f"/participants/{p.pk}/casebook/",
                 {"username": users["pi"].username, "password": "wrong", "confirm": "yes"}, language)
    _check(html, language)


@LANGUAGES
def test_eligibility_signature(users, make_participant, language):
    p = make_participant("screening")
    _check(_post(users["investigator"], f"/participants/{p.pk}/eligibility/", {"password": "wrong"}, language),
           language)


@LANGUAGES
def test_lock_signature(users, language):
    html = _post(users["pi"], "/unblinding/",
                 {"action": "lock", "statement": STATEMENT, "password": "wrong", "confirm": "on"}, language)
    _check(html, language)


@LANGUAGES
def test_unblinding_step_signature(users, language):
    sign_lock(users)
    html = _post(users["designer"], "/unblinding/",
                 {"action": "level1", "statement": STATEMENT, "password": "wrong", "confirm": "on"}, language)
    _check(html, language)


@LANGUAGES
def test_emergency_unblinding_signature(users, make_participant, monkeypatch, language):
    p = testing.dispensed(users, make_participant, 1, monkeypatch)[0]
    html = _post(users["investigator"], f"/participants/{p.pk}/emergency-unblinding/",
                 {"password": "wrong", "reason": REASON, "confirm": "on"}, language)
    _check(html, language)


@LANGUAGES
def test_qa_release_signature(users, make_participant, monkeypatch, language):
    from annulus.accounts.services import create_user
    from annulus.allocation import services
    from annulus.allocation.models import Envelope
    from annulus.trial.selectors import active_protocol

    protocol = active_protocol()
    qa = create_user(actor=None, username="t_pharmacist_qa", password=TEST_PASSWORD, role="pharmacist",
                     known_roles={r.id for r in protocol.roles}, check_password=False)
    testing.liposuction_days_ago(monkeypatch, 21)
    env = Envelope.objects.get(participant=testing.randomised(users, make_participant, 1)[0])
    checked_at = timezone.now() - timedelta(minutes=5)
    services.record_release(actor=users["pharmacist"], envelope_id=env.pk, lot_number="AD001-1",
                            tested_on=timezone.localdate(checked_at), checked_at=checked_at,
                            results={**testing.PASSING, "mycoplasma": "positive"})
    data = {"lot_number": "AD001-1", "tested_on": timezone.localdate().isoformat(),
            **{f"results.{k}": v for k, v in testing.PASSING.items()},
            "reason": "Re-sampled after a sampling error", "qa_username": qa.username, "qa_password": "wrong"}
    html = _post(users["pharmacist"], f"/pharmacy/envelopes/{env.pk}/", data, language)
    role = next(r for r in protocol.roles if r.id == protocol.randomisation.level2_key_holder)
    wrong = {"en": f"is not an active {role.name.get('en')} account with that password",
             "zh-hans": f"不是使用该密码的有效{role.name.get('zh-hans')}账户"}
    _check(html, language, wrong)

