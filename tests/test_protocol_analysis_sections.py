"""The analysis plan's sections beyond ``per_visit`` (populations, primary and secondary end points,
dose response, missing data, safety): the shipped protocol states them, each cross-check refuses
a bad plan with the path of the field, unknown keys are refused, and the parameter table of the
schema is the analysis datasets' (X-1.3, X-8.5; P-8.2 level and CIs, P-8.3 the mixed model, P-8.4
safety tables)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import yaml

from annulus.cli import main
from annulus.protocol import ProtocolError, default_protocol_path, load_protocol, parse_protocol
from annulus.protocol import schema

pytestmark = pytest.mark.req("X-8.5")

VISITS = ["w1", "m1", "m3", "m6", "m12", "m18", "m24"]
IMAGING_VISITS = ["m6", "m12", "m24"]


@pytest.fixture(scope="module")
def shipped() -> dict:
    return yaml.safe_load(default_protocol_path().read_text(encoding="utf-8"))


def _parse(data: dict):
    return parse_protocol(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


def _errors(shipped: dict, change: Callable[[dict], None]) -> list[str]:
    data = copy.deepcopy(shipped)
    change(data)
    with pytest.raises(ProtocolError) as info:
        _parse(data)
    return info.value.errors


# ---- the shipped plan -----------------------------------------------------------------------------


@pytest.mark.req("X-1.3", "P-8.2", "P-8.3", "P-8.4")
def test_the_shipped_protocol_states_the_whole_plan():
    plan = load_protocol(default_protocol_path()).analysis
    assert plan.alpha == 0.05
    assert [(p.id, p.role, p.rule) for p in plan.populations] == [
        ("itt", "efficacy", ["randomised"]),
        ("pp", "efficacy", ["randomised", "treated", "eligible", "primary_visit_in_window",
                            "not_emergency_unblinded"]),
        ("safety", "safety", ["treated"])]
    assert (plan.population("pp").name.en, plan.population("pp").name.zh) == ("Per protocol", "符合方案")
    assert plan.safety_population.id == "safety"
    p = plan.primary
    assert (p.parameter, p.population, p.visits, p.primary_visit, p.lower_is_better, p.responder) == (
        "VAS", "itt", VISITS, "m12", True, None)
    assert (p.model.method, p.model.covariates, p.model.covariance, p.model.estimation, p.model.df) == (
        "mmrm", ["baseline"], "us", "reml", "kenward-roger")
    # every end point is one class, so the report walks them alike
    assert plan.endpoints == [plan.primary, *plan.secondary]
    assert all(type(ep) is schema.Endpoint for ep in plan.endpoints)
    assert [(e.parameter, e.visits, e.lower_is_better) for e in plan.secondary] == [
        ("ODI", VISITS, True), ("JOA", VISITS, False), ("SF36PCS", VISITS, False), ("SF36MCS", VISITS, False),
        ("PFIRRM", IMAGING_VISITS, True), ("MODIC", IMAGING_VISITS, True), ("DISCHT", IMAGING_VISITS, True),
        ("ROM", IMAGING_VISITS, False)]
    assert {e.parameter: e.responder.change_at_most for e in plan.secondary if e.responder} == {"ODI": -15}
    assert all(e.population == "itt" and e.primary_visit == "m12" and e.model == p.model for e in plan.secondary)
    dr = plan.dose_response
    assert (dr.control, dr.dunnett, dr.trend) == ("control", True, True)
    assert (dr.mcpmod.visit, dr.mcpmod.alpha, dr.mcpmod.delta) == ("m12", 0.025, 10.6)
    assert dr.mcpmod.models == {"linear": None, "emax": 4, "exponential": 10, "quadratic": -0.03}
    assert (plan.missing_data.approach, plan.missing_data.sensitivity) == ("mmrm_mar",
                                                                           ["per_protocol", "observed_ancova"])
    s = plan.safety
    assert (s.population, s.by, s.deaths, s.withdrawals_for_ae, s.lab_shifts, s.interval) == (
        "safety", ["soc_term", "grade", "relatedness", "serious"], True, True, True, "clopper-pearson")
    # the imaging end points are analysed at the visits whose schedule has the imaging form
    proto = load_protocol(default_protocol_path())
    assert [v.id for v in proto.schedule.visits if v.follow_up and "imaging" in v.forms] == IMAGING_VISITS


@pytest.mark.req("X-1.3")
def test_the_command_validates_the_shipped_protocol(capsys):
    assert main(["protocol", "validate", str(default_protocol_path())]) == 0
    assert "valid protocol ChiCTR2200058291" in capsys.readouterr().out


@pytest.mark.req("X-1.3")
def test_the_command_names_the_field_of_a_bad_plan(tmp_path, capsys, shipped):
    data = copy.deepcopy(shipped)
    data["analysis"]["primary"]["visits"].append("m36")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    assert main(["protocol", "validate", str(path)]) == 2
    assert capsys.readouterr().err.strip() == ("analysis.primary.visits[7]: 'm36' is not a follow-up visit of "
                                               "the schedule")


def test_protocol_show_summarises_the_plan(capsys):
    assert main(["protocol", "show"]) == 0
    out = capsys.readouterr().out
    plan = out[out.index("Analysis plan (two-sided alpha 0.05):"):out.index("Assumptions")]
    assert "population pp      efficacy Per protocol: randomised, treated, eligible, primary_visit_in_window" in plan
    assert ("primary   VAS      itt at w1, m1, m3, m6, m12, m18, m24 (main m12): MMRM us reml kenward-roger, "
            "covariates baseline\n") in plan
    assert "secondary ODI" in plan and "responder change <= -15" in plan
    assert "secondary PFIRRM   itt at m6, m12, m24 (main m12)" in plan
    assert "dose response: control control; Dunnett; trend; MCP-Mod at m12 (one-sided 0.025;" in plan
    assert "missing data: mmrm_mar; sensitivity per_protocol, observed_ancova" in plan
    assert main(["protocol", "show", "--language", "zh"]) == 0
    assert "population itt     efficacy 意向性治疗: randomised" in capsys.readouterr().out


def test_a_plan_with_only_the_per_visit_comparison_still_loads(shipped):
    data = copy.deepcopy(shipped)
    data["analysis"] = {"per_visit": shipped["analysis"]["per_visit"]}
    plan = _parse(data).analysis
    assert (plan.alpha, plan.populations, plan.primary, plan.secondary, plan.dose_response, plan.missing_data,
            plan.safety, plan.endpoints) == (0.05, [], None, [], None, None, None, [])
    assert plan.per_visit.primary == "ancova"


def test_the_parameter_table_is_the_analysis_datasets():
    """The schema keeps its own list (the protocol package does not import the interchange
    package); it must be ADaM's: codes, the form each comes from, the direction of benefit."""
    from typing import get_args

    from annulus.interchange import adam

    assert {p.code: (p.form, p.lower_is_better) for p in adam.PARAMS} == schema.EFFICACY_PARAMETERS
    assert set(get_args(schema.EfficacyParameter)) == set(schema.EFFICACY_PARAMETERS)
    assert set(get_args(schema.PopulationRule)) == set(schema.POPULATION_RULES)


# ---- each cross-check, with the path of the field --------------------------------------------------


def _set(*path, value):
    def change(data):
        node = data["analysis"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


def _pop(*path):
    def change(data):
        node = data["analysis"]
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return change


def _both(*changes):
    def change(data):
        for c in changes:
            c(data)
    return change


def _arm(arm_id, **values):
    def change(data):
        next(a for a in data["arms"] if a["id"] == arm_id).update(values)
    return change


def _visit_forms(visit_id, drop):
    def change(data):
        v = next(v for v in data["schedule"]["visits"] if v["id"] == visit_id)
        v["forms"] = [f for f in v["forms"] if f != drop]
    return change


PP = ["randomised", "treated", "eligible", "primary_visit_in_window", "not_emergency_unblinded"]


def _population(pid, role, rule):
    return {"id": pid, "role": role, "name": {"en": pid, "zh": pid}, "rule": list(rule)}


CASES = [
    # unknown keys, everywhere
    ("unknown section", _set("interim", value={"at": "m6"}), ["analysis.interim: Extra inputs are not permitted"]),
    ("unknown endpoint key", _set("primary", "modle", value={}),
     ["analysis.primary.modle: Extra inputs are not permitted"]),
    ("unknown model key", _set("secondary", 2, "model", "random", value="intercept"),
     ["analysis.secondary[2].model.random: Extra inputs are not permitted"]),
    ("unknown population key", _set("populations", 0, "flag", value="ITTFL"),
     ["analysis.populations[0].flag: Extra inputs are not permitted"]),
    ("unknown mcpmod key", _set("dose_response", "mcpmod", "doses", value=[0, 5]),
     ["analysis.dose_response.mcpmod.doses: Extra inputs are not permitted"]),
    ("unknown safety key", _set("safety", "listings", value=True),
     ["analysis.safety.listings: Extra inputs are not permitted"]),
    # closed vocabularies
    ("alpha out of range", _set("alpha", value=0), ["analysis.alpha: Input should be greater than 0"]),
    ("unknown parameter", _set("primary", "parameter", value="PAIN"),
     ["analysis.primary.parameter: 'PAIN' is not a known parameter (VAS, ODI, JOA, SF36PCS, SF36MCS, PFIRRM, MODIC, "
      "DISCHT, ROM); declare a new one under analysis.parameters"]),
    ("parameter code not an ADaM code", _set("primary", "parameter", value="pain"),
     ["analysis.primary.parameter: String should match pattern"]),
    ("unknown covariance", _set("primary", "model", "covariance", value="unstructured"),
     ["analysis.primary.model.covariance: Input should be"]),
    ("unknown df", _set("primary", "model", "df", value="residual"), ["analysis.primary.model.df: Input should be"]),
    ("unknown estimation", _set("primary", "model", "estimation", value="ols"),
     ["analysis.primary.model.estimation: Input should be"]),
    ("unknown method", _set("primary", "model", "method", value="anova"),
     ["analysis.primary.model.method: Input should be"]),
    ("unknown covariate", _set("primary", "model", "covariates", value=["baseline", "age"]),
     ["analysis.primary.model.covariates[1]: 'age' is not a stratum of the randomisation, which has no strata"]),
    ("repeated covariate", _set("primary", "model", "covariates", value=["baseline", "baseline"]),
     ["analysis.primary.model.covariates[1]: 'baseline' is listed twice"]),
    ("model without df", _pop("primary", "model", "df"), ["analysis.primary.model.df: Field required"]),
    ("unknown rule", _set("populations", 1, "rule", value=["randomised", "treated", "compliant"]),
     ["analysis.populations[1].rule[2]: Input should be"]),
    ("repeated rule", _set("populations", 1, "rule", value=["randomised", "treated", "treated"]),
     ["analysis.populations[1].rule[2]: 'treated' is listed twice"]),
    ("unknown role", _set("populations", 0, "role", value="primary"),
     ["analysis.populations[0].role: Input should be 'efficacy' or 'safety'"]),
    ("unknown sensitivity", _set("missing_data", "sensitivity", value=["per_protocol", "locf"]),
     ["analysis.missing_data.sensitivity[1]: Input should be 'per_protocol' or 'observed_ancova'"]),
    ("repeated sensitivity", _set("missing_data", "sensitivity", value=["observed_ancova", "observed_ancova"]),
     ["analysis.missing_data.sensitivity[1]: 'observed_ancova' is listed twice"]),
    ("imputation", _set("missing_data", "approach", value="locf"),
     ["analysis.missing_data.approach: Input should be 'mmrm_mar'"]),
    ("unknown safety table", _set("safety", "by", value=["soc_term", "outcome"]),
     ["analysis.safety.by[1]: Input should be"]),
    ("repeated safety table", _set("safety", "by", value=["grade", "grade"]),
     ["analysis.safety.by[1]: 'grade' is listed twice"]),
    ("unknown interval", _set("safety", "interval", value="wald"),
     ["analysis.safety.interval: Input should be 'clopper-pearson'"]),
    ("unknown mcpmod model", _set("dose_response", "mcpmod", "models", value={"linear": None, "sigemax": 4}),
     ["analysis.dose_response.mcpmod.models.sigemax: Input should be"]),
    # populations
    ("population id twice", _set("populations", 1, "id", value="itt"),
     ["analysis.populations[1].id: 'itt' is used twice",
      "analysis.missing_data.sensitivity[0]: per_protocol needs the population 'pp'"]),
    ("no itt", _both(_set("populations", 0, "id", value="fas"),
                     lambda d: [ep.update(population="pp") for ep in [d["analysis"]["primary"],
                                                                      *d["analysis"]["secondary"]]]),
     ["analysis.populations[0].id: 'fas': the analysis datasets flag the efficacy populations itt (ITTFL) and pp",
      "analysis.populations: the intention-to-treat population (id itt, role efficacy) is missing"]),
    ("itt as safety", _set("populations", 0, "role", value="safety"),
     ["analysis.populations[0].role: 'itt' is an efficacy population",
      "analysis.populations[0].rule: the safety population is those who received the injection; it needs 'treated'",
      "analysis.populations: exactly one population must have the role safety (found 2)",
      "analysis.primary.population: 'itt' is a safety population"]
     + [f"analysis.secondary[{i}].population: 'itt' is a safety population" for i in range(8)]),
    ("no safety population", _both(_set("populations", value=[
        _population("itt", "efficacy", ["randomised"]), _population("pp", "efficacy", PP)]), _pop("safety")),
     ["analysis.populations: exactly one population must have the role safety (found 0)"]),
    ("efficacy without randomised", _set("populations", 1, "rule", value=["treated", "eligible"]),
     ["analysis.populations[1].rule: an efficacy population compares randomised arms; it needs 'randomised'"]),
    ("safety without treated", _set("populations", 2, "rule", value=["randomised"]),
     ["analysis.populations[2].rule: the safety population is those who received the injection; it needs 'treated'"]),
    # end points
    ("undeclared population", _set("primary", "population", value="mitt"),
     ["analysis.primary.population: 'mitt' is not a declared population (itt, pp, safety)"]),
    ("endpoint in the safety population", _set("secondary", 0, "population", value="safety"),
     ["analysis.secondary[0].population: 'safety' is a safety population, not an efficacy one"]),
    ("primary visit not among the visits", _set("primary", "primary_visit", value="m9"),
     ["analysis.primary.primary_visit: 'm9' is not one of the end point's visits"]),
    ("repeated visit", _set("primary", "visits", value=["w1", "m1", "m1", "m12"]),
     ["analysis.primary.visits[2]: 'm1' is listed twice"]),
    ("no visits", _set("primary", "visits", value=[]), ["analysis.primary.visits: List should have at least 1 item"]),
    ("baseline is not a follow-up visit", _set("primary", "visits", value=["baseline", *VISITS]),
     ["analysis.primary.visits[0]: 'baseline' is not a follow-up visit of the schedule"]),
    ("visit without the form", _set("secondary", 4, "visits", value=["m3", "m6", "m12", "m24"]),
     ["analysis.secondary[4].visits[0]: visit m3 does not collect the imaging form (PFIRRM)"]),
    ("no baseline for the change", _visit_forms("baseline", "joa"),
     ["analysis.secondary[1].parameter: the baseline visit does not collect the joa form (JOA has no baseline"]),
    ("parameter twice", _set("secondary", 3, "parameter", value="SF36PCS"),
     ["analysis.secondary[3].parameter: SF36PCS is already the end point secondary[2]"]),
    ("primary again as a secondary", _both(_set("secondary", 0, "parameter", value="VAS"),
                                           _pop("secondary", 0, "responder")),
     ["analysis.secondary[0].parameter: VAS is already the end point primary"]),
    ("wrong direction", _set("secondary", 1, "lower_is_better", value=True),
     ["analysis.secondary[1].lower_is_better: for JOA a higher value is better (lower_is_better: false)"]),
    ("responder with both bounds", _set("secondary", 0, "responder", value={"change_at_most": -15,
                                                                           "change_at_least": 15}),
     ["analysis.secondary[0].responder.change_at_most: give exactly one of change_at_most and change_at_least"]),
    ("responder with no bound", _set("secondary", 0, "responder", value={}),
     ["analysis.secondary[0].responder.change_at_most: give exactly one"]),
    ("responder increase where lower is better", _set("secondary", 0, "responder", value={"change_at_least": 15}),
     ["analysis.secondary[0].responder.change_at_least: ODI improves downwards"]),
    ("responder threshold of the wrong sign", _set("secondary", 0, "responder", value={"change_at_most": 15}),
     ["analysis.secondary[0].responder.change_at_most: must be negative (a decrease), got 15"]),
    ("responder decrease where higher is better", _set("secondary", 1, "responder", value={"change_at_most": -3}),
     ["analysis.secondary[1].responder.change_at_most: JOA improves upwards"]),
    ("responder unknown key", _set("secondary", 0, "responder", value={"percent_at_most": -30}),
     ["analysis.secondary[0].responder.percent_at_most: Extra inputs are not permitted"]),
    ("secondary without a primary", _both(
        _pop("primary"), _pop("dose_response"), _pop("missing_data"),
        _set("populations", 1, "rule", value=["randomised", "treated"])),
     ["analysis.secondary: needs the primary end point (primary)"]),
    ("in-window rule without a primary", _both(_pop("primary"), _pop("secondary"), _pop("dose_response"),
                                               _pop("missing_data")),
     ["analysis.populations[1].rule: primary_visit_in_window needs the primary end point"]),
    # dose response
    ("control is not an arm", _set("dose_response", "control", value="placebo"),
     ["analysis.dose_response.control: 'placebo' is not an arm id (high, mid, low, control)"]),
    ("control is a dose", _set("dose_response", "control", value="low"),
     ["analysis.dose_response.control: arm 'low' is not the control arm (control)"]),
    ("mcpmod visit not a primary visit", _set("dose_response", "mcpmod", "visit", value="baseline"),
     ["analysis.dose_response.mcpmod.visit: 'baseline' is not one of the primary end point's visits"]),
    ("mcpmod two-sided level", _set("dose_response", "mcpmod", "alpha", value=0.05),
     ["analysis.dose_response.mcpmod.alpha: the one-sided level 0.05 is above half the plan's two-sided alpha "
      "(0.025)"]),
    ("linear with a guess", _set("dose_response", "mcpmod", "models", "linear", value=2),
     ["analysis.dose_response.mcpmod.models.linear: the linear shape has no guesstimate (write null)"]),
    ("emax without a guess", _set("dose_response", "mcpmod", "models", "emax", value=None),
     ["analysis.dose_response.mcpmod.models.emax: the emax shape needs its guesstimate"]),
    ("negative ED50", _set("dose_response", "mcpmod", "models", "emax", value=-4),
     ["analysis.dose_response.mcpmod.models.emax: must be positive, got -4"]),
    ("flat quadratic", _set("dose_response", "mcpmod", "models", "quadratic", value=0),
     ["analysis.dose_response.mcpmod.models.quadratic: 0 is the linear shape"]),
    ("no candidate model", _set("dose_response", "mcpmod", "models", value={}),
     ["analysis.dose_response.mcpmod.models: Dictionary should have at least 1 item"]),
    ("negative delta", _set("dose_response", "mcpmod", "delta", value=-10.6),
     ["analysis.dose_response.mcpmod.delta: Input should be greater than 0"]),
    ("two dose levels", _both(_arm("high", dose_score=5), _arm("mid", dose_score=5)),
     ["analysis.dose_response.mcpmod: MCP-Mod needs at least three dose levels (the arms' dose_score give 2)"]),
    # missing data and safety
    ("per-protocol sensitivity without pp", _both(
        _set("populations", value=[_population("itt", "efficacy", ["randomised"]),
                                   _population("safety", "safety", ["treated"])])),
     ["analysis.missing_data.sensitivity[0]: per_protocol needs the population 'pp'"]),
    ("safety tables in an efficacy population", _set("safety", "population", value="itt"),
     ["analysis.safety.population: 'itt' is an efficacy population, not the safety one"]),
    ("safety tables in no population", _set("safety", "population", value="treated"),
     ["analysis.safety.population: 'treated' is not a declared population (itt, pp, safety)"]),
]


@pytest.mark.req("X-1.3")
@pytest.mark.parametrize("change, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_plan_is_refused_naming_the_field(shipped, change, expected):
    errors = _errors(shipped, change)
    assert len(errors) == len(expected), errors
    for line, start in zip(errors, expected, strict=True):
        assert line.startswith(start), (line, start)
