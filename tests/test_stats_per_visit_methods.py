"""Pre-specified per-visit methods (P-8.2, statistics issue item 8): ANCOVA on the change with the
baseline as covariate, Welch t tests, and rank tests with the Hodges–Lehmann shift and its CI,
against R (``lm``, ``confint``, ``anova``, ``emmeans``, ``multcomp::glht``, ``t.test``,
``oneway.test``, ``wilcox.test(conf.int = TRUE)``, ``kruskal.test``;
tests/fixtures/stats/make_per_visit_methods.R → per_visit_methods.json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from annulus.stats.ancova import ancova
from annulus.stats.compare import compare_visits, load_long_table, rank_test, two_sample_test
from annulus.stats.hodges_lehmann import hodges_lehmann

STATS = Path(__file__).parent / "fixtures" / "stats"
REF = json.loads((STATS / "per_visit_methods.json").read_text())
CASES = [(name, i) for name in ("trial", "tied_small") for i in range(len(REF[name]["visits"]))]
IDS = [f"{name}-{REF[name]['visits'][i]['visit']}" for name, i in CASES]
# R's normal-approximation limits come from uniroot(tol = 1e-4)
UNIROOT = 1.5e-4


def close(a, b, rel=1e-9):
    return a == pytest.approx(b, rel=rel, abs=rel)


def table(name):
    return load_long_table(STATS / REF[name]["data"], "subject", "arm", "visit", "vas", "baseline",
                           "control")


def visit_rows(name, i):
    t = table(name)
    v = REF[name]["visits"][i]["visit"]
    at = t[t["visit"] == v].dropna(subset=["value", "baseline"])
    return at.assign(change=at["value"] - at["baseline"]), REF[name]["visits"][i]


def samples(at, arms):
    return {a: at.loc[at["arm"] == a, "change"].to_numpy() for a in arms}


@pytest.mark.req("P-8.2")
@pytest.mark.parametrize("name, i", CASES, ids=IDS)
def test_ancova_matches_r_lm_emmeans_and_multcomp(name, i):
    at, ref = visit_rows(name, i)
    arms = REF[name]["arms"]
    fit = ancova(at["change"], at["arm"], at["baseline"], arms)
    r = ref["ancova"]
    assert fit["n"] == r["n"] and fit["df"] == r["df"]
    assert close(fit["slope"], r["baseline_slope"])
    om = fit["omnibus"]
    assert (om["df1"], om["df2"]) == (r["df1"], r["df"])
    assert close(om["statistic"], r["F"]) and close(om["p"], r["p_F"], 1e-8)
    mine = {row["arm"]: row for row in fit["vs_control"]}
    for j, want in enumerate(r["vs_control"]):
        got = mine[want["arm"]]["test"]
        for key in ("estimate", "se", "p", "lower", "upper"):
            assert close(got[key], want[key]), key
        assert close(got["statistic"], want["t"])
        # multcomp's Dunnett: both sides integrate the multivariate t numerically
        dun, rd = mine[want["arm"]]["dunnett"], r["dunnett"]
        assert close(dun["estimate"], rd["estimate"][j]) and close(dun["se"], rd["se"][j])
        assert dun["p"] == pytest.approx(rd["p"][j], abs=5e-5)
        assert dun["crit"] == pytest.approx(rd["crit"], abs=2e-4)
        assert (dun["lower"], dun["upper"]) == pytest.approx((rd["lower"][j], rd["upper"][j]),
                                                             abs=1e-3)
    means = {m["arm"]: m for m in fit["adjusted_means"]}
    for want in r["adjusted_means"]:
        got = means[want["arm"]]
        for key, rkey in (("mean", "emmean"), ("se", "se"), ("df", "df"), ("lower", "lower"),
                          ("upper", "upper")):
            assert close(got[key], want[rkey]), key


@pytest.mark.req("P-8.2")
@pytest.mark.parametrize("name, i", CASES, ids=IDS)
def test_ancova_on_the_value_gives_the_same_arm_differences(name, i):
    at, ref = visit_rows(name, i)
    fit = ancova(at["value"], at["arm"], at["baseline"], REF[name]["arms"], response="value")
    got = {row["arm"]: row["test"]["estimate"] for row in fit["vs_control"]}
    for want in ref["ancova"]["vs_control"]:
        assert close(got[want["arm"]], want["estimate_value_endpoint"])
    assert fit["name"] == "ANCOVA (value ~ arm + baseline)"


@pytest.mark.req("P-8.2")
@pytest.mark.parametrize("name, i", CASES, ids=IDS)
def test_welch_matches_r_t_test_and_oneway_test(name, i):
    at, ref = visit_rows(name, i)
    s = samples(at, REF[name]["arms"])
    for want in ref["welch"]["vs_control"]:
        got = two_sample_test(s[want["arm"]], s["control"], "welch")
        assert got["name"] == "Welch t"
        for key in ("estimate", "df", "p", "lower", "upper"):
            assert close(got[key], want[key]), key
        assert close(got["statistic"], want["t"])
        assert close(got["estimate"] / got["se"], want["t"])


@pytest.mark.req("P-8.2")
@pytest.mark.parametrize("name, i", CASES, ids=IDS)
def test_rank_tests_and_hodges_lehmann_match_r_wilcox_test(name, i):
    at, ref = visit_rows(name, i)
    s = samples(at, REF[name]["arms"])
    for want in ref["rank"]["vs_control"]:
        x, y = s[want["arm"]], s["control"]
        got = rank_test(x, y)
        assert got["statistic"] == want["W"] and got["exact"] is want["exact"] is False
        assert close(got["p"], want["p"], 1e-8)
        assert got["estimate"] == want["median_of_differences"]
        assert got["lower"] == pytest.approx(want["lower"], abs=UNIROOT)
        assert got["upper"] == pytest.approx(want["upper"], abs=UNIROOT)
        assert got["level"] == want["conf_level"]
        assert_estimate_as_r(x, y, got["estimate"], want["estimate"])


def assert_estimate_as_r(x, y, mine, r_estimate):
    """R's normal-approximation estimate is a root search of the rank sum (tolerance 1e-4): the
    median of the differences, or anywhere on a stretch where the rank sum equals its null mean
    (then the median is that stretch's midpoint)."""
    if abs(mine - r_estimate) <= UNIROOT:
        return
    d = np.sort(np.subtract.outer(x, y).ravel())
    half = len(d) // 2
    assert len(d) % 2 == 0 and d[half - 1] < r_estimate < d[half], (mine, r_estimate)
    assert mine == (d[half - 1] + d[half]) / 2


def test_a_flat_rank_sum_is_exercised():
    # 18 months, low vs control: R's estimate -8.75 lies inside the stretch (-9, -8) where the
    # rank sum equals its null mean; the median of the differences is -8.5.
    ests = [(w["estimate"], w["median_of_differences"])
            for v in REF["trial"]["visits"] for w in v["rank"]["vs_control"]]
    assert any(abs(a - b) > 0.1 for a, b in ests)


@pytest.mark.req("P-8.2")
@pytest.mark.parametrize("case", REF["hodges_lehmann"], ids=[c["name"] for c in REF["hodges_lehmann"]])
def test_hodges_lehmann_exact_and_tied_cases_match_r(case):
    x = np.atleast_1d(np.asarray(case["x"], dtype=float))
    y = np.atleast_1d(np.asarray(case["y"], dtype=float))
    got = hodges_lehmann(x, y)
    assert got["exact"] is case["exact"]
    assert got["level"] == pytest.approx(case["conf_level"], rel=1e-12)
    assert got["estimate"] == pytest.approx(case["median_of_differences"], rel=1e-12)
    if case["exact"]:
        # order statistics of the differences: exactly R's numbers
        assert (got["lower"], got["upper"]) == pytest.approx((case["lower"], case["upper"]),
                                                             rel=1e-12, abs=1e-12)
        assert got["estimate"] == pytest.approx(case["estimate"], rel=1e-12)
    else:
        assert got["lower"] == pytest.approx(case["lower"], abs=UNIROOT)
        assert got["upper"] == pytest.approx(case["upper"], abs=UNIROOT)
        assert_estimate_as_r(x, y, got["estimate"], case["estimate"])
    mw = rank_test(x, y)
    assert mw["statistic"] == case["W"] and mw["p"] == pytest.approx(case["p"], rel=1e-8)


def test_hodges_lehmann_interval_holds_the_estimate_and_shifts_with_the_data():
    rng = np.random.default_rng(3)
    x, y = rng.normal(2, 1, 12), rng.normal(0, 1, 15)
    a, b = hodges_lehmann(x, y), hodges_lehmann(x + 10, y)
    assert a["lower"] < a["estimate"] < a["upper"]
    assert (b["estimate"], b["lower"], b["upper"]) == pytest.approx(
        (a["estimate"] + 10, a["lower"] + 10, a["upper"] + 10), abs=1e-9)


def test_constant_samples_give_the_shift_without_an_interval_not_an_error():
    got = rank_test([5, 5, 5], [5, 5])
    assert got["estimate"] == 0 and got["lower"] is None and "the same" in got["note"]
    assert rank_test([7, 7], [5, 5, 5])["estimate"] == 2


@pytest.mark.req("P-8.2")
def test_the_data_chosen_rule_now_reports_the_hodges_lehmann_shift():
    # 3 months: skewed, so the rule picks Kruskal–Wallis; each arm vs control is Mann–Whitney with
    # the Hodges–Lehmann shift and its CI (no longer a bare difference of medians).
    t = table("trial")
    r = compare_visits(t[t["visit"] == "3 months"], "control", method="auto")
    v = r["visits"][0]
    assert v["choice"]["test"] == "kruskal"
    ref = {w["arm"]: w for w in REF["trial"]["visits"][2]["rank"]["vs_control"]}
    for c in v["vs_control"]:
        want = ref[c["arm"]]
        assert c["test"]["estimate_name"] == "Hodges–Lehmann shift"
        assert c["test"]["estimate"] == want["median_of_differences"]
        assert c["test"]["lower"] == pytest.approx(want["lower"], abs=UNIROOT)
        assert "difference_of_medians" in c["test"] and "dunnett" in c


@pytest.mark.req("P-8.2")
def test_compare_visits_primary_then_sensitivity():
    t = table("tied_small")
    r = compare_visits(t, "control", method="welch", sensitivity=["rank", "ancova"])
    assert (r["method"], r["sensitivity"], r["covariate"]) == ("welch", ["rank", "ancova"], "baseline")
    for v, ref in zip(r["visits"], REF["tied_small"]["visits"], strict=True):
        assert v["method"] == "welch" and "choice" not in v
        assert v["omnibus"]["name"] == "Welch's ANOVA"
        assert close(v["omnibus"]["p"], ref["welch"]["p"]) and close(v["omnibus"]["df2"], ref["welch"]["df2"])
        assert [s["method"] for s in v["sensitivity"]] == ["rank", "ancova"]
        rank, anc = v["sensitivity"]
        assert close(rank["omnibus"]["statistic"], ref["rank"]["H"])
        assert close(anc["omnibus"]["p"], ref["ancova"]["p_F"], 1e-8)
        assert anc["model"]["n"] == ref["ancova"]["n"]


def test_ancova_is_not_estimable_when_the_baseline_only_follows_the_arm():
    arm = ["c", "c", "t", "t"]
    got = ancova([1.0, 2.0, 3.0, 5.0], arm, [10.0, 10.0, 20.0, 20.0], ["c", "t"])
    assert "not estimable" in got["note"] and "baseline" in got["note"]


def test_welch_with_a_constant_arm_is_reported_not_raised():
    t = table("tied_small")
    t = t[t["visit"] == "1 week"].copy()
    t.loc[t["arm"] == "low", "value"] = t.loc[t["arm"] == "low", "baseline"] + 2
    v = compare_visits(t, "control", method="welch")["visits"][0]
    assert v["omnibus"]["p"] is None and "spread" in v["omnibus"]["note"]
    assert all(c["test"]["p"] is not None for c in v["vs_control"])
