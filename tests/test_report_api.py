"""Trial report API (X-8.5): ask for the report, follow it, list the reports, download the file;
with a token (no session) as each role that builds reports, and with a browser session (CSRF
enforced). Bad input is 4xx JSON naming the field; the roles that may not build reports get 403."""

from __future__ import annotations

import pytest

from annulus.audit.models import AuditEvent
from annulus.reports.models import TrialReport

from .api_clients import Session, Token
from .report_support import FORBIDDEN, _filled, arm_leaks, body, people, set_state, sha256  # noqa: F401

pytestmark = pytest.mark.req("X-8.5")


@pytest.fixture(autouse=True)
def _inline(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.ANNULUS_EXPORT_JOBS_INLINE = True


def _fields(resp) -> set[str]:
    return {d["field"] for d in resp.json()["detail"]}


def test_a_session_post_without_its_csrf_token_is_refused(users):
    resp = Session(users["statistician"]).post("/api/v1/reports", {"format": "pdf"}, csrf=False)
    assert resp.status_code == 403
    assert not TrialReport.objects.exists()


@pytest.mark.parametrize("kind", [Session, Token])
def test_bad_input_names_the_field(kind, users):
    c = kind(users["pi"])
    for payload, field, status in (({"format": "docx"}, "format", 400),
                                   ({"format": "pdf", "language": "fr"}, "language", 400),
                                   ({"format": "pdf", "unblinded": True}, "unblinded", 400),
                                   ({"format": "pdf", "as_of": "2099-01-01T00:00:00Z"}, "as_of", 400),
                                   ({"format": "pdf", "as_of": "2001-01-01T00:00:00Z"}, "as_of", 400),
                                   ({"format": "pdf", "as_of": "2999-01-01T00:00:00Z"}, "as_of", 422),
                                   ({"format": "pdf", "as_of": "not a time"}, "as_of", 422),
                                   ({"format": "pdf", "unblinded": "perhaps"}, "unblinded", 422),
                                   ({}, "format", 422)):
        resp = c.post("/api/v1/reports", payload)
        assert resp.status_code == status, (payload, resp.content)
        assert field in _fields(resp), (payload, resp.json())
    # every problem at once
    resp = c.post("/api/v1/reports", {"format": "docx", "language": "fr", "unblinded": True})
    assert resp.status_code == 400 and _fields(resp) == {"format", "language", "unblinded"}
    assert "before the first-level unblinding" in resp.json()["detail"][-1]["message"]
    assert not TrialReport.objects.exists()


@pytest.mark.parametrize("role", FORBIDDEN)
def test_roles_that_may_not_build_reports(role, users):
    c = Token(users[role])
    for resp in (c.post("/api/v1/reports", {"format": "pdf"}), c.get("/api/v1/reports"), c.get("/api/v1/reports/1"),
                 c.get("/api/v1/reports/1/download")):
        assert resp.status_code == 403 and resp.json()["detail"][0]["message"] == "not permitted for your role"
    assert not TrialReport.objects.exists()


def test_a_failed_build_keeps_its_error(users, monkeypatch):
    from annulus.report import document

    def broken(*args, **kwargs):
        raise document.ReportError("adeff_vas.csv has no baseline VAS")

    monkeypatch.setattr(document, "build", broken)
    c = Token(users["statistician"])
    report = c.post("/api/v1/reports", {"format": "pdf"}).json()
    assert report["status"] == "failed" and report["error"] == "ReportError: adeff_vas.csv has no baseline VAS"
    assert report["download_url"] is None and report["sha256"] is None and report["size"] is None
    assert c.get(f"/api/v1/reports/{report['id']}/download").status_code == 404


def test_a_queued_report_is_answered_202_and_not_downloadable(users, settings):
    settings.ANNULUS_EXPORT_JOBS_INLINE = False  # the thread starts on commit: the test's transaction never commits
    c = Token(users["statistician"])
    resp = c.post("/api/v1/reports", {"format": "pdf"})
    assert resp.status_code == 202
    report = resp.json()
    assert report["status"] == "queued" and report["download_url"] is None and report["step"] == ""
    assert c.get(f"/api/v1/reports/{report['id']}/download").status_code == 404


class TestOnAFilledTrial:
    """The tests that build reports share one filled trial (``people``, built once for the class);
    the reports and trial states each test makes are undone after it. The tests above run on an
    empty trial."""

    @pytest.mark.parametrize("role, fmt", [("statistician", "pdf"), ("data_manager", "html")])
    def test_a_token_client_asks_follows_and_downloads(self, role, fmt, people):
        c = Token(people[role])
        resp = c.post("/api/v1/reports", {"format": fmt, "language": "zh-hans"})
        assert resp.status_code == 202, resp.content
        report = resp.json()
        assert report["status"] == "done", report["error"]
        assert (report["user"], report["origin"], report["format"], report["language"]) == (
            people[role].username, "api", fmt, "zh-hans")
        assert report["blinding"] == "blinded" and report["unblinded"] is False and report["step"] == "done"
        assert report["done"] == report["total"] == 100 and report["as_of"] and report["error"] == ""
        assert report["download_url"] == f"/api/v1/reports/{report['id']}/download"
        one = c.get(f"/api/v1/reports/{report['id']}")
        assert one.status_code == 200 and one.json() == report
        assert [r["id"] for r in c.get("/api/v1/reports").json()] == [report["id"]]
        before = AuditEvent.objects.count()
        dl = c.get(report["download_url"])
        data = body(dl)
        assert dl.status_code == 200 and f".{fmt}" in dl["Content-Disposition"]
        if fmt == "pdf":
            assert dl["Content-Type"] == "application/pdf" and data.startswith(b"%PDF")
        else:
            assert dl["Content-Type"] == "text/html; charset=utf-8" and '<html lang="zh' in data.decode("utf-8")
        assert sha256(data) == report["sha256"] and len(data) == report["size"]
        assert AuditEvent.objects.count() == before  # downloading records nothing more

    def test_a_browser_session_asks_with_its_csrf_token(self, people):
        c = Session(people["statistician"])
        resp = c.post("/api/v1/reports", {"format": "html", "as_of": None, "unblinded": False})
        assert resp.status_code == 202 and resp.json()["status"] == "done", resp.content
        dl = c.get(resp.json()["download_url"])
        assert dl["Content-Type"] == "text/html; charset=utf-8"
        html = body(dl).decode("utf-8")
        assert resp.json()["sha256"] == sha256(html.encode("utf-8")) and not arm_leaks(html)

    def test_after_the_first_level_unblinding_the_statistician_gets_group_labels(self, people):
        set_state("unblinded_1")
        resp = Token(people["statistician"]).post("/api/v1/reports", {"format": "html", "unblinded": True})
        assert resp.status_code == 202
        report = resp.json()
        assert report["status"] == "done" and report["unblinded"] and report["blinding"] == "labels", report["error"]
        for role in ("pi", "data_manager"):  # blinded roles: only the blinded report
            resp = Token(people[role]).post("/api/v1/reports", {"format": "html", "unblinded": True})
            assert resp.status_code == 400 and _fields(resp) == {"unblinded"}
            assert "your role may not see groups or treatments" in resp.json()["detail"][0]["message"]

    def test_after_the_second_level_the_blinded_report_still_names_no_arm(self, people):
        set_state("unblinded_2")
        c = Token(people["statistician"])
        blinded = c.post("/api/v1/reports", {"format": "html", "language": "zh-hans", "unblinded": False}).json()
        assert blinded["blinding"] == "blinded", blinded["error"]
        assert not arm_leaks(body(c.get(blinded["download_url"])).decode("utf-8"))

    def test_another_users_report(self, people):
        mine = Token(people["data_manager"]).post("/api/v1/reports", {"format": "html"}).json()
        assert mine["status"] == "done", mine["error"]
        pi = Token(people["pi"])
        assert pi.get(f"/api/v1/reports/{mine['id']}").status_code == 404
        assert pi.get(f"/api/v1/reports/{mine['id']}/download").status_code == 404
        assert pi.get("/api/v1/reports").json() == []
        # the statistician (report.all) sees and downloads it: it is blinded
        stat = Token(people["statistician"])
        seen = stat.get(f"/api/v1/reports/{mine['id']}").json()
        assert seen["download_url"] and stat.get(seen["download_url"]).status_code == 200
        assert [r["id"] for r in stat.get("/api/v1/reports").json()] == [mine["id"]]

    def test_the_api_works_after_the_database_lock(self, people):
        set_state("locked")
        resp = Token(people["pi"]).post("/api/v1/reports", {"format": "html"})
        assert resp.status_code == 202 and resp.json()["status"] == "done", resp.content
