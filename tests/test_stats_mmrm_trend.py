"""Linear dose trend on the MMRM LS-means per visit, against R nlme::gls + emmeans
(tests/fixtures/mmrm/make_r_tests.R -> r_gls_trend.json; tests never call R) (P-8.2, P-8.3)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from annulus.cli import main
from annulus.stats.mmrm import MmrmError, fit_mmrm

FIX = Path(__file__).resolve().parent / "fixtures" / "mmrm"
VISITS = ["W1", "M1", "M3", "M6", "M12", "M18", "M24"]
SCORES = {"control": 0, "low": 5, "mid": 10, "high": 20}


@pytest.fixture(scope="module")
def fit():
    data = pd.read_csv(FIX / "r_trial.csv")
    return fit_mmrm(data, "value ~ base + arm*visit", subject="subject", visit="visit", cov="us",
                    visit_order=VISITS)


@pytest.mark.req("P-8.3", "P-8.2")
def test_trend_matches_r_emmeans(fit):
    ref = json.loads((FIX / "r_gls_trend.json").read_text())
    got = {r["visit"]: r for r in fit.trend("arm", SCORES)}
    assert [r["visit"] for r in fit.trend("arm", SCORES)] == VISITS  # time order
    assert got["W1"]["weights"] == pytest.approx(ref["weights"])
    assert fit.neg2_loglik == pytest.approx(-2 * ref["logLik"], abs=1e-4)
    for r in ref["trend"]:
        mine = got[r["visit"]]
        assert mine["estimate"] == pytest.approx(r["estimate"], abs=1e-3), r["visit"]
        assert mine["se"] == pytest.approx(r["se"], rel=1e-3), r["visit"]
        # emmeans gives gls the residual df; ours is Satterthwaite, so p follows from our df
        assert mine["p"] == pytest.approx(2 * stats.t.sf(abs(r["estimate"] / r["se"]), mine["df"]), rel=1e-2)
        assert mine["lower"] < mine["estimate"] < mine["upper"]


@pytest.mark.req("P-8.3")
def test_a_flat_dose_response_has_no_trend_weights_sum_to_zero(fit):
    rows = fit.trend("arm", {"control": 1, "low": 2, "mid": 3, "high": 4})
    assert sum(rows[0]["weights"].values()) == pytest.approx(0)
    # shifting every score by a constant changes nothing
    shifted = fit.trend("arm", {"control": 101, "low": 102, "mid": 103, "high": 104})
    assert [r["estimate"] for r in rows] == pytest.approx([r["estimate"] for r in shifted])


@pytest.mark.req("P-8.3")
@pytest.mark.parametrize("scores, words", [
    ({"control": 0, "low": 5, "mid": 10}, "no dose score for level 'high'"),
    ({"control": 1, "low": 1, "mid": 1, "high": 1}, "not all equal"),
    ({"control": "a", "low": 5, "mid": 10, "high": 20}, "must be numbers"),
])
def test_bad_scores_are_refused(fit, scores, words):
    with pytest.raises(MmrmError, match=words):
        fit.trend("arm", scores)


@pytest.mark.req("P-8.3")
def test_cli_prints_the_trend(capsys):
    base = ["mmrm", "--data", str(FIX / "r_trial.csv"), "--formula", "value ~ base + arm*visit",
            "--subject", "subject", "--visit", "visit", "--arm", "arm"]
    assert main(base + ["--trend", "control=0,low=5,mid=10,high=20", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["visit"] for r in doc["trend"]] == VISITS
    assert main(base + ["--trend", "control=0,low=five"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'five' of 'low' is not a number" in err


@pytest.mark.req("P-8.3")
def test_lsmeans_and_contrasts_list_visits_in_time_order(fit):
    assert [r["visit"] for r in fit.lsmeans(["arm", "visit"]) if r["arm"] == "control"] == VISITS
    assert [r["visit"] for r in fit.contrasts("arm", "control") if r["arm"] == "high"] == VISITS


@pytest.mark.req("P-8.3")
def test_score_keys_must_be_levels_numeric_levels_match_as_numbers():
    data = pd.read_csv(FIX / "r_trial.csv")
    data["dose"] = data["arm"].map(SCORES).astype(float)
    res = fit_mmrm(data, "value ~ base + C(dose)*visit", subject="subject", visit="visit", cov="us",
                   visit_order=VISITS)
    by_text = res.trend("dose", {"0": 0, "5": 5, "10": 10, "20": 20})
    by_number = res.trend("dose", {0.0: 0, 5: 5, 10: 10, 20: 20})
    assert [r["estimate"] for r in by_text] == pytest.approx([r["estimate"] for r in by_number])
    with pytest.raises(MmrmError, match="'7' is not a level of 'dose'"):
        res.trend("dose", {"0": 0, "5": 5, "10": 10, "20": 20, "7": 7})


@pytest.mark.req("P-8.3")
def test_cli_refuses_to_guess_the_time_order_of_unknown_visits(tmp_path, capsys):
    data = pd.read_csv(FIX / "r_trial.csv")
    data.loc[data["visit"] == "M18", "visit"] = "FU"
    path = tmp_path / "odd.csv"
    data.to_csv(path, index=False, na_rep="NA")
    base = ["mmrm", "--data", str(path), "--formula", "value ~ base + arm*visit", "--subject", "subject",
            "--visit", "visit"]
    assert main(base + ["--cov", "ar1"]) == 2
    err = capsys.readouterr().err
    assert "FU" in err and "--visit-order" in err and err.count("\n") == 1
    # One rule for every structure (issue 14): an unstructured fit asks for the order too.
    assert main(base + ["--cov", "us", "--json"]) == 2
    assert "--visit-order" in capsys.readouterr().err
    assert main(base + ["--cov", "us", "--json", "--visit-order", "W1,M1,M3,M6,M12,FU,M24"]) == 0
