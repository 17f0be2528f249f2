"""MMRM library errors: MmrmError (a ValueError) with a one-line message naming the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from annulus.stats.mmrm import MmrmError, check_arm, fit_mmrm

FIX = Path(__file__).resolve().parent / "fixtures" / "mmrm"


@pytest.fixture()
def fev() -> pd.DataFrame:
    return pd.read_csv(FIX / "fev_data.csv")


def _fit(data, formula="FEV1 ~ ARMCD*AVISIT", **kw):
    args = dict(subject="USUBJID", visit="AVISIT")
    args.update(kw)
    return fit_mmrm(data, formula, **args)


def _message(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


@pytest.mark.req("P-8.3")
def test_error_is_a_value_error():
    assert issubclass(MmrmError, ValueError)


@pytest.mark.req("P-8.3")
@pytest.mark.parametrize("kw, needle", [
    (dict(subject="ID"), "subject column 'ID' not found"),
    (dict(visit="VISIT"), "visit column 'VISIT' not found"),
    (dict(formula="FEV ~ ARMCD"), "response column 'FEV' not found"),
    (dict(formula="FEV1 ~ AGE + ARMCD"), "formula names unknown column 'AGE'"),
    (dict(formula="FEV1 ~ ARMCD +"), "cannot parse formula"),
    (dict(formula="~ ARMCD"), "must have the form 'response ~ terms'"),
    (dict(formula="np.log(FEV1) ~ ARMCD"), "must have a single column name on the left"),
    (dict(cov="banded"), "unknown covariance structure 'banded'"),
    (dict(method="mle"), "unknown method 'mle'"),
    (dict(df="containment"), "unknown df method 'containment'"),
])
def test_bad_arguments(fev, kw, needle):
    formula = kw.pop("formula", "FEV1 ~ ARMCD*AVISIT")
    with pytest.raises(MmrmError) as excinfo:
        _fit(fev, formula, **kw)
    assert needle in _message(excinfo)


@pytest.mark.req("P-8.3")
def test_non_numeric_response(fev):
    fev["FEV1"] = fev["FEV1"].astype(object)
    fev.loc[7, "FEV1"] = "n/a?"
    with pytest.raises(MmrmError) as excinfo:
        _fit(fev)
    assert "response 'FEV1' has a non-numeric value 'n/a?' (row 7)" in _message(excinfo)


@pytest.mark.req("P-8.3")
def test_visit_with_no_data(fev):
    fev.loc[fev.AVISIT == "VIS3", "FEV1"] = np.nan
    with pytest.raises(MmrmError) as excinfo:
        _fit(fev)
    assert "visit 'VIS3' has no non-missing values of 'FEV1'" in _message(excinfo)


@pytest.mark.req("P-8.3")
def test_a_response_that_does_not_vary(fev):
    # an ordinal grade no participant changed (Modic type): every change from baseline is 0
    fev["FEV1"] = 0.0
    with pytest.raises(MmrmError) as excinfo:
        _fit(fev)
    assert "the response does not vary around the fixed effects" in _message(excinfo)


@pytest.mark.req("P-8.3")
def test_single_arm(fev):
    fev["ARMCD"] = "PBO"
    with pytest.raises(MmrmError) as excinfo:
        _fit(fev)
    assert "factor 'ARMCD' has a single level 'PBO'" in _message(excinfo)
    with pytest.raises(MmrmError, match="only one arm in 'ARMCD'"):
        check_arm(fev, "USUBJID", "ARMCD")


@pytest.mark.req("P-8.3")
def test_subject_with_two_arms(fev):
    pt1 = fev.index[fev.USUBJID == "PT1"]
    fev.loc[pt1[1], "ARMCD"] = "PBO" if fev.loc[pt1[0], "ARMCD"] == "TRT" else "TRT"
    with pytest.raises(MmrmError) as excinfo:
        check_arm(fev, "USUBJID", "ARMCD")
    assert "subject 'PT1' has more than one 'ARMCD' value" in _message(excinfo)
    res = _fit(fev)  # the fit itself is possible, the arm contrast is not
    with pytest.raises(MmrmError, match="more than one 'ARMCD' value"):
        res.contrasts(arm="ARMCD")


@pytest.mark.req("P-8.3")
def test_singular_design(fev):
    fev["W2"] = 2 * fev["WEIGHT"]
    with pytest.raises(MmrmError) as excinfo:
        _fit(fev, "FEV1 ~ WEIGHT + W2 + ARMCD*AVISIT")
    assert "singular design: column 'W2' is a linear combination" in _message(excinfo)


@pytest.mark.req("P-8.3")
def test_duplicate_visit_rows(fev):
    fev = pd.concat([fev, fev[(fev.USUBJID == "PT2") & (fev.AVISIT == "VIS2")]])
    with pytest.raises(MmrmError, match="subject 'PT2' has more than one row at visit 'VIS2'"):
        _fit(fev)


@pytest.mark.req("P-8.3")
def test_non_convergence_is_reported(fev):
    # VIS2 = VIS1 + 1 for every subject: the unstructured matrix is driven to singularity.
    wide = fev.pivot(index="USUBJID", columns="AVISIT", values="FEV1")
    fev["FEV1"] = np.where(fev.AVISIT == "VIS2", fev.USUBJID.map(wide["VIS1"]) + 1.0, fev.FEV1)
    with pytest.raises(MmrmError) as excinfo:
        _fit(fev, cov="us")
    assert "did not converge" in _message(excinfo)


@pytest.mark.req("P-8.3")
def test_visit_order_must_cover_the_visits(fev):
    with pytest.raises(MmrmError, match="visit 'VIS4' is not in the visit order"):
        _fit(fev, visit_order=["VIS1", "VIS2", "VIS3"])


@pytest.mark.req("P-8.3")
def test_lsmeans_and_contrast_arguments(fev):
    res = _fit(fev)
    with pytest.raises(MmrmError, match="'SEX' is not a categorical variable of the model"):
        res.lsmeans(["SEX"])
    with pytest.raises(MmrmError, match="control level 'PLACEBO' is not a level of 'ARMCD'"):
        res.contrasts(arm="ARMCD", control="PLACEBO")


@pytest.mark.req("P-8.3")
def test_sas_spelling_of_unstructured_is_accepted(fev):
    assert _fit(fev, cov="un").neg2_loglik == pytest.approx(_fit(fev, cov="us").neg2_loglik)


@pytest.mark.req("P-8.3")
def test_visit_labels_with_numbers_sort_naturally():
    """Without visit_order, VIS2 comes before VIS10 (numbers inside labels compare as numbers)."""
    from annulus.stats.mmrm import _natural_levels

    labels = pd.Series(["VIS10", "VIS2", "VIS1", "VIS2", None, "m12", "m3"])
    assert _natural_levels(labels) == ["m3", "m12", "VIS1", "VIS2", "VIS10"]


@pytest.mark.req("P-8.3")
def test_natural_order_knows_signs_decimals_and_ties():
    from annulus.stats.mmrm import _natural_levels

    labels = pd.Series(["Week 12", "Week -1", "Week 0", "Week 2", "Day 1.5", "Day 1.25", "VIS1", "VIS01"])
    assert _natural_levels(labels) == ["Day 1.25", "Day 1.5", "VIS01", "VIS1", "Week -1", "Week 0", "Week 2",
                                       "Week 12"]
