"""Sachet label (P-3.4): drug code, participant number, lot, expiry date and time, English and
Chinese, and nothing that differs between arms. Emergency letter (P-3.5): a 24-hour contact,
"20×10⁶" as printed, the drug code never broken across lines. HTML and PDF."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.allocation import selectors, services, testing
from annulus.allocation.models import Envelope
from annulus.allocation.views import emergency_contact
from annulus.protocol import default_protocol_path, parse_protocol
from annulus.trial.selectors import active_protocol
from tests.conftest import without_nonce

ZH_LABEL = ("受试者编号", "批号", "有效期", "仅供临床试验使用", "椎间盘内注射")


@pytest.fixture
def dispensed(users, make_participant, monkeypatch):
    """Eight randomised participants (every arm), each product released and dispensed at the same
    time of day, so two labels differ only in their numbers."""
    testing.liposuction_days_ago(monkeypatch, 21)
    testing.randomised(users, make_participant, 8)
    when = timezone.now() - timedelta(hours=2)
    out = []
    for env in Envelope.objects.filter(participant__isnull=False).order_by("serial"):
        services.record_release(actor=users["pharmacist"], envelope_id=env.pk, lot_number=f"AD{env.random_number}-1",
                                tested_on=timezone.localdate(when - timedelta(hours=1)), results=testing.PASSING,
                                checked_at=when - timedelta(hours=1))
        services.dispense(actor=users["pharmacist"], envelope_id=env.pk, dispensed_at=when)
        out.append(env)
    return out, when


def _pdf_text(pdf: bytes, tmp_path, name: str) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True,
                          text=True).stdout


@pytest.mark.req("P-3.4")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_label_carries_lot_expiry_participant_and_both_languages(dispensed, client_for, language):
    envelopes, when = dispensed
    env = envelopes[0]
    c = client_for("pharmacist")
    c.cookies["django_language"] = language
    html = c.get(f"/pharmacy/envelopes/{env.pk}/label/").content.decode()
    expiry = timezone.localtime(when + timedelta(hours=active_protocol().product.shelf_life_hours))
    assert f"AD{env.random_number}-1" in html
    assert expiry.strftime("%Y-%m-%d %H:%M") in html
    assert env.participant.case_number in html and env.drug_code in html
    for text in ("Participant number", "Lot", "Expiry (date and time)", "For clinical trial use only") + ZH_LABEL:
        assert text in html, text
    assert re.search(r"\.code\s*\{[^}]*white-space:\s*nowrap", html)


@pytest.mark.req("P-3.4", "X-3.8")
def test_two_labels_of_different_arms_differ_only_in_their_numbers(dispensed, client_for):
    envelopes, _ = dispensed
    by_arm = {}
    for env in envelopes:
        by_arm.setdefault(selectors.arm_of_for_system(env.participant_id), env)
    assert len(by_arm) >= 2
    a, b = list(by_arm.values())[:2]
    c = client_for("pharmacist")
    label_a = c.get(f"/pharmacy/envelopes/{a.pk}/label/").content.decode()
    label_b = c.get(f"/pharmacy/envelopes/{b.pk}/label/").content.decode()
    assert label_a != label_b  # their codes, numbers and lots differ ...

    def masked(html, env):
        html = without_nonce(html)
        for own in (env.drug_code, f"AD{env.random_number}-1", env.participant.case_number, env.random_number):
            html = re.sub(rf"\b{re.escape(own)}\b", "#", html)
        return html

    assert masked(label_a, a) == masked(label_b, b)  # ... and nothing else does
    for leak in ("cells", "saline", "dose", "Placebo", "hydrogel", "细胞", "安慰剂"):
        assert leak not in label_a


@pytest.mark.req("P-3.4")
def test_label_pdf(dispensed, client_for, tmp_path):
    envelopes, _ = dispensed
    env = envelopes[0]
    r = client_for("pharmacist").get(f"/pharmacy/envelopes/{env.pk}/label/?format=pdf")
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    assert env.drug_code in r["Content-Disposition"]
    text = _pdf_text(r.content, tmp_path, "label")
    assert env.drug_code in text and f"AD{env.random_number}-1" in text
    assert "Expiry" in text


@pytest.mark.req("P-3.5", "P-1.2")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_letter_names_a_24_hour_contact_and_prints_powers_of_ten(dispensed, client_for, settings, language):
    settings.ANNULUS_EMERGENCY_CONTACT = "Trial emergency line, +86 411 8363 0000"
    envelopes, _ = dispensed
    high = next(e for e in envelopes if selectors.arm_of_for_system(e.participant_id) == "high")
    c = client_for("pharmacist")
    c.cookies["django_language"] = language
    html = c.get(f"/pharmacy/envelopes/{high.pk}/letter/").content.decode()
    assert "24-hour emergency contact" in html and "24小时紧急联系" in html
    assert "+86 411 8363 0000" in html
    assert "20×10⁶" in html and "x10^" not in html and "×10^" not in html
    assert f'<span class="code">{high.drug_code}</span>' in html
    assert re.search(r"\.code, \.nowrap \{ white-space: nowrap; \}", html)
    assert "高剂量组" in html and "High dose" in html


@pytest.mark.req("P-3.5")
def test_letter_pdf_keeps_the_drug_code_on_one_line(dispensed, client_for, settings, tmp_path):
    settings.ANNULUS_EMERGENCY_CONTACT = "Trial emergency line, +86 411 8363 0000"
    envelopes, _ = dispensed
    env = envelopes[0]
    r = client_for("pharmacist").get(f"/pharmacy/envelopes/{env.pk}/letter/?format=pdf")
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    text = _pdf_text(r.content, tmp_path, "letter")
    assert env.drug_code in text  # whole, on one line
    assert "+86 411 8363 0000" in text and "10^" not in text


@pytest.mark.req("P-3.5")
def test_without_a_contact_the_letter_says_so_in_red(dispensed, client_for, settings):
    settings.ANNULUS_EMERGENCY_CONTACT = ""
    env = dispensed[0][0]
    html = client_for("pharmacist").get(f"/pharmacy/envelopes/{env.pk}/letter/").content.decode()
    assert 'class="missing"' in html and "ANNULUS_EMERGENCY_CONTACT" in html


@pytest.mark.req("X-1.3")
def test_the_protocol_file_may_name_the_contact_and_it_wins_over_the_setting(settings):
    settings.ANNULUS_EMERGENCY_CONTACT = "setting"
    text = default_protocol_path().read_text("utf-8").replace(
        "  timezone: Asia/Shanghai\n",
        "  timezone: Asia/Shanghai\n  emergency_contact: {name: {en: Trial office, zh: 试验办公室}, phone: '+86 411 1234 5678'}\n", 1)
    protocol = parse_protocol(text)
    assert emergency_contact(protocol) == "Trial office / 试验办公室, +86 411 1234 5678"
    assert emergency_contact(parse_protocol(default_protocol_path().read_text("utf-8"))) == "setting"
