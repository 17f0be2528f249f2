"""Queries by API (X-7.4): a bearer-token client with no session and no CSRF token lists, reads,
raises, answers, closes and re-opens queries; errors are 4xx JSON naming the field."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from annulus.queries.models import Query

from .test_visits_support import at_w1, trial_participant, transplant_dates  # noqa: F401


class Script:
    def __init__(self, user):
        from annulus.accounts.services import issue_token

        self.key = issue_token(user=user, name="queries test")
        self.client = Client(enforce_csrf_checks=True)

    def get(self, path):
        return self.client.get(path, HTTP_AUTHORIZATION=f"Bearer {self.key}")

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


@pytest.mark.req("X-7.4")
def test_token_client_round_trip(w1, users):
    p = w1
    monitor, coord = Script(users["monitor"]), Script(users["coordinator"])
    r = monitor.post("/api/v1/queries", {"participant_id": p.pk, "visit": "w1", "form": "vas", "item": "vas_mm",
                                         "text": "Source says 45 mm", "assigned_to": "coordinator"})
    assert r.status_code == 201, r.content
    body = r.json()
    assert (body["status"], body["item"], body["raised_by"], body["origin"]) == ("open", "vas_mm", "t_monitor", "manual")
    assert body["messages"][0]["text"] == "Source says 45 mm" and "VAS pain" in body["target"]
    pk = body["id"]
    r = coord.post(f"/api/v1/queries/{pk}/answer", {"text": "Corrected"})
    assert r.status_code == 200 and r.json()["status"] == "answered"
    r = monitor.post(f"/api/v1/queries/{pk}/reopen", {"text": "Still 40"})
    assert r.json()["status"] == "open"
    coord.post(f"/api/v1/queries/{pk}/answer", {"text": "Now 45"})
    r = monitor.post(f"/api/v1/queries/{pk}/close", {"text": "Verified"})
    assert r.status_code == 200 and r.json()["status"] == "closed"
    assert [m["kind"] for m in r.json()["messages"]] == ["raise", "answer", "reopen", "answer", "close"]
    listed = coord.get(f"/api/v1/queries?participant_id={p.pk}&status=closed").json()
    assert [q["id"] for q in listed] == [pk]
    assert coord.get("/api/v1/queries?status=open").json() == []
    assert coord.get(f"/api/v1/queries/{pk}").json()["closed_at"] is not None


@pytest.mark.req("X-7.4")
def test_filters_and_errors_name_the_field(w1, users):
    p = w1
    dm = Script(users["data_manager"])
    dm.post("/api/v1/queries", {"participant_id": p.pk, "visit": "w1", "form": "odi", "text": "ODI missing",
                                "assigned_to": "site"})
    dm.post("/api/v1/queries", {"participant_id": p.pk, "text": "Casebook cover", "assigned_to": "investigator"})
    assert [q["form"] for q in dm.get("/api/v1/queries?form=odi").json()] == ["odi"]
    assert [q["text"] if "text" in q else q["messages"][0]["text"]
            for q in dm.get("/api/v1/queries?assigned_to=investigator").json()] == ["Casebook cover"]
    assert len(dm.get("/api/v1/queries?origin=manual").json()) == 2
    for query, field in (("status=half", "status"), ("assigned_to=nobody", "assigned_to"), ("origin=x", "origin")):
        r = dm.get(f"/api/v1/queries?{query}")
        assert r.status_code == 400 and r.json()["detail"][0]["field"] == field
    assert dm.get("/api/v1/queries/999999").status_code == 404


@pytest.mark.req("X-7.4")
def test_roles_without_the_right_are_refused(w1, users):
    p = w1
    r = Script(users["ethics"]).get("/api/v1/queries")
    assert r.status_code == 403
    r = Script(users["auditor"]).post("/api/v1/queries", {"participant_id": p.pk, "text": "x", "assigned_to": "site"})
    assert r.status_code == 403 and not Query.objects.exists()
    q = Script(users["monitor"]).post("/api/v1/queries", {"participant_id": p.pk, "text": "x",
                                                          "assigned_to": "site"}).json()
    r = Script(users["monitor"]).post(f"/api/v1/queries/{q['id']}/answer", {"text": "answering myself"})
    assert r.status_code == 403 and Query.objects.get().status == "open"
    r = Script(users["coordinator"]).post(f"/api/v1/queries/{q['id']}/close", {"text": "closing"})
    assert r.status_code == 403 and r.json()["detail"][0]["field"] == "query"
    assert Query.objects.get().status == "open"


@pytest.mark.req("X-7.4")
def test_a_wrong_token_is_refused_even_with_a_session(w1, users):
    c = Client(enforce_csrf_checks=True)
    c.force_login(users["monitor"])
    r = c.post("/api/v1/queries", json.dumps({"participant_id": w1.pk, "text": "x", "assigned_to": "site"}),
               content_type="application/json", HTTP_AUTHORIZATION="Bearer ann_wrong")
    assert r.status_code == 401 and not Query.objects.exists()
    r = c.post("/api/v1/queries", json.dumps({"participant_id": w1.pk, "text": "x", "assigned_to": "site"}),
               content_type="application/json")  # a session without its CSRF token
    assert r.status_code == 403 and not Query.objects.exists()
