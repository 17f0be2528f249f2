"""The Exports page (X-7.6): the form, the jobs with their status and progress, the zip, in English
and Chinese; only for the roles that export."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annulus.exports.models import ExportJob

pytestmark = pytest.mark.req("X-7.6")

EXPORTERS = ["investigator", "coordinator", "data_manager", "statistician", "monitor", "auditor", "pharmacist"]


@pytest.fixture(autouse=True)
def _inline(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.ANNULUS_EXPORT_JOBS_INLINE = True


@pytest.fixture
def trial(users, make_participant):
    return [make_participant("enrolled"), make_participant("consented")]


class Browser:
    def __init__(self, user, language="en"):
        self.client = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
        self.client.force_login(user)
        self.client.get("/")
        self.token = self.client.cookies["csrftoken"].value

    def get(self, path):
        return self.client.get(path)

    def post(self, path, data):
        return self.client.post(path, {**data, "csrfmiddlewaretoken": self.token})


@pytest.mark.parametrize("role", EXPORTERS)
def test_the_page_and_its_navigation_link_for_every_exporting_role(role, users):
    resp = Browser(users[role]).get("/exports/")
    text = resp.content.decode()
    assert resp.status_code == 200
    assert 'href="/exports/"' in text and "Build the export" in text
    assert ('name="identifiable"' in text) == (role in ("investigator", "coordinator"))
    assert '<option value="csv">' in text and '<option value="" selected>' in text  # nothing chosen for them


@pytest.mark.parametrize("role", ["designer", "dsmb", "ethics", "admin"])
def test_roles_that_may_not_export_have_no_page_and_no_link(role, users):
    b = Browser(users[role])
    assert b.get("/exports/").status_code == 403
    assert b.get("/exports/1/download/").status_code == 403
    assert 'href="/exports/"' not in b.get("/").content.decode()


def test_ask_for_an_export_follow_it_and_download_the_zip(users, trial):
    b = Browser(users["statistician"])
    resp = b.post("/exports/", {"format": "csv", "language": "en", "as_of": ""})
    assert resp.status_code == 302 and resp["Location"] == "/exports/"
    job = ExportJob.objects.get()
    assert job.status == ExportJob.DONE and job.origin == "page" and job.user == users["statistician"]
    text = b.get("/exports/").content.decode()
    assert f"/exports/{job.pk}/download/" in text and 'class="status ok"' in text
    assert "2 of 2 participants" in text
    assert 'hx-trigger="every 2s"' not in text  # nothing running: no polling
    dl = b.get(f"/exports/{job.pk}/download/")
    assert dl.status_code == 200 and dl["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(b"".join(dl.streaming_content))).namelist()
    assert "manifest.json" in names and "long.csv" in names
    # another exporting user neither sees nor downloads it
    other = Browser(users["monitor"])
    assert f"/exports/{job.pk}/download/" not in other.get("/exports/").content.decode()
    assert other.get(f"/exports/{job.pk}/download/").status_code == 404


def test_a_running_job_is_polled_and_a_dead_one_shown_failed(users):
    b = Browser(users["monitor"])
    ExportJob.objects.create(user=users["monitor"], format="csv", status=ExportJob.RUNNING, done=3, total=12,
                             heartbeat_at=timezone.now())
    text = b.get("/exports/").content.decode()
    assert 'hx-trigger="every 2s"' in text and 'class="status warn"' in text and "3 of 12 participants" in text
    assert 'aria-valuenow="25"' in text
    ExportJob.objects.update(heartbeat_at=timezone.now() - timedelta(minutes=30))
    text = b.get("/exports/").content.decode()
    assert 'hx-trigger="every 2s"' not in text and 'class="status bad"' in text
    assert "The process building it stopped" in text


def test_bad_input_is_shown_on_the_form(users, trial):
    b = Browser(users["monitor"])
    future = (timezone.localtime() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    resp = b.post("/exports/", {"format": "csv", "language": "en", "as_of": future})
    assert resp.status_code == 400 and "in the future" in resp.content.decode()
    resp = b.post("/exports/", {"format": "xlsx", "language": "en"})
    assert resp.status_code == 400 and "errorlist" in resp.content.decode()
    # the identifiable box is not offered to the monitor, and a forged one is ignored
    resp = b.post("/exports/", {"format": "csv", "language": "en", "identifiable": "on"})
    assert resp.status_code == 302 and ExportJob.objects.get().identifiable is False


def test_the_page_in_chinese(users, trial):
    b = Browser(users["coordinator"], language="zh-hans")
    b.post("/exports/", {"format": "csv", "language": "zh-hans", "identifiable": "on"})
    job = ExportJob.objects.get()
    assert job.identifiable and job.language == "zh-hans"
    text = b.get("/exports/").content.decode()
    for words in ("数据导出", "生成导出", "您的导出", "已完成", "下载 zip", "可识别身份", "2 / 2 名受试者"):
        assert words in text, words
    for english in ("Build the export", "Your exports", "Download zip", "No exports yet"):
        assert english not in text, english


def test_the_data_manager_sees_every_job(users, trial):
    Browser(users["coordinator"]).post("/exports/", {"format": "csv", "language": "en"})
    text = Browser(users["data_manager"]).get("/exports/").content.decode()
    assert "Export jobs (all users)" in text and "t_coordinator" in text
