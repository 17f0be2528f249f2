"""Linear trend test across doses against R multcomp::glht with centred dose scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from annulus.stats import linear_contrast, trend_test
from annulus.stats._io import InputError

STATS = Path(__file__).parent / "fixtures" / "stats"
REF = json.loads((STATS / "reference.json").read_text())
VISITS = REF["compare"]["visits"]
DOSES = {"control": 0, "low": 5, "mid": 10, "high": 20}  # 10^6 cells per disc


@pytest.fixture(scope="module")
def trial():
    d = pd.read_csv(STATS / "trial.csv").dropna(subset=["vas"])
    return d.assign(chg=d["vas"] - d["baseline"])


@pytest.mark.req("P-8.2")
@pytest.mark.parametrize("i", range(len(VISITS)), ids=[v["visit"] for v in VISITS])
def test_trend_matches_glht(trial, i):
    ref = VISITS[i]["trend"]
    at = trial[trial["visit"] == VISITS[i]["visit"]]
    samples = {a: at.loc[at["arm"] == a, "chg"] for a in DOSES}
    r = trend_test(samples, DOSES)
    assert r["scores"] == ref["scores"]
    assert r["estimate"] == pytest.approx(ref["estimate"], rel=1e-10)
    assert r["se"] == pytest.approx(ref["se"], rel=1e-10)
    assert r["t"] == pytest.approx(ref["t"], rel=1e-10)
    assert r["df"] == ref["df"]
    assert r["p"] == pytest.approx(ref["p"], rel=1e-8)


def test_trend_does_not_depend_on_the_order_of_groups(trial):
    at = trial[trial["visit"] == "24 months"]
    samples = {a: at.loc[at["arm"] == a, "chg"] for a in reversed(list(DOSES))}
    forward = {a: at.loc[at["arm"] == a, "chg"] for a in DOSES}
    assert trend_test(samples, DOSES)["p"] == trend_test(forward, DOSES)["p"]


def test_a_flat_response_shows_no_trend():
    rng = np.random.default_rng(11)
    base = rng.normal(0, 1, 30)
    same = {a: base for a in DOSES}  # identical groups: the contrast is exactly zero
    r = trend_test(same, DOSES)
    assert r["estimate"] == pytest.approx(0, abs=1e-12) and r["p"] == pytest.approx(1)


def test_linear_contrast_on_estimates_with_covariance():
    # Independent estimates: the contrast SE is the root of the weighted variances.
    r = linear_contrast([1.0, 2.0, 4.0], np.diag([0.25, 0.25, 1.0]), [-1, 0, 1], df=30)
    assert r["estimate"] == 3.0
    assert r["se"] == pytest.approx(np.sqrt(1.25))
    assert r["p"] == pytest.approx(2 * stats.t.sf(3 / np.sqrt(1.25), 30))


def test_trend_errors():
    with pytest.raises(InputError, match="no dose score"):
        trend_test({"a": [1, 2], "b": [1, 2], "c": [3, 4]}, {"a": 0, "b": 1})
    with pytest.raises(InputError, match="three"):
        trend_test({"a": [1, 2], "b": [1, 2]}, {"a": 0, "b": 1})
