"""The trial report's primary analysis equals R on a simulated completed trial.

``tests/fixtures/report/completed/adeff_vas.csv`` is the VAS analysis file of a completed
100-participant trial from the simulator (its known dose effect, missed visits and dropouts),
written by the ADaM writer with treatments visible (``make_data.py``). ``r_primary.R`` fitted the
primary MMRM on it, ``CHG ~ BASE + TRT01P*AVISIT`` with an unstructured covariance by REML, twice:
``nlme::gls`` + ``emmeans`` (Satterthwaite df; emmeans has no Kenward-Roger df for gls) and the R
package ``mmrm`` + ``emmeans`` (Satterthwaite and Kenward-Roger, the latter in SAS's linear form);
its README says how and why. R is never called here.

* ``annulus mmrm`` as the command line runs it (``fit_mmrm`` with the default Satterthwaite df)
  and ``mmrm_dunnett`` against both R fits;
* the report's own analysis (``annulus.report.efficacy.analyse`` with the analysis plan's primary
  end point: Kenward-Roger df) against the R package mmrm's Kenward-Roger;
* the estimated differences from placebo recover the simulated effect.

Tolerances (``_close``: |engine - R| <= tol * max(|R|, the row's SE), so that a number near zero is
held to its precision rather than to its own size):

* estimates, SEs, t, CI limits: 1e-6. Both R fits are at the same optimum as the engine (-2 REML
  equal to 1e-9; the differences measured are below 2e-7 against gls, 1e-10 against mmrm).
* df: 1e-6 against mmrm (TMB's exact Hessian; measured 1e-9); 5e-6 against gls, whose covariance
  of the covariance parameters is numDeriv's numerical Hessian of nlme's log-likelihood and the
  engine's a central difference of its analytic gradient (measured 5e-7).
* p: 1e-6 against mmrm; 2e-5 against gls, because a small p amplifies the relative errors of t
  and df: d log p / d log t is about -t^2 (t down to -6.5 here), so 1.3e-7 in t and 5e-7 in df
  give 3e-6 in p (measured).
* Dunnett-adjusted p: 5e-6 absolute. R's values are exact to about 1e-10 (integration over the
  chi distribution, no Monte Carlo, with each contrast's own fractional df as the engine uses);
  the engine's multivariate t probabilities come from quasi-Monte Carlo with a standard error
  below 1e-6 (annulus.stats.dose_response). The simultaneous critical value: 2e-5 absolute (the
  engine solves for it to 1e-6, and 1e-6 in probability is about 1e-5 in the quantile); the
  simultaneous limits: 1e-4 absolute (2e-5 times SEs up to 3.7).
* emmeans' own adjust = "mvt" values, for the reader who runs emmeans: p 2e-3 and limits 0.05
  absolute, because emmeans rounds every df down to an integer, gives each contrast its own
  critical value and integrates with mvtnorm's default tolerance (abseps 1e-3: about 1e-3 in p
  and 0.01 in the critical value).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from annulus.simulator.trajectories import expected_change

from .conftest import FIXTURES

pytestmark = [pytest.mark.req("X-8.5"), pytest.mark.req("P-8.3")]

HERE = FIXTURES / "report" / "completed"
FORMULA = "CHG ~ BASE + TRT01P*AVISIT"
PLACEBO = "Placebo (2 mL normal saline)"
VISITS = ["w1", "m1", "m3", "m6", "m12", "m18", "m24"]
# the analysis plan's primary end point (docs/statistics.md, "The analysis plan in the protocol file")
PRIMARY = SimpleNamespace(
    parameter="VAS", population="itt", visits=VISITS, primary_visit="m12", lower_is_better=True, responder=None,
    model=SimpleNamespace(method="mmrm", covariates=["baseline"], covariance="us", estimation="reml",
                          df="kenward-roger"))

TIGHT = 1e-6
DF_GLS, P_GLS = 5e-6, 2e-5
P_DUNNETT, CRIT_DUNNETT, LIMITS_DUNNETT = 5e-6, 2e-5, 1e-4
P_EMMEANS_MVT, LIMITS_EMMEANS_MVT = 2e-3, 0.05


def _r(name: str, fit: str, df_method: str) -> pd.DataFrame:
    table = pd.read_csv(HERE / f"r_{name}.csv")
    rows = table[(table["fit"] == fit) & (table["df_method"] == df_method)]
    assert len(rows), (name, fit, df_method)
    return rows.reset_index(drop=True)


def _close(got, want, tol: float, scale=None, what: str = "") -> None:
    got, want = np.asarray(got, float).ravel(), np.asarray(want, float).ravel()
    bound = tol * np.maximum(np.abs(want), 0 if scale is None else np.asarray(scale, float).ravel())
    bad = np.flatnonzero(~(np.abs(got - want) <= bound))
    assert not len(bad), (f"{what}: engine {got[bad[0]]!r} vs R {want[bad[0]]!r} "
                          f"(|difference| {abs(got[bad[0]] - want[bad[0]]):.3g}, allowed {bound[bad[0]]:.3g}; "
                          f"{len(bad)} of {len(got)} rows)")


def _by_key(rows: list[dict], *keys: str) -> dict:
    return {tuple(str(r[k]) for k in keys): r for r in rows}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    # as `annulus mmrm --data adeff_vas.csv` reads it
    return pd.read_csv(HERE / "adeff_vas.csv", keep_default_na=False, na_values=["NA", ""])


@pytest.fixture(scope="module")
def cli_fit(data):
    """``annulus mmrm --data adeff_vas.csv --formula "CHG ~ BASE + TRT01P*AVISIT" --subject USUBJID
    --visit AVISIT --cov us`` (the visits ordered by AVISITN, Satterthwaite df), with the Dunnett
    adjustment ``annulus dose ... --mmrm`` and the report apply to its contrasts."""
    from annulus.stats.dose_response import mmrm_dunnett
    from annulus.stats.mmrm import check_arm, fit_mmrm

    check_arm(data, "USUBJID", "TRT01P")
    fit = fit_mmrm(data, FORMULA, subject="USUBJID", visit="AVISIT", cov="us", method="reml", df="satterthwaite")
    scores = {str(a): float(d) for a, d in data[["TRT01P", "TRT01PN"]].drop_duplicates().itertuples(index=False)}
    return SimpleNamespace(
        fit=fit, lsmeans=fit.lsmeans(["TRT01P", "AVISIT"]), contrasts=fit.contrasts("TRT01P", PLACEBO),
        dunnett=mmrm_dunnett(fit, "TRT01P", PLACEBO, "AVISIT"), trend=fit.trend("TRT01P", scores))


@pytest.fixture(scope="module")
def report():
    """The trial report's analysis of the primary end point, on the file as the report reads it."""
    from annulus.report import efficacy

    frame = efficacy.read_adeff(HERE / "adeff_vas.csv")
    blind = efficacy.blind_of(frame)
    assert blind.level == "arms" and blind.control == PLACEBO
    return efficacy.analyse(frame, PRIMARY, blind=blind)


def test_fixture_is_an_adeff_file_of_a_completed_trial(data):
    from annulus.dictionary import build
    from annulus.interchange import adam, sample
    from annulus.protocol import default_protocol_path, load_protocol

    protocol = load_protocol(default_protocol_path())
    ctx = sample.context(protocol, build(protocol), "adam", blinding="arms", language="en")
    assert list(data.columns) == [c.name for c in adam.adeff_columns(ctx)]
    assert set(data["PARAMCD"]) == {"VAS"} and data["ABLFL"].isna().all() and set(data["ITTFL"]) == {"Y"}
    arms = {a.name.en: a.dose_score for a in protocol.arms}
    assert dict(data[["TRT01P", "TRT01PN"]].drop_duplicates().itertuples(index=False)) == arms
    days = {v.id: v.offset_days for v in protocol.schedule.visits if v.id in VISITS}
    assert dict(data[["AVISIT", "AVISITN"]].drop_duplicates().itertuples(index=False)) == days
    # 100 randomised (25 per arm), 18 dropped out (one before the first follow-up visit, so 99 have
    # rows) and 35 visits were missed: 608 rows, with gaps inside participants and monotone losses
    assert data["USUBJID"].nunique() == 99 and len(data) == 608
    per_subject = data.groupby("USUBJID")["AVISIT"].agg(list)
    assert (per_subject.map(len) < len(VISITS)).sum() > 20
    assert sum(v != VISITS[:len(v)] for v in per_subject) > 10  # an intermittent gap, not only a dropout
    # the R fits used every row
    fits = pd.read_csv(HERE / "r_fits.csv")
    assert (fits["n_subjects"] == 99).all() and (fits["n_obs"] == 608).all()


@pytest.mark.parametrize("fit", ["gls", "mmrm"])
def test_cli_mmrm_satterthwaite_equals_r(cli_fit, fit):
    df_tol = TIGHT if fit == "mmrm" else DF_GLS
    p_tol = TIGHT if fit == "mmrm" else P_GLS
    assert cli_fit.fit.neg2_loglik == pytest.approx(_r("fits", fit, "satterthwaite")["neg2_reml"][0], abs=1e-7)

    ls = _r("lsmeans", fit, "satterthwaite")
    got = _by_key(cli_fit.lsmeans, "TRT01P", "AVISIT")
    rows = [got[(a, v)] for a, v in zip(ls["arm"], ls["visit"])]
    assert len(rows) == len(got) == 28
    for key, tol in (("estimate", TIGHT), ("se", TIGHT), ("df", df_tol), ("lower", TIGHT), ("upper", TIGHT)):
        _close([r[key] for r in rows], ls[key], tol, ls["se"], f"LS-means {key} ({fit})")

    con = _r("contrasts", fit, "satterthwaite")
    got = _by_key(cli_fit.contrasts, "arm", "visit")
    rows = [got[(a, v)] for a, v in zip(con["arm"], con["visit"])]
    assert len(rows) == len(got) == 21 and all(r["control"] == PLACEBO for r in rows)
    for key, tol in (("estimate", TIGHT), ("se", TIGHT), ("df", df_tol), ("t", TIGHT), ("lower", TIGHT),
                     ("upper", TIGHT)):
        _close([r[key] for r in rows], con[key], tol, con["se"] if key != "t" else None, f"contrasts {key} ({fit})")
    _close([r["p"] for r in rows], con["p"], p_tol, None, f"contrasts p ({fit})")

    tr = _r("trend", fit, "satterthwaite")
    got = _by_key(cli_fit.trend, "visit")
    rows = [got[(v,)] for v in tr["visit"]]
    assert [r["visit"] for r in cli_fit.trend] == VISITS
    # the weights are the dose scores minus their plain mean, in R as in the engine
    weights = dict(part.rsplit("=", 1) for part in tr["weights"].iloc[0].split(";"))
    assert rows[0]["weights"] == pytest.approx({k: float(v) for k, v in weights.items()}, abs=1e-12)
    for key, tol in (("estimate", TIGHT), ("se", TIGHT), ("df", df_tol), ("t", TIGHT), ("lower", TIGHT),
                     ("upper", TIGHT)):
        _close([r[key] for r in rows], tr[key], tol, tr["se"] if key != "t" else None, f"trend {key} ({fit})")
    _close([r["p"] for r in rows], tr["p"], p_tol, None, f"trend p ({fit})")


@pytest.mark.parametrize("fit", ["gls", "mmrm"])
def test_dunnett_adjustment_of_the_satterthwaite_contrasts_equals_r(cli_fit, fit):
    con = _r("contrasts", fit, "satterthwaite")
    got = _by_key(cli_fit.dunnett, "arm", "visit")
    rows = [got[(a, v)] for a, v in zip(con["arm"], con["visit"])]
    assert len(rows) == len(got) == 21
    # the covariance of each visit's three contrasts, which the adjustment rests on
    cov = cli_fit.fit.contrast_cov("TRT01P", PLACEBO)
    for v in VISITS:
        at = con[con["visit"] == v]
        where = {(r["arm"], r["visit"]): i for i, r in enumerate(cli_fit.contrasts)}
        idx = [where[(a, v)] for a in at["arm"]]  # in R's order (low, mid, high)
        want = at[["cov_1", "cov_2", "cov_3"]].to_numpy()
        _close(cov[np.ix_(idx, idx)], want, TIGHT, np.sqrt(np.outer(np.diag(want), np.diag(want))), f"cov {v}")
    assert [r["p"] for r in rows] == pytest.approx(con["p_dunnett"].tolist(), abs=P_DUNNETT)
    assert [r["crit"] for r in rows] == pytest.approx(con["crit_dunnett"].tolist(), abs=CRIT_DUNNETT)
    assert [r["lower"] for r in rows] == pytest.approx(con["lower_dunnett"].tolist(), abs=LIMITS_DUNNETT)
    assert [r["upper"] for r in rows] == pytest.approx(con["upper_dunnett"].tolist(), abs=LIMITS_DUNNETT)
    # what emmeans prints with adjust = "mvt" (integer df, its own tolerance): close, not equal
    assert [r["p"] for r in rows] == pytest.approx(con["p_mvt_emmeans"].tolist(), abs=P_EMMEANS_MVT)
    assert [r["lower"] for r in rows] == pytest.approx(con["lower_mvt_emmeans"].tolist(), abs=LIMITS_EMMEANS_MVT)
    assert [r["upper"] for r in rows] == pytest.approx(con["upper_mvt_emmeans"].tolist(), abs=LIMITS_EMMEANS_MVT)
    # the adjusted p is never below the unadjusted one
    assert all(r["p"] >= r["p_unadjusted"] - P_DUNNETT for r in rows)


def test_report_primary_analysis_equals_r_kenward_roger(report):
    model = report["model"]
    assert (model["formula"], model["cov"], model["method"], model["df_method"]) == (
        FORMULA, "us", "reml", "kenward-roger")
    assert (model["n_subjects"], model["n_obs"], model["converged"], model["warnings"]) == (99, 608, True, [])
    assert report["visits"] == VISITS and not report["notes"]
    assert model["neg2_loglik"] == pytest.approx(_r("fits", "mmrm", "kenward-roger")["neg2_reml"][0], abs=1e-7)

    ls = _r("lsmeans", "mmrm", "kenward-roger")
    got = _by_key(report["lsmeans"], "arm", "visit")
    rows = [got[(a, v)] for a, v in zip(ls["arm"], ls["visit"])]
    assert len(rows) == len(got) == 28
    for key in ("estimate", "se", "df", "lower", "upper"):
        _close([r[key] for r in rows], ls[key], TIGHT, ls["se"], f"LS-means {key} (Kenward-Roger)")

    con = _r("contrasts", "mmrm", "kenward-roger")
    got = _by_key(report["contrasts"], "arm", "visit")
    rows = [got[(a, v)] for a, v in zip(con["arm"], con["visit"])]
    assert len(rows) == len(got) == 21
    for key in ("estimate", "se", "df", "t", "lower", "upper"):
        _close([r[key] for r in rows], con[key], TIGHT, con["se"] if key != "t" else None, f"contrasts {key} (KR)")
    _close([r["p"] for r in rows], con["p"], TIGHT, None, "contrasts p (Kenward-Roger)")
    assert [r["p_dunnett"] for r in rows] == pytest.approx(con["p_dunnett"].tolist(), abs=P_DUNNETT)
    assert [r["lower_dunnett"] for r in rows] == pytest.approx(con["lower_dunnett"].tolist(), abs=LIMITS_DUNNETT)
    assert [r["upper_dunnett"] for r in rows] == pytest.approx(con["upper_dunnett"].tolist(), abs=LIMITS_DUNNETT)

    tr = _r("trend", "mmrm", "kenward-roger")
    got = _by_key(report["trend"], "visit")
    rows = [got[(v,)] for v in tr["visit"]]
    for key in ("estimate", "se", "df", "t", "lower", "upper"):
        _close([r[key] for r in rows], tr[key], TIGHT, tr["se"] if key != "t" else None, f"trend {key} (KR)")
    _close([r["p"] for r in rows], tr["p"], TIGHT, None, "trend p (Kenward-Roger)")


def test_the_primary_analysis_recovers_the_simulated_effect(report, data):
    """Each dose minus placebo at each visit against the simulator's true mean difference,
    ``expected_change(dose, day) - expected_change(0, day)`` (the +4 mm of week 1 and the placebo
    response are the same in every arm). Rule, fixed before the fit was looked at: at the primary
    visit (m12) every dose's 95 % CI and Dunnett simultaneous CI contain the truth; over all 21
    dose x visit differences at least 18 of the 95 % CIs do (19.95 expected; with this seed 20 do,
    the mid dose at 6 months being the miss)."""
    doses = {str(a): float(d) for a, d in data[["TRT01P", "TRT01PN"]].drop_duplicates().itertuples(index=False)}
    day = {v: float(d) for v, d in report["visit_days"].items()}
    covered = {}
    for r in report["contrasts"]:
        truth = expected_change(doses[r["arm"]], day[r["visit"]]) - expected_change(0.0, day[r["visit"]])
        covered[(r["arm"], r["visit"])] = r["lower"] <= truth <= r["upper"]
        if r["visit"] == PRIMARY.primary_visit:
            assert r["lower"] <= truth <= r["upper"], (r["arm"], truth, r["lower"], r["upper"])
            assert r["lower_dunnett"] <= truth <= r["upper_dunnett"], (r["arm"], truth)
            assert r["p_dunnett"] < 0.05  # every dose differs from placebo at 12 months
    assert len(covered) == 21 and sum(covered.values()) >= 18, [k for k, ok in covered.items() if not ok]
    # and the dose trend at 12 months is negative (more cells, less pain) and significant
    m12 = next(t for t in report["trend"] if t["visit"] == PRIMARY.primary_visit)
    assert m12["upper"] < 0 and m12["p"] < 0.05 and math.isfinite(m12["df"])
