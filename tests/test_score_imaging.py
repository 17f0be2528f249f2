"""Modic, Pfirrmann, disc height loss and L4-5 range of motion (P-5.5, X-5.7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annulus.instruments import InstrumentError, score
from annulus.instruments.imaging import (
    disc_height_loss,
    modic_type,
    pfirrmann_grade,
    range_of_motion,
)

FIXTURE = json.loads(
    (Path(__file__).parent / "fixtures/instruments/imaging.json").read_text("utf-8")
)


@pytest.mark.req("P-5.5")
@pytest.mark.parametrize("case", FIXTURE["disc_height"], ids=lambda c: c["id"])
def test_disc_height_loss(case):
    result = score("disc_height", case["items"])
    if case["expected"]["score"] is None:
        assert result.score is None and result.reason
        return
    assert result.score == pytest.approx(case["expected"]["score"])
    assert result.parts["reference_mm"] == pytest.approx(case["expected"]["reference_mm"])


@pytest.mark.req("P-5.5")
def test_disc_height_loss_function():
    assert disc_height_loss(8.4, [11.0, 12.0]) == pytest.approx(26.956521739130434)
    assert disc_height_loss(9.0, [None, None]) is None


@pytest.mark.req("P-5.5")
@pytest.mark.parametrize("case", FIXTURE["rom"], ids=lambda c: c["id"])
def test_range_of_motion(case):
    assert score("rom", case["items"]).score == pytest.approx(case["expected"]["score"])
    assert range_of_motion(*case["items"]) == pytest.approx(case["expected"]["score"])


@pytest.mark.req("P-5.5")
@pytest.mark.parametrize("case", FIXTURE["modic"], ids=str)
def test_modic_per_endplate(case):
    assert score("modic", case["items"]).parts == case["expected"]


@pytest.mark.req("P-5.5")
@pytest.mark.parametrize("case", FIXTURE["pfirrmann"], ids=str)
def test_pfirrmann_grade(case):
    result = score("pfirrmann", case["items"])
    assert result.score == case["expected"]["score"]
    assert result.parts["grade"] == case["expected"]["grade"]


@pytest.mark.req("P-5.5")
def test_categories_normalise():
    assert [modic_type(v) for v in ("none", 0, "0", "I", "ii", 3.0)] == [
        "none", "none", "none", "I", "II", "III"]
    assert [pfirrmann_grade(v) for v in (1, "V", " iv ")] == ["I", "V", "IV"]


@pytest.mark.req("P-5.5", "X-5.7")
@pytest.mark.parametrize(
    "name, items, field, message",
    [
        ("modic", ["IV", "none"], "items[0]",
         "Modic type must be one of none, I, II, III, got 'IV'"),
        ("modic", ["none", True], "items[1]", "Modic type must be one of"),
        ("pfirrmann", [6], "items[0]", "Pfirrmann grade must be one of I, II, III, IV, V, got 6"),
        ("pfirrmann", [0], "items[0]", "Pfirrmann grade must be one of"),
        ("disc_height", [0, 11, 12], "items[0]", "disc height must be 0.5–25 mm, got 0"),
        ("disc_height", [9, "abc", 12], "items[1]", "disc height (mm) must be a number"),
        ("rom", [60, 10], "items[0]", "segmental angle in flexion must be -45–45 degrees"),
    ],
)
def test_bad_imaging_values_name_the_field(name, items, field, message):
    with pytest.raises(InstrumentError) as err:
        score(name, items)
    assert err.value.field == field
    assert message in str(err.value)


@pytest.mark.req("X-5.7")
def test_wrong_number_of_items():
    with pytest.raises(InstrumentError, match="Modic needs 2 items, got 1"):
        score("modic", ["I"])
