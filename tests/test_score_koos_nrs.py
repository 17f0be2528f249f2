"""KOOS (five subscales, 0-100) and the 11-point NRS for pain, scored from the raw answers (X-5.7).

KOOS source: the developers' scoring instructions "KOOS Scoring 2012" (www.koos.nu) - box codes
None 0 ... Extreme 4; each subscale = 100 - mean(item codes) x 100 / 4; a subscale is scored when at
least 50 % of its items are answered (Pain 5, Symptoms 4, ADL 9, Sport/Rec 3, QOL 2), before 2012
when at most two were missing (Pain 7, Symptoms 5, ADL 15, Sport/Rec 3, QOL 2); Roos EM, Roos HP,
Lohmander LS, Ekdahl C, Beynnon BD, J Orthop Sports Phys Ther 1998;28(2):88-96; Roos EM, Lohmander
LS, Health Qual Life Outcomes 2003;1:64. The instructions give the formula and the items-needed
table, not answer-by-answer examples: the fixture tests/fixtures/instruments/koos.json applies them
by hand, each example with its arithmetic written out.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annulus.cli import main
from annulus.instruments import InstrumentError, score
from annulus.instruments.forms import STATIC_SPECS
from annulus.instruments.koos import FORM as KOOS_FORM
from annulus.instruments.koos import ITEM_IDS, SUBSCALES, items_needed
from annulus.instruments.nrs import FORM as NRS_FORM
from annulus.instruments.nrs import change_from_baseline

FIXTURE = json.loads((Path(__file__).parent / "fixtures/instruments/koos.json").read_text("utf-8"))


@pytest.mark.req("X-5.7")
@pytest.mark.parametrize("example", FIXTURE["examples"], ids=lambda e: e["id"])
def test_koos_examples(example):
    options = {"missing_rule": example["missing_rule"]} if "missing_rule" in example else {}
    result = score("koos", example["items"], **options).to_dict()
    assert result["score"] is None  # KOOS has no total
    for key, expected in example["expected"].items():
        if expected is None:
            assert result[key] is None, key
        else:
            assert result[key] == pytest.approx(expected, abs=1e-9), key
    if "reason_contains" in example:
        assert example["reason_contains"] in result["reason"]


@pytest.mark.req("X-5.7")
def test_koos_items_needed_is_the_published_table():
    """KOOS Scoring 2012, table of the items needed for a subscale score (2012 and 1998 rules)."""
    n = {key: len(ids) for key, (_, ids) in SUBSCALES.items()}
    assert n == {"symptoms": 7, "pain": 9, "adl": 17, "sport_rec": 5, "qol": 4}
    assert {k: items_needed(v, "2012") for k, v in n.items()} == {"pain": 5, "symptoms": 4, "adl": 9,
                                                                 "sport_rec": 3, "qol": 2}
    assert {k: items_needed(v, "1998") for k, v in n.items()} == {"pain": 7, "symptoms": 5, "adl": 15,
                                                                 "sport_rec": 3, "qol": 2}


@pytest.mark.req("X-5.7")
def test_koos_refuses_a_code_the_form_cannot_produce_naming_the_item():
    items = [0] * 42
    items[7] = 5  # P1
    with pytest.raises(InstrumentError) as info:
        score("koos", items)
    assert info.value.field == "items[7]"
    assert "KOOS item P1 must be 0–4, got 5" in info.value.message
    items[7] = 1.5
    with pytest.raises(InstrumentError):
        score("koos", items)
    with pytest.raises(InstrumentError) as info:
        score("koos", [0] * 41)
    assert info.value.field == "items"
    with pytest.raises(ValueError):
        score("koos", [0] * 42, missing_rule="2000")


@pytest.mark.req("X-5.7")
def test_koos_form_has_the_42_items_in_both_languages():
    assert STATIC_SPECS["koos"] is KOOS_FORM
    assert tuple(i.id for i in KOOS_FORM.items) == ITEM_IDS
    for item in KOOS_FORM.items:
        assert item.kind == "code" and [c[0] for c in item.choices] == ["0", "1", "2", "3", "4"]
        assert item.en and item.zh and item.en != item.zh
        assert all(en != zh for _, en, zh in item.choices)
    # "Can you straighten your knee fully?": the first box (code 0) is "always"
    s4 = KOOS_FORM.item("s4")
    assert s4.choices[0][1] == "0 – Always" and s4.choices[4][1] == "4 – Never"
    assert {i.group for i in KOOS_FORM.items} == set(SUBSCALES)


@pytest.mark.req("X-5.7")
def test_nrs_scores_whole_numbers_0_to_10():
    assert score("nrs", [7]).score == 7.0
    assert score("nrs", [0]).score == 0.0 and score("nrs", [10.0]).score == 10.0
    missing = score("nrs", [None])
    assert missing.score is None and missing.reason == "NRS not answered"
    for bad in (11, -1, 6.5, "7", True):
        with pytest.raises(InstrumentError) as info:
            score("nrs", [bad])
        assert info.value.field == "items[0]"
    assert change_from_baseline(7, 4) == -3 and change_from_baseline(None, 4) is None
    assert STATIC_SPECS["nrs"] is NRS_FORM
    item = NRS_FORM.item("nrs_pain")
    assert (item.min, item.max, item.step) == (0, 10, "1") and item.zh


@pytest.mark.req("X-5.7")
def test_score_cli_prints_the_koos_subscales(monkeypatch, capsys):
    import io
    import sys

    items = [1] * 42
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(json.dumps({"items": items}).encode()),
                                                       encoding="utf-8"))
    assert main(["score", "koos"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {k: doc[k] for k in SUBSCALES} == {k: 75.0 for k in SUBSCALES}
