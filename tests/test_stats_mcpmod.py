"""MCP-Mod against R DoseFinding 1.0-3: the biom example (Bretz, Pinheiro & Branson 2005, the
DoseFinding vignette's candidate set) and the simulated trial at 24 months."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from annulus.cli import main
from annulus.stats import fit_dose_model, mcpmod, optimal_contrasts, target_dose
from annulus.stats._io import InputError

STATS = Path(__file__).parent / "fixtures" / "stats"
REF = json.loads((STATS / "reference.json").read_text())
DOSES = {"control": 0, "low": 5, "mid": 10, "high": 20}


def dataset(name):
    if name == "mcpmod_biom":
        b = pd.read_csv(STATS / "biom.csv")
        return b["dose"].to_numpy(), b["resp"].to_numpy()
    d = pd.read_csv(STATS / "trial.csv")
    d = d[(d["visit"] == "24 months")].dropna(subset=["vas"])
    # The improvement (baseline - value), so a benefit is an increase, as in the R script.
    return d["arm"].map(DOSES).to_numpy(), (d["baseline"] - d["vas"]).to_numpy()


def models_of(ref):
    guesses = {"linear": None, **ref["guesses"]}
    return {m: guesses[m] for m in ref["models"]}


@pytest.fixture(scope="module", params=["mcpmod_biom", "mcpmod_trial"])
def case(request):
    ref = REF[request.param]
    dose, resp = dataset(request.param)
    return ref, dose, resp, mcpmod(dose, resp, models_of(ref))


def test_contrasts_and_their_correlation_match(case):
    ref, _, _, r = case
    np.testing.assert_allclose(r.contrasts, ref["contrasts"], atol=1e-10)
    np.testing.assert_allclose(r.corr, ref["corr"], atol=1e-10)


def test_statistics_and_adjusted_p_values_match(case):
    ref, _, _, r = case
    np.testing.assert_allclose(r.t, ref["t"], rtol=1e-10)
    # Numerical integration on both sides (R with abseps 1e-6).
    np.testing.assert_allclose(r.p, ref["p"], atol=1e-4)
    assert r.df == ref["df"]


def test_critical_value_matches(case):
    ref, _, _, r = case
    assert r.crit == pytest.approx(ref["crit"], abs=1e-3)
    assert r.significant == [m for m, t in zip(ref["models"], ref["t"], strict=True)
                             if t > ref["crit"]]


@pytest.mark.parametrize("key", ["mcpmod_biom", "mcpmod_trial"])
@pytest.mark.parametrize("model", ["linear", "emax", "exponential", "quadratic"])
def test_model_fits_match_fitmod(key, model):
    ref = next(f for f in REF[key]["fits"] if f["model"] == model)
    dose, resp = dataset(key)
    fit = fit_dose_model(dose, resp, model)
    assert fit.rss == pytest.approx(ref["rss"], rel=1e-6)
    assert fit.aic == pytest.approx(ref["aic"], abs=1e-5)
    for k, v in ref["coef"].items():
        assert fit.coef[k] == pytest.approx(v, rel=1e-4, abs=1e-6), k


def test_selected_model_has_the_smallest_aic(case):
    ref, _, _, r = case
    aic = {f["model"]: f["aic"] for f in ref["fits"] if f["model"] in r.significant}
    assert r.selected == min(aic, key=aic.get)


def test_direction_decreasing_mirrors_increasing():
    dose, resp = dataset("mcpmod_trial")
    models = models_of(REF["mcpmod_trial"])
    up = mcpmod(dose, resp, models)
    down = mcpmod(dose, -resp, models, direction="decreasing")
    np.testing.assert_allclose(down.t, up.t, rtol=1e-12)
    np.testing.assert_allclose(down.contrasts, -up.contrasts, atol=1e-12)


def test_contrasts_are_orthogonal_to_a_constant():
    c = optimal_contrasts([0, 5, 10, 20], [25, 20, 22, 25], {"emax": 4, "linear": None})
    # Zero weighted sum: a common shift of all group means does not change the statistic.
    assert np.abs(c.sum(axis=0)).max() < 1e-12
    assert np.allclose((c**2).sum(axis=0), 1)


def test_mcpmod_errors():
    with pytest.raises(InputError, match="unknown"):
        mcpmod([0, 0, 1, 1, 2, 2], [1, 2, 3, 4, 5, 6], {"sigmoid": 1})
    with pytest.raises(InputError, match="three dose levels"):
        mcpmod([0, 0, 1, 1], [1, 2, 3, 4], {"linear": None})


def test_cli_dose_reports_dunnett_trend_and_mcpmod(capsys):
    code = main(["dose", "--data", str(STATS / "trial.csv"), "--subject", "subject", "--arm",
                 "arm", "--visit", "visit", "--value", "vas", "--baseline", "baseline",
                 "--control", "control", "--dose", "control=0,low=5,mid=10,high=20",
                 "--model", "linear,emax=4,exponential=10,quadratic=-0.03", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    ref = REF["mcpmod_trial"]
    assert out["mcpmod"]["visit"] == "24 months"
    # The change (value - baseline) with lower-is-better is the mirror image of the improvement.
    got = {t["model"]: t["t"] for t in out["mcpmod"]["tests"]}
    assert [got[m] for m in ref["models"]] == pytest.approx(ref["t"], rel=1e-10)
    last = out["visits"][-1]
    assert last["trend"]["p"] == pytest.approx(REF["compare"]["visits"][-1]["trend"]["p"], rel=1e-8)
    assert [r["arm"] for r in last["dunnett"]] == ["low", "mid", "high"]


@pytest.mark.parametrize("key", ["mcpmod_biom", "mcpmod_trial"])
@pytest.mark.parametrize("model", ["linear", "emax", "exponential", "quadratic"])
def test_target_dose_matches_td(key, model):
    ref = next(f for f in REF[key]["fits"] if f["model"] == model)
    dose, resp = dataset(key)
    td = target_dose(fit_dose_model(dose, resp, model), ref["Delta"])
    if ref.get("td") is None:
        assert td is None
    else:
        assert td == pytest.approx(ref["td"], rel=1e-4)


def test_target_dose_in_the_decreasing_direction_mirrors_increasing():
    dose, resp = dataset("mcpmod_trial")
    for model in ("linear", "emax", "quadratic"):
        up = target_dose(fit_dose_model(dose, resp, model), 5.0)
        down = target_dose(fit_dose_model(dose, -resp, model), 5.0, direction="decreasing")
        assert (up is None and down is None) or down == pytest.approx(up, rel=1e-6)
