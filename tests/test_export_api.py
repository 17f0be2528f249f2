"""Exports API (X-7.6): ask for an export, follow it, download its zip; with a browser session
(CSRF enforced) and with a token (no session). Bad input is 4xx JSON naming the field."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from annulus.audit.models import AuditEvent
from annulus.exports.models import ExportJob

from .api_clients import Session, Token

pytestmark = pytest.mark.req("X-7.6")

FMT = "csv"


@pytest.fixture(autouse=True)
def _inline(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.ANNULUS_EXPORT_JOBS_INLINE = True


@pytest.fixture
def trial(users, make_participant):
    return [make_participant("enrolled"), make_participant("consented")]


def _zip(resp) -> zipfile.ZipFile:
    data = b"".join(resp.streaming_content)
    return zipfile.ZipFile(io.BytesIO(data))


@pytest.mark.parametrize("kind", [Session, Token])
def test_ask_follow_and_download(kind, users, trial):
    c = kind(users["statistician"])
    resp = c.post("/api/v1/exports", {"format": FMT, "excel": True})
    assert resp.status_code == 202, resp.content
    job = resp.json()
    assert job["status"] == "done" and job["format"] == FMT and job["user"] == "t_statistician"
    assert job["blinding"] == "blinded" and job["subjects"] == 2 and job["audit_chain_hash"]
    assert job["download_url"] == f"/api/v1/exports/{job['id']}/download"
    status = c.get(f"/api/v1/exports/{job['id']}")
    assert status.status_code == 200 and status.json()["id"] == job["id"]
    listed = c.get("/api/v1/exports").json()
    assert [j["id"] for j in listed] == [job["id"]]
    before = AuditEvent.objects.count()
    dl = c.get(job["download_url"])
    assert dl.status_code == 200 and dl["Content-Type"] == "application/zip"
    assert ".zip" in dl["Content-Disposition"]
    zf = _zip(dl)
    assert "manifest.json" in zf.namelist()
    manifest = json.loads(zf.read("manifest.json"))
    assert {f["name"] for f in manifest["files"]} | {"manifest.json"} == set(zf.namelist())
    assert {f["name"]: f["sha256"] for f in job["files"]}["manifest.json"]
    assert AuditEvent.objects.count() == before  # downloading records nothing more


def test_session_post_without_csrf_token_is_refused(users, trial):
    c = Session(users["statistician"])
    resp = c.post("/api/v1/exports", {"format": FMT}, csrf=False)
    assert resp.status_code == 403
    assert not ExportJob.objects.exists()


@pytest.mark.parametrize("kind", [Session, Token])
def test_bad_input_names_the_field(kind, users, trial):
    c = kind(users["monitor"])
    for body, field, status in (({"format": "xlsx"}, "format", 400),
                                ({"format": FMT, "as_of": "2099-01-01T00:00:00Z"}, "as_of", 400),
                                ({"format": FMT, "as_of": "2999-01-01T00:00:00Z"}, "as_of", 422),
                                ({"format": FMT, "as_of": "2001-01-01T00:00:00Z"}, "as_of", 400),
                                ({"format": FMT, "as_of": "not a time"}, "as_of", 422),
                                ({"format": FMT, "identifiable": True}, "identifiable", 403),
                                ({"format": FMT, "language": "fr"}, "language", 400),
                                ({}, "format", 422)):
        resp = c.post("/api/v1/exports", body)
        assert resp.status_code == status, (body, resp.content)
        assert field in {d["field"] for d in resp.json()["detail"]}, (body, resp.json())
    assert not ExportJob.objects.exists()


@pytest.mark.parametrize("role", ["designer", "dsmb", "ethics", "admin"])
def test_roles_that_may_not_export(role, users, trial):
    c = Token(users[role])
    assert c.post("/api/v1/exports", {"format": FMT}).status_code == 403
    assert c.get("/api/v1/exports").status_code == 403
    assert c.get("/api/v1/exports/1").status_code == 403
    assert c.get("/api/v1/exports/1/download").status_code == 403


def test_another_users_export_is_not_found(users, trial):
    mine = Token(users["coordinator"]).post("/api/v1/exports", {"format": FMT, "identifiable": True}).json()
    assert mine["status"] == "done" and mine["identifiable"]
    other = Token(users["monitor"])
    assert other.get(f"/api/v1/exports/{mine['id']}").status_code == 404
    assert other.get(f"/api/v1/exports/{mine['id']}/download").status_code == 404
    assert other.get("/api/v1/exports").json() == []
    # the data manager sees every job, but downloads only a blinded, pseudonymised one
    dm = Token(users["data_manager"])
    assert dm.get(f"/api/v1/exports/{mine['id']}").json()["download_url"] is None
    assert dm.get(f"/api/v1/exports/{mine['id']}/download").status_code == 404
    plain = Token(users["monitor"]).post("/api/v1/exports", {"format": FMT}).json()
    assert dm.get(f"/api/v1/exports/{plain['id']}/download").status_code == 200
    assert {j["id"] for j in dm.get("/api/v1/exports").json()} == {mine["id"], plain["id"]}


def test_a_queued_job_is_answered_202_and_not_downloadable(users, trial, settings):
    settings.ANNULUS_EXPORT_JOBS_INLINE = False  # the thread starts on commit: the test's transaction never commits
    c = Token(users["statistician"])
    resp = c.post("/api/v1/exports", {"format": FMT})
    assert resp.status_code == 202 and resp.json()["status"] == "queued" and resp.json()["download_url"] is None
    assert c.get(f"/api/v1/exports/{resp.json()['id']}/download").status_code == 404


def test_the_api_works_after_the_database_lock(users, trial):
    from .lock_support import sign_lock

    sign_lock(users)
    resp = Token(users["statistician"]).post("/api/v1/exports", {"format": FMT})
    assert resp.status_code == 202 and resp.json()["status"] == "done"
