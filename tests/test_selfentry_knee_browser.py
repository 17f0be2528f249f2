"""Headless Chromium on a phone-sized screen (390 x 844), the knee protocol in force: the
participant opens the link of their week-4 visit, enters the card code, touches a number on the
NRS row (nothing is chosen before) and answers the 42 KOOS questions one per screen, in English
and in Chinese; axe-core finds no violation on the questions, the last step or the thank-you
page, and the stored scores are the instruments' and the eCRF's. Screenshots of the NRS and of a
KOOS question go to /tmp/shots/ for review (X-1.3). The KOOS questions share one template: axe
looks at the first question of each subscale."""

from __future__ import annotations

from pathlib import Path

import pytest

from annulus.instruments import score

from .knee_support import protocol_version  # noqa: F401 (fixture)
from .test_browser_journey import CHROMIUM, flushable_audit_table, shot  # noqa: F401
from .test_selfentry_accessibility_browser import _enter_code, _phone, _visible_step, assert_accessible
from .test_selfentry_browser import browser  # noqa: F401 (fixture)
from .test_selfentry_knee import KOOS_ANSWERS, KOOS_IDS, at_week4, koos_by_hand  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.req("X-1.3", "X-5.7"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install -y chromium)"),
]

NRS_ANSWER = 6


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_knee_participant_answers_the_nrs_and_the_koos_on_a_phone(flushable_audit_table, live_server, browser, users,
                                                                    at_week4, language):
    from annulus.selfentry import services
    from annulus.visits import services as vs
    from annulus.visits.models import FormRecord

    p, twin = at_week4(), at_week4()
    issued = services.issue_link(actor=users["coordinator"], participant_id=p.pk, visit_key="w4")
    assert issued.link.instruments == ["nrs", "koos"]
    suffix = "zh" if language.startswith("zh") else "en"
    ctx, page = _phone(browser, live_server, language)
    page.goto(f"{live_server.url}/p/{issued.token}/")
    assert page.locator("html").get_attribute("lang") == language
    assert_accessible(page, "card code page")
    _enter_code(page, issued.card_code)

    # the NRS: one row of eleven buttons, none chosen, the words of the two ends below
    step = _visible_step(page)
    assert step.get_attribute("id") == "q-nrs-nrs_pain"
    boxes = step.locator("label.scale-box")
    assert boxes.count() == 11 and [boxes.nth(n).inner_text().strip() for n in range(11)] == [str(n) for n in range(11)]
    assert not step.locator("input:checked").count()
    tops = {round(boxes.nth(n).bounding_box()["y"]) for n in range(11)}
    assert len(tops) == 1  # one row on a 390 px phone
    for n in range(11):  # each button large enough to touch
        box = boxes.nth(n).bounding_box()
        assert box["width"] >= 24 and box["height"] >= 44, box
    ends = step.locator(".scale-ends").inner_text()
    assert ("No pain" in ends and "Worst pain imaginable" in ends) if suffix == "en" else ("无痛" in ends)
    assert "ends-nrs-nrs_pain" in step.get_attribute("aria-describedby").split()
    assert_accessible(page, "the NRS before a number is chosen")
    shot(page, f"knee_nrs_{suffix}")
    boxes.nth(NRS_ANSWER).click()  # a touch on the button chooses its number
    assert step.locator(f"input[value='{NRS_ANSWER}']").is_checked()
    assert_accessible(page, "the NRS once chosen")
    shot(page, f"knee_nrs_chosen_{suffix}")
    step.locator("[data-step-next]").click()

    # the KOOS, one question per screen
    checked = set()
    for n, item_id in enumerate(KOOS_IDS):
        step = _visible_step(page)
        assert step.get_attribute("id") == f"q-koos-{item_id}"
        if n == 0:
            assert step.locator(".instrument-intro").is_visible()
        radios = step.locator("input[type=radio]")
        assert radios.count() == 5 and not step.locator("input:checked").count()
        if item_id.rstrip("0123456789") not in checked:  # every question is the same template:
            assert_accessible(page, f"KOOS {item_id}")  # axe on the first of each subscale
            checked.add(item_id.rstrip("0123456789"))
        if item_id in ("s1", "p2", "a1"):
            shot(page, f"knee_koos_{item_id}_{suffix}")
        step.locator(f"input[value='{KOOS_ANSWERS[item_id]}']").check()
        step.locator("[data-step-next]").click()

    final = _visible_step(page)
    assert_accessible(page, "the last step (send)")
    final.locator("button[type=submit]").click()
    page.locator("[data-selfentry-clear]").wait_for()
    assert_accessible(page, "thank-you page")
    ctx.close()

    records = {r.form_id: r for r in FormRecord.objects.filter(participant=p, visit__visit_id="w4")}
    assert records["nrs"].items == {"nrs_pain": NRS_ANSWER} and records["koos"].items == KOOS_ANSWERS
    assert records["nrs"].computed["score"] == score("nrs", [NRS_ANSWER]).score == NRS_ANSWER
    koos = score("koos", [KOOS_ANSWERS[i] for i in KOOS_IDS])
    for key, value in koos_by_hand(KOOS_ANSWERS).items():
        assert records["koos"].computed[key] == koos.summary[key] == pytest.approx(value)
    for form_id, items in (("nrs", {"nrs_pain": NRS_ANSWER}), ("koos", KOOS_ANSWERS)):
        rec = vs.save_form(actor=users["coordinator"], participant_id=twin.pk, visit_key="w4", form_id=form_id,
                           items=items, complete=True)
        assert records[form_id].computed == rec.computed and records[form_id].state == "complete"
