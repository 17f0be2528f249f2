"""Per-visit comparisons (P-8.2) against R: t.test, oneway.test, kruskal.test, wilcox.test,
shapiro.test, car::leveneTest, chisq.test and fisher.test (tests/fixtures/stats/make_fixtures.R)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from annulus.cli import main
from annulus.stats import (
    choose_test,
    compare_visits,
    fisher_exact_2xk,
    load_long_table,
    mann_whitney,
    omnibus_test,
    responder_test,
    two_sample_test,
)

STATS = Path(__file__).parent / "fixtures" / "stats"
REF = json.loads((STATS / "reference.json").read_text())
VISITS = REF["compare"]["visits"]
ARMS = ["control", "low", "mid", "high"]
IDS = [v["visit"] for v in VISITS]


@pytest.fixture(scope="module")
def table():
    return load_long_table(STATS / "trial.csv", "subject", "arm", "visit", "vas", "baseline",
                           "control")


@pytest.fixture(scope="module")
def result(table):
    return compare_visits(table, "control", responder_threshold=15)


def changes(table, visit):
    at = table[(table["visit"] == visit)].dropna(subset=["value"])
    return {a: (at.loc[at["arm"] == a, "value"] - at.loc[at["arm"] == a, "baseline"]).to_numpy()
            for a in ARMS}


def by_arm(rows, key="arm"):
    return {r[key]: r for r in rows}


@pytest.mark.req("P-8.2")
@pytest.mark.parametrize("i", range(len(VISITS)), ids=IDS)
def test_descriptive_statistics_match_r(result, i):
    ref, mine = VISITS[i], by_arm(result["visits"][i]["summary"])
    assert result["visits"][i]["visit"] == ref["visit"]
    for r in ref["summary"]:
        for part in ("value", "change"):
            got, want = mine[r["arm"]][part], r[part]
            assert got["n"] == want["n"]
            for k in ("mean", "sd", "median", "q1", "q3", "lower", "upper"):
                assert got[k] == pytest.approx(want[k], rel=1e-10, abs=1e-10), (part, k)


@pytest.mark.req("P-8.2")
@pytest.mark.parametrize("i", range(len(VISITS)), ids=IDS)
def test_normality_variance_and_omnibus_tests_match_r(table, i):
    ref = VISITS[i]
    samples = changes(table, ref["visit"])
    choice = choose_test(samples)
    for a, p in zip(ARMS, ref["shapiro_p"], strict=True):
        assert choice["shapiro_p"][a] == pytest.approx(p, rel=1e-6)
    assert choice["levene"]["statistic"] == pytest.approx(ref["levene"]["F"], rel=1e-10)
    assert choice["levene"]["p"] == pytest.approx(ref["levene"]["p"], rel=1e-8)
    for test, key, stat in (("anova", "anova", "F"), ("welch", "welch", "F"),
                            ("kruskal", "kruskal", "H")):
        got = omnibus_test(samples, test)
        assert got["statistic"] == pytest.approx(ref[key][stat], rel=1e-10)
        assert got["p"] == pytest.approx(ref[key]["p"], rel=1e-8)
    assert omnibus_test(samples, "welch")["df2"] == pytest.approx(ref["welch"]["df2"], rel=1e-10)


@pytest.mark.req("P-8.2")
@pytest.mark.parametrize("i", range(len(VISITS)), ids=IDS)
def test_the_test_is_chosen_by_the_rule(result, i):
    # The rule applied to R's p-values must give the test the library chose.
    ref = VISITS[i]
    if min(ref["shapiro_p"]) < 0.05:
        expected = "kruskal"
    elif ref["levene"]["p"] < 0.05:
        expected = "welch"
    else:
        expected = "anova"
    visit = result["visits"][i]
    assert visit["choice"]["test"] == expected
    assert visit["choice"]["reason"]
    want = {"anova": ref["anova"]["p"], "welch": ref["welch"]["p"], "kruskal": ref["kruskal"]["p"]}
    assert visit["omnibus"]["p"] == pytest.approx(want[expected], rel=1e-8)


def test_the_fixture_exercises_every_branch(result):
    assert {v["choice"]["test"] for v in result["visits"]} == {"anova", "welch", "kruskal"}


@pytest.mark.req("P-8.2")
@pytest.mark.parametrize("i", range(len(VISITS)), ids=IDS)
def test_each_dose_vs_control_matches_r(table, i):
    ref = VISITS[i]
    samples = changes(table, ref["visit"])
    for r in ref["pairwise"]:
        x, y = samples[r["arm"]], samples["control"]
        for test, key in (("anova", "student"), ("welch", "welch")):
            got, want = two_sample_test(x, y, test), r[key]
            assert got["statistic"] == pytest.approx(want["t"], rel=1e-10)
            assert got["df"] == pytest.approx(want["df"], rel=1e-10)
            assert got["p"] == pytest.approx(want["p"], rel=1e-8)
            assert (got["lower"], got["upper"]) == pytest.approx((want["lower"], want["upper"]),
                                                                 rel=1e-10)
        mw = two_sample_test(x, y, "kruskal")
        assert mw["statistic"] == r["mannwhitney"]["W"]
        assert mw["p"] == pytest.approx(r["mannwhitney"]["p"], rel=1e-8)


@pytest.mark.req("P-8.2")
def test_exact_mann_whitney_without_ties_matches_r():
    data = pd.read_csv(STATS / "mw_small.csv")
    r = mann_whitney(data.y[data.arm == "dose"], data.y[data.arm == "control"])
    assert r["exact"] is True
    assert r["statistic"] == REF["mw_small"]["W"]
    assert r["p"] == pytest.approx(REF["mw_small"]["p"], rel=1e-10)


@pytest.mark.req("P-8.2")
@pytest.mark.parametrize("i", range(len(VISITS)), ids=IDS)
def test_responder_tests_match_r(result, i):
    ref = VISITS[i]["responders"]
    mine = result["visits"][i]["responders"]
    rates = by_arm(mine["rates"])
    assert [rates[a]["responders"] for a in ARMS] == ref["counts"]
    assert [rates[a]["n"] for a in ARMS] == ref["totals"]
    overall = mine["overall"]
    if ref["chisq"]["min_expected"] < 5:
        assert overall["name"] == "Fisher's exact"
        assert overall["p"] == pytest.approx(ref["fisher_p"], rel=1e-8)
    else:
        assert overall["name"] == "chi-square"
        assert overall["statistic"] == pytest.approx(ref["chisq"]["X2"], rel=1e-10)
        assert overall["p"] == pytest.approx(ref["chisq"]["p"], rel=1e-8)
    pair = by_arm(mine["vs_control"])
    for r in ref["pairwise"]:
        got = pair[r["arm"]]
        if r["min_expected"] < 5:
            assert got["name"] == "Fisher's exact"
            assert got["p"] == pytest.approx(r["fisher_p"], rel=1e-8)
        else:
            assert got["name"] == "chi-square (Yates)"
            assert got["p"] == pytest.approx(r["chisq_p"], rel=1e-8)


@pytest.mark.req("P-8.2")
@pytest.mark.parametrize("i", range(len(VISITS)), ids=IDS)
def test_fisher_2xk_matches_r_on_every_table(i):
    ref = VISITS[i]["responders"]
    counts, totals = np.array(ref["counts"]), np.array(ref["totals"])
    assert fisher_exact_2xk(np.vstack([counts, totals - counts])) == pytest.approx(
        ref["fisher_p"], rel=1e-8)


def test_responder_test_without_any_responder_says_so():
    r = responder_test([0, 0, 0], [10, 10, 10])
    assert r["p"] is None and "none" in r["reason"]


def test_a_higher_is_better_endpoint_counts_increases(table):
    # Flip the scale: 100 - VAS is "higher is better", so the same subjects respond.
    table = table[table["visit"].isin(["1 week", "1 month"])]
    flipped = table.assign(value=100 - table["value"], baseline=100 - table["baseline"])
    a = compare_visits(table, "control", responder_threshold=15)
    b = compare_visits(flipped, "control", responder_threshold=15, lower_is_better=False)
    for va, vb in zip(a["visits"], b["visits"], strict=True):
        assert va["responders"]["rates"] == vb["responders"]["rates"]


def test_analysing_the_value_instead_of_the_change(table):
    r = compare_visits(table, "control", endpoint="value")
    at = table[(table["visit"] == "1 week")].dropna(subset=["value"])
    samples = {a: at.loc[at["arm"] == a, "value"].to_numpy() for a in ARMS}
    assert r["visits"][0]["choice"] == choose_test(
        {a: samples[a] for a in r["arms"]})


@pytest.mark.req("P-8.2")
def test_cli_json_reports_tests_and_reasons(capsys):
    code = main(["compare", "--data", str(STATS / "trial.csv"), "--subject", "subject", "--arm",
                 "arm", "--visit", "visit", "--value", "vas", "--baseline", "baseline",
                 "--control", "control", "--responder-threshold", "15", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [v["visit"] for v in out["visits"]] == IDS
    welch = out["visits"][1]
    assert welch["omnibus"]["name"] == "Welch's ANOVA"
    assert "Levene" in welch["choice"]["reason"]
    assert welch["omnibus"]["p"] == pytest.approx(VISITS[1]["welch"]["p"], rel=1e-8)


def test_cli_table_output(capsys):
    code = main(["compare", "--data", str(STATS / "trial.csv"), "--subject", "subject", "--arm",
                 "arm", "--visit", "visit", "--value", "vas", "--baseline", "baseline",
                 "--control", "control"])
    out = capsys.readouterr().out
    assert code == 0
    assert "== 24 months (change) ==" in out
    assert "Kruskal–Wallis — not normal" in out


def test_a_visit_with_one_subject_in_an_arm_is_described_but_not_tested(table):
    two = table[table["visit"].isin(["1 week", "1 month"])]
    low_week1 = two[(two["visit"] == "1 week") & (two["arm"] == "low")].index
    sparse = two.drop(low_week1[1:])  # one subject left in arm "low" at week 1
    r = compare_visits(sparse, "control")
    first = r["visits"][0]
    assert "fewer than 2 observations in arm low" in first["note"]
    assert by_arm(first["summary"])["low"]["value"]["n"] == 1
    assert "omnibus" in r["visits"][1]
