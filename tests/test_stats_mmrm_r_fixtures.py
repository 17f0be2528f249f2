"""MMRM against R nlme::gls(corSymm + varIdent) and emmeans on a simulated 4-arm trial with
7 post-baseline visits and dropout. Data, script and output: tests/fixtures/mmrm/
(make_r_fixtures.R -> r_trial.csv, r_gls_reml.json, r_gls_ml.json); tests never call R."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from annulus.stats.mmrm import fit_mmrm

FIX = Path(__file__).resolve().parent / "fixtures" / "mmrm"
VISITS = ["W1", "M1", "M3", "M6", "M12", "M18", "M24"]
FORMULA = "value ~ base + arm*visit"


def _r_term(term: str) -> str:
    """R's 'armhigh:visitM12' -> formulaic's 'arm[T.high]:visit[T.M12]'."""
    if term == "(Intercept)":
        return "Intercept"
    return re.sub(r"\b(arm|visit)([A-Za-z0-9]+)", r"\1[T.\2]", term)


@pytest.fixture(scope="module")
def trial() -> pd.DataFrame:
    return pd.read_csv(FIX / "r_trial.csv")


@pytest.fixture(scope="module", params=["reml", "ml"])
def pair(request, trial):
    ref = json.loads((FIX / f"r_gls_{request.param}.json").read_text())
    res = fit_mmrm(trial, FORMULA, subject="subject", visit="visit", cov="us",
                   method=request.param, visit_order=VISITS)
    return request.param, res, ref


@pytest.mark.req("P-8.3")
def test_fixture_shape(trial):
    assert sorted(trial.arm.unique()) == ["control", "high", "low", "mid"]
    per_arm = trial.groupby("arm").subject.nunique()
    assert per_arm.between(25, 40).all()
    dropout = trial.loc[trial.visit == "M24", "value"].isna().mean()
    assert 0.1 < dropout < 0.3


@pytest.mark.req("P-8.3")
def test_neg2_loglik_equals_nlme(pair):
    # nlme 3.1-162's gls log-likelihood uses the same constants as SAS: for REML
    # -2 l = (N - p) log(2 pi) + log|V| + log|X'V^-1 X| + r'V^-1 r, with no log|X'X| term,
    # so the offset between -2 * logLik(gls) and our -2 log-likelihood is zero. (Including
    # log|X'X| would shift it by logdet_XtX, about 104 here.)
    method, res, ref = pair
    assert res.converged
    assert res.n_obs == ref["n_obs"]
    assert res.neg2_loglik - (-2 * ref["logLik"]) == pytest.approx(0.0, abs=1e-4)
    assert abs(ref["logdet_XtX"]) > 1  # so the check above would catch that offset


@pytest.mark.req("P-8.3")
def test_coefficients(pair):
    method, res, ref = pair
    mine = {c["term"]: c for c in res.coefficients}
    assert len(mine) == len(ref["coefficients"]) == ref["p"]
    n, p = ref["n_obs"], ref["p"]
    # Under ML, nlme scales the covariance of beta by N / (N - p); SAS (and we) do not.
    scale = math.sqrt(n / (n - p)) if method == "ml" else 1.0
    for c in ref["coefficients"]:
        got = mine[_r_term(c["term"])]
        assert got["estimate"] == pytest.approx(c["estimate"], abs=1e-3), c["term"]
        assert got["se"] * scale == pytest.approx(c["se"], rel=1e-3), c["term"]


@pytest.mark.req("P-8.3")
def test_covariance_matrix(pair):
    _, res, ref = pair
    assert ref["covariance"]["visits"] == VISITS == res.visits
    got = res.covariance.loc[VISITS, VISITS].to_numpy()
    assert np.allclose(got, np.array(ref["covariance"]["matrix"]), rtol=1e-3, atol=1e-3)


@pytest.mark.req("P-8.3")
def test_lsmeans_and_contrasts(pair):
    method, res, ref = pair
    n, p = ref["n_obs"], ref["p"]
    scale = math.sqrt(n / (n - p)) if method == "ml" else 1.0
    ls = {(r["arm"], r["visit"]): r for r in res.lsmeans(["arm", "visit"])}
    assert len(ls) == len(ref["lsmeans"]) == 28
    for r in ref["lsmeans"]:
        got = ls[(r["arm"], r["visit"])]
        assert got["estimate"] == pytest.approx(r["estimate"], abs=1e-3)
        assert got["se"] * scale == pytest.approx(r["se"], rel=1e-3)
    con = {(r["arm"], r["visit"]): r for r in res.contrasts(arm="arm", control="control",
                                                             by="visit")}
    assert len(con) == len(ref["contrasts"]) == 21
    for r in ref["contrasts"]:
        arm, control = r["contrast"].split(" - ")
        got = con[(arm, r["visit"])]
        assert control == got["control"] == "control"
        assert got["estimate"] == pytest.approx(r["estimate"], abs=1e-3)
        assert got["se"] * scale == pytest.approx(r["se"], rel=1e-3)
    # emmeans 1.8 reports df.error for gls (N - p - number of covariance parameters).
    assert ref["contrasts"][0]["df"] == n - p - 27


@pytest.mark.req("P-8.3")
def test_visit_order_matters_only_for_structured_covariances(trial):
    common = dict(subject="subject", visit="visit")
    text_order = sorted(VISITS)
    sorted_us = fit_mmrm(trial, FORMULA, cov="us", visit_order=text_order, **common)
    timed_us = fit_mmrm(trial, FORMULA, cov="us", visit_order=VISITS, **common)
    assert sorted_us.neg2_loglik == pytest.approx(timed_us.neg2_loglik, abs=1e-6)
    sorted_ar = fit_mmrm(trial, FORMULA, cov="ar1", visit_order=text_order, **common)
    timed_ar = fit_mmrm(trial, FORMULA, cov="ar1", visit_order=VISITS, **common)
    assert timed_ar.neg2_loglik < sorted_ar.neg2_loglik  # time order fits AR(1) better
    # By default the visit ids W1 ... M24 are put in time order by their units.
    default_ar = fit_mmrm(trial, FORMULA, cov="ar1", **common)
    assert default_ar.visits == VISITS
    assert default_ar.neg2_loglik == pytest.approx(timed_ar.neg2_loglik, abs=1e-8)
