"""Ill-conditioned MMRM fits report "not estimable" instead of meaningless numbers (issue 14,
item 2).

The data: 4 arms of 8 subjects, 4 visits, and a single subject per arm at the last visit. With
``arm*visit`` the four last-visit values are fitted exactly, so the covariance parameters that only
they inform (Toeplitz lag 3; ARH(1)'s last variance) are practically unidentified; before the fix
a Toeplitz fit printed Satterthwaite df 2e-5 and 95 % CIs of ±1e152 as converged, and
Kenward–Roger SEs near 80,000 (the data's SD is about 10).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from annulus.cli import main
from annulus.stats.mmrm import COV_PARAM_SE_MAX, DF_MIN, KR_INFLATION_MAX, fit_mmrm

FORMULA = "value ~ arm*visit"


def one_per_arm_at_the_last_visit(seed: int = 34) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for a in ["control", "low", "mid", "high"]:
        for i in range(8):
            u = rng.normal(0, 5)
            for v in range(1, 5):
                if v == 4 and i > 0:
                    continue
                rows.append((f"{a}{i}", a, f"V{v}", 60 + u + rng.normal(0, 8) - v * (a != "control")))
    return pd.DataFrame(rows, columns=["subject", "arm", "visit", "value"])


@pytest.fixture(scope="module")
def data():
    return one_per_arm_at_the_last_visit()


def _check(res, df_method):
    con = res.contrasts("arm", "control")
    last = [c for c in con if c["visit"] == "V4"]
    rest = [c for c in con if c["visit"] != "V4"]
    assert len(last) == 3 and len(rest) == 9
    for c in last:
        assert c["estimable"] is False and c["note"].startswith("not estimable")
        assert c["se"] is c["df"] is c["lower"] is c["upper"] is c["p"] is None
        assert np.isfinite(c["estimate"])
    for c in rest:  # the visits with data keep their numbers, and sensible ones
        assert "estimable" not in c
        assert c["df"] >= DF_MIN and 0 < c["se"] < 50 and c["upper"] - c["lower"] < 200
    out = res.to_dict(arm="arm")
    assert out["warnings"] and any("contrasts not estimable" in w for w in out["warnings"])
    json.dumps(out)  # None, not NaN: valid JSON


@pytest.mark.req("P-8.3")
@pytest.mark.parametrize("cov", ["toep", "arh1"])
@pytest.mark.parametrize("df", ["satterthwaite", "kenward-roger"])
def test_unidentified_contrasts_are_not_estimable(data, cov, df):
    res = fit_mmrm(data, FORMULA, subject="subject", visit="visit", cov=cov, df=df)
    _check(res, df)
    if df == "kenward-roger":  # the KR variance of the last-visit contrast blew up
        lmat = res._contrast_matrix("arm", "control", "visit")[2]
        v0 = np.einsum("ck,kl,cl->c", lmat, res._infer.vcov, lmat)
        v1 = np.einsum("ck,kl,cl->c", lmat, res._infer.vcov_used, lmat)
        assert (v1 / v0)[3::4].min() > KR_INFLATION_MAX


@pytest.mark.req("P-8.3")
def test_unidentified_covariance_parameter_is_named(data):
    res = fit_mmrm(data, FORMULA, subject="subject", visit="visit", cov="toep")
    assert res.diagnostics["well_conditioned"] is False
    assert any("TOEP(4) is not identified" in w for w in res.warnings)
    se = {p["name"]: p["se"] for p in res.cov_params}
    assert se["TOEP(4)"] > COV_PARAM_SE_MAX * res.covariance.to_numpy().diagonal().max()


@pytest.mark.req("P-8.3")
def test_every_structure_gets_the_same_check(data):
    """us stops at a singular information matrix; csh (a variance per visit) now reports the
    last-visit contrasts as not estimable like toep and arh1; cs and ar1, whose parameters every
    visit informs, keep their numbers."""
    from annulus.stats.mmrm import MmrmError

    with pytest.raises(MmrmError, match="boundary"):
        fit_mmrm(data, FORMULA, subject="subject", visit="visit", cov="us")
    _check(fit_mmrm(data, FORMULA, subject="subject", visit="visit", cov="csh"), "satterthwaite")
    for cov in ["cs", "ar1"]:
        res = fit_mmrm(data, FORMULA, subject="subject", visit="visit", cov=cov)
        con = res.contrasts("arm", "control")
        assert all("estimable" not in c and c["df"] > 10 and c["se"] < 50 for c in con)
        assert res.warnings == []


@pytest.mark.req("P-8.3")
def test_a_well_conditioned_fit_has_no_warning(data):
    full = data[data["visit"] != "V4"]
    res = fit_mmrm(full, FORMULA, subject="subject", visit="visit", cov="toep")
    assert res.warnings == [] and res.diagnostics["well_conditioned"] is True
    assert all("estimable" not in c for c in res.contrasts("arm", "control"))
    assert res.to_dict(arm="arm")["warnings"] == []


@pytest.mark.req("P-8.3")
def test_cli_prints_not_estimable_and_a_warning(data, tmp_path, capsys):
    path = tmp_path / "d.csv"
    data.to_csv(path, index=False)
    argv = ["mmrm", "--data", str(path), "--formula", FORMULA, "--subject", "subject", "--visit",
            "visit", "--cov", "toep"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "warning: covariance parameter TOEP(4) is not identified" in text
    assert "not estimable" in text
    assert "e+15" not in text and "e+1" not in text.split("Contrasts")[1]
    assert main(argv + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [c["visit"] for c in out["contrasts"] if c.get("estimable") is False] == ["V4"] * 3
