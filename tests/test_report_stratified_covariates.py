"""The stratification factors as covariates of the mixed model (ICH E9: adjust for the factors the
randomisation was stratified by). The analysis plan names a stratum of ``randomisation.strata``
as a covariate beside the baseline, and an unknown id or a stratum of a randomisation without
strata is refused naming the field; ADSL and ADEFF of a stratified trial carry each participant's
stratum as randomised (``STRATAR``, ``STRAT<n>R``); the trial report's MMRM adjusts for them and
its estimates are those of ``fit_mmrm`` on the exported ADEFF with the strata in the formula (and
not those of the baseline-only model); the first trial's formula is unchanged (X-1.3, P-8.3,
X-8.5)."""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
from datetime import timedelta
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from django.utils import timezone

from annulus.cli import main
from annulus.interchange.adam import strata_of
from annulus.protocol import ProtocolError, default_protocol_path, load_protocol, parse_protocol
from annulus.report import efficacy
from annulus.stats.mmrm import fit_mmrm

from .knee_support import KNEE, URINE_HCG, VITALS, at, knee_enrolled, knee_list, nrs
from .knee_support import protocol_version  # noqa: F401

pytestmark = pytest.mark.req("X-1.3", "P-8.3")


def _raw(path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _errors(data: dict) -> list[str]:
    with pytest.raises(ProtocolError) as info:
        parse_protocol(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return info.value.errors


# ---- the plan ------------------------------------------------------------------------------------


def test_the_knee_plan_adjusts_every_model_for_its_strata():
    raw = _raw(KNEE)
    strata = [f["id"] for f in raw["randomisation"]["strata"]]
    assert raw["randomisation"]["method"] == "stratified_blocks" and strata == ["site", "pain"]
    plan = load_protocol(KNEE).analysis
    for ep, yaml_ep in zip(plan.endpoints, [raw["analysis"]["primary"], *raw["analysis"]["secondary"]], strict=True):
        assert ep.model.covariates == yaml_ep["model"]["covariates"] == ["baseline", *strata]
    text = KNEE.read_text(encoding="utf-8")
    assert "until the plan can name them" not in text and "outside the system" not in text


def test_an_unknown_stratum_is_refused_naming_the_field():
    data = _raw(KNEE)
    data["analysis"]["primary"]["model"]["covariates"] = ["baseline", "site", "pian"]
    data["analysis"]["secondary"][1]["model"]["covariates"] = ["pain", "age"]
    assert _errors(data) == [
        "analysis.primary.model.covariates[2]: 'pian' is not a stratum of the randomisation (site, pain)",
        "analysis.secondary[1].model.covariates[1]: 'age' is not a stratum of the randomisation (site, pain)"]
    data = _raw(KNEE)
    data["analysis"]["primary"]["model"]["covariates"] = ["baseline", "pain", "pain"]
    assert _errors(data) == ["analysis.primary.model.covariates[2]: 'pain' is listed twice"]
    data = _raw(KNEE)
    data["randomisation"]["strata"][1]["id"] = "baseline"
    data["analysis"]["primary"]["model"]["covariates"] = ["baseline", "site"]
    for ep in data["analysis"]["secondary"]:
        ep["model"]["covariates"] = ["baseline", "site"]
    assert _errors(data) == ["randomisation.strata[1].id: 'baseline' names the baseline covariate of the analysis "
                             "plan's models; give the factor another id"]


def test_a_stratum_covariate_needs_a_stratified_randomisation():
    first = _raw(default_protocol_path())
    assert not first["randomisation"].get("strata")
    data = copy.deepcopy(first)
    data["analysis"]["primary"]["model"]["covariates"] = ["baseline", "site"]
    (error,) = _errors(data)
    assert error.startswith("analysis.primary.model.covariates[1]: 'site' is not a stratum of the randomisation, "
                            "which has no strata")
    # the knee strata under minimisation are factors to balance, not strata
    data = _raw(KNEE)
    rand = data["randomisation"]
    rand["method"], rand["factors"] = "minimisation", rand.pop("strata")
    del rand["block_sizes"]
    errors = _errors(data)
    assert errors[0].startswith("analysis.primary.model.covariates[1]: 'site' is not a stratum of the "
                                "randomisation, which has no strata")
    assert len(errors) == 2 * (1 + len(data["analysis"]["secondary"]))  # site and pain of every end point


def test_validate_and_show_say_it(tmp_path, capsys):
    data = _raw(KNEE)
    data["analysis"]["secondary"][0]["model"]["covariates"] = ["baseline", "pian"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    assert main(["protocol", "validate", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == ("analysis.secondary[0].model.covariates[1]: 'pian' is not a stratum of the "
                                    "randomisation (site, pain)")
    assert main(["protocol", "validate", str(KNEE)]) == 0
    capsys.readouterr()
    assert main(["protocol", "show", str(KNEE)]) == 0
    out = capsys.readouterr().out
    plan = out[out.index("Analysis plan"):]
    primary = next(line for line in plan.splitlines() if line.strip().startswith("primary"))
    assert primary.endswith("covariates baseline, stratum site (STRAT1R), stratum pain (STRAT2R); "
                            "responder change <= -2")
    assert main(["protocol", "show"]) == 0
    assert "MMRM us reml kenward-roger, covariates baseline\n" in capsys.readouterr().out


def test_the_formula_names_each_stratum_as_a_factor_and_the_first_trials_is_unchanged():
    first, knee = load_protocol(default_protocol_path()), load_protocol(KNEE)
    arms, blinded = efficacy.Blind("arms", ("a", "b"), "a"), efficacy.Blind("blinded")
    assert strata_of(first) == []
    assert efficacy.formula(first.analysis.primary, arms, strata_of(first)) == "CHG ~ BASE + TRT01P*AVISIT"
    assert efficacy.formula(first.analysis.primary, blinded, strata_of(first)) == "CHG ~ BASE + AVISIT"
    assert strata_of(knee) == ["site", "pain"]
    assert (efficacy.formula(knee.analysis.primary, arms, strata_of(knee))
            == "CHG ~ BASE + C(STRAT1R) + C(STRAT2R) + TRT01P*AVISIT")
    # the plan's order; a stratum alone; none
    pain_only = SimpleNamespace(model=SimpleNamespace(covariates=["pain"]))
    assert efficacy.formula(pain_only, blinded, ["site", "pain"]) == "CHG ~ C(STRAT2R) + AVISIT"
    assert efficacy.formula(SimpleNamespace(model=SimpleNamespace(covariates=[])), arms) == "CHG ~ TRT01P*AVISIT"


def test_the_model_frame_drops_rows_missing_a_stratum():
    knee = load_protocol(KNEE)
    ep = knee.analysis.primary
    frame = pd.DataFrame({"USUBJID": ["1", "2", "3", "4"], "AVISIT": [ep.primary_visit] * 4,
                          "CHG": [-1.0, -2.0, -3.0, None], "BASE": [5.0, 6.0, 7.0, 8.0],
                          "STRAT1R": ["01", None, "02", "03"], "STRAT2R": ["severe", "moderate", None, "severe"]})
    assert list(efficacy.model_frame(frame, ep, strata=strata_of(knee))["USUBJID"]) == ["1"]
    # a model without the strata keeps them
    base_only = SimpleNamespace(population=ep.population, visits=ep.visits,
                                model=SimpleNamespace(covariates=["baseline"]))
    assert list(efficacy.model_frame(frame, base_only, strata=strata_of(knee))["USUBJID"]) == ["1", "2", "3"]


# ---- a small knee trial --------------------------------------------------------------------------

CONSENT_DAYS_AGO = 120
# per participant: site, screening NRS (the pain stratum: below 7 moderate), NRS at day 1, w2, w4, w12
PEOPLE = [
    ("01", 5, (5, 4, 3, 2)), ("01", 8, (8, 7, 7, 5)), ("02", 5, (6, 6, 5, 5)), ("02", 8, (9, 8, 8, 8)),
    ("03", 5, (5, 3, 2, 1)), ("03", 8, (7, 5, 4, 2)), ("01", 6, (6, 5, 3, 3)), ("01", 9, (9, 9, 7, 6)),
    ("02", 4, (4, 4, 4, 3)), ("02", 7, (7, 7, 6, 7)), ("03", 6, (6, 4, 3, 1)), ("03", 9, (9, 6, 5, 3)),
]
FOLLOW_UP = (("w2", 14), ("w4", 29), ("w12", 84))


@pytest.fixture
def trial(protocol_version, users, monkeypatch):  # noqa: F811
    from annulus.allocation import services as allocation
    from annulus.visits import procedures
    from annulus.visits import services as vs

    kits: dict = {}
    monkeypatch.setattr(procedures, "_kit_sources", [lambda pid, key: kits.get((pid, key), set())])
    knee_list(users)
    coord, pharm = users["coordinator"], users["pharmacist"]
    out = []
    for i, (site, screening, pain) in enumerate(PEOPLE):
        p = knee_enrolled(users, site=site, consent_days_ago=CONSENT_DAYS_AGO, nrs_pain_screening=screening)
        allocation.randomise(actor=users["investigator"], participant_id=p.pk)
        day1 = timezone.localdate() - timedelta(days=CONSENT_DAYS_AGO - 14)
        vs.open_visit(actor=coord, participant_id=p.pk, visit_id="day1", visit_date=day1)
        vs.save_visit_forms(actor=coord, participant_id=p.pk, visit_key="day1", complete=True, collected_at=at(day1, 8),
                            forms={"nrs": nrs(pain[0]), "vitals": VITALS, "urine_hcg": URINE_HCG})
        kit = f"KOA-TEST-{i:04d}"
        kits[(p.pk, "day1")] = {kit}
        vs.save_form(actor=pharm, participant_id=p.pk, visit_key="day1", form_id="first_dose",
                     items={"dosed_at": at(day1, 9).isoformat(), "kit_number": kit, "tablets_dispensed": 35,
                            "dose_observed": "yes", "kit_check__kit_number_matches": "yes",
                            "kit_check__seal_intact": "yes", "kit_check__expiry_after_next_visit": "yes",
                            "kit_check__storage_temperature": 22},
                     complete=True, collected_at=at(day1, 9))
        for (visit, offset), score in zip(FOLLOW_UP, pain[1:], strict=True):
            day = day1 + timedelta(days=offset)
            vs.open_visit(actor=coord, participant_id=p.pk, visit_id=visit, visit_date=day)
            vs.save_visit_forms(actor=coord, participant_id=p.pk, visit_key=visit, complete=True,
                                collected_at=at(day, 10), forms={"nrs": nrs(score)})
        out.append((p, screening))
    return out


def _read(path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


def _recorded(participant) -> dict:
    """The levels the randomisation recorded with the participant's envelope."""
    from annulus.allocation.models import Envelope

    return Envelope.objects.get(participant=participant).levels


def test_adsl_and_adeff_carry_the_stratum_as_randomised(trial, users, tmp_path):
    from annulus.exports import context
    from annulus.exports import services as exports
    from annulus.interchange import adam
    from annulus.trial.selectors import active_protocol

    folder = tmp_path / "adam"
    exports.run_export(actor=users["statistician"], fmt="adam", out_dir=folder, transport=False)
    adsl = {r["SCRNID"]: r for r in _read(folder / "adsl.csv")}
    adeff = _read(folder / "adeff.csv")
    strata = active_protocol().randomisation.strata
    seen = set()
    for p, screening in trial:
        recorded = _recorded(p)
        # what randomisation recorded is the site and the screening NRS's level
        assert recorded == {"site": p.site, "pain": "severe" if screening >= 7 else "moderate"}
        row = adsl[p.screening_number]
        assert row["STRATAR"] == "; ".join(f"{f.id}={recorded[f.id]}" for f in strata)
        assert (row["STRAT1R"], row["STRAT2R"]) == (recorded[strata[0].id], recorded[strata[1].id])
        mine = [r for r in adeff if r["USUBJID"] == row["USUBJID"]]
        assert len(mine) == 1 + len(FOLLOW_UP)  # NRS at day 1 and each follow-up visit
        assert {(r["STRATAR"], r["STRAT1R"], r["STRAT2R"]) for r in mine} == {
            (row["STRATAR"], row["STRAT1R"], row["STRAT2R"])}
        seen.add(row["STRATAR"])
    assert len(seen) == 6  # every stratum of 3 sites x 2 pain levels
    # the columns, their labels naming the factor, in ADSL and ADEFF and the per-parameter file
    ctx = context.build_context(actor=users["statistician"], fmt="adam", as_of=timezone.now(),
                                created_at=timezone.now(), identifiable=False, excel_bom=False, language="en",
                                transport=True)
    for columns in (adam.adsl_columns(ctx), adam.adeff_columns(ctx)):
        labels = {c.name: c.label for c in columns}
        assert labels["STRATAR"] == "Strata as Randomized"
        assert labels["STRAT1R"] == f"Stratum 1 as Randomized: {strata[0].id}"
        assert labels["STRAT2R"] == f"Stratum 2 as Randomized: {strata[1].id}"
        assert all(len(c.name) <= 8 and len(c.label) <= 40 for c in columns)
    assert {"STRATAR", "STRAT1R", "STRAT2R"} <= set(_read(folder / "adeff_nrs.csv")[0])


def _frame(path) -> pd.DataFrame:
    """The exported ADEFF file as pandas reads it, nothing done to it (the site levels 01, 02, 03
    are read as numbers: the formula's C() makes them a factor all the same)."""
    return pd.read_csv(path)


def _same_lsmeans(report_rows, fit_rows, *, by_arm: bool):
    fit = {(str(r["TRT01P"]) if by_arm else None, str(r["AVISIT"])): r for r in fit_rows}
    assert len(report_rows) == len(fit) > 0
    for r in report_rows:
        want = fit[(r["arm"], r["visit"])]
        assert r["estimate"] == pytest.approx(want["estimate"], rel=1e-9, abs=1e-12)
        assert r["se"] == pytest.approx(want["se"], rel=1e-9, abs=1e-12)


def test_the_blinded_report_adjusts_for_the_strata(trial, users, tmp_path):
    from annulus.exports import services as exports
    from annulus.reports import services as reports

    seen = []
    report = reports.build(actor=users["statistician"], language="en", unblinded=False, fmt="html",
                           results_sink=seen.append)
    (results,) = seen
    primary = next(e for e in results["endpoints"] if e["role"] == "primary")
    assert primary["model"]["formula"] == "CHG ~ BASE + C(STRAT1R) + C(STRAT2R) + AVISIT"
    assert [c["covariate"] for c in primary["covariates"]] == ["baseline", "site", "pain"]
    assert results["plan"]["covariates"] == ["baseline", "site", "pain"]
    folder = tmp_path / "adam"
    exports.run_export(actor=users["statistician"], fmt="adam", out_dir=folder, transport=False, at_most="blinded")
    frame = _frame(folder / "adeff_nrs.csv")
    fit = fit_mmrm(frame, primary["model"]["formula"], subject="USUBJID", visit="AVISIT", cov="us",
                   method="reml", df="kenward-roger", visit_number="AVISITN")
    assert primary["model"]["n_subjects"] == fit.n_subjects == len(PEOPLE)
    assert primary["model"]["neg2_loglik"] == pytest.approx(fit.neg2_loglik, rel=1e-9)
    _same_lsmeans(primary["lsmeans"], fit.lsmeans(["AVISIT"]), by_arm=False)
    without = fit_mmrm(frame, "CHG ~ BASE + AVISIT", subject="USUBJID", visit="AVISIT", cov="us", method="reml",
                       df="kenward-roger", visit_number="AVISITN")
    assert abs(without.neg2_loglik - fit.neg2_loglik) > 1e-6
    page = open(report.path, encoding="utf-8").read()
    assert ("Covariates: the baseline value (BASE); the stratification factor site as randomised (STRAT1R); "
            "the stratification factor pain as randomised (STRAT2R).") in page


def test_the_report_by_treatment_equals_fit_mmrm_with_the_strata(trial, users, tmp_path, monkeypatch):
    from annulus.allocation.selectors import arm_of_for_system
    from annulus.exports import context, source
    from annulus.interchange import adam
    from annulus.report import document
    from annulus.trial.selectors import active_protocol

    protocol = active_protocol()
    now = timezone.now()
    ctx = dataclasses.replace(context.build_context(actor=users["statistician"], fmt="adam", as_of=now,
                                                    created_at=now, identifiable=False, excel_bom=False,
                                                    language="en", transport=False), blinding="arms")
    arms = {p.screening_number: arm_of_for_system(p.pk) for p, _ in trial}
    subjects = [dataclasses.replace(s, arm=arms[s.screening_number])
                for s in source.subjects(users["statistician"], as_of=now)]
    folder = tmp_path / "adam"
    folder.mkdir()
    adam.write(subjects, ctx, folder)
    (folder / document.MANIFEST).write_text(json.dumps({"format": "adam", "stamp": ctx.stamp,
                                                        "scope": {"blinding": "arms"}}))
    per_arm = {a: sum(1 for v in arms.values() if v == a) for a in set(arms.values())}
    assert len(per_arm) == 2
    # a trial this small has fewer than the report's five per arm at a visit: fit every visit
    monkeypatch.setattr(efficacy, "MIN_PER_GROUP", min(per_arm.values()))
    results = document.compute(folder, protocol, language="en", workers=1)
    primary = next(e for e in results["endpoints"] if e["role"] == "primary")
    formula = "CHG ~ BASE + C(STRAT1R) + C(STRAT2R) + TRT01P*AVISIT"
    assert primary["model"]["formula"] == formula
    assert {t["effect"] for t in primary["type3"]} >= {"BASE", "C(STRAT1R)", "C(STRAT2R)", "TRT01P"}
    frame = _frame(folder / "adeff_nrs.csv")
    assert set(frame["AVISIT"]) == {v for v, _ in FOLLOW_UP}

    def fit(f):
        return fit_mmrm(frame, f, subject="USUBJID", visit="AVISIT", cov="us", method="reml", df="kenward-roger",
                        visit_number="AVISITN")

    adjusted, baseline_only = fit(formula), fit("CHG ~ BASE + TRT01P*AVISIT")
    control = results["control"]
    _same_lsmeans(primary["lsmeans"], adjusted.lsmeans(["TRT01P", "AVISIT"]), by_arm=True)
    want = {str(r["visit"]): r for r in adjusted.contrasts(arm="TRT01P", control=control, by="AVISIT")}
    unadjusted = {str(r["visit"]): r for r in baseline_only.contrasts(arm="TRT01P", control=control, by="AVISIT")}
    assert len(primary["contrasts"]) == len(want) == len(FOLLOW_UP)
    for c in primary["contrasts"]:
        w = want[c["visit"]]
        for key in ("estimate", "se", "df", "p", "lower", "upper"):
            assert c[key] == pytest.approx(w[key], rel=1e-9, abs=1e-12), (c["visit"], key)
    # the strata entered the model: the baseline-only fit's differences are not the report's
    assert max(abs(c["estimate"] - unadjusted[c["visit"]]["estimate"]) for c in primary["contrasts"]) > 1e-3
    html = document.render(results)
    assert "the stratification factor pain as randomised (STRAT2R)" in html
