"""Which rows the multi-df Type 3 tests use, and so which Satterthwaite denominator df they print
(P-8.3; statistics issue item 7a).

F and p of a term do not depend on how its hypothesis is written, but the Fai–Cornelius df of a
multi-df term does. The default rows are SAS PROC MIXED's (each level minus the reference level);
``basis="sum"`` gives the R package mmrm's Type III rows (the sum-to-zero coefficients). Checked
against:

* SAS PROC MIXED's Type 3 table on fev_data (unstructured, REML and ML), as printed
  (sas_type3_us.json, from openpharma/mmrm design/SAS/sas_log_reml.txt and sas_log.txt);
* the R package mmrm 0.3.18 (``df_md`` on both sets of rows, at the nlminb optimum), on that model
  and on one with a 6-df RACE × AVISIT interaction (make_r_type3_basis.R ->
  r_mmrm_type3_basis.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from annulus.stats.mmrm import MmrmError, fit_mmrm

FIX = Path(__file__).resolve().parent / "fixtures" / "mmrm"
R_REF = json.loads((FIX / "r_mmrm_type3_basis.json").read_text())
SAS_REF = json.loads((FIX / "sas_type3_us.json").read_text())
FORMULAS = {  # the R formulas of r_mmrm_type3_basis.json, without the covariance term
    0: "FEV1 ~ RACE + SEX + ARMCD*AVISIT",
    1: "FEV1 ~ ARMCD*AVISIT + RACE*AVISIT",
}


def _key(effect: str) -> frozenset:
    """A term by its factors, whatever their order or separator (SAS's AVISIT*ARMCD)."""
    return frozenset(effect.replace("*", ":").split(":"))


@pytest.fixture(scope="module")
def fev() -> pd.DataFrame:
    return pd.read_csv(FIX / "fev_data.csv")


@pytest.fixture(scope="module")
def fits(fev):
    cache = {}

    def get(formula: str, method: str = "reml"):
        if (formula, method) not in cache:
            res = fit_mmrm(fev, formula, subject="USUBJID", visit="AVISIT", cov="us", method=method,
                           df="satterthwaite")
            cache[formula, method] = (res, {_key(t["effect"]): t for t in res.type3_tests()},
                                      {_key(t["effect"]): t for t in res.type3_tests(basis="sum")})
        return cache[formula, method]

    return get


@pytest.mark.req("P-8.3")
@pytest.mark.parametrize("i", [0, 1])
def test_both_bases_match_the_r_package_mmrm(fits, i):
    ref = R_REF["fits"][i]
    res, reference, sums = fits(FORMULAS[i])
    assert res.neg2_loglik == pytest.approx(ref["neg2_reml"], abs=1e-6)
    assert set(reference) == {_key(t["term"]) for t in ref["tests"]}
    for t in ref["tests"]:
        got, got_sum = reference[_key(t["term"])], sums[_key(t["term"])]
        assert got["num_df"] == got_sum["num_df"] == t["num_df"]
        assert got["den_df"] == pytest.approx(t["den_df_reference"], rel=1e-5), t["term"]
        assert got_sum["den_df"] == pytest.approx(t["den_df_sum"], rel=1e-5), t["term"]
        for g in (got, got_sum):
            assert g["F"] == pytest.approx(t["F"], rel=1e-6), t["term"]
        assert got["p"] == pytest.approx(t["p_reference"], rel=1e-4), t["term"]
        assert got_sum["p"] == pytest.approx(t["p"], rel=1e-4), t["term"]


@pytest.mark.req("P-8.3")
def test_the_basis_matters_only_for_multi_df_satterthwaite(fits):
    # In R's numbers: equal df for one-df terms, different df for every multi-df term here.
    for fit in R_REF["fits"]:
        for t in fit["tests"]:
            if t["num_df"] == 1:
                assert t["den_df_reference"] == t["den_df_sum"]
            else:
                assert abs(t["den_df_reference"] - t["den_df_sum"]) > 0.02
    # The 6-df RACE x AVISIT interaction: 180.57 against 151.98 (R); the Kronecker rows agree.
    _, reference, sums = fits(FORMULAS[1])
    r = next(t for t in R_REF["fits"][1]["tests"] if _key(t["term"]) == _key("RACE:AVISIT"))
    assert reference[_key("RACE:AVISIT")]["num_df"] == 6
    assert reference[_key("RACE:AVISIT")]["den_df"] == pytest.approx(r["den_df_reference"], rel=1e-6)
    assert sums[_key("RACE:AVISIT")]["den_df"] == pytest.approx(r["den_df_sum"], rel=1e-6)


@pytest.mark.req("P-8.3")
@pytest.mark.parametrize("sas", SAS_REF["fits"], ids=lambda s: s["method"])
def test_reference_rows_reproduce_the_sas_type3_table(fits, sas):
    _, reference, sums = fits(FORMULAS[0], sas["method"])
    assert set(reference) == {_key(t["effect"]) for t in sas["tests"]}
    for t in sas["tests"]:
        got = reference[_key(t["effect"])]
        assert got["num_df"] == t["num_df"]
        assert round(got["den_df"]) == t["den_df"], t["effect"]  # SAS prints whole numbers
        # F to 3e-4 relative: SAS's estimates and SEs differ from ours and the R
        # package mmrm's (both at a lower -2 log-likelihood) in the fourth digit (SEX 0.3262 against
        # 0.3260; RACE SE 0.6244 against 0.6245), so RACE's F is 36.913 here, 36.92 there.
        assert got["F"] == pytest.approx(t["F"], abs=0.005 + 1e-9, rel=3e-4), t["effect"]
        assert got["F"] * got["num_df"] == pytest.approx(t["chisq"], abs=0.005 + 1e-9, rel=3e-4)
        if isinstance(t["p"], float):
            # the same difference moves SEX's p by 1.7e-4; the others agree to the printed digits
            assert got["p"] == pytest.approx(t["p"], abs=2e-4), t["effect"]
        else:
            assert t["p"] == "<.0001" and got["p"] < 1e-4
        if t["num_df"] > 1 and t["effect"] != "RACE":
            # mmrm's rows print other df: 150 (REML) and 151 (ML) where SAS prints 148 and 150
            assert round(sums[_key(t["effect"])]["den_df"]) != t["den_df"], t["effect"]


@pytest.mark.req("P-8.3")
def test_kenward_roger_df_and_f_do_not_depend_on_the_rows(fev):
    res = fit_mmrm(fev, "FEV1 ~ ARMCD*AVISIT", subject="USUBJID", visit="AVISIT", cov="ar1",
                   df="kenward-roger")
    a = {t["effect"]: t for t in res.type3_tests()}
    b = {t["effect"]: t for t in res.type3_tests(basis="sum")}
    for effect in a:
        assert a[effect]["num_df"] == b[effect]["num_df"]
        assert a[effect]["den_df"] == pytest.approx(b[effect]["den_df"], rel=1e-9), effect
        assert a[effect]["F"] == pytest.approx(b[effect]["F"], rel=1e-9), effect


@pytest.mark.req("P-8.3")
def test_the_reference_level_is_the_fits(fev):
    """With C(RACE, Treatment('White')) the rows are level minus White: the same df as a plain
    fit on data whose White sorts first."""
    data = fev.assign(RACE2=fev["RACE"].replace({"White": "0 White"}))
    a = fit_mmrm(fev, "FEV1 ~ C(RACE, Treatment('White'))*AVISIT", subject="USUBJID", visit="AVISIT",
                 cov="ar1")
    b = fit_mmrm(data, "FEV1 ~ RACE2*AVISIT", subject="USUBJID", visit="AVISIT", cov="ar1")
    c = fit_mmrm(fev, "FEV1 ~ RACE*AVISIT", subject="USUBJID", visit="AVISIT", cov="ar1")
    da = [t["den_df"] for t in a.type3_tests()]
    db = [t["den_df"] for t in b.type3_tests()]
    dc = [t["den_df"] for t in c.type3_tests()]
    assert da == pytest.approx(db, rel=1e-6)
    assert da[0] != pytest.approx(dc[0], rel=1e-6)  # another reference, other RACE rows


def test_unknown_basis_is_refused(fits):
    res, _, _ = fits(FORMULAS[0])
    with pytest.raises(MmrmError, match="basis"):
        res.type3_tests(basis="sas")


@pytest.mark.req("P-8.3")
def test_the_command_prints_either_basis_and_refuses_another(capsys):
    from annulus.cli import main

    ref = {_key(t["term"]): t for t in R_REF["fits"][0]["tests"]}
    args = ["mmrm", "--data", str(FIX / "fev_data.csv"), "--formula", FORMULAS[0], "--subject", "USUBJID",
            "--visit", "AVISIT", "--cov", "us", "--json"]
    for basis, column in ((None, "den_df_reference"), ("reference", "den_df_reference"), ("sum", "den_df_sum")):
        assert main(args + ([] if basis is None else ["--type3-basis", basis])) == 0
        out = json.loads(capsys.readouterr().out)
        for t in out["type3"]:
            assert t["den_df"] == pytest.approx(ref[_key(t["effect"])][column], rel=1e-5), (basis, t["effect"])
    with pytest.raises(SystemExit) as exc:
        main(args + ["--type3-basis", "sas"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "--type3-basis" in err[-1] and "Traceback" not in "\n".join(err)
