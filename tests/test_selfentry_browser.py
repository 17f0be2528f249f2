"""Headless Chromium on a phone-sized screen: the coordinator issues a questionnaire link; the
participant opens it, enters the card code, marks the VAS line, answers the ODI one question per
screen (the answers survive a reload), and sends. Screenshots go to /tmp/shots/ for review."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.utils import timezone

from .conftest import TEST_PASSWORD
from .test_browser_journey import CHROMIUM, flushable_audit_table, shot  # noqa: F401
from .test_visits_support import GOOD, transplant_dates, trial_participant  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.req("P-4.5", "P-5.1", "P-5.2", "X-5.7"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install -y chromium)"),
]

ODI = [0, 1, 2, 1, 3, 2, 1, 0, 2, 1]


@pytest.fixture
def browser(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                               args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        yield b
        from django.db import connections

        connections.close_all()
        b.close()


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_participant_answers_the_vas_and_odi_on_a_phone(flushable_audit_table, live_server, browser, users,
                                                          trial_participant, language):
    from annulus.selfentry.models import SelfEntryLink
    from annulus.visits import services as vs
    from annulus.visits.models import FormRecord

    p = trial_participant(lipo_days_ago=51, transplant_days_ago=30)
    coordinator = users["coordinator"]
    vs.open_visit(actor=coordinator, participant_id=p.pk, visit_id="m1", visit_date=timezone.localdate())
    for form_id in ("joa", "sf36"):  # entered at the clinic: the link asks for the VAS and the ODI
        vs.save_form(actor=coordinator, participant_id=p.pk, visit_key="m1", form_id=form_id, items=GOOD[form_id],
                     complete=True)
    base = live_server.url
    suffix = "zh" if language.startswith("zh") else "en"

    desk = browser.new_context(viewport={"width": 1280, "height": 900})
    desk.add_cookies([{"name": "django_language", "value": language, "url": base}])
    page = desk.new_page()
    page.set_default_timeout(15_000)
    page.goto(base + "/accounts/login/")
    page.fill("input[name=username]", coordinator.username)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))
    page.goto(f"{base}/participants/{p.pk}/visits/m1/")
    page.click("#self-entry a.button")
    page.click("form.stack button[type=submit]")
    link = page.locator("[data-testid=link]").inner_text().strip()
    code = page.locator("[data-testid=card-code]").inner_text().strip()
    assert page.locator(".qr-box svg").count() == 1
    shot(page, f"selfentry_issue_{suffix}")
    desk.close()

    phone_ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                    user_agent="Mozilla/5.0 (iPhone; test) Mobile")
    phone_ctx.add_cookies([{"name": "django_language", "value": language, "url": base}])
    phone = phone_ctx.new_page()
    phone.set_default_timeout(15_000)
    phone.goto(link)
    phone.fill("input[name=code]", code)
    phone.click("form.stack button[type=submit]")
    line = phone.locator("input.vas-line")
    line.wait_for(state="visible")
    assert phone.locator("input[name='vas-vas_mm']").input_value() == ""  # nothing marked before the touch
    shot(phone, f"selfentry_vas_{suffix}")
    box = line.bounding_box()
    line.click(position={"x": box["width"] * 0.37, "y": box["height"] / 2})
    mm = int(phone.locator("input[name='vas-vas_mm']").input_value())
    assert 32 <= mm <= 42  # millimetres of the line, whatever its width on the screen
    shot(phone, f"selfentry_vas_marked_{suffix}")
    phone.locator("fieldset.step:visible [data-step-next]").click()
    for i, answer in enumerate(ODI[:3], 1):
        phone.locator(f"input[name='odi-s{i}'][value='{answer}']").check()
        if i == 1:
            shot(phone, f"selfentry_odi_{suffix}")
        phone.locator("fieldset.step:visible [data-step-next]").click()
    # the connection drops, the page is opened again: the answers are still there
    phone.goto(link)
    assert phone.locator("input[name='odi-s2'][value='1']").is_checked()
    assert phone.locator("input[name='vas-vas_mm']").input_value() == str(mm)
    phone.locator("fieldset.step:visible [data-step-next]").click()
    for i, answer in enumerate(ODI, 1):
        phone.locator(f"input[name='odi-s{i}'][value='{answer}']").check()
        phone.locator("fieldset.step:visible [data-step-next]").click()
    assert phone.locator("progress").evaluate("p => p.value") == len(ODI) + 1
    phone.locator("[data-step-final] button[type=submit]").click()
    phone.locator("[data-selfentry-clear]").wait_for()
    shot(phone, f"selfentry_thanks_{suffix}")
    assert phone.evaluate("() => window.localStorage.length") == 0
    records = {r.form_id: r for r in FormRecord.objects.filter(participant=p)}
    assert records["vas"].items == {"vas_mm": mm} and records["vas"].state == "complete"
    assert records["odi"].items == {f"s{i}": a for i, a in enumerate(ODI, 1)} and records["odi"].state == "complete"
    used = SelfEntryLink.objects.get(participant=p)
    assert used.used_at is not None and "iPhone; test" in used.device
    phone_ctx.close()
