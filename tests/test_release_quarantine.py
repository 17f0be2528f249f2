"""A failed ADMSC lot is quarantined (P-4.2): a new release record for the same lot needs a
reason and a second pharmacist's (QA) signature, or a new lot number; a failure is shown in red;
release is tested after the liposuction and dispensing falls in the transplantation window
(days 14-21, never day 0). Service, page (CSRF enforced) and API."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annulus.accounts.models import LoginAttempt
from annulus.accounts.services import create_user, issue_token
from annulus.allocation import services, testing
from annulus.allocation.models import Dispensing, Envelope, ProductRelease
from annulus.audit.models import AuditEvent
from annulus.errors import RuleViolation
from annulus.trial.selectors import active_protocol
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.req("P-4.2")
FAILED = {**testing.PASSING, "mycoplasma": "positive"}


@pytest.fixture
def qa(users):
    """A second pharmacist, who signs the QA step."""
    roles = {r.id for r in active_protocol().roles}
    return create_user(actor=None, username="t_pharmacist_qa", password=TEST_PASSWORD, role="pharmacist",
                       known_roles=roles, check_password=False)


@pytest.fixture
def env(users, make_participant, monkeypatch):
    testing.liposuction_days_ago(monkeypatch, 21)
    p = testing.randomised(users, make_participant, 1)[0]
    return Envelope.objects.get(participant=p)


def _release(users, env, lot="AD001-1", results=testing.PASSING, **kw):
    checked_at = timezone.now() - timedelta(minutes=5)
    return services.record_release(actor=users["pharmacist"], envelope_id=env.pk, lot_number=lot,
                                   tested_on=timezone.localdate(checked_at), results=results,
                                   checked_at=checked_at, **kw)


def test_a_failed_lot_cannot_be_overridden_without_reason_and_second_person(users, env, qa):
    failed = _release(users, env, results=FAILED)
    assert not failed.passed
    with pytest.raises(RuleViolation) as exc:
        _release(users, env)
    assert exc.value.field == "reason" and "quarantined" in exc.value.message
    with pytest.raises(RuleViolation) as exc:
        _release(users, env, lot="ad001-1 ", reason="Contamination traced to the sampling; re-sampled")
    assert exc.value.field == "qa_username"
    with pytest.raises(RuleViolation) as exc:  # the actor cannot be their own second person
        _release(users, env, reason="Contamination traced to the sampling; re-sampled",
                 qa_username=users["pharmacist"].username, qa_password=TEST_PASSWORD)
    assert exc.value.field == "qa_username" and "second person" in exc.value.message
    with pytest.raises(RuleViolation) as exc:  # the designer is not pharmacy QA
        _release(users, env, reason="Contamination traced to the sampling; re-sampled",
                 qa_username=users["designer"].username, qa_password=TEST_PASSWORD)
    assert exc.value.field == "qa_username"
    assert ProductRelease.objects.count() == 1
    assert ProductRelease.objects.get().superseded is False
    rel = _release(users, env, reason="Contamination traced to the sampling; re-sampled",
                   qa_username=qa.username, qa_password=TEST_PASSWORD)
    assert rel.passed and rel.qa_signed_by == qa and "re-sampled" in rel.reason
    event = AuditEvent.objects.filter(object_type="product_release", object_id=str(rel.pk)).get()
    assert "t_pharmacist_qa" in event.reason and "qa_signed_by" in event.payload


def test_a_new_lot_needs_no_second_person(users, env):
    _release(users, env, results=FAILED)
    rel = _release(users, env, lot="AD001-2")
    assert rel.passed and rel.qa_signed_by is None
    # the failed lot stays quarantined even after another lot was recorded
    with pytest.raises(RuleViolation) as exc:
        _release(users, env, lot="AD001-1")
    assert exc.value.field == "reason"


def test_wrong_qa_passwords_count_towards_the_lockout(users, env, qa):
    _release(users, env, results=FAILED)
    before = AuditEvent.objects.filter(action="login_failed", object_id=str(qa.pk)).count()
    for _ in range(5):
        with pytest.raises(RuleViolation) as exc:
            _release(users, env, reason="Contamination traced to the sampling; re-sampled",
                     qa_username=qa.username, qa_password="wrong-password")
        assert exc.value.field == "qa_username"
    assert LoginAttempt.objects.filter(username=qa.username, success=False).count() == 5
    assert AuditEvent.objects.filter(action="login_failed", object_id=str(qa.pk)).count() > before
    with pytest.raises(RuleViolation) as exc:  # locked now, even with the right password
        _release(users, env, reason="Contamination traced to the sampling; re-sampled",
                 qa_username=qa.username, qa_password=TEST_PASSWORD)
    assert "locked" in exc.value.message
    assert ProductRelease.objects.count() == 1


def test_release_after_liposuction_and_dispensing_in_the_transplant_window(users, make_participant, monkeypatch):
    p = testing.randomised(users, make_participant, 1)[0]
    env = Envelope.objects.get(participant=p)
    testing.liposuction_days_ago(monkeypatch, 0)  # liposuction today: day 0
    with pytest.raises(RuleViolation) as exc:
        _release(users, env)
    assert exc.value.field == "tested_on" and "after the liposuction" in exc.value.message
    testing.liposuction_days_ago(monkeypatch, 5)
    _release(users, env)  # tested on day 5
    with pytest.raises(RuleViolation) as exc:
        services.dispense(actor=users["pharmacist"], envelope_id=env.pk)
    assert exc.value.field == "dispensed_at" and "transplantation window" in exc.value.message
    testing.liposuction_days_ago(monkeypatch, 22)  # day 22: the window (days 14-21) has closed
    with pytest.raises(RuleViolation) as exc:
        services.dispense(actor=users["pharmacist"], envelope_id=env.pk)
    assert exc.value.field == "dispensed_at"
    assert not Dispensing.objects.exists()
    testing.liposuction_days_ago(monkeypatch, 14)
    assert services.dispense(actor=users["pharmacist"], envelope_id=env.pk).release.passed


def test_no_release_and_no_dispensing_without_a_liposuction(users, make_participant):
    p = testing.randomised(users, make_participant, 1)[0]
    env = Envelope.objects.get(participant=p)
    with pytest.raises(RuleViolation) as exc:
        _release(users, env)
    assert exc.value.field == "tested_on" and "no liposuction" in exc.value.message


def _page_client(user):
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    return c


def test_page_shows_failure_in_red_and_asks_for_the_qa_signature(users, env, qa):
    c = _page_client(users["pharmacist"])
    url = f"/pharmacy/envelopes/{env.pk}/"
    page = c.get(url)
    assert b'name="qa_username"' not in page.content  # nothing failed yet
    data = {"csrfmiddlewaretoken": c.cookies["csrftoken"].value, "lot_number": "AD001-1",
            "tested_on": timezone.localdate().isoformat(), **{f"results.{k}": v for k, v in FAILED.items()}}
    r = c.post(url, data, follow=True)
    assert r.status_code == 200
    html = r.content.decode()
    assert '<li class="error">' in html and "FAILED" in html and "quarantined" in html
    assert '<li class="success">' not in html
    assert 'name="qa_username"' in html and 'name="qa_password"' in html
    passing = {**data, **{f"results.{k}": v for k, v in testing.PASSING.items()}}
    r = c.post(url, passing)
    assert r.status_code == 200
    errors = r.context["form"].errors
    assert "reason" in errors and "qa_username" in errors  # both at once
    assert ProductRelease.objects.count() == 1
    r = c.post(url, {**passing, "reason": "Re-sampled after a sampling error", "qa_username": qa.username,
                     "qa_password": TEST_PASSWORD}, follow=True)
    assert r.status_code == 200 and '<li class="success">' in r.content.decode()
    rel = ProductRelease.objects.get(superseded=False)
    assert rel.passed and rel.qa_signed_by == qa


def test_api_needs_the_qa_signature_for_a_quarantined_lot(users, env, qa):
    key = issue_token(user=users["pharmacist"], name="script")
    c = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {key}")
    url = f"/api/v1/allocation/pharmacy/envelopes/{env.pk}/release"
    body = {"lot_number": "AD001-1", "tested_on": timezone.localdate().isoformat(), "results": FAILED}
    r = c.post(url, json.dumps(body), content_type="application/json")
    assert r.status_code == 201, r.content
    body["results"] = testing.PASSING
    r = c.post(url, json.dumps(body), content_type="application/json")
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "reason"
    body["reason"] = "Re-sampled after a sampling error"
    r = c.post(url, json.dumps({**body, "qa_username": qa.username, "qa_password": "nope"}),
               content_type="application/json")
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "qa_username"
    r = c.post(url, json.dumps({**body, "qa_username": qa.username, "qa_password": TEST_PASSWORD}),
               content_type="application/json")
    assert r.status_code == 201 and r.json()["passed"] is True
    assert ProductRelease.objects.get(superseded=False).qa_signed_by == qa
