"""`annulus bench power` runs end to end on a few small trials (figures are printed, never asserted)."""

from __future__ import annotations

import pytest

from annulus.cli import main


@pytest.mark.req("P-8.3")
def test_bench_power_prints_trials_jobs_seconds_and_power(capsys):
    assert main(["bench", "power", "--trials", "4", "--jobs", "1", "--per-group", "5",
                 "--standalone", "1"]) == 0
    out = capsys.readouterr().out
    assert "standalone fit_mmrm per trial (as before): 1 trials" in out
    line = next(x for x in out.splitlines() if x.startswith("trials 4, jobs 1,"))
    assert "CPU" in line and "trials/s" in line and "load average" in line
    assert out.count("±") == 6  # t test and MMRM for each of the three doses
    assert "this run vs standalone: MMRM p relative difference" in out


def test_bench_power_bad_argument_is_one_line(capsys):
    assert main(["bench", "power", "--trials", "0"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "--trials" in err
