"""The participant's pages are usable with a screen reader and at 200 % zoom, in English and in
Chinese: axe-core (through axe-playwright-python) finds no violation of any of its rules on any
page — the card code page (also with a wrong code), each kind of question (the VAS line; the first
question of the ODI, JOA and SF-36 with each number of choices), the last step where the answers
are sent, the answers sent back with a problem, the thank-you page and the page of a link that
does not work, and the whole questionnaire without script (where the VAS is a number field). Each
question is a fieldset named by its legend, the progress is announced politely, a problem is tied
to its question, and the VAS line has a name and says its value. At 195 × 422 CSS px with two
device pixels per CSS px (390 px at 200 % zoom) and at 320 px nothing scrolls sideways on any
page and the buttons of each kind of question can be reached and touched. Screenshots of every page go to /tmp/shots/ for review."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.utils import timezone

from .test_browser_journey import CHROMIUM, flushable_audit_table, shot  # noqa: F401
from .test_selfentry_browser import browser  # noqa: F401 (fixture)
from .test_visits_support import transplant_dates, trial_participant  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.req("P-4.5", "X-5.7"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install -y chromium)"),
]

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
ZOOMED = {  # what a 390 px phone shows at 200 % zoom, and the narrowest phone at 100 %
    "200pct": {"viewport": {"width": 195, "height": 422}, "device_scale_factor": 2, "is_mobile": True,
               "has_touch": True},
    "320px": {"viewport": {"width": 320, "height": 568}, "is_mobile": True, "has_touch": True},
}


# screenshots of these questions go to /tmp/shots/
LOOKED_AT = ("odi-s1", "joa-low_back_pain", "joa-turn_over", "sf36-q3", "sf36-q23")


def assert_accessible(page, what: str) -> None:
    """axe-core's rules, all of them (WCAG 2.x A and AA and its best practices), on the page as
    shown: no violation of any impact. No rule is switched off."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    assert results.violations_count == 0, f"{what}:\n{results.generate_report()}"


def no_sideways_scroll(page, what: str) -> None:
    sizes = page.evaluate("() => [document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]")
    assert sizes[0] <= sizes[1], f"{what}: {sizes[0]} px wide in a {sizes[1]} px screen"


def reachable(page, locator, what: str) -> None:
    """The button is on the screen once scrolled to, inside the screen's width, and a touch lands on it."""
    locator.scroll_into_view_if_needed()
    assert locator.is_visible(), what
    box, width = locator.bounding_box(), page.evaluate("() => document.documentElement.clientWidth")
    assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, f"{what}: {box} outside {width} px"
    assert box["height"] >= 44, f"{what}: a touch target {box['height']} px high"
    locator.click(trial=True)  # nothing covers it, it is enabled and stable


@pytest.fixture
def questionnaire_link(users, trial_participant):
    """A link for the four questionnaires of a 1-month visit recorded today: (url path, card code)."""
    from annulus.selfentry import services
    from annulus.visits import services as vs

    def make():
        p = trial_participant(lipo_days_ago=51, transplant_days_ago=30)
        vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="m1", visit_date=timezone.localdate())
        issued = services.issue_link(actor=users["coordinator"], participant_id=p.pk, visit_key="m1")
        assert issued.link.instruments == ["vas", "odi", "joa", "sf36"]
        assert issued.card_code  # a new participant: the card code is made with the first link
        return f"/p/{issued.token}/", issued.card_code
    return make


def _phone(browser, live_server, language, **options):
    ctx = browser.new_context(**(options or PHONE))
    ctx.add_cookies([{"name": "django_language", "value": language, "url": live_server.url}])
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    return ctx, page


def _enter_code(page, code):
    page.fill("input[name=code]", code)
    page.click("form.stack button[type=submit]")


def _visible_step(page):
    """The one question shown, once the page's script has put one question per screen."""
    page.wait_for_function("() => document.querySelectorAll('[data-step]:not([hidden])').length === 1")
    return page.locator("[data-step]:visible")


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_every_participant_page_passes_axe_and_speaks_to_a_screen_reader(flushable_audit_table, live_server, browser,
                                                                         questionnaire_link, language):
    path, code = questionnaire_link()
    url = live_server.url + path
    suffix = "zh" if language.startswith("zh") else "en"
    ctx, page = _phone(browser, live_server, language)

    # the card code page, then with a wrong code: the message is the input's description
    page.goto(url)
    assert page.locator("html").get_attribute("lang") == language
    assert page.locator("main").count() == 1 and page.locator("h1").count() == 1
    assert_accessible(page, "card code page")
    # the checker does see a fault on this page: a field without a label
    page.evaluate("() => document.querySelector('main').insertAdjacentHTML('beforeend', '<input id=probe>')")
    from axe_playwright_python.sync_playwright import Axe

    assert [v["id"] for v in Axe().run(page).response["violations"]] == ["label"]
    page.evaluate("() => document.getElementById('probe').remove()")
    shot(page, f"a11y_code_{suffix}")
    _enter_code(page, "000000" if code != "000000" else "111111")
    field = page.locator("#card-code")
    assert field.get_attribute("aria-invalid") == "true"
    assert "code-error" in field.get_attribute("aria-describedby").split()
    assert page.locator("#code-error").get_attribute("role") == "alert"
    assert_accessible(page, "card code page with a wrong code")
    shot(page, f"a11y_code_wrong_{suffix}")

    # without script: every question on one page, the VAS as a labelled number field
    bare_ctx, bare = _phone(browser, live_server, language)
    bare.route(re.compile(r"annulus\.js"), lambda route: route.abort())
    bare.goto(url)
    _enter_code(bare, code)
    number = bare.locator("input[type=number][name='vas-vas_mm']")
    number.wait_for(state="visible")
    assert bare.locator("label[for='number-vas-vas_mm']").is_visible()
    assert bare.locator("fieldset.step:visible").count() == bare.locator("fieldset.step").count() == 1 + 10 + 11 + 36
    assert_accessible(bare, "the whole questionnaire without script (the VAS as a number)")
    bare_ctx.close()

    # each question on its own screen
    _enter_code(page, code)
    progress = page.locator("#progress-text")
    progress.wait_for()
    assert progress.get_attribute("aria-live") == "polite" and progress.get_attribute("role") == "status"
    assert page.locator("progress").get_attribute("aria-labelledby") == "progress-text"
    steps = page.locator("fieldset.step")
    total = steps.count()
    assert total == 1 + 10 + 11 + 36
    seen_forms, kinds_seen = set(), set()
    for n in range(total):
        step = _visible_step(page)
        assert step.count() == 1 and step.evaluate("e => e.tagName") == "FIELDSET"
        name = step.get_attribute("id").removeprefix("q-")
        legend = step.locator("legend")
        assert legend.count() == 1 and legend.inner_text().strip()  # the group is named by its question
        assert re.search(rf"\b{n + 1}\b.*\b{total}\b", progress.inner_text())  # "Question 3 of 58" / "第 3 题，共 58 题"
        if n:  # moving on puts the focus on the new question, which a screen reader then reads
            assert page.evaluate("() => document.activeElement.id") == f"legend-{name}"
        form = name.split("-")[0]
        if form not in seen_forms:  # the form's introduction describes its first question
            seen_forms.add(form)
            intro = step.get_attribute("aria-describedby").split()
            assert f"intro-{name}" in intro and page.locator(f"#intro-{name}").is_visible()
        if name == "vas-vas_mm":
            line = step.locator("input[type=range]")
            assert line.get_attribute("aria-label") and line.get_attribute("aria-valuetext")
            assert line.get_attribute("aria-describedby") == f"ends-{name}"
            assert_accessible(page, "the VAS before it is marked")
            shot(page, f"a11y_vas_{suffix}")
            line.focus()
            page.keyboard.press("ArrowRight")  # marked with the keyboard alone
            mm = page.locator("input[name='vas-vas_mm']").input_value()
            assert mm == "51" and line.get_attribute("aria-valuetext").startswith("51")
            assert_accessible(page, "the VAS once marked")
        else:
            radios = step.locator("input[type=radio]")
            assert radios.count() >= 2
            for i in range(radios.count()):  # each choice is named by its words
                assert radios.nth(i).evaluate("r => r.labels.length === 1 && r.labels[0].innerText.trim() !== ''")
            # axe-core looks at each kind of question: the first of each form with each number of
            # choices. The other screens come from the same template; each of them is still
            # checked for its legend, its choices' labels and the focus order.
            kind = (form, radios.count())
            if kind not in kinds_seen:
                kinds_seen.add(kind)
                assert_accessible(page, f"question {name}")
            if name in LOOKED_AT:
                shot(page, f"a11y_{name}_{suffix}")
            page.keyboard.press("Tab")  # the first choice comes next in the focus order
            assert page.evaluate("() => document.activeElement.name") == name
            page.keyboard.press("Space")
            assert radios.first.is_checked()
        step.locator("[data-step-next]").click()

    # the last step: a heading, what was answered, the send button
    final = _visible_step(page)
    assert final.get_attribute("aria-labelledby") == "final-heading"
    assert page.evaluate("() => document.activeElement.id") == "final-heading"
    assert final.locator("[data-step-summary]").is_visible()
    assert_accessible(page, "the last step (send)")
    shot(page, f"a11y_send_{suffix}")

    # sent back with a problem: the summary is an alert, the problem describes its question
    page.evaluate("() => { document.querySelector(\"input[name='vas-vas_mm']\").value = '150'; }")
    final.locator("button[type=submit]").click()
    summary = page.locator("#error-summary")
    summary.wait_for()
    assert summary.get_attribute("role") == "alert"
    step = _visible_step(page)
    assert step.get_attribute("id") == "q-vas-vas_mm"
    assert "err-vas-vas_mm" in step.get_attribute("aria-describedby").split()
    assert page.locator("#err-vas-vas_mm").is_visible()
    assert "err-vas-vas_mm" in step.locator("input[type=range]").get_attribute("aria-describedby").split()
    assert page.locator("input[name='vas-vas_mm']").get_attribute("aria-invalid") == "true"
    assert_accessible(page, "the questionnaire sent back with a problem")
    shot(page, f"a11y_problem_{suffix}")
    line = step.locator("input[type=range]")
    box = line.bounding_box()
    line.click(position={"x": box["width"] * 0.4, "y": box["height"] / 2})
    for _ in range(total):
        _visible_step(page).locator("[data-step-next]").click()
    _visible_step(page).locator("button[type=submit]").click()

    # thanks, then the link no longer works
    page.locator("[data-selfentry-clear]").wait_for()
    assert_accessible(page, "thank-you page")
    shot(page, f"a11y_thanks_{suffix}")
    page.goto(url)
    assert page.locator("h1").count() == 1 and page.locator("input[name=code]").count() == 0
    assert_accessible(page, "the page of a link that does not work")
    shot(page, f"a11y_gone_{suffix}")
    other = "en" if language != "en" else "zh-hans"  # the switch brings back the same page in the other language
    page.locator(f".patient-lang button[value='{other}']").click()
    page.wait_for_function(f"() => document.documentElement.lang === '{other}'")
    assert page.url == url and page.locator("input[name=code]").count() == 0
    ctx.close()


@pytest.mark.parametrize("screen", sorted(ZOOMED))
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_pages_fit_at_200_percent_zoom_and_on_a_narrow_phone(flushable_audit_table, live_server, browser,
                                                                 questionnaire_link, language, screen):
    path, code = questionnaire_link()
    url = live_server.url + path
    suffix = ("zh" if language.startswith("zh") else "en") + "_" + screen
    ctx, page = _phone(browser, live_server, language, **ZOOMED[screen])
    page.goto(url)
    no_sideways_scroll(page, "card code page")
    reachable(page, page.locator("form.stack button[type=submit]"), "Continue")
    reachable(page, page.locator(".patient-lang button").last, "language button")
    shot(page, f"zoom_code_{suffix}")
    _enter_code(page, code)
    page.locator("input.vas-line").wait_for(state="visible")
    total = page.locator("fieldset.step").count()
    kinds_seen = set()
    for n in range(total):
        step = _visible_step(page)
        name = step.get_attribute("id").removeprefix("q-")
        no_sideways_scroll(page, name)
        if name == "vas-vas_mm":
            line = step.locator("input.vas-line")
            box = line.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= page.viewport_size["width"]
            line.click(position={"x": box["width"] * 0.3, "y": box["height"] / 2})
            page.wait_for_function("() => document.querySelector(\"input[name='vas-vas_mm']\").value !== ''")
            assert 25 <= int(page.locator("input[name='vas-vas_mm']").input_value()) <= 35  # the same mm at any width
            new_kind = True
        else:
            choices = step.locator("label.choice")
            # each kind of question (the first of each form with each number of choices) is
            # checked for buttons that can be reached and touched; every question for its width
            kind = (name.split("-")[0], choices.count())
            new_kind = kind not in kinds_seen
            kinds_seen.add(kind)
            choice = choices.last
            if new_kind:
                reachable(page, choice, f"last choice of {name}")
            choice.click()
        if name in ("vas-vas_mm", "odi-s4", "joa-gait", "sf36-q4", "sf36-q20", "sf36-q23"):
            shot(page, f"zoom_{name}_{suffix}")
        nxt = step.locator("[data-step-next]")
        if new_kind:
            if n:
                reachable(page, step.locator("[data-step-back]"), f"Back on {name}")
            reachable(page, nxt, f"Next on {name}")
        nxt.click()
    send = _visible_step(page).locator("button[type=submit]")
    no_sideways_scroll(page, "the last step")
    reachable(page, send, "Send my answers")
    shot(page, f"zoom_send_{suffix}")
    send.click()
    page.locator("[data-selfentry-clear]").wait_for()
    no_sideways_scroll(page, "thank-you page")
    shot(page, f"zoom_thanks_{suffix}")
    page.goto(url)
    no_sideways_scroll(page, "the page of a link that does not work")
    shot(page, f"zoom_gone_{suffix}")
    ctx.close()
