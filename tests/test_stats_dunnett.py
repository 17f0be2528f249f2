"""Dunnett's many-to-one comparisons: per visit against R multcomp, and on MMRM contrasts against
nlme::gls + emmeans (tests/fixtures/stats/make_fixtures.R)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from annulus.stats import (
    adjusted_p_values,
    critical_value,
    dunnett,
    dunnett_contrasts,
    mmrm_dunnett,
)
from annulus.stats._io import InputError

STATS = Path(__file__).parent / "fixtures" / "stats"
REF = json.loads((STATS / "reference.json").read_text())
VISITS = REF["compare"]["visits"]
ARMS = ["control", "low", "mid", "high"]


@pytest.fixture(scope="module")
def trial():
    d = pd.read_csv(STATS / "trial.csv").dropna(subset=["vas"])
    return d.assign(chg=d["vas"] - d["baseline"])


def samples_at(trial, visit):
    at = trial[trial["visit"] == visit]
    return {a: at.loc[at["arm"] == a, "chg"].to_numpy() for a in ARMS}


@pytest.mark.req("P-8.2")
@pytest.mark.parametrize("i", range(len(VISITS)), ids=[v["visit"] for v in VISITS])
def test_dunnett_matches_multcomp(trial, i):
    ref = VISITS[i]["dunnett"]
    rows = dunnett(samples_at(trial, VISITS[i]["visit"]), "control")
    assert [r["arm"] for r in rows] == ["low", "mid", "high"]
    for j, r in enumerate(rows):
        assert r["estimate"] == pytest.approx(ref["estimate"][j], rel=1e-10)
        assert r["se"] == pytest.approx(ref["se"][j], rel=1e-10)
        assert r["t"] == pytest.approx(ref["t"][j], rel=1e-10)
        # Both sides integrate the multivariate t numerically (errors about 1e-5).
        assert r["p"] == pytest.approx(ref["p"][j], abs=5e-5)
        # multcomp's critical value comes from a root search with tolerance about 1e-4.
        assert r["crit"] == pytest.approx(ref["crit"], abs=2e-4)
        assert r["lower"] == pytest.approx(ref["lower"][j], abs=1e-3)
        assert r["upper"] == pytest.approx(ref["upper"][j], abs=1e-3)


def test_dunnett_agrees_with_scipy(trial):
    s = samples_at(trial, "24 months")
    mine = dunnett(s, "control")
    theirs = stats.dunnett(s["low"], s["mid"], s["high"], control=s["control"], rng=1)
    assert [r["p"] for r in mine] == pytest.approx(list(theirs.pvalue), abs=1e-4)


def test_unequal_groups_and_one_sided():
    rng = np.random.default_rng(3)
    s = {"c": rng.normal(0, 1, 8), "a": rng.normal(1, 1, 15), "b": rng.normal(0, 1, 4)}
    two = {r["arm"]: r for r in dunnett(s, "c")}
    up = {r["arm"]: r for r in dunnett(s, "c", alternative="greater")}
    theirs = stats.dunnett(s["a"], s["b"], control=s["c"], alternative="greater", rng=1)
    assert [up["a"]["p"], up["b"]["p"]] == pytest.approx(list(theirs.pvalue), abs=1e-4)
    assert up["a"]["upper"] == np.inf
    # A one-sided bound is tighter than the two-sided one on the same side.
    assert up["a"]["lower"] > two["a"]["lower"]


def test_single_contrast_reduces_to_the_t_test():
    rows = dunnett_contrasts([1.5], [[0.49]], 20)
    assert rows[0]["p"] == pytest.approx(2 * stats.t.sf(1.5 / 0.7, 20), rel=1e-12)
    assert rows[0]["crit"] == pytest.approx(stats.t.ppf(0.975, 20), rel=1e-12)


def test_adjustment_lies_between_none_and_bonferroni():
    corr = np.array([[1, 0.5, 0.5], [0.5, 1, 0.5], [0.5, 0.5, 1]])
    t = np.array([2.1, 1.0, -2.6])
    p = adjusted_p_values(t, corr, 40)
    raw = 2 * stats.t.sf(np.abs(t), 40)
    assert np.all(p > raw) and np.all(p < np.minimum(1, 3 * raw))
    c = critical_value(corr, 40)
    assert stats.t.ppf(0.975, 40) < c < stats.t.ppf(1 - 0.025 / 3, 40)


def test_dunnett_errors():
    with pytest.raises(InputError, match="control"):
        dunnett({"a": [1, 2], "b": [2, 3]}, "c")
    with pytest.raises(InputError, match="no observations"):
        dunnett({"a": [1, 2], "b": []}, "a")


@pytest.mark.req("P-8.3")
@pytest.mark.parametrize("i", range(len(REF["mmrm_dunnett"])),
                         ids=[v["visit"] for v in REF["mmrm_dunnett"]])
def test_multivariate_t_adjustment_of_mmrm_contrasts_matches_r(i):
    # emmeans contrasts of an nlme::gls fit (unstructured), adjusted with mvtnorm::pmvt.
    ref = REF["mmrm_dunnett"][i]
    rows = dunnett_contrasts(ref["estimate"], np.array(ref["cov"]), ref["df_integer"])
    assert [r["se"] for r in rows] == pytest.approx(ref["se"], rel=1e-8)
    assert [r["p_unadjusted"] for r in rows] == pytest.approx(ref["p_unadjusted"], rel=1e-6,
                                                              abs=1e-12)
    assert [r["p"] for r in rows] == pytest.approx(ref["p_mvt"], abs=5e-5)


class _FittedStub:
    """A fitted model exposing the contrasts interface, with R's numbers inside."""

    def __init__(self, ref):
        self.ref = ref

    def contrasts(self, arm, control, by):
        return [{"arm": a, "control": control, "visit": v["visit"], "estimate": v["estimate"][j],
                 "se": v["se"][j], "df": v["df_integer"][j]}
                for v in self.ref for j, a in enumerate(["low", "mid", "high"])]

    def contrast_cov(self, arm, control, by):
        k = 3 * len(self.ref)
        cov = np.zeros((k, k))
        for i, v in enumerate(self.ref):
            cov[3 * i:3 * i + 3, 3 * i:3 * i + 3] = v["cov"]
        return cov


@pytest.mark.req("P-8.3")
def test_mmrm_dunnett_adjusts_visit_by_visit():
    ref = REF["mmrm_dunnett"][:2]
    rows = mmrm_dunnett(_FittedStub(ref), "arm", "control", "visit")
    assert [(r["visit"], r["arm"]) for r in rows][:3] == [(ref[0]["visit"], a)
                                                          for a in ("low", "mid", "high")]
    got = [r["p"] for r in rows]
    assert got == pytest.approx(ref[0]["p_mvt"] + ref[1]["p_mvt"], abs=5e-5)


@pytest.mark.req("P-8.3")
def test_mmrm_contrast_covariance_matches_emmeans(trial):
    mmrm = pytest.importorskip("annulus.stats.mmrm")
    fit = mmrm.fit_mmrm(trial, "chg ~ baseline + arm * visit", subject="subject", visit="visit",
                        cov="us")
    rows = mmrm_dunnett(fit, "arm", "control", "visit")
    for ref in REF["mmrm_dunnett"]:
        mine = {r["arm"]: r for r in rows if r["visit"] == ref["visit"]}
        assert [mine[a]["estimate"] for a in ("low", "mid", "high")] == pytest.approx(
            ref["estimate"], abs=1e-3)
        assert [mine[a]["se"] for a in ("low", "mid", "high")] == pytest.approx(ref["se"],
                                                                              rel=1e-3)
    # The covariance of the contrasts (not only their SEs) must agree: recompute the adjusted
    # p-values with R's df and compare with R's.
    from annulus.stats.dose_response import _contrast_covariance

    raw = fit.contrasts(arm="arm", control="control", by="visit")
    cov = _contrast_covariance(fit, raw, arm="arm", control="control", visit="visit")
    for ref in REF["mmrm_dunnett"]:
        idx = sorted((i for i, r in enumerate(raw) if r["visit"] == ref["visit"]),
                     key=lambda i: ["low", "mid", "high"].index(raw[i]["arm"]))
        np.testing.assert_allclose(cov[np.ix_(idx, idx)], ref["cov"], rtol=1e-3, atol=1e-3)


@pytest.mark.req("P-8.3")
def test_cli_dose_adjusts_mmrm_contrasts(tmp_path, capsys):
    pytest.importorskip("annulus.stats.mmrm")
    from annulus.cli import main

    data = pd.read_csv(STATS / "trial.csv")
    small = tmp_path / "two_visits.csv"
    data[data["visit"].isin(["1 week", "24 months"])].to_csv(small, index=False)
    code = main(["dose", "--data", str(small), "--subject", "subject", "--arm", "arm", "--visit",
                 "visit", "--value", "vas", "--baseline", "baseline", "--control", "control",
                 "--dose", "control=0,low=5,mid=10,high=20", "--mmrm", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)["mmrm_dunnett"]
    assert out["converged"] is True
    rows = out["contrasts"]
    assert sorted({r["visit"] for r in rows}) == ["1 week", "24 months"]
    assert len(rows) == 6
    for r in rows:
        assert r["p_unadjusted"] <= r["p"] <= min(1.0, 3 * r["p_unadjusted"] + 1e-4)


@pytest.mark.parametrize("df", [None, 50.0])
def test_singular_correlation_against_direct_integration(df):
    # T = (Z1, Z2, (Z1 + Z2)/sqrt 2) / S: P(max T <= c) by one- and two-dimensional quadrature.
    from scipy import integrate

    from annulus.stats.dose_response import _prob_max_below

    c = 2.0

    def given_scale(s):
        return integrate.quad(lambda z: stats.norm.pdf(z)
                              * stats.norm.cdf(min(c * s, c * s * np.sqrt(2) - z)),
                              -np.inf, c * s, limit=200)[0]

    if df is None:
        expected = given_scale(1.0)
    else:
        # Gauss-Legendre over the quantiles of the t denominator S.
        x, w = np.polynomial.legendre.leggauss(64)
        u = (x + 1) / 2
        expected = sum(wi / 2 * given_scale(np.sqrt(stats.chi2.ppf(ui, df) / df))
                       for ui, wi in zip(u, w, strict=True))
    a = np.array([[1, 0], [0, 1], [1, 1]]) / np.sqrt([[1], [1], [2]])
    corr = a @ a.T
    assert np.linalg.matrix_rank(corr) == 2
    assert _prob_max_below(c, corr, df, two_sided=False) == pytest.approx(expected, abs=2e-5)
