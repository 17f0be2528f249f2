"""An arm with no analysable data is refused, not dropped from the MMRM (issue 14, item 5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from annulus.cli import main
from annulus.stats.mmrm import MmrmError, fit_mmrm

FIX = Path(__file__).parent / "fixtures" / "mmrm"


@pytest.fixture()
def trial():
    return pd.read_csv(FIX / "r_trial.csv")


@pytest.mark.req("P-8.3")
@pytest.mark.parametrize("column", ["value", "base"])
def test_arm_without_data_is_refused(trial, column):
    trial.loc[trial["arm"] == "high", column] = np.nan
    with pytest.raises(MmrmError) as exc:
        fit_mmrm(trial, "value ~ base + arm*visit", subject="subject", visit="visit", cov="cs")
    msg = str(exc.value)
    assert "level 'high' of 'arm'" in msg and "30 subjects" in msg and "\n" not in msg


@pytest.mark.req("P-8.3")
def test_cli_says_which_arm(trial, tmp_path, capsys):
    trial.loc[trial["arm"] == "low", "value"] = np.nan
    path = tmp_path / "d.csv"
    trial.to_csv(path, index=False, na_rep="NA")
    argv = ["mmrm", "--data", str(path), "--formula", "value ~ base + arm*visit", "--subject",
            "subject", "--visit", "visit", "--cov", "cs"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert "level 'low' of 'arm'" in err and "28 subjects" in err


@pytest.mark.req("P-8.3")
def test_every_arm_with_some_data_is_fitted(trial):
    # One subject of an arm keeping a single value is enough for the arm to stay in the model.
    high = trial["arm"] == "high"
    keep = trial.index[high][0]
    trial.loc[high & (trial.index != keep), "value"] = np.nan
    res = fit_mmrm(trial, "value ~ base + arm + visit", subject="subject", visit="visit", cov="cs")
    assert res.n_subjects == trial.loc[trial["value"].notna(), "subject"].nunique()
    assert {c["arm"] for c in res.contrasts("arm", "control", by=None)} == {"high", "low", "mid"}
