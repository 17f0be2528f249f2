"""Vital signs with plausibility limits (P-5.6, X-5.7)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annulus.instruments import InstrumentError, score
from annulus.instruments.vitals import DEFAULT_LIMITS, check_vitals

GOOD = {"temperature": 36.6, "pulse": 72, "respiration": 16, "systolic": 124, "diastolic": 78}


@pytest.mark.req("P-5.6")
def test_plausible_vitals_pass():
    result = check_vitals(GOOD)
    assert result.parts["systolic"] == {"value": 124.0, "unit": "mmHg"}
    assert result.missing == []


@pytest.mark.req("P-5.6")
def test_item_list_entry_point():
    result = score("vitals", [36.6, 72, 16, 124, None])
    assert result.missing == ["items[4]"]
    assert result.parts["diastolic"]["value"] is None


@pytest.mark.req("P-5.6", "X-5.7")
@pytest.mark.parametrize("sbp, dbp", [(120, 120), (80, 120)])
def test_diastolic_not_below_systolic_is_refused(sbp, dbp):
    with pytest.raises(InstrumentError) as err:
        check_vitals({**GOOD, "systolic": sbp, "diastolic": dbp})
    assert err.value.field == "diastolic"
    assert "diastolic blood pressure must be below systolic" in str(err.value)


@pytest.mark.req("P-5.6", "X-5.7")
def test_diastolic_rule_names_item_in_list_form():
    with pytest.raises(InstrumentError) as err:
        score("vitals", [36.6, 72, 16, 90, 95])
    assert err.value.field == "items[4]"


@pytest.mark.req("P-5.6", "X-5.7")
@pytest.mark.parametrize(
    "key, bad, message",
    [("temperature", 366, "body temperature must be 34–42 °C"),
     ("pulse", 7.2, "pulse must be 30–200 beats/min"),
     ("respiration", 0, "respiratory rate must be 6–40 breaths/min"),
     ("systolic", 300, "systolic blood pressure must be 60–250 mmHg"),
     ("pulse", "abc", "pulse must be a number")],
)
def test_implausible_values_are_refused(key, bad, message):
    with pytest.raises(InstrumentError) as err:
        check_vitals({**GOOD, key: bad})
    assert err.value.field == key
    assert message in str(err.value)


@pytest.mark.req("P-5.6")
def test_protocol_limits_override_defaults():
    limits = {"pulse": {"unit": "beats/min", "min": 40, "max": 150}}
    with pytest.raises(InstrumentError, match="pulse must be 40–150"):
        check_vitals({**GOOD, "pulse": 160}, limits=limits)
    with pytest.raises(InstrumentError) as err:
        check_vitals(GOOD, limits={"weight": {"min": 1, "max": 2}})
    assert err.value.field == "limits.weight"


@pytest.mark.req("P-5.6", "X-5.7")
def test_wrong_unit_is_refused():
    with pytest.raises(InstrumentError) as err:
        check_vitals({**GOOD, "temperature": 97.9}, units={"temperature": "°F"})
    assert err.value.field == "temperature.unit"


@pytest.mark.req("X-5.7")
def test_unknown_vital_sign_is_named():
    with pytest.raises(InstrumentError) as err:
        check_vitals({**GOOD, "spo2": 98})
    assert err.value.field == "spo2"


@pytest.mark.req("P-5.6")
@given(st.floats(60, 250), st.floats(30, 150))
def test_blood_pressure_rule_is_exactly_diastolic_below_systolic(sbp, dbp):
    values = {**GOOD, "systolic": sbp, "diastolic": dbp}
    if dbp < sbp:
        assert check_vitals(values).parts["diastolic"]["value"] == dbp
    else:
        with pytest.raises(InstrumentError):
            check_vitals(values)


@pytest.mark.req("P-5.6")
def test_default_limits_cover_the_protocol_vital_signs():
    assert set(DEFAULT_LIMITS) == {"temperature", "pulse", "respiration", "systolic", "diastolic"}


@pytest.mark.req("P-5.6")
def test_protocol_ids_for_blood_pressure_are_understood():
    limits = {"systolic_bp": {"min": 80, "max": 200}, "heart_rate": {"min": 40, "max": 150}}
    values = {k: v for k, v in GOOD.items() if k != "pulse"} | {"heart_rate": 80}
    assert check_vitals(values, limits=limits).parts["pulse"]["value"] == 80.0
    with pytest.raises(InstrumentError, match="systolic blood pressure must be 80–200"):
        check_vitals({**GOOD, "systolic": 75, "diastolic": 50}, limits=limits)
