"""DSMB report PDFs over several pages: table rows are never split across pages, table headers
repeat on every page, and the closed report is marked CLOSED on every page."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.safety import reports, services

pytestmark = pytest.mark.django_db
SAES = 45


def pdf_pages(pdf: bytes, tmp_path) -> list[str]:
    if not shutil.which("pdftotext"):
        pytest.skip("pdftotext (poppler-utils) is not installed")
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    pages = out.split("\f")
    return [p for p in pages if p.strip()]


@pytest.fixture
def long_report(users, make_participant, arms):
    """Enough serious events for several pages, with terms wrapping over one to six lines, so that
    rows of many heights meet the page ends."""
    people = [make_participant("enrolled") for _ in range(SAES)]
    arm_ids = ["high", "mid", "low", "control"]
    arms.update({p.pk: arm_ids[i % 4] for i, p in enumerate(people)})
    now = timezone.now()
    for i, p in enumerate(people):
        services.record_adverse_event(
            actor=users["investigator"], participant_id=p.pk,
            term=f"Zbegin{i:02d} lumbar discitis{' with epidural abscess' * (i % 6)} and pain Zend{i:02d}",
            onset_at=now - timedelta(days=3), serious=True, serious_criteria=["hospitalisation", "disability"],
            first_knowledge_at=now - timedelta(days=2), grade=3, causality_liposuction="not_related",
            causality_injection="possible", causality_product="unlikely", expectedness="expected",
            action_taken="hospitalised", outcome="recovering")
    return people


@pytest.mark.req("P-6.4")
@pytest.mark.parametrize("kind", ["closed", "open"])
def test_rows_whole_headers_repeated_and_closed_on_every_page(long_report, users, tmp_path, kind):
    rep = services.generate_report(actor=users["dsmb"], as_of=timezone.localdate(), kind=kind)
    pages = pdf_pages(reports.render_pdf(rep.html), tmp_path)
    assert len(pages) >= 3
    for n, page in enumerate(pages, start=1):
        if kind == "closed":
            assert "CLOSED" in page, f"page {n} has no CLOSED marking"
        else:
            assert "CLOSED" not in page
        # a page with rows of a table starts them under that table's header row (the SAE table's
        # or the by-term table's): the text before the first row holds a header
        first_row = re.search(r"zbegin\d\d", page, re.IGNORECASE)
        if first_row:
            above = page[:first_row.start()]
            assert (re.search(r"Event\s+(Arm\s+)?Term\s+Onset\s+Grade\s+Criteria", above)
                    or re.search(r"Term\s+.*events\s+subjects\s+\(%", above, re.DOTALL)), \
                f"page {n}: rows without a header row"
    # no row is split: each event's wrapped term starts and ends on the same page, and every term is shown
    for i in range(SAES):
        begin = [n for n, p in enumerate(pages) if f"zbegin{i:02d}" in p.lower()]
        end = [n for n, p in enumerate(pages) if f"zend{i:02d}" in p.lower()]
        assert begin and begin == end, (i, begin, end)

