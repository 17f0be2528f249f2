"""X-7.5: the printable casebook (PDF, WeasyPrint) in English and Chinese manifests the signatures:
the signer's printed name, the date and time, the meaning, on the record; each page names the
participant, "page x of y" and the print time."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from django.test import Client
from django.utils import timezone

from annulus.casebooks import services
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.req("X-7.5")


def pdf_pages(content: bytes, tmp_path) -> list[str]:
    if not shutil.which("pdftotext"):
        pytest.skip("pdftotext (poppler-utils) is not installed")
    path = tmp_path / "casebook.pdf"
    path.write_bytes(content)
    out = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    return [page for page in out.split("\f") if page.strip()]


def _pdf(user, pk, language):
    c = Client(HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(user)
    r = c.get(f"/participants/{pk}/casebook/?format=pdf")
    assert r.status_code == 200 and r["Content-Type"] == "application/pdf"
    return r.content


@pytest.fixture
def signed(users, make_participant):
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(pk=users["pi"].pk).update(first_name="Lin", last_name="Wei")
    users["pi"].refresh_from_db()
    p = make_participant("enrolled")
    s = services.sign_casebook(actor=users["pi"], participant_id=p.pk, username="t_pi", password=TEST_PASSWORD)
    return p, s


@pytest.mark.parametrize("language,meaning,page_word,eligibility_meaning", [
    ("en", "I approve the data in this casebook as complete and accurate", "page", "eligibility decision signed"),
    ("zh-hans", "我批准本病例报告册中的数据完整、准确", "页", "入选判定已签署"),
])
def test_pdf_manifests_the_signatures(language, meaning, page_word, eligibility_meaning, signed, users, tmp_path):
    p, s = signed
    pages = pdf_pages(_pdf(users["monitor"], p.pk, language), tmp_path)
    text = "\n".join(pages)
    flat = re.sub(r"\s+", "", text)
    assert s.signer_name == "Lin Wei" and "Lin Wei" in text
    assert re.sub(r"\s+", "", meaning) in flat
    assert timezone.localtime(s.signed_at).strftime("%Y-%m-%d %H:%M") in text
    assert s.content_hash in flat  # the hash signed, unbroken once line wraps are removed
    # the eligibility decision's signature: signer, meaning
    assert "t_investigator" in text and re.sub(r"\s+", "", eligibility_meaning) in flat
    # every page: participant, page x of y, print time
    n = len(pages)
    for i, page in enumerate(pages, start=1):
        assert p.label.split(" ")[0] in page, i
        assert re.search(rf"{i}\D+{n}", page), (i, page[-200:])
        assert page_word in page
        assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", page)


def test_pdf_shows_an_invalidated_signature(signed, users, tmp_path):
    from annulus.participants import services as ps

    p, _s = signed
    ps.withdraw(actor=users["coordinator"], participant_id=p.pk, withdrawn_on=timezone.localdate(),
                category="other", details="Stopped coming")
    text = "\n".join(pdf_pages(_pdf(users["investigator"], p.pk, "en"), tmp_path))
    assert "Signature invalidated by a change after signing" in text
    assert "End of study › Status: enrolled → withdrawn" in text


def test_pdf_refused_to_roles_that_do_not_read_casebooks(signed, users):
    p, _s = signed
    c = Client()
    c.force_login(users["designer"])
    assert c.get(f"/participants/{p.pk}/casebook/?format=pdf").status_code == 403
