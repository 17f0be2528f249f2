"""One visit-ordering rule for mmrm, compare and dose (issue 14, item 1).

R reference: tests/fixtures/mmrm/make_r_visit_order.R (nlme::gls, REML, visits in time order)
wrote r_visit_order.csv and r_gls_visit_order.json; the tests never call R.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from annulus.cli import main
from annulus.stats._io import InputError
from annulus.stats.mmrm import MmrmError, fit_mmrm
from annulus.stats.visits import label_time, order_visits

FIX = Path(__file__).parent / "fixtures" / "mmrm"
TIME = ["Week 1", "Month 1", "Month 3", "Month 6", "Month 12", "Month 18", "Month 24"]
IDS = ["W1", "M1", "M3", "M6", "M12", "M18", "M24"]


@pytest.fixture(scope="module")
def ref():
    return json.loads((FIX / "r_gls_visit_order.json").read_text())


@pytest.fixture(scope="module")
def data():
    return pd.read_csv(FIX / "r_visit_order.csv")


# --- the rule ------------------------------------------------------------------------------------


@pytest.mark.req("P-8.3")
@pytest.mark.parametrize("labels, expected", [
    (sorted(TIME), TIME),
    (["m24", "w1", "m12", "m1", "baseline", "m3"], ["baseline", "w1", "m1", "m3", "m12", "m24"]),
    (["24 months", "1 week", "12 months", "1 month"], ["1 week", "1 month", "12 months", "24 months"]),
    (["Year 2", "Day 3", "Week 2", "Month 1", "Screening"],
     ["Screening", "Day 3", "Week 2", "Month 1", "Year 2"]),
    (["Day 1", "Day -1", "Day 0"], ["Day -1", "Day 0", "Day 1"]),
    (["3个月", "1周", "12个月", "1个月"], ["1周", "1个月", "3个月", "12个月"]),
    (["VIS10", "VIS2", "VIS1"], ["VIS1", "VIS2", "VIS10"]),
    (["V07", "V01", "V03"], ["V01", "V03", "V07"]),
    (["10", "2", "1.5"], ["1.5", "2", "10"]),
])
def test_labels_are_put_in_time_order(labels, expected):
    assert order_visits(labels) == expected


@pytest.mark.req("P-8.3")
def test_units_are_converted_to_days():
    assert label_time("Week 1") == 7 and label_time("w1") == 7
    assert label_time("Month 24") == pytest.approx(730.5) and label_time("Year 2") == 730.5
    assert label_time("4 weeks") < label_time("1 month") < label_time("5 weeks")
    assert label_time("End of study") is None


@pytest.mark.req("P-8.3")
@pytest.mark.parametrize("labels, words", [
    (["Week 1", "End of study"], ["'End of study'", "--visit-order"]),
    (["Month 12", "Year 1"], ["'Month 12' and 'Year 1'", "same time", "--visit-order"]),
    (["Baseline", "Day 0", "Day 7"], ["'Baseline'", "'Day 0'", "--visit-order"]),
    (["VIS01", "VIS1"], ["--visit-order"]),
    (["early", "late"], ["'early'", "'late'", "--visit-order"]),
])
def test_labels_without_a_time_order_are_refused(labels, words):
    with pytest.raises(InputError) as exc:
        order_visits(labels)
    for w in words:
        assert w in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.req("P-8.3")
def test_numeric_visit_column_wins_and_must_be_one_to_one():
    visits = ["late", "early", "late", "mid"]
    assert order_visits(visits, numbers=[30, 1, 30, 7]) == ["early", "mid", "late"]
    with pytest.raises(InputError, match="visit 'late' has more than one value in column 'AVISITN'"):
        order_visits(visits, numbers=[30, 1, 31, 7])
    with pytest.raises(InputError, match="visits 'late' and 'mid' have the same value 7"):
        order_visits(visits, numbers=[7, 1, 7, 7])
    with pytest.raises(InputError, match="visit 'mid' has no value in column 'AVISITN'"):
        order_visits(visits, numbers=[30, 1, 30, None])
    assert order_visits(visits, explicit=["early", "mid", "late"]) == ["early", "mid", "late"]
    with pytest.raises(InputError, match="visit 'mid' of column 'visit' is not in --visit-order"):
        order_visits(visits, explicit=["early", "late"])


# --- mmrm against R -------------------------------------------------------------------------------


@pytest.mark.req("P-8.3")
@pytest.mark.parametrize("cov, how", [
    (cov, how) for cov in ("ar1", "arh1")
    for how in ("labels", "AVISIT with AVISITN", "labels with AVISITN")
] + [("toep", "AVISIT with AVISITN")])  # a Toeplitz fit takes ~40 s; once is enough
def test_time_ordered_fits_match_r(ref, data, cov, how):
    """Rows sorted by label as text ("Month 1" ... "Week 1"); the fit takes the visits in time
    order by AVISITN when present, else by the labels' units, and equals nlme::gls in time order."""
    r = ref["fits"][cov]
    frame, visit = data, "visit"
    if how == "labels":
        frame = data.drop(columns="AVISITN")
    elif how == "AVISIT with AVISITN":
        visit = "AVISIT"
    res = fit_mmrm(frame, f"value ~ base + arm*{visit}", subject="subject", visit=visit, cov=cov)
    assert res.visits == (IDS if visit == "AVISIT" else TIME)
    assert res.neg2_loglik == pytest.approx(r["neg2_reml"], abs=1e-5)
    assert res.neg2_loglik <= r["neg2_reml"] + 1e-8  # the engine's optimum is at least as good
    # nlme's Toeplitz (corARMA) optimum is flat and stops ~4e-7 short in -2 REML: 1e-3 there
    tol = 1e-3 if cov == "toep" else 1e-4
    assert res.covariance.to_numpy() == pytest.approx(pd.DataFrame(r["covariance"]).to_numpy(),
                                                      rel=tol)
    got = res.contrasts("arm", "control")
    assert len(got) == len(r["contrasts"]) == 21
    by_key = {(c["arm"], TIME[IDS.index(c["visit"])] if visit == "AVISIT" else c["visit"]): c
              for c in got}
    for row in r["contrasts"]:
        c = by_key[(row["arm"], row["visit"])]
        assert c["estimate"] == pytest.approx(row["estimate"], rel=tol, abs=tol)
        assert c["se"] == pytest.approx(row["se"], rel=tol)


@pytest.mark.req("P-8.3")
def test_text_order_is_a_different_model_which_r_confirms(ref, data):
    """Why the order matters: AR(1) with the visits sorted as text is another (worse) model."""
    alphabetical = sorted(TIME)
    res = fit_mmrm(data, "value ~ base + arm*visit", subject="subject", visit="visit", cov="ar1",
                   visit_order=alphabetical)
    assert res.neg2_loglik == pytest.approx(ref["ar1_text_order"]["neg2_reml"], abs=1e-5)
    assert res.neg2_loglik > ref["fits"]["ar1"]["neg2_reml"] + 50


@pytest.mark.req("P-8.3")
def test_visit_number_option_and_bad_numbers(data, capsys, tmp_path):
    renamed = data.rename(columns={"AVISITN": "ADY"})
    path = tmp_path / "d.csv"
    renamed.drop(columns="visit").to_csv(path, index=False)
    base = ["mmrm", "--data", str(path), "--formula", "value ~ base + arm*AVISIT", "--subject",
            "subject", "--visit", "AVISIT", "--cov", "ar1", "--json"]
    # Without a numeric column, the protocol ids order themselves by their units (W1 < M1 < M24).
    assert main(base) == 0
    assert json.loads(capsys.readouterr().out)["covariance"]["visits"] == IDS
    assert main(base + ["--visit-number", "ADY"]) == 0
    assert json.loads(capsys.readouterr().out)["covariance"]["visits"] == IDS
    assert main(base + ["--visit-number", "NOPE"]) == 2
    assert "--visit-number column 'NOPE' not found" in capsys.readouterr().err
    renamed.loc[0, "ADY"] = 999
    renamed.to_csv(path, index=False)
    assert main(base + ["--visit-number", "ADY"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "more than one value in column 'ADY'" in err


@pytest.mark.req("P-8.3")
def test_mmrm_refuses_labels_it_cannot_order(data, capsys, tmp_path):
    frame = data.drop(columns="AVISITN")
    frame.loc[frame["visit"] == "Month 24", "visit"] = "End of study"
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    argv = ["mmrm", "--data", str(path), "--formula", "value ~ base + arm*visit", "--subject",
            "subject", "--visit", "visit", "--cov", "ar1"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert "'End of study'" in err and "--visit-order" in err
    order = ",".join(TIME[:-1] + ["End of study"])
    assert main(argv + ["--visit-order", order, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["covariance"]["visits"][-1] == "End of study"
    with pytest.raises(MmrmError, match="--visit-order"):
        fit_mmrm(frame, "value ~ base + arm*visit", subject="subject", visit="visit", cov="us")


# --- compare and dose ----------------------------------------------------------------------------


def _table_args(path, visit="visit"):
    return ["--data", str(path), "--subject", "subject", "--arm", "arm", "--visit", visit,
            "--value", "value", "--baseline", "base", "--control", "control", "--json"]


@pytest.mark.req("P-8.2")
@pytest.mark.parametrize("visit, with_number", [("visit", False), ("AVISIT", True),
                                                ("visit", True)])
def test_compare_lists_visits_in_time_order(data, capsys, tmp_path, visit, with_number):
    path = tmp_path / "d.csv"
    (data if with_number else data.drop(columns="AVISITN")).to_csv(path, index=False)
    assert main(["compare", *_table_args(path, visit)]) == 0
    got = [v["visit"] for v in json.loads(capsys.readouterr().out)["visits"]]
    assert got == (IDS if visit == "AVISIT" else TIME)


@pytest.mark.req("P-8.2")
def test_mcpmod_runs_by_default_at_the_last_visit_in_time(data, capsys, tmp_path):
    """Rows sorted as text put "Week 1" last in the file; MCP-Mod still runs at Month 24."""
    path = tmp_path / "d.csv"
    frame = data.drop(columns="AVISITN").sort_values(["visit", "subject"])
    assert frame["visit"].iloc[-1] == "Week 1"
    frame.to_csv(path, index=False)
    argv = ["dose", *_table_args(path), "--dose", "control=0,low=5,mid=10,high=20"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mcpmod"]["visit"] == "Month 24"
    assert [v["visit"] for v in out["visits"]] == TIME
    frame.assign(visit=frame["visit"].replace({"Week 1": "Screening visit"})).to_csv(path, index=False)
    assert main(argv) == 2
    assert "--visit-order" in capsys.readouterr().err
