"""Both shipped protocols validate, and the second one - a 2:1 drug-versus-placebo trial in knee
osteoarthritis at three sites - parses to what its file says: sites, strata, procedures, schedule,
instruments, kit product and analysis plan (X-1.3). Procedures and the events the schedule counts
from are declared in the file, not in code; a file written before ``procedures:`` still loads."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from annulus.cli import main
from annulus.instruments.forms import spec_for
from annulus.protocol import ProtocolError, default_protocol_path, load_protocol, parse_protocol, shipped_protocol_paths

KNEE = default_protocol_path().parent / "knee-oa-drug.yaml"


def _raw(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _parse(data: dict):
    return parse_protocol(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


def _errors(data: dict) -> list[str]:
    with pytest.raises(ProtocolError) as info:
        _parse(data)
    return info.value.errors


@pytest.mark.req("X-1.3")
def test_both_shipped_protocols_validate(capsys):
    paths = shipped_protocol_paths()
    assert [p.name for p in paths] == ["dlbp-admsc.yaml", "knee-oa-drug.yaml"]
    for path in paths:
        assert main(["protocol", "validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "valid protocol ChiCTR2200058291 version 1.0" in out
    assert "valid protocol EXAMPLE-KOA-0001 version 1.0" in out


@pytest.mark.req("X-1.3")
def test_knee_trial_sites_strata_and_arms_are_the_file():
    raw, p = _raw(KNEE), load_protocol(KNEE)
    assert [(s.id, s.name.en) for s in p.site_list] == [(s["id"], s["name"]["en"]) for s in raw["sites"]]
    assert [s.id for s in p.site_list] == ["01", "02", "03"]
    rand = p.randomisation
    assert rand.method == "stratified_blocks" and rand.block_sizes == [3, 6]
    site, pain = rand.strata
    # the site factor's levels are exactly the declared sites
    assert (site.id, site.source, site.levels) == ("site", "site", [s.id for s in p.site_list])
    assert (pain.source, pain.levels, pain.cuts) == ("nrs_pain_screening", ["moderate", "severe"], [7.0])
    assert p.eligibility.field("nrs_pain_screening").type == "integer"
    assert [pain.level_for(v) for v in (4, 6, 7, 10)] == ["moderate", "moderate", "severe", "severe"]
    assert [(a.id, a.ratio, a.control) for a in p.arms] == [("active", 2, False), ("placebo", 1, True)]
    assert p.sample_size.total == 273 and p.sample_size.total % 3 == 0
    assert (rand.level1_key_holder, rand.level2_key_holder) == ("designer", "supply_manager")
    assert not p.role("supply_manager").blinded and p.role("pharmacist").blinded


@pytest.mark.req("X-1.3")
def test_knee_trial_schedule_is_the_file_with_day_1_from_the_first_dose():
    raw, p = _raw(KNEE), load_protocol(KNEE)
    assert [v.id for v in p.schedule.visits] == [v["id"] for v in raw["schedule"]["visits"]]
    assert [v.forms for v in p.schedule.visits] == [v["forms"] for v in raw["schedule"]["visits"]]
    got = {v.id: (v.anchor, v.offset_days, v.window.before_days, v.window.after_days, v.follow_up)
           for v in p.schedule.visits}
    assert got == {
        "screening_visit": ("consent", 0, 0, 7, False),
        # the day-1 visit is the first_dose procedure: anchor, day and window from its timing
        "day1": ("consent", 14, 14, 14, False),
        "w2": ("first_dose", 14, 3, 3, True),
        "w4": ("first_dose", 28, 3, 3, True),
        "w8": ("first_dose", 56, 5, 5, True),
        "w12": ("first_dose", 84, 7, 7, True),
        "w26": ("first_dose", 182, 14, 14, True),
    }
    assert p.schedule.baseline_visit.id == "day1" and p.schedule.visit("day1").procedure == "first_dose"
    assert p.anchors == ["consent", "first_dose"]  # kits are dispensed and returned at several visits
    assert p.treatment_procedure.id == "first_dose"
    procs = {pr.id: pr for pr in p.procedure_list}
    assert {k: v.checks for k, v in procs.items()} == {"first_dose": ["dispensing"], "kit_dispensing": ["dispensing"],
                                                       "kit_return": ["returns"]}
    assert [f.id for f in procs["kit_return"].fields] == ["returned_on", "kit_number", "tablets_returned",
                                                           "tablets_lost", "missed_doses_reason"]
    assert procs["kit_return"].recorded_by == ["pharmacist", "coordinator"]
    assert {f.id: f.procedure for f in p.schedule.forms if f.procedure} == {
        "first_dose": "first_dose", "kit_dispensing": "kit_dispensing", "kit_return": "kit_return"}


@pytest.mark.req("X-1.3", "X-5.7")
def test_knee_trial_instruments_and_panels_are_other_than_the_first_trial():
    p, first = load_protocol(KNEE), load_protocol(default_protocol_path())
    instruments = {f.id: f.instrument for f in p.schedule.forms if f.instrument}
    assert instruments == {"nrs": "nrs", "koos": "koos", "vitals": "vitals"}
    assert spec_for(p, "koos").id == "koos" and len(spec_for(p, "koos").items) == 42
    assert spec_for(p, "nrs").item("nrs_pain") is not None
    # licensed instruments are left out, not imitated
    assert not {"womac", "eq5d", "eq5d5l"} & {f.instrument or f.id for f in p.schedule.forms}
    assert [x.id for x in p.lab_panels] == ["haematology", "chemistry", "urine_hcg"]
    assert not {x.id for x in p.lab_panels} & {x.id for x in first.lab_panels}
    assert spec_for(p, "chemistry").item("alt") is not None
    # a procedure of a kit product is recorded as the eCRF form of its declared fields; the
    # first trial's cell-product procedures are recorded on their own pages
    ret = spec_for(p, "kit_return")
    assert [i.id for i in ret.items] == [f.id for f in p.procedure("kit_return").fields]
    assert ret.extra["procedure"].checks == ["returns"]
    with pytest.raises(Exception, match="procedure record"):
        spec_for(first, "transplant")


@pytest.mark.req("X-1.3")
def test_knee_trial_kit_product_compliance_safety_and_plan():
    p = load_protocol(KNEE)
    product = p.product
    assert product.kind == "kit" and product.release_criteria == []
    assert (product.units_per_kit, product.kit_days) == (35, 28)
    assert [c.id for c in product.kit_checks][:2] == ["kit_number_matches", "seal_intact"]
    c = product.compliance
    assert c.percent(dispensed=35, returned=7, days=28) == pytest.approx(100.0)
    assert c.percent(dispensed=35, returned=17, days=28) == pytest.approx(100 * 18 / 28)
    assert c.acceptable(c.percent(35, 17, 28)) is False and c.acceptable(c.percent(35, 9, 28)) is True
    assert c.percent(35, 35, 0) is None
    with pytest.raises(ValueError, match="returned"):
        c.percent(dispensed=35, returned=36, days=28)
    assert [(r.id, r.hours) for r in p.safety.sae_recipients] == [
        ("sponsor_safety", 24), ("coordinating_investigator", 24), ("ethics_committee", 72)]
    assert [t.id for t in p.safety.dsmb_thresholds] == ["any_death", "related_sae", "related_grade3_in_one_arm",
                                                       "saes_in_one_arm"]
    plan = p.analysis
    assert plan.primary.parameter == "NRS" and plan.primary.primary_visit == "w12"
    assert plan.parameter_source("NRS") == ("nrs", True)
    assert plan.parameter_source("KOOSPAIN") == ("koos", False)
    assert [e.parameter for e in plan.secondary] == ["KOOSPAIN", "KOOSSYM", "KOOSADL", "KOOSSPRT", "KOOSQOL"]
    assert plan.dose_response is None


@pytest.mark.req("X-1.3")
def test_first_trial_parses_to_the_same_schedule_with_its_procedures_declared():
    """The DLBP file now declares liposuction and transplant as procedures; what the apps read
    (visit anchors, days, windows, procedure names, release criteria) is what it was."""
    p = load_protocol(default_protocol_path())
    got = {v.id: (v.anchor, v.offset_days, v.window.before_days, v.window.after_days, v.procedure)
           for v in p.schedule.visits[:3]}
    assert got == {"liposuction": ("liposuction", 0, 0, 0, "liposuction"),
                   "baseline": ("transplant", -1, 13, 1, None),
                   "transplant": ("liposuction", 21, 7, 0, "transplant")}
    assert all(v.anchor == "transplant" and v.follow_up for v in p.schedule.visits[3:])
    assert p.product.kind == "cell_suspension" and len(p.product.release_criteria) == 12
    assert [(x.id, x.checks, x.treatment) for x in p.procedure_list] == [
        ("liposuction", [], False), ("transplant", ["release"], True)]
    assert p.procedure("transplant").timing.after == "liposuction"
    assert p.schedule.baseline_visit.id == "baseline"


@pytest.mark.req("X-1.3")
def test_a_file_without_procedures_still_loads_with_the_visits_procedures():
    """Protocol versions stored before ``procedures:`` existed: the visits name the procedures."""
    data = _raw(default_protocol_path())
    del data["procedures"]
    for f in data["schedule"]["forms"]:
        f.pop("procedure", None)
    for v in data["schedule"]["visits"]:
        v.pop("baseline", None)
    data["schedule"]["visits"][0].update(anchor="liposuction", offset_days=0, window={"before_days": 0, "after_days": 0})
    data["schedule"]["visits"][2].update(anchor="liposuction", offset_days=21, window={"before_days": 7, "after_days": 0})
    p = _parse(data)
    assert [x.id for x in p.procedure_list] == ["liposuction", "transplant"]
    assert p.anchors == ["consent", "liposuction", "transplant"]
    assert p.treatment_procedure is None and p.schedule.baseline_visit is None
    # the same visits as the file that declares its procedures (but no baseline mark)
    declared = load_protocol(default_protocol_path()).schedule.visits
    assert p.schedule.visits == [v.model_copy(update={"baseline": False}) for v in declared]


def _knee() -> dict:
    return copy.deepcopy(_raw(KNEE))


def _first() -> dict:
    return copy.deepcopy(_raw(default_protocol_path()))


def _set(data: dict, path: tuple, value) -> dict:
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@pytest.mark.req("X-1.3")
@pytest.mark.parametrize("data, expected", [
    (_set(_knee(), ("procedures", 1, "checks"), ["release"]),
     ["procedures[1].checks[0]: release checks need a cell product with release_criteria"]),
    (_set(_first(), ("procedures", 1, "checks"), ["release", "dispensing"]),
     ["procedures[1].checks[1]: dispensing checks need a product supplied in kits (product.kind: kit)"]),
    (_set(_knee(), ("procedures", 2, "treatment"), True),
     ["procedures: exactly one procedure gives the treatment (treatment: true; found 2)"]),
    (_set(_knee(), ("procedures", 0, "recorded_by"), ["nurse"]),
     ["procedures[0].recorded_by[0]: 'nurse' is not a declared role"]),
    (_set(_knee(), ("procedures", 0, "timing", "after"), "surgery"),
     ["procedures[0].timing.after: 'surgery' is neither the consent nor a declared procedure"]),
    (_set(_knee(), ("schedule", "visits", 2, "anchor"), "first_injection"),
     ["schedule.visits[2].anchor: 'first_injection' is neither the consent nor a declared procedure"]),
    (_set(_knee(), ("schedule", "visits", 2, "anchor"), "kit_return"),
     ["schedule.visits: the schedule counts from kit_return, so exactly one visit must be the kit_return "
      "procedure (found 0)"]),
    (_set(_knee(), ("schedule", "visits", 1, "offset_days"), 10),
     ["schedule.visits[1]: visit day1 is the first_dose procedure but its anchor, offset_days or window differ"]),
    (_set(_knee(), ("schedule", "visits", 1, "procedure"), "dosing"),
     ["schedule.visits[1].procedure: 'dosing' is not a declared procedure"]),
    (_set(_knee(), ("schedule", "forms", 8, "procedure"), "kit_returns"),
     ["schedule.forms[8].procedure: 'kit_returns' is not a declared procedure"]),
    (_set(_knee(), ("schedule", "visits", 2, "baseline"), True),
     ["schedule.visits[2].baseline: only one visit is the baseline (visit day1 already is)"]),
    (_set(_knee(), ("arms", 0, "recipe"), {"cell_suspension_ml": 1, "saline_ml": 0, "ha_hydrogel_ml": 1}),
     ["arms[0].recipe: a kit product's arms have no cell recipe"]),
    (_set(_knee(), ("arms", 1, "kit"), None), ["arms[1].kit: a kit product's arms say what their kit holds"]),
    (_set(_first(), ("arms", 3, "recipe"), None), ["arms[3].recipe: a cell product's arms need their recipe"]),
    (_set(_knee(), ("randomisation", "strata", 0, "levels"), ["01", "02"]),
     ["randomisation.strata[0].levels: must be the ids of the declared sites (01, 02, 03)"]),
    (_set(_knee(), ("randomisation", "block_sizes"), [4, 6]),
     ["randomisation.block_sizes[0]: 4 is not a multiple of the ratio sum 3"]),
    (_set(_knee(), ("product", "units_per_kit"), 0),
     ["product.units_per_kit: Input should be greater than 0"]),
    (_set(_knee(), ("product", "compliance", "min_percent"), 120),
     ["product.compliance.min_percent: Input should be less than or equal to 100"]),
    (_set(_knee(), ("analysis", "primary", "parameter"), "WOMAC"),
     ["analysis.primary.parameter: 'WOMAC' is not a known parameter"]),
    (_set(_knee(), ("analysis", "parameters", 1, "lower_is_better"), True),
     ["analysis.secondary[0].lower_is_better: for KOOSPAIN a lower value is better (lower_is_better: true)"]),
    (_set(_knee(), ("analysis", "parameters", 0, "code"), "VAS"),
     ["analysis.parameters[0].code: VAS is already a parameter of the analysis datasets"]),
], ids=lambda x: "" if isinstance(x, dict) else x[0][:60])
def test_a_bad_declaration_is_refused_naming_the_field(data, expected):
    errors = _errors(data)
    for want in expected:
        assert any(e.startswith(want) for e in errors), (want, errors)


@pytest.mark.req("X-1.3")
def test_a_cycle_of_procedure_timings_is_refused():
    data = _first()
    data["procedures"][0]["timing"] = {"after": "transplant", "offset_days": -21,
                                       "window": {"before_days": 0, "after_days": 0}}
    errors = _errors(data)
    assert any("count from each other in a circle" in e for e in errors), errors
