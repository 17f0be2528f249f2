"""Properties of the MMRM fit: invariance to row order and subject labels, equivariance of the
fixed effects, and a pure-Python core (no Django)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annulus.stats.mmrm import fit_mmrm

FIX = Path(__file__).resolve().parent / "fixtures" / "mmrm"
FEV = pd.read_csv(FIX / "fev_data.csv")
# A smaller slice keeps each example fast while keeping missing visits.
SMALL = FEV[FEV.USUBJID.isin(sorted(FEV.USUBJID.unique())[:80])].reset_index(drop=True)
FORMULA = "FEV1 ~ SEX + ARMCD*AVISIT"
REFERENCE = fit_mmrm(SMALL, FORMULA, subject="USUBJID", visit="AVISIT", cov="us")

SETTINGS = settings(max_examples=8, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _estimates(res):
    return np.array([c["estimate"] for c in res.coefficients])


@pytest.mark.req("P-8.3")
@SETTINGS
@given(st.randoms(use_true_random=False))
def test_row_order_does_not_matter(rnd):
    order = list(range(len(SMALL)))
    rnd.shuffle(order)
    res = fit_mmrm(SMALL.iloc[order], FORMULA, subject="USUBJID", visit="AVISIT", cov="us")
    assert res.neg2_loglik == pytest.approx(REFERENCE.neg2_loglik, abs=1e-6)
    assert np.allclose(_estimates(res), _estimates(REFERENCE), atol=1e-6)
    assert np.allclose([c["df"] for c in res.coefficients],
                       [c["df"] for c in REFERENCE.coefficients], atol=1e-3)


@pytest.mark.req("P-8.3")
@SETTINGS
@given(st.text(alphabet="abcXYZ_", min_size=1, max_size=4))
def test_subject_labels_do_not_matter(prefix):
    data = SMALL.assign(USUBJID=prefix + SMALL.USUBJID.str[::-1])
    res = fit_mmrm(data, FORMULA, subject="USUBJID", visit="AVISIT", cov="us")
    assert res.neg2_loglik == pytest.approx(REFERENCE.neg2_loglik, abs=1e-6)


@pytest.mark.req("P-8.3")
@SETTINGS
@given(st.floats(-50, 50), st.floats(-10, 10))
def test_adding_a_fixed_effect_shifts_only_its_coefficient(shift, arm_shift):
    # y + X gamma gives beta + gamma with the same covariance and REML likelihood.
    data = SMALL.assign(FEV1=SMALL.FEV1 + shift + arm_shift * (SMALL.ARMCD == "TRT"))
    res = fit_mmrm(data, FORMULA, subject="USUBJID", visit="AVISIT", cov="us")
    expected = _estimates(REFERENCE)
    expected[0] += shift
    expected[[c["term"] for c in REFERENCE.coefficients].index("ARMCD[T.TRT]")] += arm_shift
    assert np.allclose(_estimates(res), expected, atol=1e-5)
    assert res.neg2_loglik == pytest.approx(REFERENCE.neg2_loglik, abs=1e-5)


@pytest.mark.req("P-8.3")
def test_ml_and_reml_estimates_agree_for_saturated_mean():
    # With an unstructured covariance and complete data a saturated mean model has the same
    # GLS estimates (cell means) under ML and REML.
    complete = FEV.dropna(subset=["FEV1"])
    keep = complete.groupby("USUBJID").AVISIT.transform("size") == 4
    data = complete[keep]
    reml = fit_mmrm(data, "FEV1 ~ ARMCD*AVISIT", subject="USUBJID", visit="AVISIT")
    ml = fit_mmrm(data, "FEV1 ~ ARMCD*AVISIT", subject="USUBJID", visit="AVISIT", method="ml")
    assert np.allclose(_estimates(reml), _estimates(ml), atol=1e-6)
    cell = data.groupby(["ARMCD", "AVISIT"]).FEV1.mean()
    ls = {(r["ARMCD"], r["AVISIT"]): r["estimate"] for r in reml.lsmeans(["ARMCD", "AVISIT"])}
    for key, value in cell.items():
        assert ls[key] == pytest.approx(value, abs=1e-8)


@pytest.mark.req("P-8.3")
def test_core_imports_without_django():
    code = ("import sys, annulus.stats.mmrm, annulus.cli.mmrm, annulus.bench.mmrm; "
            "assert not [m for m in sys.modules if m.split('.')[0] == 'django'], 'django'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.req("P-8.3")
def test_numeric_arm_code_used_as_factor():
    # C(ARMN) with ARMN = 0/1 is the same model as ARMCD; LS-means treat it as a factor.
    data = FEV.assign(ARMN=(FEV.ARMCD == "TRT").astype(int))
    coded = fit_mmrm(data, "FEV1 ~ C(ARMN)*AVISIT", subject="USUBJID", visit="AVISIT")
    named = fit_mmrm(data, "FEV1 ~ ARMCD*AVISIT", subject="USUBJID", visit="AVISIT")
    assert coded.neg2_loglik == pytest.approx(named.neg2_loglik, abs=1e-8)
    a = [r["estimate"] for r in coded.lsmeans(["ARMN", "AVISIT"])]
    b = [r["estimate"] for r in named.lsmeans(["ARMCD", "AVISIT"])]
    assert np.allclose(a, b, atol=1e-8)
    diff = coded.contrasts(arm="ARMN", control=0)
    assert [r["arm"] for r in diff] == [1] * 4
