"""Headless Chromium on a phone-sized screen: the participant answers the patient part of the JOA
score and the SF-36 (RAND 36) on their own, one question per screen, in English and in Chinese, with
a reload halfway; the stored answers and scores equal those of the eCRF for the same answers, and
once the investigator adds the examination the JOA total is the instrument's own total."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.utils import timezone

from .test_browser_journey import CHROMIUM, flushable_audit_table, shot  # noqa: F401
from .test_selfentry_browser import browser  # noqa: F401 (fixture)
from .test_visits_support import GOOD, transplant_dates, trial_participant  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.req("P-4.5", "P-5.3", "P-5.4", "X-5.7"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install -y chromium)"),
]

# the patient part of the JOA (subjective symptoms, daily activities, bladder), every grade used
JOA_PATIENT = {"low_back_pain": 1, "leg_pain": 3, "gait": 0, "turn_over": 0, "standing": 1, "washing": 2,
               "leaning_forward": 1, "sitting": 0, "lifting": 1, "walking": 2, "bladder": -3}
JOA_SIGNS = {"slr": 1, "sensory": 2, "motor": 0}  # the investigator's examination, added afterwards
# one answer per RAND 36 item, spread over the response codes of each item
SF36_CODES = {1: 5, 2: 3, 13: 1, 14: 2, 15: 1, 16: 2, 17: 2, 18: 1, 19: 2, 20: 4, 21: 6, 22: 2, 32: 3}
SF36 = {f"q{n}": SF36_CODES.get(n, (n % 3) + 1 if 3 <= n <= 12 else (n % 5) + 1) for n in range(1, 37)}

WORDS = {  # what the participant reads, by language
    "en": {"joa-low_back_pain": "Which of these best describes your low back pain?",
           "joa-turn_over": "Turning over while lying down",
           "sf36-q3": "Vigorous activities, such as running, lifting heavy objects, participating in strenuous sports",
           "sf36-q13": "as a result of your physical health?",
           "sf36-q23": "How much of the time during the past 4 weeks",
           "sf36-q36": "How TRUE or FALSE is each of the following statements for you?"},
    "zh-hans": {"joa-low_back_pain": "哪一项最符合您的腰痛情况？", "joa-turn_over": "躺着时翻身",
                "sf36-q3": "剧烈活动", "sf36-q13": "身体原因：减少工作时间", "sf36-q23": "充满活力",
                "sf36-q36": "健康状况极好"},
}


def _answer(phone, name: str, value) -> None:
    """Touch the answer's box (the whole label is the target), check it is chosen, go on."""
    step = phone.locator("fieldset.step:visible")
    assert step.get_attribute("id") == f"q-{name}"
    step.locator("label.choice", has=phone.locator(f"input[value='{value}']")).click()
    assert step.locator(f"input[name='{name}'][value='{value}']").is_checked()
    step.locator("[data-step-next]").click()


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_participant_answers_the_joa_and_the_sf36_on_a_phone(flushable_audit_table, live_server, browser, users,
                                                                trial_participant, language):
    from annulus.instruments.joa import score_joa
    from annulus.instruments.sf36 import score_sf36
    from annulus.selfentry import services
    from annulus.selfentry.models import SelfEntryLink
    from annulus.visits import services as vs
    from annulus.visits.models import FormRecord

    coordinator = users["coordinator"]
    p, twin = (trial_participant(lipo_days_ago=51, transplant_days_ago=30) for _ in range(2))
    for someone in (p, twin):
        vs.open_visit(actor=coordinator, participant_id=someone.pk, visit_id="m1", visit_date=timezone.localdate())
    for form_id in ("vas", "odi"):  # answered at the clinic: the link asks for the JOA and the SF-36
        vs.save_form(actor=coordinator, participant_id=p.pk, visit_key="m1", form_id=form_id, items=GOOD[form_id],
                     complete=True)
    issued = services.issue_link(actor=coordinator, participant_id=p.pk, visit_key="m1")
    assert issued.link.instruments == ["joa", "sf36"]
    link = f"{live_server.url}/p/{issued.token}/"
    suffix = "zh" if language.startswith("zh") else "en"

    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                              user_agent="Mozilla/5.0 (Android; test) Mobile")
    ctx.add_cookies([{"name": "django_language", "value": language, "url": live_server.url}])
    phone = ctx.new_page()
    phone.set_default_timeout(15_000)
    phone.goto(link)
    phone.fill("input[name=code]", issued.card_code)
    phone.click("form.stack button[type=submit]")
    phone.locator("fieldset.step:visible").wait_for()
    assert phone.locator("fieldset.step").count() == len(JOA_PATIENT) + len(SF36)
    seen = {}
    answers = [(f"joa-{k}", v) for k, v in JOA_PATIENT.items()] + [(f"sf36-{k}", v) for k, v in SF36.items()]
    for n, (name, value) in enumerate(answers):
        legend = phone.locator("fieldset.step:visible legend").inner_text()
        seen[name] = legend
        assert not re.search(r"\(\d[–-]\d\)", legend)  # no score range shown to the participant
        if name.startswith("joa-"):
            choices = phone.locator("fieldset.step:visible label.choice").all_inner_texts()
            assert not any(re.match(r"\s*[−-]?\d", c) for c in choices), choices  # words, not points
        if name in ("joa-low_back_pain", "sf36-q1", "sf36-q23"):
            shot(phone, f"selfentry_{name}_{suffix}")
        _answer(phone, name, value)
        if n == len(JOA_PATIENT) + 17:  # the connection drops halfway through the SF-36
            phone.goto(link)
            assert phone.locator("input[name='sf36-q18'][value='1']").is_checked()
            assert phone.locator("input[name='joa-bladder'][value='-3']").is_checked()
            phone.locator("fieldset.step:visible [data-step-next]").click()
            for _ in range(n):  # back where the participant was, the answers kept
                phone.locator("fieldset.step:visible [data-step-next]").click()
    for name, words in WORDS[language].items():
        assert words in seen[name], (name, seen[name])
    final = phone.locator("[data-step-final]")
    assert final.is_visible()
    total = len(answers)
    assert re.search(rf"\b{total}\b.*\b{total}\b", final.locator("[data-step-summary]").inner_text())
    final.locator("button[type=submit]").click()
    phone.locator("[data-selfentry-clear]").wait_for()
    ctx.close()
    assert SelfEntryLink.objects.get(pk=issued.link.pk).used_at is not None

    records = {r.form_id: r for r in FormRecord.objects.filter(participant=p)}
    assert records["sf36"].items == SF36 and records["sf36"].state == "complete"
    assert records["joa"].items == JOA_PATIENT and records["joa"].state == "draft"  # the examination is to come
    # the eCRF path: the same answers typed by the coordinator for another participant
    ecrf_sf36 = vs.save_form(actor=coordinator, participant_id=twin.pk, visit_key="m1", form_id="sf36", items=SF36,
                             complete=True)
    ecrf_joa = vs.save_form(actor=coordinator, participant_id=twin.pk, visit_key="m1", form_id="joa",
                            items=JOA_PATIENT, complete=False)
    assert records["sf36"].computed == ecrf_sf36.computed
    assert records["joa"].computed == ecrf_joa.computed
    # and both are the instrument's own scores
    rand = score_sf36([SF36[f"q{n}"] for n in range(1, 37)])
    assert {k: records["sf36"].computed[k] for k in rand.summary} == pytest.approx(rand.summary)
    assert None not in rand.summary.values()  # the eight scales, PCS and MCS
    partial = score_joa([JOA_PATIENT.get(k) for k in ("low_back_pain", "leg_pain", "gait", "slr", "sensory", "motor",
                                                      "turn_over", "standing", "washing", "leaning_forward",
                                                      "sitting", "lifting", "walking", "bladder")])
    assert records["joa"].computed["parts"]["subjective"] == partial.parts["subjective"] == 4
    assert records["joa"].computed["parts"]["adl"] == partial.parts["adl"] == 7
    # the investigator adds the examination: the total is the 29-point score of all fourteen items
    full = {**JOA_PATIENT, **JOA_SIGNS}
    done = vs.save_form(actor=coordinator, participant_id=p.pk, visit_key="m1", form_id="joa", items=full,
                        complete=True)
    twin_done = vs.save_form(actor=coordinator, participant_id=twin.pk, visit_key="m1", form_id="joa", items=full,
                             complete=True)
    assert done.computed == twin_done.computed
    assert done.computed["score"] == score_joa([full[k] for k in ("low_back_pain", "leg_pain", "gait", "slr",
                                                                  "sensory", "motor", "turn_over", "standing",
                                                                  "washing", "leaning_forward", "sitting", "lifting",
                                                                  "walking", "bladder")]).score == 4 + 3 + 7 - 3
