"""API writes: a token client writes without CSRF (the token alone decides), a session (cookie)
client needs the CSRF token. Every client here enforces CSRF like a browser or a real HTTP client."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.req("P-7.2")

WRITE_METHODS = ("post", "put", "patch", "delete")


def token_client(users, role):
    from annulus.accounts.services import issue_token

    key = issue_token(user=users[role], name="script")
    return Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {key}")


def send(c, method, url, body=None, **extra):
    data = json.dumps(body) if body is not None else ""
    return getattr(c, method)(url, data, content_type="application/json", **extra)


def csrf_refusal(r) -> bool:
    return r.status_code == 403 and "CSRF" in r.content.decode()


def write_routes():
    from annulus.site.api import api

    schema = api.get_openapi_schema(path_params={})
    out = []
    for path, ops in schema["paths"].items():
        for method in ops:
            if method in WRITE_METHODS:
                out.append((method, re.sub(r"\{[^}]+\}", "999999", path)))
    return out


def test_the_api_has_write_routes_in_every_router():
    prefixes = {url.split("/")[3] for _m, url in write_routes()}
    assert {"participants", "visits", "safety", "allocation"} <= prefixes


@pytest.mark.parametrize("method, url", write_routes())
def test_every_write_route_accepts_a_token_without_csrf_and_refuses_anonymous(users, method, url):
    # an empty body on a missing object: authentication must pass (then 404/4xx), never a CSRF 403
    r = send(token_client(users, "investigator"), method, url, {})
    assert not csrf_refusal(r), (method, url, r.content)
    assert r.status_code != 401, (method, url, r.content)
    if r.status_code == 403:  # the route's own role check ran: the token was accepted
        assert r.json()["detail"][0]["message"] == "not permitted for your role", (method, url, r.content)
    anonymous = send(Client(enforce_csrf_checks=True), method, url, {})
    assert anonymous.status_code == 401 and anonymous.json()["detail"][0]["message"] == "authentication required"


def test_token_writes_in_participants(users):
    from annulus.participants.models import Participant

    c = token_client(users, "coordinator")
    today = timezone.localdate()
    r = send(c, "post", "/api/v1/participants", {"initials": "ZL", "sex": "M", "recruitment_source": "flyers_website",
                                                 "prescreened_on": (today - timedelta(days=3)).isoformat()})
    assert r.status_code == 201, r.content
    p = Participant.objects.get(pk=r.json()["id"])
    r = send(c, "post", f"/api/v1/participants/{p.pk}/consent",
             {"consent_version": "1.0", "consented_at": (timezone.now() - timedelta(days=2)).isoformat()})
    assert r.status_code == 201, r.content
    assert Participant.objects.get(pk=p.pk).status == "consented"


def test_token_writes_in_visits(users, make_participant):
    from annulus.participants import services as ps
    from annulus.participants.models import Participant
    from annulus.visits.models import Liposuction

    p = make_participant("enrolled")
    Participant.objects.filter(pk=p.pk).update(enrolled_at=timezone.now() - timedelta(days=6))
    ps.advance(actor=users["investigator"], participant_id=p.pk, target="randomised", reason="test")
    r = send(token_client(users, "investigator"), "post", f"/api/v1/visits/participants/{p.pk}/liposuction",
             {"performed_on": (timezone.localdate() - timedelta(days=2)).isoformat(), "fat_volume_ml": 150,
              "observation_hours": 4, "anaesthesia": "local"})
    assert r.status_code == 201, r.content
    assert Liposuction.objects.filter(participant=p).count() == 1


def test_token_writes_in_safety(users, make_participant):
    from annulus.safety.models import AdverseEvent

    p = make_participant("consented")
    c = token_client(users, "investigator")
    body = {"participant_id": p.pk, "term": "Headache", "onset_at": (timezone.now() - timedelta(days=1)).isoformat(),
            "serious": False, "grade": 1, "causality_liposuction": "not_related",
            "causality_injection": "not_related", "causality_product": "not_related", "expectedness": "expected",
            "action_taken": "none", "outcome": "recovering"}
    r = send(c, "post", "/api/v1/safety/adverse-events", body)
    assert r.status_code == 201, r.content
    pk = r.json()["id"]
    r = send(c, "patch", f"/api/v1/safety/adverse-events/{pk}", {"reason": "resolved", "outcome": "recovered",
                                                                      "end_at": timezone.now().isoformat()})
    assert r.status_code == 200, r.content
    assert AdverseEvent.objects.get(pk=pk).outcome == "recovered"


def test_token_writes_in_allocation(users):
    from annulus.allocation.models import AllocationList

    r = send(token_client(users, "designer"), "post", "/api/v1/allocation/list", {"seed": 123456789012})
    assert r.status_code == 201, r.content
    assert AllocationList.objects.count() == 1


def _session_client(users, role):
    c = Client(enforce_csrf_checks=True)
    c.get("/accounts/login/")
    token = c.cookies["csrftoken"].value
    r = c.post("/accounts/login/", {"username": users[role].username, "password": TEST_PASSWORD,
                                    "csrfmiddlewaretoken": token})
    assert r.status_code == 302 and "_auth_user_id" in c.session
    return c


def _prescreen_body():
    return {"initials": "AB", "sex": "F", "recruitment_source": "flyers_website",
            "prescreened_on": (timezone.localdate() - timedelta(days=1)).isoformat()}


def test_a_session_client_needs_the_csrf_token(users):
    from annulus.participants.models import Participant

    c = _session_client(users, "coordinator")
    r = send(c, "post", "/api/v1/participants", _prescreen_body())
    assert r.status_code == 403 and Participant.objects.count() == 0
    r = send(c, "post", "/api/v1/participants", _prescreen_body(), HTTP_X_CSRFTOKEN=c.cookies["csrftoken"].value)
    assert r.status_code == 201, r.content
    assert Participant.objects.count() == 1
    assert c.get("/api/v1/participants").status_code == 200  # reading needs no CSRF token


def test_a_request_with_a_bearer_header_is_judged_by_the_token_alone(users):
    from annulus.accounts.services import issue_token
    from annulus.audit.models import AuditEvent
    from annulus.participants.models import Participant

    c = _session_client(users, "coordinator")
    # a wrong token is refused even though the session is valid
    r = send(c, "post", "/api/v1/participants", _prescreen_body(), HTTP_AUTHORIZATION="Bearer ann_wrong",
             HTTP_X_CSRFTOKEN=c.cookies["csrftoken"].value)
    assert r.status_code == 401 and Participant.objects.count() == 0
    assert c.get("/api/v1/participants", HTTP_AUTHORIZATION="Bearer ann_wrong").status_code == 401
    # a valid token of another user: the write is that user's, without CSRF
    key = issue_token(user=users["investigator"], name="x")
    r = send(c, "post", "/api/v1/participants", _prescreen_body(), HTTP_AUTHORIZATION=f"Bearer {key}")
    assert r.status_code == 201, r.content
    event = AuditEvent.objects.filter(object_type="participant", object_id=str(r.json()["id"])).get()
    assert event.actor_id == users["investigator"].pk


@pytest.fixture
def flushable_audit_table(transactional_db):
    """The live server's database is emptied by TRUNCATE after the test; on PostgreSQL the audit
    table refuses TRUNCATE, so the trigger is lifted for this private test database only."""
    from django.db import connection

    yield
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_no_truncate")


def test_a_real_http_client_writes_with_a_token(flushable_audit_table, live_server, users):
    import urllib.error
    import urllib.request

    from annulus.accounts.services import issue_token
    from annulus.participants.models import Participant

    key = issue_token(user=users["coordinator"], name="script")
    url = f"{live_server.url}/api/v1/participants"
    data = json.dumps(_prescreen_body()).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
        created = json.loads(response.read())
    assert Participant.objects.filter(pk=created["id"], initials="AB").exists()
    # without the token the same call is refused and writes nothing
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=30)
    assert e.value.code == 401
    assert Participant.objects.count() == 1
