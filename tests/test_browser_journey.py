"""Headless Chromium: a coordinator takes a candidate from pre-screening to the eligibility
decision, an investigator signs it and enrols, and sees the audit trail. Screenshots of the main pages go to /tmp/shots/ for review."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.utils import timezone

from .conftest import ELIGIBLE_EVIDENCE, TEST_PASSWORD

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(os.environ.get("ANNULUS_SHOTS_DIR", "/tmp/shots"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.req("P-2.3", "P-2.4", "X-2.5", "P-1.1", "X-7.3"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install -y chromium)"),
]


@pytest.fixture
def browser_page(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # still synchronous
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        # the test's ORM calls ran inside Playwright's context, on a connection of their own:
        # close it here, in that context, or PostgreSQL refuses to drop the test database
        from django.db import connections

        connections.close_all()
        context.close()
        browser.close()


@pytest.fixture
def flushable_audit_table(committed_db):
    """The live server's requests run on their own connections: they see committed rows only
    (``committed_db``, which lets the flush after the test empty the audit table)."""


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_coordinator_journey_in_the_browser(flushable_audit_table, live_server, browser_page, users, make_participant):
    from annulus.audit.models import AuditEvent
    from annulus.participants.models import Participant

    # some earlier candidates so the dashboard and list are not empty
    earlier = {stage: make_participant(stage) for stage in ("enrolled", "screen_failed", "screening", "pre_screened")}
    page = browser_page
    base = live_server.url

    page.goto(base + "/participants/")
    assert "/accounts/login/" in page.url  # login first
    page.fill("input[name=username]", users["coordinator"].username)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/participants/$"))
    page.goto(base + "/")
    assert page.locator("h1").inner_text() == "Trial dashboard"
    shot(page, "dashboard")

    page.click("header nav >> text=Participants")
    shot(page, "participant_list")
    page.click("text=New pre-screening")
    page.fill("#id_initials", "LM")
    page.select_option("#id_sex", "F")
    page.fill("#id_phone", "138 0000 0000")
    page.select_option("#id_recruitment_source", "records_search_phone")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Pre-screening recorded as")
    pk = int(re.search(r"/participants/(\d+)/", page.url).group(1))

    page.click("text=Record consent")
    now = timezone.localtime(timezone.now()).replace(second=0, microsecond=0)
    page.fill("#id_consented_at", now.strftime("%Y-%m-%dT%H:%M"))
    page.select_option("#id_consent_version", index=1)  # an ethics-approved version, chosen
    page.select_option("#id_taken_by", str(users["coordinator"].pk))  # chosen, never pre-selected
    page.click("button[type=submit]")
    page.wait_for_selector("text=Consent recorded.")

    page.click("text=Screening evidence")
    for field, value in ELIGIBLE_EVIDENCE.items():
        selector = f"#id_{field}"
        if page.locator(f"select{selector}").count():
            page.select_option(selector, {True: "true", False: "false"}.get(value, str(value)) if isinstance(value, bool) else str(value))
        else:
            page.fill(selector, str(value))
    page.click("button[name=decide]")
    # the coordinator prepares; an investigator reads the outcome and signs it with their password
    page.wait_for_selector("text=An investigator signs the eligibility decision")
    page.click("text=Log out")
    page.goto(f"{base}/participants/{pk}/eligibility/")
    page.fill("input[name=username]", users["investigator"].username)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(rf"/participants/{pk}/eligibility/$"))
    shot(page, "eligibility_decision")
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button:has-text('Sign the decision')")
    page.wait_for_selector("text=Eligible: every criterion is met.")

    page.check("form.confirm input[name=confirm]")
    page.click("text=Enrol (next case number)")
    page.wait_for_selector("text=Enrolled as case 002")
    assert "enrolled" in page.locator("h1 .status").inner_text()
    shot(page, "participant_page")

    page.click("text=Audit trail")
    page.wait_for_url(re.compile(rf"/participants/{pk}/audit/"))
    rows = page.locator("tbody tr")
    assert rows.count() == AuditEvent.objects.filter(participant_id=pk).count() >= 8
    text = page.locator("table").inner_text()
    for needle in ("Consent", "Screening evidence", "Eligibility decision", "Case number", "enrolled",
                   users["coordinator"].username):
        assert needle in text, needle
    shot(page, "audit")
    assert "screening_evidence" not in text and "case_number" not in text  # names, never stored codes
    page.select_option("#type", "consent")
    page.click("text=Filter")
    assert page.locator("tbody tr").count() == 1

    # a full-page shot of a long form upsets the next click, so the form is shot last
    page.goto(f"{base}/participants/{earlier['screening'].pk}/screening/")
    shot(page, "screening_form")

    p = Participant.objects.get(pk=pk)
    assert (p.status, p.case_number, p.recruitment_source) == ("enrolled", "002", "records_search_phone")
