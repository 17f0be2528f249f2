"""The REST API: the journey through /api/v1/, and every error is 4xx JSON naming the field with
nothing written (P-2.3, X-2.5)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from .conftest import ELIGIBLE_EVIDENCE, TEST_PASSWORD
from .test_participants_bad_input import counts


@pytest.fixture
def api(users):
    from annulus.accounts.services import issue_token

    def make(role="investigator"):
        return Client(HTTP_AUTHORIZATION=f"Bearer {issue_token(user=users[role], name='t')}")

    return make


def post(c, url, body=None):
    return c.post(url, json.dumps(body) if body is not None else "", content_type="application/json")


@pytest.mark.req("P-2.3", "P-2.4", "X-2.5", "P-1.1")
def test_journey_through_the_api(api, users):
    c = api()
    today = timezone.localdate()
    r = post(c, "/api/v1/participants", {"initials": "ZL", "sex": "M", "recruitment_source": "records_search_phone",
                                         "prescreened_on": (today - timedelta(days=3)).isoformat()})
    assert r.status_code == 201, r.content
    pk = r.json()["id"]
    assert r.json()["recruitment_source"] == "records_search_phone" and r.json()["protocol_version"] == "1.0"
    r = post(c, f"/api/v1/participants/{pk}/consent", {"consent_version": "1.0",
                                                       "consented_at": (timezone.now() - timedelta(days=2)).isoformat(),
                                                       "taken_by": users["coordinator"].username})
    assert r.status_code == 201 and r.json()["taken_by"] == users["coordinator"].username
    r = post(c, f"/api/v1/participants/{pk}/evidence", {"values": ELIGIBLE_EVIDENCE,
                                                        "collected_on": (today - timedelta(days=1)).isoformat()})
    assert r.status_code == 201 and r.json()["outcome"] == "eligible"
    r = post(c, f"/api/v1/participants/{pk}/eligibility/decide", {"password": TEST_PASSWORD})
    assert r.status_code == 201 and r.json()["outcome"] == "eligible" and r.json()["failing"] == []
    r = post(c, f"/api/v1/participants/{pk}/enrol")
    assert r.status_code == 200 and r.json()["case_number"] == "001" and r.json()["status"] == "enrolled"
    r = post(c, f"/api/v1/participants/{pk}/withdraw", {"withdrawn_on": today.isoformat(), "category": "other",
                                                        "details": "relocated"})
    assert r.status_code == 201 and r.json()["status"] == "withdrawn" and r.json()["case_number"] == "001"
    events = c.get(f"/api/v1/participants/{pk}/audit").json()
    assert [e["object_type"] for e in events][-1] == "participant"  # newest first: created first
    assert {"consent", "screening_evidence", "eligibility_decision", "withdrawal"} <= {e["object_type"] for e in events}
    assert all(len(e["hash"]) == 64 for e in events)


@pytest.mark.req("P-2.3")
@pytest.mark.parametrize(
    "stage, url, body, status, field, words",
    [
        (None, "/api/v1/participants", {"sex": "F"}, 422, "initials", "Field required"),
        (None, "/api/v1/participants", {"initials": "AB", "sex": "X", "recruitment_source": "flyers_website",
                                        "prescreened_on": "2026-01-01"}, 422, "sex", "Input should be 'F' or 'M'"),
        (None, "/api/v1/participants", {"initials": "AB", "sex": "F", "recruitment_source": "radio",
                                        "prescreened_on": "2026-01-01"}, 400, "recruitment_source", "must be one of"),
        (None, "/api/v1/participants", {"initials": "AB", "sex": "F", "recruitment_source": "flyers_website",
                                        "prescreened_on": "2099-01-01"}, 400, "prescreened_on", "cannot be in the future"),
        (None, "/api/v1/participants", {"initials": "AB", "sex": "F", "recruitment_source": "flyers_website",
                                        "prescreened_on": "not a date"}, 422, "prescreened_on", "valid date"),
        ("pre_screened", "consent", {"consent_version": "ICF", "consented_at": "2099-01-01T10:00:00+08:00"},
         400, "consented_at", "cannot be in the future"),
        ("pre_screened", "consent", {"consent_version": "ICF", "consented_at": "2026-01-01T10:00:00"},
         400, "consented_at", "needs a time zone"),
        ("pre_screened", "consent", {"consent_version": "ICF", "consented_at": "2026-11-01T10:00:00+08:00",
                                     "taken_by": "t_pharmacist"}, 400, "taken_by", "must be an active investigator"),
        ("pre_screened", "evidence", {"values": {"vas_mm": 50}, "collected_on": "2026-11-01"},
         400, "status", "nothing can be recorded before informed consent"),
        ("consented", "evidence", {"values": {"vas_mm": 140}, "collected_on": "TODAY"}, 400, "vas_mm", "at most 100"),
        ("consented", "evidence", {"values": {"odi_percent": "abc"}, "collected_on": "TODAY"}, 400, "odi_percent",
         "must be a number"),
        ("consented", "evidence", {"values": {"date_of_birth": "2999-01-01"}, "collected_on": "TODAY"}, 400,
         "date_of_birth", "cannot be in the future"),
        ("consented", "evidence", {"values": "vas=50", "collected_on": "TODAY"}, 422, "values", "valid dictionary"),
        ("screen_failed", "enrol", None, 400, "status", "a screen failure cannot be enrolled"),
        ("enrolled", "enrol", None, 400, "status", "already enrolled"),
        ("consented", "eligibility/decide", {"password": "TEST_PASSWORD"}, 400, "evidence", "no screening evidence"),
        ("enrolled", "withdraw", {"withdrawn_on": "TODAY", "category": "bored", "details": "x"}, 400, "category",
         "must be one of"),
        ("enrolled", "withdraw", {"withdrawn_on": "TODAY", "category": "other", "details": "x",
                                  "adverse_event_id": 10**30}, 422, "adverse_event_id", "less than or equal"),
    ],
)
def test_bad_input_is_4xx_json_naming_the_field(api, make_participant, stage, url, body, status, field, words):
    c = api()
    if stage:
        url = f"/api/v1/participants/{make_participant(stage).pk}/{url}"
    if body:
        body = json.loads(json.dumps(body).replace("TODAY", timezone.localdate().isoformat())
                          .replace("TEST_PASSWORD", TEST_PASSWORD))
    before = counts()
    r = post(c, url, body)
    assert r.status_code == status, r.content
    assert r["Content-Type"].startswith("application/json")
    detail = r.json()["detail"]
    assert any(d["field"] == field and words in d["message"] for d in detail), detail
    assert counts() == before


@pytest.mark.req("P-6.3")
def test_withdrawing_twice_is_a_conflict_naming_status(api, make_participant):
    c = api()
    p = make_participant("enrolled")
    body = {"withdrawn_on": timezone.localdate().isoformat(), "category": "other", "details": "x"}
    assert post(c, f"/api/v1/participants/{p.pk}/withdraw", body).status_code == 201
    r = post(c, f"/api/v1/participants/{p.pk}/withdraw", body)
    assert r.status_code == 400 and r.json()["detail"] == [{"field": "status", "message": "this participant has already withdrawn"}]


@pytest.mark.parametrize(
    "method, url, status",
    [
        ("get", "/api/v1/participants/abc", 404),
        ("get", "/api/v1/no-such-thing", 404),
        ("get", "/api/v1/participants/999999", 404),
        ("delete", "/api/v1/participants", 405),
        ("put", "/api/v1/protocol", 405),
        ("get", "/api/v1/participants?status=nonsense", 400),
        ("get", "/api/v1/participants?sort=drop", 400),
        ("get", "/api/v1/participants?page=abc", 422),
    ],
)
def test_odd_requests_get_json_errors(api, method, url, status):
    r = getattr(api(), method)(url)
    assert r.status_code == status
    assert r["Content-Type"].startswith("application/json")
    assert r.json()["detail"][0]["message"]


def test_unparseable_body(api):
    r = api().post("/api/v1/participants", "{not json", content_type="application/json")
    assert r.status_code == 400 and r.json()["detail"][0]["message"] == "Cannot parse request body"


def test_openapi_document(api):
    spec = api().get("/api/v1/openapi.json").json()
    paths = set(spec["paths"])
    for p in ("/api/v1/protocol", "/api/v1/participants", "/api/v1/participants/{pk}/consent",
              "/api/v1/participants/{pk}/evidence", "/api/v1/participants/{pk}/eligibility/decide",
              "/api/v1/participants/{pk}/enrol", "/api/v1/participants/{pk}/withdraw", "/api/v1/participants/{pk}/audit"):
        assert p in paths, p


@pytest.mark.req("P-7.2")
def test_blinded_roles_get_no_dose_recipe_from_the_protocol_api(api):
    arms = api("coordinator").get("/api/v1/protocol").json()["protocol"]["arms"]
    assert arms and all("recipe" not in a for a in arms)


def test_huge_body_is_a_json_400(api):
    body = json.dumps({"initials": "AB", "sex": "F", "recruitment_source": "flyers_website",
                       "prescreened_on": "2026-01-01", "full_name": "x" * 3_000_000})
    c = api()
    before = counts()
    r = c.post("/api/v1/participants", body, content_type="application/json")
    assert r.status_code == 400 and r["Content-Type"].startswith("application/json")
    assert r.json()["detail"][0]["message"]
    assert counts() == before
