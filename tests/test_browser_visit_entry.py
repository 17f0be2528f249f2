"""Headless Chromium: a coordinator enters a visit on the whole-visit page, sees an error on the
field of its form with nothing saved, then saves drafts and finds them on the visit page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import TEST_PASSWORD
from .test_browser_journey import CHROMIUM, browser_page, flushable_audit_table, shot  # noqa: F401
from .test_visits_support import at_w1, transplant_dates, trial_participant  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.req("P-4.5", "X-5.7"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install -y chromium)"),
]


def test_visit_entry_in_the_browser(flushable_audit_table, live_server, browser_page, users, at_w1):
    from annulus.visits.models import FormRecord

    p, visit = at_w1
    page = browser_page
    base = live_server.url
    page.goto(base + "/accounts/login/")
    page.fill("input[name=username]", users["coordinator"].username)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))

    page.goto(f"{base}/participants/{p.pk}/visits/w1/")
    page.click("text=Enter the whole visit on one page")
    page.wait_for_url(re.compile(r"/visits/w1/entry/$"))
    assert page.locator("section.card").count() == len(visit.forms)

    page.fill("input[name='vas-vas_mm']", "140")
    page.check("input[name='odi-s1'][value='2']")  # an ODI statement, read in full
    page.click("button[name=draft]")
    error = page.locator("#form-vas .errorlist")
    assert "0–100" in error.inner_text()
    assert page.locator(".entry-nav a.overdue").inner_text().startswith("VAS")
    assert page.locator("input[name='odi-s1'][value='2']").is_checked()  # what was typed is kept
    assert FormRecord.objects.filter(visit=visit).count() == 0
    shot(page, "visit_entry_error")

    page.fill("input[name='vas-vas_mm']", "40")
    page.click("button[name=draft]")
    page.wait_for_url(re.compile(r"/visits/w1/$"))
    assert "Visit forms saved (2)" in page.content()
    states = dict(FormRecord.objects.filter(visit=visit).values_list("form_id", "state"))
    assert states == {"vas": "draft", "odi": "draft"}
    shot(page, "visit_after_entry")
