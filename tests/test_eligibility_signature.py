"""The eligibility decision is signed by an investigator who re-enters their password (X-7.5):
a coordinator prepares it but cannot decide; a wrong password is refused and counts towards the
lockout like a failed login; the audit event records what the signature means. Irreversible steps
(enrol, randomise, dispense, the lock signature) need the "I confirm" box, checked by the server.
Pages are used as a browser does (CSRF enforced), in English and Chinese."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.test import Client

from annulus.accounts.models import LoginAttempt
from annulus.allocation import testing
from annulus.allocation.models import Dispensing, Envelope, UnblindingStep
from annulus.audit.models import AuditEvent
from annulus.errors import NotPermitted, RuleViolation
from annulus.participants import services as ps
from annulus.participants.models import EligibilityDecision, Participant
from annulus.trial.selectors import trial_state

from .conftest import TEST_PASSWORD
from .test_participants_bad_input import counts

LANGUAGES = ("en", "zh-hans")


def browser(user, language: str = "en") -> Client:
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    c.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    return c


def post_form(c: Client, page: str, url: str, data: dict, follow: bool = True):
    """Open ``page`` first (as a browser does), then post ``data`` to ``url`` with the CSRF token."""
    assert c.get(page).status_code == 200
    return c.post(url, {**data, "csrfmiddlewaretoken": c.cookies["csrftoken"].value}, follow=follow)


def failed_attempts(user) -> int:
    return LoginAttempt.objects.filter(username=user.username, success=False).count()


def data_counts() -> dict:
    """Every record of the journey, and the audit events other than failed password checks
    (a wrong signature is audited on purpose, like a failed login)."""
    out = counts()
    out["AuditEvent"] = AuditEvent.objects.exclude(action="login_failed").count()
    return out


def wrong_password(call, words: str) -> None:
    before = data_counts()
    with pytest.raises(RuleViolation) as info:
        call()
    assert info.value.field == "password" and words in info.value.message
    assert data_counts() == before


# ---- the service ---------------------------------------------------------------------------

@pytest.mark.req("X-7.5", "X-2.5")
def test_a_coordinator_cannot_decide(make_participant, users):
    p = make_participant("screening")
    before = counts()
    with pytest.raises(NotPermitted):
        ps.decide_eligibility(actor=users["coordinator"], participant_id=p.pk, password=TEST_PASSWORD)
    assert counts() == before and Participant.objects.get(pk=p.pk).status == "screening"


@pytest.mark.req("X-7.5")
def test_a_wrong_password_is_refused_and_counts_towards_the_lockout(make_participant, users):
    p = make_participant("screening")
    inv = users["investigator"]
    wrong_password(lambda: ps.decide_eligibility(actor=inv, participant_id=p.pk, password="not my password"),
                   "is not correct")
    wrong_password(lambda: ps.decide_eligibility(actor=inv, participant_id=p.pk, password=""), "is required")
    assert failed_attempts(inv) == 1  # the empty one was never checked
    event = AuditEvent.objects.filter(action="login_failed", object_id=str(inv.pk)).get()
    assert "signature: wrong password" in event.payload
    for _ in range(settings.ANNULUS_LOCKOUT_FAILURES - 1):
        wrong_password(lambda: ps.decide_eligibility(actor=inv, participant_id=p.pk, password="wrong again"),
                       "is not correct")
    # locked now: even the right password cannot sign
    wrong_password(lambda: ps.decide_eligibility(actor=inv, participant_id=p.pk, password=TEST_PASSWORD), "locked")
    assert not EligibilityDecision.objects.filter(participant=p).exists()


@pytest.mark.req("X-7.5", "X-2.5")
def test_the_investigators_signature_is_recorded_with_its_meaning(make_participant, users):
    p = make_participant("screening")
    d = ps.decide_eligibility(actor=users["investigator"], participant_id=p.pk, password=TEST_PASSWORD)
    assert d.outcome == "eligible" and d.decided_by == users["investigator"]
    event = AuditEvent.objects.get(object_type="eligibility_decision", object_id=str(d.pk))
    body = json.loads(event.payload)
    assert body["actor"] == users["investigator"].username
    assert body["changes"]["signature"] == [None, "eligibility decision signed"]
    assert failed_attempts(users["investigator"]) == 0


@pytest.mark.req("X-7.5")
def test_a_batch_signature_must_be_the_actors_own(make_participant, users):
    from annulus.accounts.services import sign

    p = make_participant("screening")
    theirs = sign(user=users["pi"], password=TEST_PASSWORD, meaning=ps.ELIGIBILITY_SIGNATURE)
    wrong_password(lambda: ps.decide_eligibility(actor=users["investigator"], participant_id=p.pk, signature=theirs),
                   "not this investigator's")
    other = sign(user=users["investigator"], password=TEST_PASSWORD, meaning="something else")
    wrong_password(lambda: ps.decide_eligibility(actor=users["investigator"], participant_id=p.pk, signature=other),
                   "not this investigator's")


# ---- the API -------------------------------------------------------------------------------

def _token_client(user) -> Client:
    from annulus.accounts.services import issue_token

    return Client(HTTP_AUTHORIZATION=f"Bearer {issue_token(user=user, name='t')}")


def _decide(c, pk, body):
    return c.post(f"/api/v1/participants/{pk}/eligibility/decide", json.dumps(body), content_type="application/json")


@pytest.mark.req("X-7.5")
def test_the_api_takes_the_password(make_participant, users):
    p = make_participant("screening")
    inv, coord = _token_client(users["investigator"]), _token_client(users["coordinator"])
    before = data_counts()
    r = _decide(inv, p.pk, {})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "password"
    r = _decide(inv, p.pk, {"password": "nope"})
    assert r.status_code == 400 and r.json()["detail"] == [{"field": "password", "message": "is not correct"}]
    assert failed_attempts(users["investigator"]) == 1
    assert _decide(coord, p.pk, {"password": TEST_PASSWORD}).status_code == 403
    assert data_counts() == before
    r = _decide(inv, p.pk, {"password": TEST_PASSWORD})
    assert r.status_code == 201 and r.json()["outcome"] == "eligible"


# ---- the decision page ---------------------------------------------------------------------

@pytest.mark.req("X-7.5", "X-2.5")
def test_the_coordinator_sees_the_decision_prepared_without_a_form(make_participant, users):
    p = make_participant("screening")
    c = browser(users["coordinator"])
    html = c.get(f"/participants/{p.pk}/eligibility/").content.decode()
    assert "An investigator signs the eligibility decision" in html and 'name="password"' not in html
    r = c.post(f"/participants/{p.pk}/eligibility/",
               {"password": TEST_PASSWORD, "csrfmiddlewaretoken": c.cookies["csrftoken"].value})
    assert r.status_code == 403 and not EligibilityDecision.objects.filter(participant=p).exists()
    assert "Eligibility decision" in c.get(f"/participants/{p.pk}/").content.decode()  # the way there


@pytest.mark.req("X-7.5")
@pytest.mark.parametrize("language, outcome_text, wrong, signed", [
    ("en", "eligible: every criterion is met", "Your password (electronic signature): is not correct",
     "Eligible: every criterion is met."),
    ("zh-hans", "符合入组条件：所有标准均满足", "您的密码（电子签名）: 不正确", "符合入组条件：所有标准均满足。"),
])
def test_the_investigator_signs_on_the_page(make_participant, users, language, outcome_text, wrong, signed):
    p = make_participant("screening")
    c = browser(users["investigator"], language)
    url = f"/participants/{p.pk}/eligibility/"
    page = c.get(url).content.decode()
    assert outcome_text in page and 'type="password"' in page
    before = data_counts()
    r = post_form(c, url, url, {"password": "wrong"}, follow=False)
    assert r.status_code == 200 and wrong in r.content.decode()
    assert data_counts() == before and failed_attempts(users["investigator"]) == 1
    r = post_form(c, url, url, {"password": TEST_PASSWORD})
    assert signed in r.content.decode()
    assert Participant.objects.get(pk=p.pk).status == "eligible"


# ---- "I confirm" on irreversible steps -----------------------------------------------------

@pytest.mark.req("P-2.3")
@pytest.mark.parametrize("language, refusal, done", [
    ("en", "Not enrolled: confirm: tick “I confirm” to go ahead; nothing was recorded", "Enrolled as case 001."),
    ("zh-hans", "未入组: 确认：请先勾选“我确认”再继续；未记录任何内容", "已入组，病例号 001。"),
])
def test_enrolment_needs_the_confirmation(make_participant, users, language, refusal, done):
    p = make_participant("eligible")
    c = browser(users["coordinator"], language)
    page = f"/participants/{p.pk}/"
    assert 'name="confirm"' in c.get(page).content.decode()
    before = counts()
    r = post_form(c, page, f"/participants/{p.pk}/enrol/", {})
    assert refusal in r.content.decode()
    assert counts() == before and Participant.objects.get(pk=p.pk).case_number is None
    r = post_form(c, page, f"/participants/{p.pk}/enrol/", {"confirm": "yes"})
    assert done in r.content.decode()


@pytest.mark.req("P-3.2")
@pytest.mark.parametrize("language, refusal", [
    ("en", "Not randomised: confirm: tick “I confirm” to go ahead; nothing was recorded"),
    ("zh-hans", "未随机化: 确认：请先勾选“我确认”再继续；未记录任何内容"),
])
def test_randomisation_needs_the_confirmation(make_participant, users, language, refusal):
    testing.generate(users)
    p = make_participant("enrolled")
    c = browser(users["investigator"], language)
    page = f"/participants/{p.pk}/"
    before = (counts(), AuditEvent.objects.count())
    r = post_form(c, page, f"/participants/{p.pk}/randomise/", {})
    assert refusal in r.content.decode()
    assert (counts(), AuditEvent.objects.count()) == before and not Envelope.objects.filter(participant=p).exists()
    post_form(c, page, f"/participants/{p.pk}/randomise/", {"confirm": "yes"})
    assert Envelope.objects.filter(participant=p).exists()


@pytest.mark.req("P-3.4")
@pytest.mark.parametrize("language, refusal", [
    ("en", "Not dispensed: confirm: tick “I confirm” to go ahead; nothing was recorded"),
    ("zh-hans", "未发放: 确认：请先勾选“我确认”再继续；未记录任何内容"),
])
def test_dispensing_needs_the_confirmation(make_participant, users, monkeypatch, language, refusal):
    from django.utils import timezone

    testing.liposuction_days_ago(monkeypatch, 21)  # the lot is tested after it, dispensed in the window
    p = testing.randomised(users, make_participant, 1)[0]
    env = Envelope.objects.get(participant=p)
    from annulus.allocation import services

    services.record_release(actor=users["pharmacist"], envelope_id=env.pk, lot_number="LOT-1",
                            tested_on=timezone.localdate(), results=testing.PASSING)
    c = browser(users["pharmacist"], language)
    page = f"/pharmacy/envelopes/{env.pk}/"
    assert 'name="confirm"' in c.get(page).content.decode()
    before = AuditEvent.objects.count()
    r = post_form(c, page, f"/pharmacy/envelopes/{env.pk}/dispense/", {})
    assert refusal in r.content.decode()
    assert AuditEvent.objects.count() == before and not Dispensing.objects.exists()
    post_form(c, page, f"/pharmacy/envelopes/{env.pk}/dispense/", {"confirm": "yes"})
    assert Dispensing.objects.count() == 1


@pytest.mark.req("P-3.7", "X-7.5")
@pytest.mark.parametrize("language, refusal", [
    ("en", "I confirm this signature; the step cannot be undone: This field is required."),
    ("zh-hans", "我确认此签名；此步骤无法撤销: 这个字段是必填项。"),
])
def test_the_lock_signature_needs_the_confirmation(users, language, refusal):
    c = browser(users["pi"], language)
    data = {"action": "lock", "statement": "All CRFs checked and signed.", "password": TEST_PASSWORD}
    before = AuditEvent.objects.count()
    r = post_form(c, "/unblinding/", "/unblinding/", data, follow=False)
    assert r.status_code == 200 and refusal in r.content.decode()
    assert AuditEvent.objects.count() == before and not UnblindingStep.objects.exists()
    r = post_form(c, "/unblinding/", "/unblinding/", {**data, "confirm": "on"}, follow=False)
    assert r.status_code == 302 and UnblindingStep.objects.filter(kind="lock_pi").exists()
    assert trial_state() in ("setup", "recruiting")  # the statistician has not signed yet
