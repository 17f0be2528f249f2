"""Each covariance structure against SAS PROC MIXED on fev_data (intercept-only models and
Kenward-Roger for ARMCD); numbers in tests/fixtures/mmrm/sas_reference.json with their source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from annulus.stats.mmrm import COV_STRUCTURES, fit_mmrm

FIX = Path(__file__).resolve().parent / "fixtures" / "mmrm"
REF = json.loads((FIX / "sas_reference.json").read_text())


@pytest.fixture(scope="module")
def fev() -> pd.DataFrame:
    return pd.read_csv(FIX / "fev_data.csv")


def _id(case):
    return f"{case['cov']}-{case['method']}"


@pytest.mark.req("P-8.3")
@pytest.mark.parametrize("case", REF["intercept_only"], ids=_id)
def test_intercept_only_matches_sas(fev, case):
    res = fit_mmrm(fev, "FEV1 ~ 1", subject="USUBJID", visit="AVISIT", cov=case["cov"],
                   method=case["method"])
    assert res.converged
    assert res.neg2_loglik == pytest.approx(case["neg2"], abs=1e-4)
    c = res.coefficients[0]
    assert c["estimate"] == pytest.approx(case["estimate"], abs=1e-3)
    # SAS prints four decimals: allow for that rounding on top of the 1e-3 relative tolerance.
    assert c["se"] == pytest.approx(case["se"], rel=1e-3, abs=5e-5)
    if "df" in case:
        assert c["df"] == pytest.approx(case["df"], abs=0.5)  # SAS prints df rounded
    params = {p["name"]: p["estimate"] for p in res.cov_params}
    if "variances" in case:
        got = [params[f"Var({i + 1})"] for i in range(4)]
        assert got == pytest.approx(case["variances"], rel=2e-3)
    if "rho" in case:
        rho = next(v for n, v in params.items() if n in ("CSH", "AR(1)", "ARH(1)"))
        assert rho == pytest.approx(case["rho"], abs=1e-3)
    if "covariances" in case:
        got = [params[f"TOEP({k})"] for k in (2, 3, 4)]
        assert got == pytest.approx(case["covariances"], abs=2e-3)


@pytest.mark.req("P-8.3")
@pytest.mark.parametrize("cov", sorted(REF["kenward_roger_armcd"].keys() - {"_source"}))
def test_kenward_roger_matches_sas(fev, cov):
    ref = REF["kenward_roger_armcd"][cov]
    res = fit_mmrm(fev, "FEV1 ~ ARMCD", subject="USUBJID", visit="AVISIT", cov=cov,
                   df="kenward-roger")
    c = next(c for c in res.coefficients if c["term"] == "ARMCD[T.TRT]")
    assert c["se"] == pytest.approx(ref["se"], rel=1e-3)
    assert c["df"] == pytest.approx(ref["df"], abs=0.5)


@pytest.mark.req("P-8.3")
@pytest.mark.parametrize("cov", COV_STRUCTURES)
@pytest.mark.parametrize("method", ["reml", "ml"])
def test_every_structure_converges_on_the_full_model(fev, cov, method):
    res = fit_mmrm(fev, "FEV1 ~ RACE + SEX + ARMCD*AVISIT", subject="USUBJID", visit="AVISIT",
                   cov=cov, method=method)
    assert res.converged
    assert res.diagnostics["max_abs_gradient"] < 1e-3
    sigma = res.covariance.to_numpy()
    assert np.all(np.linalg.eigvalsh(sigma) > 0)
    key = "neg2_reml" if method == "reml" else "neg2_ml"
    assert res.to_dict()[key] == pytest.approx(res.neg2_loglik)


@pytest.mark.req("P-8.3")
def test_structures_are_nested_in_unstructured(fev):
    # Every structure is a special case of the unstructured matrix, so its maximised
    # likelihood cannot be higher; cs is a special case of csh, ar1 of arh1 and of toep.
    ll = {cov: fit_mmrm(fev, "FEV1 ~ ARMCD*AVISIT", subject="USUBJID", visit="AVISIT",
                        cov=cov).neg2_loglik for cov in COV_STRUCTURES}
    for cov in COV_STRUCTURES:
        assert ll["us"] <= ll[cov] + 1e-6
    assert ll["csh"] <= ll["cs"] + 1e-6
    assert ll["arh1"] <= ll["ar1"] + 1e-6
    assert ll["toep"] <= ll["ar1"] + 1e-6


@pytest.mark.req("P-8.3")
def test_structured_matrices_have_their_shape(fev):
    common = dict(subject="USUBJID", visit="AVISIT")
    cs = fit_mmrm(fev, "FEV1 ~ ARMCD", cov="cs", **common).covariance.to_numpy()
    off = cs[np.triu_indices(4, 1)]
    assert np.allclose(off, off[0]) and np.allclose(np.diag(cs), cs[0, 0])
    ar = fit_mmrm(fev, "FEV1 ~ ARMCD", cov="ar1", **common).covariance.to_numpy()
    rho = ar[0, 1] / ar[0, 0]
    assert ar[0, 3] / ar[0, 0] == pytest.approx(rho**3)
    toep = fit_mmrm(fev, "FEV1 ~ ARMCD", cov="toep", **common).covariance.to_numpy()
    assert toep[0, 1] == pytest.approx(toep[2, 3]) and toep[0, 2] == pytest.approx(toep[1, 3])
