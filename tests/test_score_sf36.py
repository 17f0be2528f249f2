"""SF-36 by the RAND 36-Item Health Survey 1.0 rules; PCS/MCS (P-5.4, X-5.7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annulus.instruments import InstrumentError, score
from annulus.instruments.sf36 import (
    MCS_COEF,
    PCS_COEF,
    RECODE,
    SCALES,
    US_1990_MEAN,
    summary_scores,
)

FIXTURE = json.loads((Path(__file__).parent / "fixtures/instruments/sf36.json").read_text("utf-8"))
EXAMPLES = {e["id"]: e for e in FIXTURE["examples"]}
SCALE_KEYS = ["PF", "RP", "BP", "GH", "VT", "SF", "RE", "MH"]


def _items(example):
    if "items" in example:
        return example["items"]
    items = [None] * 36
    for number, code in example["items_by_number"].items():
        items[int(number) - 1] = code
    return items


@pytest.mark.req("P-5.4", "X-5.7")
@pytest.mark.parametrize("example", FIXTURE["examples"], ids=lambda e: e["id"])
def test_sf36_examples(example):
    result = score("sf36", _items(example)).to_dict()
    for key, expected in example["expected"].items():
        if expected is None:
            assert result[key] is None, key
        else:
            tol = example.get("tolerance", {}).get(key, 1e-9)
            assert result[key] == pytest.approx(expected, abs=tol), key


@pytest.mark.req("P-5.4")
def test_rand_energy_example_from_published_instructions():
    result = score("sf36", _items(EXAMPLES["rand_energy_fatigue_example"]))
    assert round(result.summary["VT"], 1) == 46.7


@pytest.mark.req("P-5.4")
def test_recoding_table_matches_rand_table_1():
    # RAND Table 1, row by row.
    rows = {
        (1, 2, 20, 22, 34, 36): [100, 75, 50, 25, 0],
        tuple(range(3, 13)): [0, 50, 100],
        tuple(range(13, 20)): [0, 100],
        (21, 23, 26, 27, 30): [100, 80, 60, 40, 20, 0],
        (24, 25, 28, 29, 31): [0, 20, 40, 60, 80, 100],
        (32, 33, 35): [0, 25, 50, 75, 100],
    }
    for items, values in rows.items():
        for n in items:
            assert [RECODE[n][c] for c in sorted(RECODE[n])] == values, n
    assert sorted(n for ns in rows for n in ns) == list(range(1, 37))


@pytest.mark.req("P-5.4")
def test_scales_match_rand_table_2():
    assert SCALES == {
        "PF": (3, 4, 5, 6, 7, 8, 9, 10, 11, 12),
        "RP": (13, 14, 15, 16),
        "BP": (21, 22),
        "GH": (1, 33, 34, 35, 36),
        "VT": (23, 27, 29, 31),
        "SF": (20, 32),
        "RE": (17, 18, 19),
        "MH": (24, 25, 26, 28, 30),
    }
    in_scales = sorted(n for ns in SCALES.values() for n in ns)
    assert in_scales == [n for n in range(1, 37) if n != 2]  # item 2 is health change only


@pytest.mark.req("P-5.4")
def test_summaries_at_population_means_are_50():
    pcs, mcs = summary_scores(dict(US_1990_MEAN))
    assert pcs == pytest.approx(50.0, abs=1e-12)
    assert mcs == pytest.approx(50.0, abs=1e-12)


@pytest.mark.req("P-5.4")
def test_one_sd_above_mean_on_a_scale_moves_summary_by_ten_times_its_coefficient():
    from annulus.instruments.sf36 import US_1990_SD

    for key in SCALE_KEYS:
        scales = dict(US_1990_MEAN)
        scales[key] += US_1990_SD[key]
        pcs, mcs = summary_scores(scales)
        assert pcs == pytest.approx(50 + 10 * PCS_COEF[key])
        assert mcs == pytest.approx(50 + 10 * MCS_COEF[key])


@pytest.mark.req("P-5.4", "X-5.7")
def test_fewer_than_half_items_leaves_scale_and_summaries_empty():
    result = score("sf36", _items(EXAMPLES["half_items_rule"]))
    assert result.summary["RE"] is None
    assert result.summary["PCS"] is None and result.summary["MCS"] is None
    assert "RE not scored: 1 of 3 items answered" in result.reason
    assert "PCS and MCS need all eight scales" in result.reason


@pytest.mark.req("P-5.4", "X-5.7")
def test_item_coded_7_is_refused_naming_the_item():
    items = list(EXAMPLES["mixed_complete"]["items"])
    items[6] = 7
    with pytest.raises(InstrumentError) as err:
        score("sf36", items)
    assert err.value.field == "items[6]"
    assert str(err.value) == "items[6]: SF-36 item 7 must be 1–3, got 7"


@pytest.mark.req("P-5.4", "X-5.7")
@pytest.mark.parametrize("index, bad", [(23, 7), (0, 0), (13, 3), (31, 6), (20, 2.5), (1, "2")])
def test_codes_not_on_the_form_are_refused(index, bad):
    items = list(EXAMPLES["mixed_complete"]["items"])
    items[index] = bad
    with pytest.raises(InstrumentError) as err:
        score("sf36", items)
    assert err.value.field == f"items[{index}]"
    assert f"SF-36 item {index + 1} must be" in str(err.value)


@pytest.mark.req("X-5.7")
@pytest.mark.parametrize("n", [0, 35, 37])
def test_wrong_number_of_items(n):
    with pytest.raises(InstrumentError, match=f"SF-36 needs 36 items, got {n}"):
        score("sf36", [1] * n)


def _answers():
    return st.tuples(
        *[st.one_of(st.none(), st.sampled_from(sorted(RECODE[n]))) for n in range(1, 37)]
    ).map(list)


@pytest.mark.req("P-5.4")
@given(_answers())
def test_scales_stay_within_0_and_100(items):
    result = score("sf36", items)
    for key in SCALE_KEYS:
        value = result.summary[key]
        answered = sum(items[n - 1] is not None for n in SCALES[key])
        if 2 * answered >= len(SCALES[key]):
            assert 0.0 <= value <= 100.0
        else:
            assert value is None
    if all(result.summary[k] is not None for k in SCALE_KEYS):
        assert result.summary["PCS"] is not None and result.summary["MCS"] is not None
