"""DSMB interim reports in the page's language: every heading and label, the CLOSED/OPEN page
marking and the table labels read in English on an English page and in Chinese on a Chinese page
(HTML and PDF); the command line writes the language asked for."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annulus.cli import main
from annulus.safety import services

pytestmark = pytest.mark.django_db

EN = ["DSMB interim safety report — CLOSED (by arm)", "Closed report: contains data by treatment arm",
      "1. Population and overview", "2. By severity grade (CTCAE)", "Related to the study product",
      "Any adverse event", "subjects (%, 95 % CI)", "High dose", "7. Serious adverse events", "Product causality",
      "CLOSED — DSMB closed session only — data by arm", "Requires hospitalisation or prolongs it"]
ZH = ["DSMB 期中安全性报告 — 非公开（按组别）", "非公开报告：含按治疗组别的数据", "1. 人群与概览", "2. 按严重程度分级（CTCAE）",
      "与研究产品相关", "任何不良事件", "受试者数（%，95% CI）", "7. 严重不良事件", "非公开 — 仅限 DSMB 闭门会议 — 按组别的数据",
      "第 \" counter(page) \" 页，共 \" counter(pages) \" 页"]
ENGLISH_ONLY = ["Closed report", "Population and overview", "By severity grade", "Any adverse event", "Serious adverse events",
                "CLOSED", "OPEN", "Related to", "subjects", "Total", "data cut-off", "page\""]


@pytest.fixture
def report(users, make_participant, arms):
    people = [make_participant("enrolled") for _ in range(2)]
    arms.update({people[0].pk: "high", people[1].pk: "control"})
    now = timezone.now()
    services.record_adverse_event(
        actor=users["investigator"], participant_id=people[0].pk, term="Discitis", grade=3,
        onset_at=now - timedelta(days=2), serious=True, serious_criteria=["hospitalisation"],
        first_knowledge_at=now - timedelta(days=1), causality_liposuction="not_related", causality_injection="possible",
        causality_product="possible", expectedness="unexpected", action_taken="hospitalised", outcome="recovering")
    return services.generate_report(actor=users["dsmb"], as_of=timezone.localdate(), kind="closed")


def page(users, language: str, url: str):
    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(users["dsmb"])
    response = c.get(url)
    assert response.status_code == 200
    return response


@pytest.mark.req("P-6.4")
def test_report_page_in_english_and_chinese(report, users):
    en = page(users, "en", f"/safety/dsmb/reports/{report.pk}/").content.decode()
    for text in EN:
        assert text in en, text
    zh = page(users, "zh-hans", f"/safety/dsmb/reports/{report.pk}/").content.decode()
    for text in ZH:
        assert text in zh, text
    assert "高剂量" in zh or "High dose" not in zh  # the arm's name from the protocol, in Chinese
    for text in ENGLISH_ONLY:
        assert text not in zh, text
    assert '<html lang="zh-hans">' in zh


@pytest.mark.req("P-6.4")
def test_report_pdf_in_chinese(report, users, tmp_path):
    if not shutil.which("pdftotext"):
        pytest.skip("pdftotext (poppler-utils) is not installed")
    pdf = page(users, "zh-hans", f"/safety/dsmb/reports/{report.pk}/pdf/").content
    path = tmp_path / "r.pdf"
    path.write_bytes(pdf)
    pages = [p for p in subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                                       check=True).stdout.split("\f") if p.strip()]
    for n, text in enumerate(pages, start=1):
        assert "非公开" in text and f"第 {n} 页，共 {len(pages)} 页" in text, n
        assert "CLOSED" not in text
    assert "1. 人群与概览" in pages[0]


@pytest.mark.req("P-6.4")
def test_cli_language(report, users, tmp_path):
    day = timezone.localdate().isoformat()
    zh = tmp_path / "zh.html"
    assert main(["dsmb", "report", "--as-of", day, "--open", "--out", str(zh), "--language", "zh-hans"]) == 0
    text = zh.read_text(encoding="utf-8")
    assert "DSMB 期中安全性报告 — 公开（合并）" in text and "公开报告 — 合并数据" in text and "OPEN" not in text
    en = tmp_path / "en.html"
    assert main(["dsmb", "report", "--as-of", day, "--open", "--out", str(en)]) == 0
    assert "DSMB interim safety report — OPEN (pooled)" in en.read_text(encoding="utf-8")
