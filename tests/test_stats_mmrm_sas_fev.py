"""MMRM on the R mmrm package's fev_data against SAS PROC MIXED (numbers in issue 7 and
tests/fixtures/mmrm/sas_reference.json)."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pandas as pd
import pytest

from annulus.stats.mmrm import fit_mmrm

FIX = Path(__file__).resolve().parent / "fixtures" / "mmrm"
SHARED_FEV = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "fev_data.csv"
SAS = json.loads((FIX / "sas_reference.json").read_text())["issue_7"]


@pytest.fixture(scope="module")
def fev() -> pd.DataFrame:
    return pd.read_csv(FIX / "fev_data.csv")


@pytest.fixture(scope="module")
def fit_un(fev):
    return fit_mmrm(fev, "FEV1 ~ RACE + SEX + ARMCD*AVISIT", subject="USUBJID", visit="AVISIT",
                    cov="us", method="reml", df="satterthwaite")


def _coef(res, term):
    return next(c for c in res.coefficients if c["term"] == term)


@pytest.mark.req("P-8.3")
def test_fixture_copy_matches_shared_reference():
    if not SHARED_FEV.exists():
        pytest.skip("shared reference data not present")
    assert filecmp.cmp(SHARED_FEV, FIX / "fev_data.csv", shallow=False)


@pytest.mark.req("P-8.3")
def test_neg2_reml_loglik(fit_un):
    assert fit_un.converged
    assert fit_un.neg2_loglik == pytest.approx(SAS["neg2_reml"], abs=1e-4)


@pytest.mark.req("P-8.3")
def test_armcd_coefficient_is_trt_minus_pbo_at_first_visit(fit_un):
    # With first-level references (PBO, VIS1), ARMCD[T.TRT] is the TRT - PBO difference at
    # VIS1: the number SAS reports as "ARMCD TRT" for this model (3.7745).
    c = _coef(fit_un, "ARMCD[T.TRT]")
    ref = SAS["armcd_trt"]
    assert c["estimate"] == pytest.approx(ref["estimate"], abs=1e-3)
    assert c["se"] == pytest.approx(ref["se"], rel=1e-3)
    assert c["df"] == pytest.approx(ref["df"], abs=0.5)


@pytest.mark.req("P-8.3")
def test_term_names_follow_formulaic(fit_un):
    terms = [c["term"] for c in fit_un.coefficients]
    assert terms[0] == "Intercept"
    assert "ARMCD[T.TRT]:AVISIT[T.VIS4]" in terms
    assert "SEX[T.Male]" in terms


@pytest.mark.req("P-8.3")
def test_contrast_trt_minus_pbo_at_vis4(fit_un):
    rows = fit_un.contrasts(arm="ARMCD", control="PBO", by="AVISIT")
    vis4 = next(r for r in rows if r["visit"] == "VIS4")
    ref = SAS["diff_vis4"]
    assert vis4["arm"] == "TRT"
    assert vis4["estimate"] == pytest.approx(ref["estimate"], abs=1e-3)
    assert vis4["se"] == pytest.approx(ref["se"], rel=1e-3)
    assert vis4["df"] == pytest.approx(ref["df"], abs=0.5)
    assert vis4["p"] == pytest.approx(ref["p"], abs=1e-4)
    assert vis4["lower"] < vis4["estimate"] < vis4["upper"]


@pytest.mark.req("P-8.3")
def test_lsmeans_equal_weights(fit_un):
    rows = {(r["ARMCD"], r["AVISIT"]): r for r in fit_un.lsmeans(specs=["ARMCD", "AVISIT"])}
    assert len(rows) == 8
    for key, value in SAS["lsmeans"].items():
        arm, visit = key.split("/")
        assert rows[(arm, visit)]["estimate"] == pytest.approx(value, abs=1e-3)


@pytest.mark.req("P-8.3")
def test_lsmean_difference_equals_contrast(fit_un):
    ls = {(r["ARMCD"], r["AVISIT"]): r["estimate"] for r in fit_un.lsmeans(["ARMCD", "AVISIT"])}
    for row in fit_un.contrasts(arm="ARMCD", control="PBO"):
        v = row["visit"]
        assert row["estimate"] == pytest.approx(ls[("TRT", v)] - ls[("PBO", v)], abs=1e-10)


@pytest.mark.req("P-8.3")
def test_kenward_roger_unstructured(fev):
    res = fit_mmrm(fev, "FEV1 ~ ARMCD", subject="USUBJID", visit="AVISIT", cov="us",
                   df="kenward-roger")
    c = _coef(res, "ARMCD[T.TRT]")
    ref = SAS["kr_armcd_trt"]
    assert c["estimate"] == pytest.approx(ref["estimate"], abs=1e-3)
    assert c["se"] == pytest.approx(ref["se"], rel=1e-3)
    assert c["df"] == pytest.approx(ref["df"], abs=0.5)
    # "kr" is an alias.
    alias = fit_mmrm(fev, "FEV1 ~ ARMCD", subject="USUBJID", visit="AVISIT", cov="us", df="kr")
    assert _coef(alias, "ARMCD[T.TRT]")["df"] == pytest.approx(c["df"])


@pytest.mark.req("P-8.3")
def test_residual_and_between_within_df(fev):
    common = dict(subject="USUBJID", visit="AVISIT", cov="us")
    res = fit_mmrm(fev, "FEV1 ~ RACE + SEX + ARMCD*AVISIT", df="residual", **common)
    assert {c["df"] for c in res.coefficients} == {537.0 - 11}
    bw = fit_mmrm(fev, "FEV1 ~ RACE + SEX + ARMCD*AVISIT", df="between-within", **common)
    dfs = {c["term"]: c["df"] for c in bw.coefficients}
    # Between-subject columns (intercept, race, sex, arm): subjects - their rank = 197 - 5;
    # within-subject columns: observations - subjects - their rank = 537 - 197 - 6.
    assert dfs["ARMCD[T.TRT]"] == 192.0
    assert dfs["AVISIT[T.VIS2]"] == 334.0
    assert dfs["ARMCD[T.TRT]:AVISIT[T.VIS4]"] == 334.0
    # Same fit, so the same estimates and standard errors as with Satterthwaite.
    sat = fit_mmrm(fev, "FEV1 ~ RACE + SEX + ARMCD*AVISIT", **common)
    assert bw.coefficients[4]["se"] == pytest.approx(sat.coefficients[4]["se"], rel=1e-9)


@pytest.mark.req("P-8.3")
def test_to_dict_shape(fit_un):
    out = fit_un.to_dict(arm="ARMCD", control="PBO")
    assert out["neg2_reml"] == pytest.approx(SAS["neg2_reml"], abs=1e-4)
    assert out["converged"] is True
    assert out["covariance"]["visits"] == ["VIS1", "VIS2", "VIS3", "VIS4"]
    assert len(out["covariance"]["matrix"]) == 4
    assert set(out["coefficients"][0]) == {"term", "estimate", "se", "df", "t", "p"}
    assert len(out["lsmeans"]) == 8 and len(out["contrasts"]) == 4
    json.dumps(out)  # serialisable
    cov = fit_un.covariance
    assert list(cov.index) == ["VIS1", "VIS2", "VIS3", "VIS4"]
    assert (cov.to_numpy() == cov.to_numpy().T).all()
