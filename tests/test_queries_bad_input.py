"""Bad input to queries (X-7.4), on the page and in the API: a query on an item, form, visit or
adverse event that does not exist; answering a closed query; closing someone else's query
without the right; empty, NUL and too-long text. Each is refused naming the field, every
problem of a request at once, and nothing is written (no row, no audit event)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from annulus.queries import services
from annulus.queries.models import Query

from .lock_support import audit_head, row_counts
from .test_visits_support import at_w1, trial_participant, transplant_dates  # noqa: F401


class Browser:
    def __init__(self, user):
        self.client = Client(enforce_csrf_checks=True)
        self.client.force_login(user)
        self.client.get("/")
        self.token = self.client.cookies["csrftoken"].value

    def post(self, path, data):
        return self.client.post(path, {**data, "csrfmiddlewaretoken": self.token})


class Script:
    def __init__(self, user):
        from annulus.accounts.services import issue_token

        self.key = issue_token(user=user, name="bad input")
        self.client = Client(enforce_csrf_checks=True)

    def post(self, path, body):
        return self.client.post(path, json.dumps(body), content_type="application/json",
                                HTTP_AUTHORIZATION=f"Bearer {self.key}")


@pytest.fixture
def w1(at_w1, users):  # noqa: F811
    from annulus.visits import services as vs

    p, _v = at_w1
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="vas",
                 items={"vas_mm": 40}, complete=True)
    return p


_clients: dict = {}


def script(users, role):
    if ("s", role) not in _clients:
        _clients[("s", role)] = Script(users[role])
    return _clients[("s", role)]


def browser(users, role):
    if ("b", role) not in _clients:
        _clients[("b", role)] = Browser(users[role])
    return _clients[("b", role)]


@pytest.fixture(autouse=True)
def _fresh_clients(users):
    """The clients log in (audited) and take their tokens before anything is measured."""
    _clients.clear()
    for role in ("monitor", "coordinator", "investigator"):
        script(users, role)
        browser(users, role)
    yield
    _clients.clear()


class Nothing:
    """Asserts that nothing was written between enter and exit."""

    def __enter__(self):
        self.before = (row_counts(), audit_head())
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            assert (row_counts(), audit_head()) == self.before, "something was written"


def _fields(r) -> dict:
    return {d["field"]: d["message"] for d in r.json()["detail"]}


TARGETS = [
    ({"visit": "w1", "form": "vas", "item": "vas_cm"}, "item", "'vas_cm' is not an item of the vas form"),
    ({"visit": "w1", "form": "vitals_x", "item": ""}, "form", "'vitals_x' is not a form of the data dictionary"),
    ({"visit": "m6", "form": "vas", "item": "vas_mm"}, "visit", "'m6' is not a visit of this participant on record"),
    ({"visit": "w1", "form": "imaging", "item": ""}, "form", "the imaging form is not collected at this visit"),
    ({"visit": "", "form": "adverse_event", "record": 999999, "item": "term"}, "record",
     "no adverse event 999999 of this participant"),
    ({"visit": "w1", "form": "", "item": "pulse"}, "item", "'pulse' is not an item: name its form"),
]


@pytest.mark.req("X-7.4")
@pytest.mark.parametrize("target, field, message", TARGETS)
def test_a_target_that_does_not_exist_is_refused_by_api_and_page(w1, users, target, field, message):
    p = w1
    with Nothing():
        r = script(users, "monitor").post("/api/v1/queries", {"participant_id": p.pk, "text": "Please check",
                                                              "assigned_to": "site", **target})
        assert r.status_code == 400 and _fields(r) == {field: message}, r.content
    with Nothing():
        r = browser(users, "monitor").post("/queries/new/", {"participant": p.pk, "record": 0, "text": "Please check",
                                                             "assigned_to": "site", **target})
        assert r.status_code == 200 and message.replace("'", "&#x27;") in r.content.decode()


@pytest.mark.req("X-7.4")
def test_every_problem_is_named_at_once(w1, users):
    p = w1
    with Nothing():
        r = script(users, "monitor").post("/api/v1/queries", {"participant_id": p.pk, "visit": "w1", "form": "vas",
                                                              "item": "vas_cm", "text": "  ", "assigned_to": "nobody"})
        assert r.status_code == 400 and set(_fields(r)) == {"item", "text", "assigned_to"}
    with Nothing():
        r = browser(users, "monitor").post("/queries/new/", {"participant": p.pk, "visit": "w1", "form": "vas",
                                                             "record": 0, "item": "vas_cm", "text": "",
                                                             "assigned_to": ""})
        html = r.content.decode()
        assert r.status_code == 200
        assert "&#x27;vas_cm&#x27; is not an item of the vas form" in html
        assert html.count('class="errorlist"') >= 3  # question, assignee and item, each on its field


@pytest.mark.req("X-7.4")
def test_an_unknown_participant_is_named(users, protocol_version):
    with Nothing():
        r = script(users, "monitor").post("/api/v1/queries", {"participant_id": 987654, "text": "x",
                                                              "assigned_to": "site"})
        assert r.status_code == 400 and _fields(r) == {"participant": "no participant '987654'"}


@pytest.mark.req("X-7.4")
def test_answering_a_closed_query_is_refused(w1, users):
    q = services.raise_query(actor=users["monitor"], participant_id=w1.pk, text="Please check", assigned_to="site")
    services.close_query(actor=users["monitor"], query_id=q.pk, text="Settled on the phone")
    with Nothing():
        r = script(users, "coordinator").post(f"/api/v1/queries/{q.pk}/answer", {"text": "Late answer"})
        assert r.status_code == 409 and "closed" in _fields(r)["status"]
    with Nothing():
        r = browser(users, "coordinator").post(f"/queries/{q.pk}/", {"action": "answer", "answer-text": "Late answer"})
        assert r.status_code == 200 and "the query is closed and cannot be answered" in r.content.decode()


@pytest.mark.req("X-7.4")
def test_closing_someone_elses_query_without_the_right_is_refused(w1, users):
    q = services.raise_query(actor=users["monitor"], participant_id=w1.pk, text="Please check", assigned_to="site")
    for role in ("coordinator", "investigator"):
        with Nothing():
            r = script(users, role).post(f"/api/v1/queries/{q.pk}/close", {"text": "Done"})
            assert r.status_code == 403 and "may close this query" in _fields(r)["query"]
        with Nothing():
            r = browser(users, role).post(f"/queries/{q.pk}/", {"action": "close", "close-text": "Done"})
            assert r.status_code == 403 and "may close this query" in r.content.decode()
    assert Query.objects.get().status == "open"


@pytest.mark.req("X-7.4")
@pytest.mark.parametrize("text, status, words", [
    ("", 400, "write the text"),
    ("   ", 400, "write the text"),
    ("x" * 2001, 422, "2000"),
    ("bad\x00text", 400, "NUL"),
])
def test_empty_nul_and_too_long_text(w1, users, text, status, words):
    q = services.raise_query(actor=users["monitor"], participant_id=w1.pk, text="Please check", assigned_to="site")
    with Nothing():
        r = script(users, "coordinator").post(f"/api/v1/queries/{q.pk}/answer", {"text": text})
        assert r.status_code == status, r.content
        assert any(d["field"] in ("text", "body.text") or "text" in d["field"] for d in r.json()["detail"]), r.content
        assert words in r.content.decode()
    with Nothing():
        r = script(users, "monitor").post("/api/v1/queries", {"participant_id": w1.pk, "text": text,
                                                              "assigned_to": "site"})
        assert 400 <= r.status_code < 500 and words in r.content.decode()
    with Nothing():
        r = browser(users, "coordinator").post(f"/queries/{q.pk}/", {"action": "answer", "answer-text": text})
        assert r.status_code in (200, 400) and r.status_code < 500
        if "\x00" not in text:
            assert "errorlist" in r.content.decode()
    assert Query.objects.get().status == "open"
