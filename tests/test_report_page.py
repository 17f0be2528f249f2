"""The Report page (X-8.5): the form, the reports built with their status and progress, the file,
in English and Chinese, with CSRF enforced as a browser sends it; for the statistician, the
investigator (PI) and the data manager only. The blind: no unblinded report before the first-level
unblinding, group labels after it, and a blinded report that names no arm whoever asks for it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annulus.audit.models import AuditEvent
from annulus.reports.models import TrialReport

from .report_support import FORBIDDEN, _filled, arm_leaks, body, people, set_state, sha256  # noqa: F401

pytestmark = pytest.mark.req("X-8.5")


@pytest.fixture(autouse=True)
def _inline(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.ANNULUS_EXPORT_JOBS_INLINE = True


class Browser:
    """A logged-in browser: CSRF enforced, posts carry the csrftoken cookie's value."""

    def __init__(self, user, language="en"):
        self.client = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
        self.client.force_login(user)
        self.client.get("/")
        self.token = self.client.cookies["csrftoken"].value

    def get(self, path):
        return self.client.get(path)

    def post(self, path, data):
        return self.client.post(path, {**data, "csrfmiddlewaretoken": self.token})

    def text(self, path="/reports/"):
        resp = self.get(path)
        assert resp.status_code == 200, (path, resp.status_code)
        return resp.content.decode()


def _typed(moment, language: str) -> str:
    """A time as a reader of the language types it."""
    local = timezone.localtime(moment)
    if language == "en":
        return local.strftime("%Y-%m-%dT%H:%M")
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


@pytest.mark.parametrize("role", ["statistician", "investigator", "pi", "data_manager"])
def test_the_page_and_its_navigation_link_for_every_role_that_builds_reports(role, users):
    text = Browser(users[role]).text()
    assert 'href="/reports/"' in text and "Build the report" in text
    # nothing chosen for the reader: every select starts blank
    for name in ("language", "unblinded", "format"):
        select = re.search(rf'<select name="{name}"[^>]*id="id_{name}".*?</select>', text, flags=re.S).group(0)
        assert '<option value="" selected>' in select and select.count("selected") == 1, select
    # what blinded and unblinded mean, and that the unblinded report does not exist yet
    assert "every table and plot pools all participants" in text
    assert "by group label A–D after the first-level unblinding" in text
    assert "The unblinded report does not exist yet" in text
    assert '<option value="unblinded" disabled>' in text


@pytest.mark.parametrize("role", FORBIDDEN)
def test_roles_that_may_not_build_reports_have_no_page_and_no_link(role, users):
    b = Browser(users[role])
    assert b.get("/reports/").status_code == 403
    assert b.post("/reports/", {"language": "en", "unblinded": "blinded", "format": "pdf"}).status_code == 403
    assert b.get("/reports/1/download/").status_code == 403
    assert 'href="/reports/"' not in b.text("/")
    assert not TrialReport.objects.exists()


def test_an_unblinded_report_before_the_first_level_unblinding_is_refused_on_its_field(users):
    b = Browser(users["statistician"])
    resp = b.post("/reports/", {"language": "en", "unblinded": "unblinded", "format": "pdf"})
    text = resp.content.decode()
    assert resp.status_code == 400
    assert "Blinded or unblinded: there is no unblinded report before the first-level unblinding" in text
    b = Browser(users["statistician"], "zh-hans")
    text = b.post("/reports/", {"language": "en", "unblinded": "unblinded", "format": "pdf"}).content.decode()
    assert "盲态或非盲态: 第一级揭盲之前没有非盲态报告" in text
    assert not TrialReport.objects.exists()


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_failed_build_shows_its_error_in_one_line(language, users, monkeypatch):
    from annulus.report import document

    def broken(*args, **kwargs):
        raise document.ReportError("adeff_vas.csv has no baseline VAS\nsecond line of detail")

    monkeypatch.setattr(document, "build", broken)
    b = Browser(users["data_manager"], language)
    assert b.post("/reports/", {"language": "en", "unblinded": "blinded", "format": "pdf"}).status_code == 302
    report = TrialReport.objects.get()
    assert report.status == TrialReport.FAILED and "no baseline VAS" in report.error
    text = b.text()
    assert 'class="status bad"' in text and "ReportError: adeff_vas.csv has no baseline VAS<" in text
    assert "second line of detail<" not in text  # one line
    assert f'href="/reports/{report.pk}/download/"' not in text
    assert b.get(f"/reports/{report.pk}/download/").status_code == 404


def test_a_running_build_is_polled_with_its_progress_and_a_dead_one_shown_failed(users):
    user = users["statistician"]
    TrialReport.objects.create(user=user, status=TrialReport.RUNNING, done=37, total=100, step="VAS",
                               heartbeat_at=timezone.now(), as_of=timezone.now())
    b = Browser(user)
    text = b.text()
    assert 'hx-trigger="every 2s"' in text and 'hx-select="#report-list"' in text and 'class="status warn"' in text
    assert 'aria-valuenow="37"' in text and "37 / 100 · end point VAS" in text
    zh = Browser(user, "zh-hans").text()
    assert "生成中" in zh and "37 / 100 · 终点 VAS" in zh
    TrialReport.objects.update(step="export", done=12)
    assert "12 / 100 · exporting the analysis datasets" in b.text()
    TrialReport.objects.update(heartbeat_at=timezone.now() - timedelta(minutes=30))
    text = b.text()
    assert 'hx-trigger="every 2s"' not in text and 'class="status bad"' in text
    assert "The process building it stopped; ask for the report again." in text


def test_bad_input_is_shown_on_the_form(users):
    b = Browser(users["pi"])
    future = (timezone.localtime() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    resp = b.post("/reports/", {"as_of": future, "language": "en", "unblinded": "blinded", "format": "pdf"})
    assert resp.status_code == 400 and "in the future" in resp.content.decode()
    resp = b.post("/reports/", {"as_of": "yesterday", "language": "fr", "unblinded": "", "format": "docx"})
    text = resp.content.decode()
    assert resp.status_code == 400
    for label in ("Data as of (optional)", "Language of the report", "Blinded or unblinded", "Format"):
        assert f"<li>{label}: " in text, label  # every problem at once, each on its field
    resp = b.post("/reports/", {"as_of": "1899-12-31T12:00", "language": "en", "unblinded": "blinded",
                                "format": "pdf"})
    assert resp.status_code == 400 and "Enter a date between 1900-01-01 and 2100-12-31" in resp.content.decode()
    assert not TrialReport.objects.exists()


def test_a_day_alone_is_the_end_of_that_day_in_either_language(users, monkeypatch):
    from annulus.reports import services

    asked = []
    monkeypatch.setattr(services, "run_job", lambda pk: asked.append(pk))  # the request, not the build
    day = timezone.localdate() - timedelta(days=30)
    for language, typed in (("en", day.isoformat()), ("zh-hans", f"{day.year}年{day.month}月{day.day}日"),
                            ("zh-hans", f"{day:%Y/%m/%d} 18:30")):
        b = Browser(users["statistician"], language)
        assert b.post("/reports/", {"as_of": typed, "language": "en", "unblinded": "blinded",
                                    "format": "pdf"}).status_code == 302, typed
    got = [timezone.localtime(r.as_of).strftime("%Y-%m-%d %H:%M:%S") for r in TrialReport.objects.order_by("id")]
    assert got == [f"{day} 23:59:59", f"{day} 23:59:59", f"{day} 18:30:00"]
    assert len(asked) == 3


class TestOnAFilledTrial:
    """The tests that build reports share one filled trial (``people``, built once for the class);
    the reports and trial states each test makes are undone after it. The tests above run on an
    empty trial."""

    # each role that builds reports once, each language and each format at least once (a build takes seconds)
    @pytest.mark.parametrize("role, language, fmt", [("statistician", "en", "pdf"), ("pi", "zh-hans", "html"),
                                                     ("data_manager", "en", "html")])
    def test_ask_for_the_report_follow_it_and_download_it(self, role, language, fmt, people):
        b = Browser(people[role], language)
        as_of = (timezone.now() - timedelta(hours=2)).replace(second=0, microsecond=0)
        before = AuditEvent.objects.count()
        resp = b.post("/reports/", {"as_of": _typed(as_of, language), "language": language, "unblinded": "blinded",
                                    "format": fmt})
        assert resp.status_code == 302 and resp["Location"] == "/reports/", resp.content.decode()[-3000:]
        report = TrialReport.objects.get()
        assert report.status == TrialReport.DONE, report.error
        assert (report.user, report.origin, report.format, report.language) == (people[role], "page", fmt, language)
        assert report.as_of == as_of and report.blinding == "blinded" and not report.unblinded
        assert AuditEvent.objects.count() == before + 2  # the export it is made from, and the report
        event = AuditEvent.objects.order_by("-id").first()
        assert (event.action, event.object_type, event.object_id) == ("report", "trial_report", str(report.pk))
        text = b.text()
        assert 'class="status ok"' in text and f'href="/reports/{report.pk}/download/"' in text
        assert 'hx-trigger="every 2s"' not in text  # nothing running: no polling
        if language == "zh-hans":
            for words in ("试验报告", "生成报告", "盲态报告", "已完成", "下载 HTML", "非盲态报告尚不存在", "盲态（合并）"):
                assert words in text, words
            for english in ("Build the report", "Your reports", "Download", "does not exist yet", "Blinded report"):
                assert english not in text, english
        dl = b.get(f"/reports/{report.pk}/download/")
        data = body(dl)
        assert dl.status_code == 200 and sha256(data) == report.sha256 and len(data) == report.size
        assert dl["Content-Type"] == ("application/pdf" if fmt == "pdf" else "text/html; charset=utf-8")
        assert f".{fmt}" in dl["Content-Disposition"]
        assert AuditEvent.objects.count() == before + 2  # downloading records nothing, as an export's download
        if fmt == "pdf":
            assert data.startswith(b"%PDF")
        else:
            html = data.decode("utf-8")
            assert "CONSORT" in html and not arm_leaks(html)

    def test_after_the_first_level_unblinding_the_statistician_reports_by_group_label(self, people):
        set_state("unblinded_1")
        b = Browser(people["statistician"])
        text = b.text()
        assert "An unblinded report for you shows group labels A–D" in text
        assert '<option value="unblinded">' in text  # offered now
        resp = b.post("/reports/", {"language": "en", "unblinded": "unblinded", "format": "html"})
        assert resp.status_code == 302
        report = TrialReport.objects.get()
        assert report.status == TrialReport.DONE and report.unblinded and report.blinding == "labels", report.error
        html = body(b.get(f"/reports/{report.pk}/download/")).decode("utf-8")
        assert "Group A" in html  # by group label ...
        from annulus.trial.selectors import active_protocol

        assert not [a.name.en for a in active_protocol().arms if a.name.en in html]  # ... never by treatment
        assert "by group label A–D" in b.text()
        # the investigator and the data manager stay blinded: only the blinded report
        for role in ("pi", "data_manager"):
            other = Browser(people[role])
            assert "Your role reads the blinded report only." in other.text()
            resp = other.post("/reports/", {"language": "en", "unblinded": "unblinded", "format": "html"})
            assert resp.status_code == 400 and "your role may not see groups or treatments" in resp.content.decode()
        assert TrialReport.objects.count() == 1

    # one language here (the search looks for both languages' names); the English report is searched in
    # test_report_completed_trial and test_report_numbers
    @pytest.mark.parametrize("language", ["zh-hans"])
    def test_the_blinded_report_names_no_arm_even_for_a_reader_who_may_see_arms(self, language, people):
        set_state("unblinded_2")
        b = Browser(people["statistician"], language)
        assert "shows the treatments" in b.text() or "显示治疗分组" in b.text()
        for unblinded in ("blinded", "unblinded"):
            assert b.post("/reports/", {"language": language, "unblinded": unblinded, "format": "html"}).status_code == 302
        blinded, by_arm = TrialReport.objects.order_by("id")
        assert (blinded.blinding, by_arm.blinding) == ("blinded", "arms"), (blinded.error, by_arm.error)
        text = body(b.get(f"/reports/{blinded.pk}/download/")).decode("utf-8")
        assert not arm_leaks(text), arm_leaks(text)
        # the search finds arms where there are some: its silence above means something
        assert arm_leaks(body(b.get(f"/reports/{by_arm.pk}/download/")).decode("utf-8"))

    def test_the_statistician_sees_every_report_others_only_their_own_and_as_built(self, people):
        Browser(people["pi"]).post("/reports/", {"language": "en", "unblinded": "blinded", "format": "html"})
        report = TrialReport.objects.get()
        assert report.status == TrialReport.DONE, report.error
        stat = Browser(people["statistician"])
        text = stat.text()
        assert "Reports built (all users)" in text and "<td>pi</td>" in text
        assert f'href="/reports/{report.pk}/download/"' in text
        assert stat.get(f"/reports/{report.pk}/download/").status_code == 200
        dm = Browser(people["data_manager"])
        text = dm.text()
        assert "Your reports" in text and "No reports yet." in text
        assert dm.get(f"/reports/{report.pk}/download/").status_code == 404
        # a file changed after it was built is no longer served (its SHA-256 is the one recorded)
        with open(report.path, "ab") as fh:
            fh.write(b"<!-- edited -->")
        assert stat.get(f"/reports/{report.pk}/download/").status_code == 404

    def test_the_report_is_built_after_the_database_lock(self, people):
        from annulus.trial.lock import ALLOWED_AFTER_LOCK, is_locked

        set_state("locked")
        assert is_locked() and "reports" in ALLOWED_AFTER_LOCK
        resp = Browser(people["statistician"]).post("/reports/", {"language": "zh-hans", "unblinded": "blinded",
                                                                 "format": "html"})
        assert resp.status_code == 302
        assert TrialReport.objects.get().status == TrialReport.DONE

    def test_the_audit_trail_names_the_report(self, people):
        from annulus.audit.present import present

        Browser(people["statistician"]).post("/reports/", {"language": "en", "unblinded": "blinded", "format": "html"})
        event = AuditEvent.objects.filter(object_type="trial_report").get()
        shown = present(event, 1, blinded=True, language="en")
        assert shown.action_label == "report built" and shown.record == "Trial report"
        labels = {c.label: c.new for c in shown.changes}
        assert labels["Blinding"] == "blinded" and labels["Format"] == "HTML" and labels["Made from"] == "Report page"
        assert labels["SHA-256 of the file"] == TrialReport.objects.get().sha256
        from django.utils import translation

        with translation.override("zh-hans"):
            shown = present(event, 1, blinded=True, language="zh-hans")
            assert shown.action_label == "生成报告" and shown.record == "试验报告"
