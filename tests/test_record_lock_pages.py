"""Record locks on the pages and in the API (X-7.5), as they are used: the data manager locks from
the padlock on the form, visit and participant pages (a browser session, CSRF enforced), a
locked form refuses the coordinator's change on the form itself (never 403 or 500), the unlock
needs a reason, everyone who can see the record sees the padlock but only the data manager its
controls; the API with a bearer token and no session. In English and in Chinese."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annulus.participants.models import RecordLock

from .lock_support import audit_head, row_counts
from .test_record_locks import followed  # noqa: F401 (fixture)
from .test_visits_support import GOOD, aware, trial_participant, transplant_dates  # noqa: F401 (fixtures)

LANGUAGES = {"en": ("Locked", "Lock this form", "is locked", "Reason for unlocking", "open work must be finished first"),
             "zh-hans": ("已锁定", "锁定此表单", "已锁定", "解锁原因", "须先完成未完成的工作")}


class Browser:
    """A logged-in browser in one language: CSRF enforced, the token read from the cookie."""

    def __init__(self, user, language):
        self.client = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
        self.client.force_login(user)
        self.client.get("/")
        self.token = self.client.cookies["csrftoken"].value

    def get(self, path):
        return self.client.get(path)

    def post(self, path, data):
        return self.client.post(path, {**data, "csrfmiddlewaretoken": self.token}, follow=True)


def _token_client(user):
    from annulus.accounts.services import issue_token

    key = issue_token(user=user, name="lock pages")
    client = Client(enforce_csrf_checks=True)

    def call(method, path, body=None):
        if method == "get":
            return client.get(path, HTTP_AUTHORIZATION=f"Bearer {key}")
        return getattr(client, method)(path, json.dumps(body or {}), content_type="application/json",
                                       HTTP_AUTHORIZATION=f"Bearer {key}")
    return call


def _html(resp) -> str:
    return resp.content.decode()


@pytest.mark.req("X-7.5")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_data_manager_locks_a_form_from_its_page_and_the_change_is_refused_on_it(followed, users, language):
    locked, lock_button, is_locked, reason_label, _open = LANGUAGES[language]
    p = followed
    crf = f"/participants/{p.pk}/visits/w1/vas/"
    dm = Browser(users["data_manager"], language)
    page = _html(dm.get(crf))
    assert lock_button in page and f'action="/participants/{p.pk}/locks/"' in page
    resp = dm.post(f"/participants/{p.pk}/locks/", {"action": "lock", "visit": "w1", "form": "vas", "next": crf})
    assert resp.status_code == 200 and resp.redirect_chain[-1][0] == crf
    page = _html(resp)
    assert locked in page and reason_label in page  # the padlock, and the unlock with its reason
    assert RecordLock.objects.filter(participant=p, visit="w1", form="vas", unlocked_at=None).count() == 1
    # the coordinator's change is refused on the form, naming the lock
    coord = Browser(users["coordinator"], language)
    counts, head = row_counts(), audit_head()
    resp = coord.post(crf, {"vas_mm": "20", "complete": "1", "reason": "typing error", "revision": "1"})
    assert resp.status_code == 200
    page = _html(resp)
    assert is_locked in page and users["data_manager"].username in page and 'role="alert"' in page
    assert row_counts() == counts and audit_head() == head
    # the visit page and the participant page show the padlock too
    assert 'class="status locked"' in _html(coord.get(f"/participants/{p.pk}/visits/w1/"))
    assert 'class="status locked"' in _html(coord.get(f"/participants/{p.pk}/"))


@pytest.mark.req("X-7.5")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_unlock_without_a_reason_is_refused_on_the_form_then_unlocks_with_one(followed, users, language):
    from annulus.participants import services as ps

    p = followed
    ps.lock_record(actor=users["data_manager"], participant_id=p.pk, visit="w1", form="vas")
    dm = Browser(users["data_manager"], language)
    counts, head = row_counts(), audit_head()
    resp = dm.post(f"/participants/{p.pk}/locks/", {"action": "unlock", "visit": "w1", "form": "vas", "reason": ""})
    assert resp.status_code == 200 and not resp.redirect_chain
    page = _html(resp)
    assert 'has-error' in page and LANGUAGES[language][3] in page
    assert row_counts() == counts and audit_head() == head
    resp = dm.post(f"/participants/{p.pk}/locks/", {"action": "unlock", "visit": "w1", "form": "vas",
                                                    "reason": "Correction asked for by the monitor",
                                                    "next": f"/participants/{p.pk}/visits/w1/vas/"})
    assert resp.redirect_chain and RecordLock.objects.get(participant=p).unlock_reason == \
        "Correction asked for by the monitor"
    # the lock page keeps the history
    assert "Correction asked for by the monitor" in _html(dm.get(f"/participants/{p.pk}/locks/"))


@pytest.mark.req("X-7.5")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_locking_a_visit_with_a_draft_form_is_refused_listing_it(followed, users, language):
    p = followed
    dm = Browser(users["data_manager"], language)
    counts, head = row_counts(), audit_head()
    resp = dm.post(f"/participants/{p.pk}/locks/", {"action": "lock", "visit": "w1", "form": ""})
    assert resp.status_code == 200 and not resp.redirect_chain
    page = _html(resp)
    assert LANGUAGES[language][4] in page and ("Oswestry" in page or "Oswestry功能障碍指数" in page)
    assert row_counts() == counts and audit_head() == head


@pytest.mark.req("X-7.5")
def test_an_unknown_visit_is_refused_on_the_page_and_a_next_elsewhere_is_not_followed(followed, users):
    dm = Browser(users["data_manager"], "en")
    resp = dm.post(f"/participants/{followed.pk}/locks/", {"action": "lock", "visit": "zz9", "form": ""})
    assert resp.status_code == 200 and "unknown visit" in _html(resp)
    resp = dm.post(f"/participants/{followed.pk}/locks/", {"action": "lock", "visit": "m1", "form": "",
                                                          "next": "https://evil.example/"})
    assert resp.redirect_chain[-1][0] == f"/participants/{followed.pk}/"


@pytest.mark.req("X-7.5")
@pytest.mark.parametrize("role", ["coordinator", "investigator", "monitor", "auditor", "ethics"])
def test_other_roles_see_the_padlock_but_no_controls_and_may_not_post(followed, users, role):
    from annulus.participants import services as ps

    p = followed
    ps.lock_record(actor=users["data_manager"], participant_id=p.pk, visit="w1", form="vas")
    browser = Browser(users[role], "en")
    for path in (f"/participants/{p.pk}/", f"/participants/{p.pk}/visits/w1/", f"/participants/{p.pk}/visits/w1/vas/"):
        resp = browser.get(path)
        if resp.status_code == 403:
            continue  # a role that may not see the record sees no padlock either
        page = _html(resp)
        assert 'class="status locked"' in page or "Locked inside:" in page, path
        assert f'action="/participants/{p.pk}/locks/"' not in page, path
    counts = row_counts()
    resp = browser.post(f"/participants/{p.pk}/locks/", {"action": "unlock", "visit": "w1", "form": "vas",
                                                        "reason": "I would like to change it"})
    assert resp.status_code == 403 and row_counts() == counts


@pytest.mark.req("X-7.5")
def test_the_api_locks_each_level_and_a_locked_record_answers_409_naming_lock(followed, users):
    from annulus.visits import services as vs

    p = followed
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="odi",
                 items=GOOD["odi"], complete=True)
    dm = _token_client(users["data_manager"])
    coord = _token_client(users["coordinator"])
    resp = dm("post", f"/api/v1/participants/{p.pk}/visits/w1/forms/vas/lock")
    assert resp.status_code == 201 and resp.json()["level"] == "form" and resp.json()["locked"] is True
    counts, head = row_counts(), audit_head()
    resp = coord("put", f"/api/v1/visits/participants/{p.pk}/visits/w1/forms/vas",
                 {"items": {"vas_mm": 20}, "complete": True, "reason": "typing error"})
    assert resp.status_code == 409, resp.content
    assert [d["field"] for d in resp.json()["detail"]] == ["lock"] and "VAS" in resp.json()["detail"][0]["message"]
    assert row_counts() == counts and audit_head() == head
    # locking twice: 409 naming the lock in force
    resp = dm("post", f"/api/v1/participants/{p.pk}/visits/w1/forms/vas/lock")
    assert resp.status_code == 409 and resp.json()["detail"][0]["field"] == "lock"
    # the visit, the adverse-event log and the casebook
    assert dm("post", f"/api/v1/participants/{p.pk}/visits/w1/lock").status_code == 201
    assert dm("post", f"/api/v1/participants/{p.pk}/forms/adverse_event/lock").status_code == 201
    assert dm("post", f"/api/v1/participants/{p.pk}/lock").status_code == 201
    resp = coord("post", f"/api/v1/visits/participants/{p.pk}/appointments",
                 {"visit": "m1", "on": (timezone.localdate() + timedelta(days=10)).isoformat()})
    assert resp.status_code == 409 and "casebook" in resp.json()["detail"][0]["message"]
    history = dm("get", f"/api/v1/participants/{p.pk}/locks").json()
    assert [h["level"] for h in history] == ["casebook", "form", "visit", "form"]
    assert all(h["locked"] for h in history)
    # unlock: the reason is required, then the row is closed with it
    resp = dm("post", f"/api/v1/participants/{p.pk}/unlock", {"reason": ""})
    assert resp.status_code == 400 and resp.json()["detail"][0]["field"] == "reason"
    resp = dm("post", f"/api/v1/participants/{p.pk}/unlock", {})
    assert resp.status_code == 422 and resp.json()["detail"][0]["field"] == "reason"
    resp = dm("post", f"/api/v1/participants/{p.pk}/unlock", {"reason": "Correction asked for by the monitor"})
    assert resp.status_code == 200 and resp.json()["locked"] is False
    assert resp.json()["unlock_reason"] == "Correction asked for by the monitor"


@pytest.mark.req("X-7.5")
def test_the_api_refuses_bad_input_and_other_roles(followed, users):
    p = followed
    dm = _token_client(users["data_manager"])
    for path, field in ((f"/api/v1/participants/{p.pk}/visits/zz9/lock", "visit"),
                        (f"/api/v1/participants/{p.pk}/visits/w1/forms/nonsense/lock", "form"),
                        (f"/api/v1/participants/{p.pk}/forms/vas/lock", "form"),
                        (f"/api/v1/participants/{p.pk}/visits/w1/lock", "lock")):  # a draft form is open
        counts = row_counts()
        resp = dm("post", path)
        assert resp.status_code in (400, 409) and resp.json()["detail"][0]["field"] == field, (path, resp.content)
        assert row_counts() == counts
    assert dm("post", "/api/v1/participants/999999/lock").status_code == 404
    resp = _token_client(users["coordinator"])("post", f"/api/v1/participants/{p.pk}/visits/m1/lock")
    assert resp.status_code == 403
    resp = _token_client(users["monitor"])("get", f"/api/v1/participants/{p.pk}/locks")
    assert resp.status_code == 200 and resp.json() == []
