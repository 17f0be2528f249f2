"""``annulus bench mmrm`` runs end to end on a small trial (timings are printed, never asserted)."""

from __future__ import annotations

import pytest

from annulus.bench.mmrm import VISITS, simulate
from annulus.cli import main


@pytest.mark.req("P-8.3")
def test_simulated_trial_shape():
    data = simulate(200, seed=3)
    assert len(data) == 200 * len(VISITS)
    assert data.groupby("subject").arm.nunique().max() == 1
    assert sorted(data.arm.unique()) == ["control", "high", "low", "mid"]
    last = data[data.visit == "M24"].value.isna().mean()
    assert 0.1 < last < 0.3
    # Monotone dropout: once missing, missing at every later visit.
    wide = data.pivot(index="subject", columns="vnum", values="value").isna().to_numpy()
    assert (wide[:, 1:] >= wide[:, :-1]).all()


@pytest.mark.req("P-8.3")
def test_bench_command_prints_a_table(capsys):
    assert main(["bench", "mmrm", "--sizes", "40", "--no-r"]) == 0
    out = capsys.readouterr().out
    assert "[40 subjects x 7 visits] fitting in Python" in out
    assert "Python s" in out.splitlines()[-2]


@pytest.mark.req("P-8.3")
def test_bench_rejects_bad_sizes(capsys):
    assert main(["bench", "mmrm", "--sizes", "ten", "--no-r"]) == 2
    assert "--sizes must be comma-separated integers" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_full_run(capsys):
    assert main(["bench", "mmrm"]) == 0
    print(capsys.readouterr().out)
