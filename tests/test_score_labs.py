"""Laboratory panels against protocol reference ranges (P-5.6, X-5.7)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from annulus.instruments import InstrumentError
from annulus.instruments.labs import PANELS, assess_panel

FIXTURE = json.loads((Path(__file__).parent / "fixtures/instruments/labs.json").read_text("utf-8"))
RANGES = FIXTURE["ranges"]


@pytest.mark.req("P-5.6")
@pytest.mark.parametrize("example", FIXTURE["examples"], ids=lambda e: e["panel"])
def test_flags(example):
    result = assess_panel(example["panel"], example["values"], RANGES[example["panel"]])
    flags = {k: v["flag"] for k, v in result.parts.items()}
    assert flags == example["expected_flags"]


@pytest.mark.req("P-5.6")
def test_panels_named_in_the_protocol():
    assert set(PANELS) == {
        "blood_routine", "liver_function", "kidney_function", "immunology", "urinalysis"}


@pytest.mark.req("P-5.6", "X-5.7")
def test_wrong_unit_is_refused_naming_the_field():
    values = {"hemoglobin": {"value": 12.4, "unit": "g/dL"}}
    with pytest.raises(InstrumentError) as err:
        assess_panel("blood_routine", values, RANGES["blood_routine"])
    assert err.value.field == "blood_routine.hemoglobin.unit"
    assert "hemoglobin must be reported in g/L" in str(err.value)
    assert "'g/dL'" in str(err.value)


@pytest.mark.req("P-5.6")
def test_unit_spelling_variants_are_the_same_unit():
    values = {"creatinine": (80, "umol/L".replace("u", "\u00b5")), "urea": (5.0, "MMOL/L")}
    result = assess_panel("kidney_function", values, RANGES["kidney_function"])
    assert {k: v["flag"] for k, v in result.parts.items()} == {
        "creatinine": "normal", "urea": "normal"}


@pytest.mark.req("P-5.6")
def test_clinical_significance_is_a_judgement_that_prompts_an_adverse_event():
    values = {"alt": 160, "ast": 98}
    pending = assess_panel("liver_function", values, RANGES["liver_function"])
    assert pending.summary == {
        "abnormal": ["alt", "ast"], "needs_judgement": ["alt", "ast"],
        "clinically_significant": False}
    judged = assess_panel(
        "liver_function", values, RANGES["liver_function"], judgements={"alt": True, "ast": False})
    assert judged.summary["clinically_significant"] is True
    assert judged.summary["needs_judgement"] == []
    assert judged.parts["alt"]["clinically_significant"] is True
    assert judged.to_dict()["clinically_significant"] is True


@pytest.mark.req("P-5.6", "X-5.7")
def test_normal_value_cannot_be_judged_significant():
    with pytest.raises(InstrumentError) as err:
        assess_panel("liver_function", {"alt": 20}, RANGES["liver_function"],
                     judgements={"alt": True})
    assert err.value.field == "liver_function.alt.clinically_significant"


@pytest.mark.req("P-5.6", "X-5.7")
def test_unknown_analyte_and_bad_value_are_named():
    with pytest.raises(InstrumentError) as err:
        assess_panel("liver_function", {"ggt": 20}, RANGES["liver_function"])
    assert err.value.field == "liver_function.ggt"
    with pytest.raises(InstrumentError) as err:
        assess_panel("liver_function", {"alt": "high"}, RANGES["liver_function"])
    assert err.value.field == "liver_function.alt"


@pytest.mark.req("P-5.6")
def test_missing_analytes_are_listed():
    result = assess_panel("liver_function", {"alt": 20}, RANGES["liver_function"])
    assert result.missing == ["liver_function.ast"]


@pytest.mark.req("P-5.6")
def test_protocol_panel_objects_are_accepted():
    panel = SimpleNamespace(
        id="immunology",
        analytes=[
            SimpleNamespace(id="crp", unit="mg/L", low=0, high=10, kind="numeric", normal=None),
            SimpleNamespace(id="hbsag", unit="", low=None, high=None, kind="qualitative",
                            normal="negative"),
        ],
    )
    result = assess_panel("immunology", {"crp": 14.2, "hbsag": "Negative"}, panel)
    assert result.parts["crp"]["flag"] == "high"
    assert result.parts["hbsag"]["flag"] == "normal"
