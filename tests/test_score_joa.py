"""JOA low back pain score (29 points) and Hirabayashi recovery rate (P-5.3, X-5.7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annulus.instruments import InstrumentError, score
from annulus.instruments.joa import ITEMS, recovery_rate

FIXTURE = json.loads((Path(__file__).parent / "fixtures/instruments/joa.json").read_text("utf-8"))


@pytest.mark.req("P-5.3", "X-5.7")
@pytest.mark.parametrize("example", FIXTURE["examples"], ids=lambda e: e["id"])
def test_joa_examples(example):
    result = score("joa", example["items"])
    expected = example["expected"]
    assert result.score == expected["score"]
    for domain in ("subjective", "clinical_signs", "adl", "bladder"):
        assert result.parts[domain] == expected[domain]


@pytest.mark.req("P-5.3")
def test_item_order_matches_published_table():
    assert len(ITEMS) == len(FIXTURE["item_order"]) == 14
    domains = [d for _k, _l, d, _a in ITEMS]
    assert domains == ["subjective"] * 3 + ["clinical_signs"] * 3 + ["adl"] * 7 + ["bladder"]


@pytest.mark.req("P-5.3")
@pytest.mark.parametrize("case", FIXTURE["recovery_rate"], ids=lambda c: c["derivation"])
def test_recovery_rate(case):
    rate = recovery_rate(case["pre"], case["post"])
    if case["expected"] is None:
        assert rate is None
    else:
        assert rate == pytest.approx(case["expected"])


@pytest.mark.req("P-5.3", "X-5.7")
def test_recovery_rate_refuses_impossible_totals():
    with pytest.raises(InstrumentError) as err:
        recovery_rate(30, 20)
    assert err.value.field == "pre"
    with pytest.raises(InstrumentError) as err:
        recovery_rate(10, -7)
    assert err.value.field == "post"


@pytest.mark.req("P-5.3", "X-5.7")
def test_missing_item_leaves_total_empty_with_reason():
    items = FIXTURE["examples"][0]["items"][:]
    items[4] = None
    result = score("joa", items)
    assert result.score is None
    assert result.missing == ["items[4]"]
    assert "JOA needs all 14 items" in result.reason
    assert result.parts["subjective"] == 5 and result.parts["clinical_signs"] is None


@pytest.mark.req("P-5.3", "X-5.7")
@pytest.mark.parametrize(
    "index, bad, message",
    [(0, 4, "items[0]: JOA item 1 (low back pain) must be 0–3, got 4"),
     (3, 3, "items[3]: JOA item 4 (straight-leg raising test) must be 0–2, got 3"),
     (12, -1, "items[12]: JOA item 13 (walking) must be 0–2, got -1"),
     (13, -2, "items[13]: JOA item 14 (urinary bladder function) must be 0, -3 or -6, got -2"),
     (13, 3, "items[13]: JOA item 14 (urinary bladder function) must be 0, -3 or -6, got 3")],
)
def test_out_of_range_item_is_named(index, bad, message):
    items = [0] * 14
    items[index] = bad
    with pytest.raises(InstrumentError) as err:
        score("joa", items)
    assert err.value.field == f"items[{index}]"
    assert str(err.value) == message


@pytest.mark.req("X-5.7")
def test_wrong_number_of_items():
    with pytest.raises(InstrumentError, match="JOA needs 14 items, got 13"):
        score("joa", [0] * 13)


joa_items = st.tuples(
    *[st.sampled_from(allowed) for _k, _l, _d, allowed in ITEMS]
).map(list)


@pytest.mark.req("P-5.3")
@given(joa_items)
def test_total_within_minus6_and_29(items):
    assert -6 <= score("joa", items).score <= 29
