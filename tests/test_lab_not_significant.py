"""Laboratory 'clinically significant = no' (NCS) is accepted for any value; 'yes' needs an
out-of-range value (P-5.6)."""

from __future__ import annotations

import pytest

from annulus.errors import RuleViolation
from annulus.instruments import InstrumentError
from annulus.instruments.labs import assess_panel
from annulus.protocol import default_protocol_path, load_protocol
from annulus.visits import crf

RANGES = {"alt": {"unit": "U/L", "low": 9, "high": 50}, "ast": {"unit": "U/L", "low": 15, "high": 40}}


@pytest.mark.req("P-5.6")
def test_not_significant_is_accepted_for_a_normal_value():
    result = assess_panel("liver_function", {"alt": 20, "ast": 80}, RANGES, judgements={"alt": False, "ast": False})
    assert result.parts["alt"]["flag"] == "normal"
    assert result.parts["alt"]["clinically_significant"] is False
    assert result.summary["needs_judgement"] == [] and result.summary["clinically_significant"] is False


@pytest.mark.req("P-5.6", "X-5.7")
def test_significant_for_a_normal_value_stays_refused_naming_the_field():
    with pytest.raises(InstrumentError) as err:
        assess_panel("liver_function", {"alt": 20}, RANGES, judgements={"alt": True})
    assert err.value.field == "liver_function.alt.clinically_significant"
    assert "not clinically significant" in err.value.message


@pytest.mark.req("P-5.6")
def test_ecrf_lab_form_takes_ncs_on_every_value():
    protocol = load_protocol(default_protocol_path())
    form = next(f for f in protocol.schedule.forms if f.panel)
    spec = crf.spec_for(protocol, form.id)
    panel = spec.extra["panel"]
    raw = {}
    for a in panel.analytes:
        if a.kind == "qualitative":
            raw[a.id] = a.normal or "negative"
        else:
            raw[a.id] = str(a.low if a.low is not None else a.high)  # on the range's edge: normal
        raw[f"{a.id}__cs"] = "no"
    items = crf.clean(spec, raw)
    computed = crf.compute(protocol, form.id, items)
    assert computed["abnormal"] == [] and computed["clinically_significant"] is False
    assert crf.completion_problem(protocol, form.id, items, computed) is None
    first = panel.analytes[0].id
    with pytest.raises(RuleViolation) as err:
        crf.compute(protocol, form.id, {**items, f"{first}__cs": "yes"})
    assert err.value.field == f"{first}__cs"
