"""Bad input to the statistics commands: one line naming the problem, exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from annulus.cli import main

GOOD = (
    "subject,arm,visit,vas,baseline\n"
    "S1,control,week 1,60,70\nS1,control,month 1,55,70\n"
    "S2,control,week 1,62,68\nS2,control,month 1,58,68\n"
    "S3,high,week 1,50,71\nS3,high,month 1,40,71\n"
    "S4,high,week 1,48,66\nS4,high,month 1,41,66\n"
)
COMPARE = ["--subject", "subject", "--arm", "arm", "--visit", "visit", "--value", "vas",
           "--baseline", "baseline", "--control", "control"]


def csv(tmp_path: Path, text: str) -> str:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return str(path)


def run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, out, err, *words):
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error:" in lines[0] and "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_the_good_table_passes(tmp_path, capsys):
    code, out, err = run(capsys, ["compare", "--data", csv(tmp_path, GOOD), *COMPARE, "--json"])
    assert code == 0 and err == ""


@pytest.mark.req("P-8.2")
@pytest.mark.parametrize(
    "text, words",
    [
        (GOOD.replace("vas,", "pain,", 1), ["column 'vas' not found"]),
        (GOOD.replace("S3,high,week 1,50", "S3,high,week 1,fifty"), ["non-numeric", "'fifty'",
                                                                    "line 6"]),
        (GOOD + "S1,control,month 3,NA,70\nS3,high,month 3,,71\n", ["visit 'month 3' has no data"]),
        (GOOD.replace("high", "control"), ["single arm"]),
        (GOOD.replace("S3,high,month 1", "S3,control,month 1"),
         ["subject 'S3'", "more than one arm"]),
        (GOOD.replace("S4,high,month 1,41,66", "S4,high,month 1,41,67"),
         ["subject 'S4'", "baseline"]),
        (GOOD + "S1,control,week 1,61,70\n", ["subject 'S1'", "visit 'week 1'"]),
    ],
    ids=["missing column", "non-numeric", "visit without data", "single arm", "two arms",
         "two baselines", "visit twice"],
)
def test_compare_rejects_bad_tables(tmp_path, capsys, text, words):
    code, out, err = run(capsys, ["compare", "--data", csv(tmp_path, text), *COMPARE])
    assert_one_line_error(code, out, err, *words)


@pytest.mark.req("P-8.2")
def test_compare_unknown_control_and_missing_file(tmp_path, capsys):
    argv = ["compare", "--data", csv(tmp_path, GOOD), *COMPARE[:-1], "placebo"]
    assert_one_line_error(*run(capsys, argv), "control level 'placebo'")
    argv = ["compare", "--data", str(tmp_path / "nope.csv"), *COMPARE]
    assert_one_line_error(*run(capsys, argv), "not found")
    argv = ["compare", "--data", csv(tmp_path, GOOD), *COMPARE, "--responder-threshold", "x"]
    assert_one_line_error(*run(capsys, argv), "--responder-threshold")


@pytest.mark.req("P-8.1")
@pytest.mark.parametrize(
    "extra, words",
    [
        (["--power", "1.2"], ["power must be in (0, 1)", "1.2"]),
        (["--sd", "-3"], ["sd must be positive"]),
        (["--sd", "abc"], ["--sd must be a number", "'abc'"]),
        (["--dropout", "1"], ["dropout"]),
        (["--method", "exact"], ["method"]),
        (["--n", "2.5"], ["--n must be a whole number"]),
    ],
)
def test_samplesize_rejects_bad_parameters(capsys, extra, words):
    argv = ["samplesize", "--delta", "10.6", "--sd", "10.27", *extra]
    assert_one_line_error(*run(capsys, argv), *words)


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--per-group", "x"], ["--per-group"]),
        (["--dropout", "1.5"], ["dropout"]),
        (["--effect", "1,2"], ["one per dose"]),
    ],
)
def test_power_rejects_bad_parameters(capsys, extra, words):
    argv = ["power", "--sims", "2", "--per-group", "10", "--effect", "5", "--no-mmrm", *extra]
    assert_one_line_error(*run(capsys, argv), *words)


def test_dose_needs_a_dose_for_every_arm(tmp_path, capsys):
    argv = ["dose", "--data", csv(tmp_path, GOOD), *COMPARE, "--dose", "control=0"]
    assert_one_line_error(*run(capsys, argv), "arm 'high'")
    argv = ["dose", "--data", csv(tmp_path, GOOD), *COMPARE, "--dose", "control=0,high=x"]
    assert_one_line_error(*run(capsys, argv), "--dose high")


def test_console_script_prints_no_traceback(tmp_path):
    bad = csv(tmp_path, GOOD.replace("high", "control"))
    proc = subprocess.run([sys.executable, "-m", "annulus", "compare", "--data", bad, *COMPARE],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "single arm" in proc.stderr
