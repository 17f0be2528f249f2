"""VAS pain 0–100 mm and change from baseline (P-5.1, X-5.7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annulus.instruments import InstrumentError, score
from annulus.instruments.vas import change_from_baseline

FIXTURE = json.loads((Path(__file__).parent / "fixtures/instruments/vas.json").read_text("utf-8"))


@pytest.mark.req("P-5.1", "X-5.7")
@pytest.mark.parametrize("example", FIXTURE["examples"], ids=lambda e: e["id"])
def test_vas_examples(example):
    result = score("vas", example["items"])
    assert result.score == example["expected"]["score"]
    assert result.unit == "mm"


@pytest.mark.req("P-5.1")
def test_missing_vas_has_no_score_and_a_reason():
    result = score("vas", [None])
    assert result.score is None
    assert result.reason and result.missing == ["items[0]"]


@pytest.mark.req("P-5.1")
@pytest.mark.parametrize("case", FIXTURE["change_from_baseline"], ids=lambda c: c["derivation"])
def test_change_from_baseline(case):
    assert change_from_baseline(case["baseline"], case["value"]) == pytest.approx(case["expected"])


@pytest.mark.req("P-5.1")
def test_change_from_baseline_missing_is_none():
    assert change_from_baseline(None, 30) is None
    assert change_from_baseline(30, None) is None


@pytest.mark.req("P-5.1", "X-5.7")
@pytest.mark.parametrize(
    "bad, message",
    [(-1, "VAS must be 0–100 mm, got -1"), (101, "VAS must be 0–100 mm, got 101"),
     ("abc", "VAS must be a number, got 'abc'"), (True, "must be a number"),
     (float("nan"), "finite")],
)
def test_bad_vas_is_refused_naming_the_field(bad, message):
    with pytest.raises(InstrumentError) as err:
        score("vas", [bad])
    assert err.value.field == "items[0]"
    assert message in str(err.value)
    assert str(err.value).startswith("items[0]: ")


@pytest.mark.req("X-5.7")
def test_bad_baseline_names_baseline():
    with pytest.raises(InstrumentError) as err:
        change_from_baseline(101, 20)
    assert err.value.field == "baseline"


@pytest.mark.req("X-5.7")
@pytest.mark.parametrize("items", [[], [10, 20], "50", None])
def test_wrong_number_of_items(items):
    with pytest.raises(InstrumentError) as err:
        score("vas", items)
    assert err.value.field == "items"
