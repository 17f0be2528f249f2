"""Non-finite numbers are refused by every reader, naming the CSV line and column, with no numpy
warnings before the one-line error (issue 14, item 4)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from annulus.cli import main
from annulus.stats._io import InputError, check_finite_text
from annulus.stats.compare import compare_visits, load_long_table
from annulus.stats.mmrm import MmrmError, fit_mmrm

GOOD = (
    "subject,arm,visit,vas,baseline\n"
    "S1,control,week 1,60,70\nS1,control,month 1,55,70\n"
    "S2,control,week 1,62,68\nS2,control,month 1,58,68\n"
    "S3,high,week 1,50,71\nS3,high,month 1,40,71\n"
    "S4,high,week 1,48,66\nS4,high,month 1,41,66\n"
    "S5,control,week 1,61,64\nS5,control,month 1,57,64\n"
    "S6,high,week 1,47,69\nS6,high,month 1,39,69\n"
    "S7,low,week 1,52,67\nS7,low,month 1,45,67\nS8,low,week 1,55,70\nS8,low,month 1,47,70\n"
    "S9,low,week 1,50,66\nS9,low,month 1,44,66\n"
)
TABLE = ["--subject", "subject", "--arm", "arm", "--visit", "visit", "--value", "vas",
         "--baseline", "baseline", "--control", "control"]
COMMANDS = {
    "compare": ["compare", *TABLE],
    "dose": ["dose", *TABLE, "--dose", "control=0,low=1,high=2"],
    "mmrm": ["mmrm", "--formula", "vas ~ baseline + arm*visit", "--subject", "subject",
             "--visit", "visit", "--cov", "cs"],
}
BAD = {  # replacement in GOOD, the column and line the error must name
    "inf": ("S3,high,month 1,40,71", "S3,high,month 1,inf,71", "vas", 7),
    "-inf": ("S4,high,week 1,48,66", "S4,high,week 1,-inf,66", "vas", 8),
    "NaN text": ("S2,control,week 1,62,68", "S2,control,week 1,NaN,68", "vas", 4),
    "nan text": ("S2,control,week 1,62,68", "S2,control,week 1,nan,68", "vas", 4),
    "Infinity baseline": ("S6,high,week 1,47,69", "S6,high,week 1,47,Infinity", "baseline", 12),
}


@pytest.mark.req("P-8.2")
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", BAD)
def test_every_command_refuses_non_finite_values(tmp_path, capsys, command, case):
    old, new, column, line = BAD[case]
    path = tmp_path / "d.csv"
    path.write_text(GOOD.replace(old, new))
    assert main([COMMANDS[command][0], "--data", str(path), *COMMANDS[command][1:]]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"column '{column}'" in lines[0] and f"(line {line})" in lines[0]
    assert "non-finite" in lines[0]


@pytest.mark.req("P-8.2")
def test_the_good_table_still_passes_and_na_is_missing(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text(GOOD.replace("S3,high,month 1,40,71", "S3,high,month 1,NA,71"))
    for command, argv in COMMANDS.items():
        assert main([argv[0], "--data", str(path), *argv[1:], "--json"]) == 0, command
        assert capsys.readouterr().err == ""


@pytest.mark.req("P-8.2")
def test_no_numpy_warnings_before_the_error(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(GOOD.replace("S3,high,month 1,40,71", "S3,high,month 1,inf,71"))
    for command, argv in COMMANDS.items():
        proc = subprocess.run([sys.executable, "-W", "always", "-m", "annulus", argv[0],
                               "--data", str(path), *argv[1:]], capture_output=True, text=True)
        assert proc.returncode == 2, (command, proc.stderr)
        assert proc.stderr.count("\n") == 1, (command, proc.stderr)
        assert "Warning" not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.req("P-8.3")
def test_library_callers_are_refused_too():
    frame = pd.DataFrame({"subject": ["a", "a", "b", "b", "c", "c", "d", "d"],
                          "arm": ["x"] * 4 + ["y"] * 4, "visit": ["w1", "m1"] * 4,
                          "value": [1.0, 2, 3, np.inf, 5, 6, 7, 8]})
    with pytest.raises(MmrmError, match="non-finite value inf"):
        fit_mmrm(frame, "value ~ arm*visit", subject="subject", visit="visit", cov="cs")
    with pytest.raises(InputError, match="column 'value' has a non-finite value"):
        compare_visits(frame, "x", endpoint="value")
    with pytest.raises(InputError, match="line 5"):
        load_long_table(frame, "subject", "arm", "visit", "value")
    text = pd.DataFrame({"a": ["1", "NA", "", "2"], "b": ["1", "2", "3", "-Inf"]})
    check_finite_text(text, ["a"])
    with pytest.raises(InputError, match=r"column 'b' has a non-finite value '-Inf' \(line 5\)"):
        check_finite_text(text, ["a", "b"])

