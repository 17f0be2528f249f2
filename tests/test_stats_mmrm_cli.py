"""``annulus mmrm``: JSON and table output, and every bad input -> one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from annulus.cli import main

FIX = Path(__file__).resolve().parent / "fixtures" / "mmrm"
FEV = FIX / "fev_data.csv"
BASE = ["mmrm", "--formula", "FEV1 ~ RACE + SEX + ARMCD*AVISIT", "--subject", "USUBJID",
        "--visit", "AVISIT"]


def _run(capsys, *extra, data=FEV):
    code = main(BASE + ["--data", str(data), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def _write(tmp_path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False, na_rep="NA")
    return path


@pytest.mark.req("P-8.3")
def test_json_matches_sas(capsys):
    code, out, err = _run(capsys, "--cov", "us", "--df", "satterthwaite", "--arm", "ARMCD",
                          "--control", "PBO", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["neg2_reml"] == pytest.approx(3386.44987722, abs=1e-4)
    assert doc["converged"] is True
    trt = next(c for c in doc["coefficients"] if c["term"] == "ARMCD[T.TRT]")
    assert set(trt) == {"term", "estimate", "se", "df", "t", "p"}
    assert trt["estimate"] == pytest.approx(3.7745, abs=1e-3)
    vis4 = next(c for c in doc["contrasts"] if c["visit"] == "VIS4")
    assert vis4["estimate"] == pytest.approx(4.3985, abs=1e-3)
    assert vis4["p"] == pytest.approx(0.0099, abs=1e-4)
    assert doc["covariance"]["visits"] == ["VIS1", "VIS2", "VIS3", "VIS4"]
    assert len(doc["lsmeans"]) == 8


@pytest.mark.req("P-8.3")
def test_arm_is_found_from_the_formula_and_ml_key(capsys):
    code, out, _ = _run(capsys, "--method", "ml", "--cov", "cs", "--json")
    assert code == 0
    doc = json.loads(out)
    assert "neg2_ml" in doc and "neg2_reml" not in doc
    assert {c["arm"] for c in doc["contrasts"]} == {"TRT"}


@pytest.mark.req("P-8.3")
def test_table_output(capsys):
    code, out, _ = _run(capsys, "--df", "kr")
    assert code == 0
    assert "-2 REML log-likelihood" in out
    assert "ARMCD[T.TRT]:AVISIT[T.VIS4]" in out
    assert "TRT - PBO @ VIS4" in out


@pytest.mark.req("P-8.3")
def test_na_and_empty_cells_are_missing(capsys, tmp_path):
    frame = pd.read_csv(FEV)
    path = tmp_path / "blank.csv"
    frame.to_csv(path, index=False, na_rep="")  # empty cells instead of NA
    code, out, _ = _run(capsys, "--json", data=path)
    assert code == 0
    assert json.loads(out)["neg2_reml"] == pytest.approx(3386.44987722, abs=1e-4)



BAD_INPUTS = {
    "missing column": (lambda f: f.drop(columns=["AVISIT"]), None, (), "visit column 'AVISIT' not found"),
    "non-numeric response": (lambda f: f.assign(FEV1=f.FEV1.astype(object).where(f.index != 3, "high")),
                             None, (), "non-numeric value 'high'"),
    "visit with no data": (lambda f: f.assign(FEV1=f.FEV1.where(f.AVISIT != "VIS2")), None, (),
                           "visit 'VIS2' has no non-missing values"),
    "single arm": (lambda f: f.assign(ARMCD="TRT"), None, (), "only one arm in 'ARMCD'"),
    "subject with two arms": (lambda f: f.assign(ARMCD=f.ARMCD.where(f.index != 1, "PBO")), None,
                              (), "subject 'PT1' has more than one 'ARMCD' value"),
    "singular design": (lambda f: f.assign(W2=f.WEIGHT * 3), "FEV1 ~ WEIGHT + W2 + ARMCD*AVISIT",
                        (), "singular design: column 'W2'"),
    "unknown column in formula": (None, "FEV1 ~ AGE + ARMCD*AVISIT", (),
                                  "formula names unknown column 'AGE'"),
    "unknown arm": (None, None, ("--arm", "ARM"), "arm column 'ARM' not found"),
}


@pytest.mark.req("P-8.3")
@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_one_line_exit_2(capsys, tmp_path, case):
    frame_fn, formula, extra, needle = BAD_INPUTS[case]
    frame = pd.read_csv(FEV)
    path = _write(tmp_path, frame_fn(frame) if frame_fn else frame)
    argv = list(BASE) + ["--data", str(path), *extra]
    if formula:
        argv[argv.index("--formula") + 1] = formula
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("annulus mmrm: error: ")
    assert needle in lines[0]
    assert "Traceback" not in err and out == ""


@pytest.mark.req("P-8.3")
@pytest.mark.parametrize("kind", ["missing", "directory", "binary", "empty"])
def test_unreadable_file(capsys, tmp_path, kind):
    path = tmp_path / "x.csv"
    if kind == "directory":
        path.mkdir()
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 8)
    elif kind == "empty":
        path.write_text("")
    code, out, err = _run(capsys, data=path)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert f"cannot read {path}" in err


@pytest.mark.req("P-8.3")
def test_console_script_subprocess(tmp_path):
    frame = pd.read_csv(FEV).drop(columns=["ARMCD"])
    path = _write(tmp_path, frame)
    proc = subprocess.run(
        [sys.executable, "-m", "annulus", *BASE, "--data", str(path), "--json"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "annulus mmrm: error: formula names unknown column 'ARMCD'"
    assert "Traceback" not in proc.stderr


@pytest.mark.req("P-8.3")
def test_protocol_visits_are_taken_in_schedule_order_by_default(capsys):
    """The trial's own visit ids (W1, M1, M3 ... M24) sort by the protocol's schedule, not the
    alphabet, so an AR(1) fit without --visit-order equals the one with the explicit order."""
    data = FIX / "r_trial.csv"
    common = ["mmrm", "--data", str(data), "--formula", "value ~ base + arm*visit", "--subject", "subject",
              "--visit", "visit", "--cov", "ar1", "--json"]
    assert main(common) == 0
    default = json.loads(capsys.readouterr().out)
    assert main(common + ["--visit-order", "W1,M1,M3,M6,M12,M18,M24"]) == 0
    explicit = json.loads(capsys.readouterr().out)
    assert main(common + ["--visit-order", "M1,M12,M18,M24,M3,M6,W1"]) == 0
    alphabetical = json.loads(capsys.readouterr().out)
    assert default["neg2_reml"] == pytest.approx(explicit["neg2_reml"], abs=1e-6)
    assert default["neg2_reml"] < alphabetical["neg2_reml"]
