"""What a participant reads on their own: the SF-36 in the RAND 36-Item Health Survey 1.0 wording
with the instruction leading each run of items, the JOA's patient part as questions whose grades
are words (no points, no score ranges), and the same item ids and codes as the eCRF, so that the
scoring is the eCRF's. The Chinese SF-36 keeps the eCRF's Chinese labels (no licensed translation
is held by the project)."""

from __future__ import annotations

import re

import pytest

from annulus.instruments.joa import FORM as JOA
from annulus.instruments.sf36 import FORM as SF36

PAST_4_WEEKS = "past 4 weeks"


@pytest.mark.req("P-5.4")
def test_the_sf36_asks_every_item_in_the_rand_36_wording():
    assert [i.id for i in SF36.items] == [f"q{n}" for n in range(1, 37)]
    asks = {k: SF36.asks[k] for k in (i.id for i in SF36.items)}
    assert asks["q1"].en == "In general, would you say your health is:" and not asks["q1"].lead_en
    assert asks["q2"].en == "Compared to one year ago, how would you rate your health in general now?"
    assert [w for _v, w, _zh in SF36.item("q2").choices] == [
        "1 Much better now than one year ago", "2 Somewhat better now than one year ago", "3 About the same",
        "4 Somewhat worse now than one year ago", "5 Much worse now than one year ago"]
    for n in range(3, 13):  # physical functioning: "Does your health now limit you ...?"
        assert asks[f"q{n}"].lead_en.endswith("Does your health now limit you in these activities? If so, how much?")
    assert asks["q3"].en.startswith("Vigorous activities, such as running")
    assert asks["q12"].en == "Bathing or dressing yourself"
    for n in range(13, 17):
        assert asks[f"q{n}"].lead_en.endswith("as a result of your physical health?")
    for n in range(17, 20):
        assert "as a result of any emotional problems" in asks[f"q{n}"].lead_en
    for n in range(13, 33):  # the recall period is there, in the question or its lead
        assert PAST_4_WEEKS in asks[f"q{n}"].en + asks[f"q{n}"].lead_en, n
    assert asks["q21"].en == "How much bodily pain have you had during the past 4 weeks?"
    assert asks["q23"].en == "Did you feel full of pep?" and asks["q23"].lead_en.endswith(
        "How much of the time during the past 4 weeks...")
    for n in range(33, 37):
        assert asks[f"q{n}"].lead_en == "How TRUE or FALSE is each of the following statements for you?"
    assert asks["q36"].en == "My health is excellent"
    # no Chinese wording is made up: the Chinese pages fall back to the eCRF's Chinese labels
    assert all(a.zh == "" and a.lead_zh == "" for a in asks.values())


@pytest.mark.req("P-5.3")
def test_the_joa_patient_part_asks_in_words_with_the_grades_as_codes():
    patient = [i for i in JOA.items if i.group in ("subjective", "adl", "bladder")]
    assert [i.id for i in patient] == ["low_back_pain", "leg_pain", "gait", "turn_over", "standing", "washing",
                                       "leaning_forward", "sitting", "lifting", "walking", "bladder"]
    assert set(JOA.asks) == {i.id for i in patient}  # the examination is not put to the participant
    for item in patient:
        ask = JOA.asks[item.id]
        assert ask.en and ask.zh
        assert set(ask.choices) == {v for v, _en, _zh in item.choices}, item.id  # every grade, nothing else
        for en, zh in ask.choices.values():
            assert en and zh and not re.match(r"\s*[−+-]?\d", en) and not re.match(r"\s*[−+-]?\d", zh)
    assert JOA.asks["gait"].choices["2"][0].startswith("I can walk farther than 500 m")
    assert JOA.asks["gait"].choices["0"][0].startswith("I cannot walk farther than 100 m")
    assert JOA.asks["sitting"].en == "Sitting for a long time (about 1 hour)"
    assert [JOA.asks["turn_over"].choices[v][0] for v in ("0", "1", "2")] == [
        "Severely restricted", "Slightly restricted", "Not restricted"]
    assert [JOA.asks["turn_over"].choices[v][1] for v in ("0", "1", "2")] == ["明显受限", "轻度受限", "不受限"]
    # the bladder: the mild grade names its signs; a urinary tract disease of its own is left out
    bladder = JOA.asks["bladder"]
    assert "often" in bladder.choices["-3"][0] and "尿频" in bladder.choices["-3"][1]
    assert "urinary tract" in bladder.lead_en and "泌尿系统" in bladder.lead_zh


@pytest.mark.req("P-5.3", "P-5.4")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_questions_a_participant_sees(protocol_version, language):
    from annulus.selfentry.selectors import questions
    from annulus.trial.selectors import active_protocol

    asked = {q["name"]: q for q in questions(active_protocol(), ["joa", "sf36"], language)}
    assert len(asked) == 11 + 36
    zh = language.startswith("zh")
    for q in asked.values():
        assert not re.search(r"\(\d[–-]\d\)", q["label"]), q["label"]  # no score range
        assert not re.match(r"\d+\.", q["label"])  # no item number
        assert [v for v, _w in q["choices"]] == [v for v, _en, _zh in q["item"].choices]  # the eCRF's codes
        assert not any(re.match(r"\s*[−+-]?\d", w) for _v, w in q["choices"]), q["choices"]
    if zh:
        assert asked["joa-low_back_pain"]["label"] == "哪一项最符合您的腰痛情况？"
        assert asked["sf36-q13"]["label"] == "身体原因：减少工作时间" and asked["sf36-q13"]["lead"] == ""
        assert dict(asked["sf36-q1"]["choices"])["1"] == "极好"
    else:
        assert asked["joa-washing"]["label"] == "Washing your face"
        assert asked["joa-washing"]["lead"] == "How much are you restricted in this everyday activity?"
        assert asked["sf36-q13"]["label"] == "Cut down the amount of time you spent on work or other activities"
        assert asked["sf36-q13"]["lead"].startswith("During the past 4 weeks")
        assert dict(asked["sf36-q2"]["choices"])["1"] == "Much better now than one year ago"
