"""Emergency unblinding has bounds (P-3.5, P-3.7, X-7.3):

- a wrong password at that step counts towards the account's lockout and is audited, like a
  failed login; a locked account cannot unblind;
- a second emergency unblinding by the same person within 24 hours needs a principal
  investigator's co-signature (user name and password of a PI other than the actor);
- before the participant's product was dispensed there is nothing to unblind.

Every refusal writes nothing except the failed-password event. Checked on the service, the page
(with a client that enforces CSRF) and the API."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annulus.accounts.backends import is_locked
from annulus.accounts.models import LoginAttempt
from annulus.allocation import services, testing
from annulus.allocation.models import EmergencyUnblinding
from annulus.audit.models import AuditEvent
from annulus.errors import RuleViolation
from annulus.trial.models import Notification
from tests.conftest import TEST_PASSWORD

REASON = "Anaphylaxis in the emergency department; treatment must be known"
pytestmark = pytest.mark.req("P-3.7")


def _written() -> tuple:
    """Everything an unblinding writes, apart from failed-password events."""
    return (EmergencyUnblinding.objects.count(), Notification.objects.count(),
            AuditEvent.objects.exclude(action="login_failed").count())


def _failures(user) -> list[str]:
    return [json.loads(e.payload)["changes"]["why"]
            for e in AuditEvent.objects.filter(action="login_failed", object_type="user", object_id=str(user.pk))]


def _browser(user) -> Client:
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    c.get("/")
    return c


def _post_page(c: Client, pk: int, data: dict):
    page = c.get(f"/participants/{pk}/emergency-unblinding/")
    assert page.status_code == 200
    return c.post(f"/participants/{pk}/emergency-unblinding/",
                  {**data, "csrfmiddlewaretoken": c.cookies["csrftoken"].value})


def _post_api(c: Client, pk: int, data: dict):
    return c.post(f"/api/v1/allocation/participants/{pk}/emergency-unblinding", data,
                  content_type="application/json", HTTP_X_CSRFTOKEN=c.cookies["csrftoken"].value)


# ---- wrong passwords count towards the lockout ---------------------------------------------------


def test_wrong_passwords_count_towards_the_lockout_and_are_audited(users, make_participant, settings, monkeypatch):
    inv = users["investigator"]
    p = testing.dispensed(users, make_participant, 1, monkeypatch)[0]
    before = _written()
    for _ in range(settings.ANNULUS_LOCKOUT_FAILURES):
        with pytest.raises(RuleViolation) as exc:
            services.emergency_unblind(actor=inv, participant_id=p.pk, password="not-my-password", reason=REASON)
        assert exc.value.field == "password" and "is not correct" in exc.value.message
    assert LoginAttempt.objects.filter(username=inv.username, success=False).count() == settings.ANNULUS_LOCKOUT_FAILURES
    whys = _failures(inv)
    assert len(whys) == settings.ANNULUS_LOCKOUT_FAILURES and all(w.startswith("emergency unblinding: wrong password")
                                                                   for w in whys)
    assert whys[-1].endswith("account now locked") and is_locked(inv.username)
    # locked: even the right password is refused, and nothing more is written
    n_attempts = LoginAttempt.objects.count()
    with pytest.raises(RuleViolation) as exc:
        services.emergency_unblind(actor=inv, participant_id=p.pk, password=TEST_PASSWORD, reason=REASON)
    assert exc.value.field == "password" and "locked" in exc.value.message
    assert LoginAttempt.objects.count() == n_attempts and len(_failures(inv)) == settings.ANNULUS_LOCKOUT_FAILURES
    assert _written() == before
    # and the login form refuses the account as well
    r = Client().post("/accounts/login/", {"username": inv.username, "password": TEST_PASSWORD})
    assert r.status_code == 200 and "locked" in r.content.decode()


def test_wrong_password_on_the_page_and_the_api_counts(users, make_participant, monkeypatch):
    inv = users["investigator"]
    p = testing.dispensed(users, make_participant, 1, monkeypatch)[0]
    before = _written()
    c = _browser(inv)
    r = _post_page(c, p.pk, {"password": "wrong-one", "reason": REASON})
    assert r.status_code == 200 and "is not correct" in r.content.decode()
    r = _post_api(c, p.pk, {"password": "wrong-two", "reason": REASON})
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "password"
    assert LoginAttempt.objects.filter(username=inv.username, success=False).count() == 2
    assert len(_failures(inv)) == 2 and _written() == before


# ---- nothing to unblind before dispensing --------------------------------------------------------


def test_nothing_to_unblind_before_the_product_is_dispensed(users, make_participant):
    inv = users["investigator"]
    p = testing.randomised(users, make_participant, 1)[0]
    before, attempts = _written(), LoginAttempt.objects.count()
    with pytest.raises(RuleViolation) as exc:
        services.emergency_unblind(actor=inv, participant_id=p.pk, password=TEST_PASSWORD, reason=REASON)
    assert exc.value.field == "participant" and "has not been dispensed" in exc.value.message
    assert "nothing to unblind" in exc.value.message

    c = _browser(inv)
    page = c.get(f"/participants/{p.pk}/emergency-unblinding/").content.decode()
    assert "nothing to unblind" in page and 'name="password"' not in page  # no form to fill in vain
    assert f'href="/participants/{p.pk}/emergency-unblinding/"' not in c.get(f"/participants/{p.pk}/").content.decode()
    r = c.post(f"/participants/{p.pk}/emergency-unblinding/",
               {"password": TEST_PASSWORD, "reason": REASON, "csrfmiddlewaretoken": c.cookies["csrftoken"].value})
    assert r.status_code == 200 and "has not been dispensed" in r.content.decode()
    r = _post_api(c, p.pk, {"password": TEST_PASSWORD, "reason": REASON})
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "participant"
    assert "has not been dispensed" in r.json()["detail"][0]["message"]
    assert (_written(), LoginAttempt.objects.count()) == (before, attempts)


def test_the_page_offers_unblinding_once_the_product_is_dispensed(users, make_participant, monkeypatch):
    p = testing.dispensed(users, make_participant, 1, monkeypatch)[0]
    c = _browser(users["investigator"])
    assert f'href="/participants/{p.pk}/emergency-unblinding/"' in c.get(f"/participants/{p.pk}/").content.decode()
    page = c.get(f"/participants/{p.pk}/emergency-unblinding/").content.decode()
    assert 'name="password"' in page and 'name="cosigner_username"' not in page  # the first needs no co-signature


# ---- a second unblinding within 24 hours needs a PI's co-signature -------------------------------


def test_second_unblinding_within_24_hours_needs_a_pi_cosignature(users, make_participant, monkeypatch):
    inv, pi = users["investigator"], users["pi"]
    p, q = testing.dispensed(users, make_participant, 2, monkeypatch)
    first, _ = services.emergency_unblind(actor=inv, participant_id=p.pk, password=TEST_PASSWORD, reason=REASON)
    assert first.cosigned_by is None
    before = _written()
    attempts = LoginAttempt.objects.count()
    for who, password, words in [("", "", "needs a principal investigator's co-signature"),
                                 (pi.username, "wrong", "is not an active principal investigator"),
                                 (users["coordinator"].username, TEST_PASSWORD, "is not an active principal"),
                                 ("nobody", TEST_PASSWORD, "is not an active principal investigator")]:
        with pytest.raises(RuleViolation) as exc:
            services.emergency_unblind(actor=inv, participant_id=q.pk, password=TEST_PASSWORD, reason=REASON,
                                       cosigner_username=who, cosigner_password=password)
        assert exc.value.field == "cosigner_username" and words in exc.value.message, who
    # only the PI's wrong password was written, counting towards the PI's lockout
    assert LoginAttempt.objects.count() == attempts + 1
    assert LoginAttempt.objects.filter(username=pi.username, success=False).count() == 1
    assert _failures(pi) == ["co-signature: wrong password"]
    assert _written() == before

    rec, arm = services.emergency_unblind(actor=inv, participant_id=q.pk, password=TEST_PASSWORD, reason=REASON,
                                          cosigner_username=pi.username, cosigner_password=TEST_PASSWORD)
    assert rec.label == "EU-002" and rec.cosigned_by == pi and arm
    event = AuditEvent.objects.filter(object_type="emergency_unblinding").order_by("id").last()
    assert json.loads(event.payload)["changes"]["cosigned_by"] == [None, pi.username]
    note = Notification.objects.filter(user=pi, kind="emergency_unblinding").order_by("id").last()
    assert f"Co-signed by {pi.username}" in note.body and arm not in note.body


def test_the_first_message_names_the_earlier_unblinding(users, make_participant, monkeypatch):
    inv = users["investigator"]
    p, q = testing.dispensed(users, make_participant, 2, monkeypatch)
    services.emergency_unblind(actor=inv, participant_id=p.pk, password=TEST_PASSWORD, reason=REASON)
    with pytest.raises(RuleViolation) as exc:
        services.emergency_unblind(actor=inv, participant_id=q.pk, password=TEST_PASSWORD, reason=REASON)
    assert "EU-001" in exc.value.message and "24 hours" in exc.value.message


def test_a_pi_cannot_cosign_their_own_second_unblinding(users, make_participant, monkeypatch):
    pi = users["pi"]
    p, q = testing.dispensed(users, make_participant, 2, monkeypatch)
    services.emergency_unblind(actor=pi, participant_id=p.pk, password=TEST_PASSWORD, reason=REASON)
    before = _written()
    with pytest.raises(RuleViolation) as exc:
        services.emergency_unblind(actor=pi, participant_id=q.pk, password=TEST_PASSWORD, reason=REASON,
                                   cosigner_username=pi.username, cosigner_password=TEST_PASSWORD)
    assert exc.value.field == "cosigner_username" and "someone other than" in exc.value.message
    assert _written() == before


def test_after_24_hours_no_cosignature_is_needed_and_others_are_not_bound(users, make_participant, monkeypatch):
    inv, pi = users["investigator"], users["pi"]
    p, q, r = testing.dispensed(users, make_participant, 3, monkeypatch)
    first, _ = services.emergency_unblind(actor=inv, participant_id=p.pk, password=TEST_PASSWORD, reason=REASON)
    # another investigator's first unblinding of the day needs no co-signature
    services.emergency_unblind(actor=pi, participant_id=q.pk, password=TEST_PASSWORD, reason=REASON)
    EmergencyUnblinding.objects.filter(pk=first.pk).update(at=timezone.now() - timedelta(hours=24, minutes=1))
    rec, _ = services.emergency_unblind(actor=inv, participant_id=r.pk, password=TEST_PASSWORD, reason=REASON)
    assert rec.cosigned_by is None


def test_page_says_why_and_takes_the_cosignature(users, make_participant, monkeypatch):
    inv, pi = users["investigator"], users["pi"]
    p, q = testing.dispensed(users, make_participant, 2, monkeypatch)
    first, _ = services.emergency_unblind(actor=inv, participant_id=p.pk, password=TEST_PASSWORD, reason=REASON)
    c = _browser(inv)
    page = c.get(f"/participants/{q.pk}/emergency-unblinding/").content.decode()
    assert "A principal investigator's co-signature is needed." in page and first.label in page
    assert 'name="cosigner_username"' in page and 'name="cosigner_password"' in page
    before = _written()
    r = _post_page(c, q.pk, {"password": TEST_PASSWORD, "reason": REASON})
    html = r.content.decode()
    assert r.status_code == 200 and "needs a principal investigator&#x27;s co-signature" in html
    assert _written() == before
    r = _post_page(c, q.pk, {"password": TEST_PASSWORD, "reason": REASON, "cosigner_username": pi.username,
                             "cosigner_password": TEST_PASSWORD})
    assert r.status_code == 200 and "EU-002" in r.content.decode()
    rec = EmergencyUnblinding.objects.get(number=2)
    assert rec.cosigned_by == pi
    record = _browser(users["monitor"]).get(f"/unblinding/emergency/{rec.pk}/").content.decode()
    assert "Co-signed by" in record and pi.username in record


def test_api_takes_the_cosignature(users, make_participant, monkeypatch):
    inv, pi = users["investigator"], users["pi"]
    p, q = testing.dispensed(users, make_participant, 2, monkeypatch)
    c = _browser(inv)
    assert _post_api(c, p.pk, {"password": TEST_PASSWORD, "reason": REASON}).status_code == 201
    before = _written()
    r = _post_api(c, q.pk, {"password": TEST_PASSWORD, "reason": REASON})
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "cosigner_username"
    r = _post_api(c, q.pk, {"password": TEST_PASSWORD, "reason": REASON, "cosigner_username": pi.username,
                            "cosigner_password": "wrong"})
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "cosigner_username"
    assert _written() == before and _failures(pi) == ["co-signature: wrong password"]
    r = _post_api(c, q.pk, {"password": TEST_PASSWORD, "reason": REASON, "cosigner_username": pi.username,
                            "cosigner_password": TEST_PASSWORD})
    assert r.status_code == 201 and r.json()["cosigned_by"] == pi.username and r.json()["number"] == "EU-002"
    listing = c.get("/api/v1/allocation/emergency-unblindings").json()
    assert [row["cosigned_by"] for row in listing] == [None, pi.username]
