"""`annulus protocol validate` and the loader: the shipped file is valid; each bad file is
refused with exit 2 and one line per problem naming the field's path (X-1.3)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from annulus.cli import main
from annulus.protocol import MAX_BYTES, ProtocolError, default_protocol_path, load_protocol, parse_protocol

BAD = Path(__file__).resolve().parent / "fixtures" / "protocols"


@pytest.mark.req("X-1.3", "P-1.1", "P-1.2")
def test_shipped_protocol_validates_with_four_arms_and_2ml_doses(capsys):
    assert main(["protocol", "validate", str(default_protocol_path())]) == 0
    assert "valid protocol ChiCTR2200058291 version 1.0" in capsys.readouterr().out
    p = load_protocol(default_protocol_path())
    assert [(a.id, a.ratio) for a in p.arms] == [("high", 1), ("mid", 1), ("low", 1), ("control", 1)]
    assert (p.sample_size.per_arm, p.sample_size.total) == (25, 100)
    assert p.randomisation.case_number_width == 3  # case numbers 001-100
    recipes = {a.id: (a.cells_per_disc, a.recipe.cell_suspension_ml, a.recipe.saline_ml, a.recipe.ha_hydrogel_ml)
               for a in p.arms}
    assert recipes == {
        "high": (20_000_000, 1.0, 0.0, 1.0),
        "mid": (10_000_000, 0.5, 0.5, 1.0),
        "low": (5_000_000, 0.25, 0.75, 1.0),
        "control": (0, 0.0, 2.0, 0.0),
    }
    assert all(a.recipe.total_ml == 2.0 for a in p.arms)
    assert p.control_arm.id == "control"


@pytest.mark.req("X-1.3")
@pytest.mark.parametrize(
    "name, expected",
    [
        ("missing_control_arm.yaml", ["arms: exactly one arm must be the control arm (found 0)",
                                      "sample_size.total: 100 is not a multiple of the ratio sum 3",
                                      "randomisation.block_sizes[0]: 4 is not a multiple of the ratio sum 3",
                                      "randomisation.block_sizes[1]: 8 is not a multiple of the ratio sum 3"]),
        ("one_arm.yaml", ["arms: List should have at least 2 items"]),
        ("unknown_field.yaml", ["arms[0].colour: Extra inputs are not permitted"]),
        ("wrong_type_ratio.yaml", ["arms[2].ratio: Input should be a valid integer"]),
        ("wrong_type_rule.yaml", ["eligibility.inclusion[3].rule.min: Input should be a valid number"]),
        ("undeclared_field.yaml", ["eligibility.inclusion[0]: criterion I1 uses undeclared field 'birthday'"]),
        ("recipe_not_2ml.yaml", ["arms[1].recipe: volumes add up to 2.25 mL, the injection is 2.0 mL"]),
        ("latin1.yaml", ["(file): not UTF-8 text"]),
    ],
)
def test_bad_protocol_file_exits_2_naming_each_path(name, expected, capsys):
    assert main(["protocol", "validate", str(BAD / name)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == len(expected), lines
    for line, start in zip(lines, expected):
        assert line.startswith(start), (line, start)
    assert "Traceback" not in captured.err + captured.out
    assert "valid protocol" not in captured.out


@pytest.mark.req("X-1.3")
def test_huge_file_is_refused_without_parsing(tmp_path, capsys):
    huge = tmp_path / "huge.yaml"
    # valid YAML (a comment) so only the size can be the reason
    huge.write_bytes(default_protocol_path().read_bytes() + b"#" + b"x" * MAX_BYTES + b"\n")
    assert main(["protocol", "validate", str(huge)]) == 2
    assert capsys.readouterr().err.strip() == f"(file): larger than {MAX_BYTES} bytes"
    with pytest.raises(ProtocolError, match="larger than"):
        parse_protocol(huge.read_bytes())


@pytest.mark.req("X-1.3")
@pytest.mark.parametrize(
    "text, expected",
    [
        (b"", "(top level): a protocol is a mapping of keys"),
        (b"- 1\n- 2\n", "(top level): a protocol is a mapping of keys"),
        (b"version: [1\n", "line 2: not valid YAML"),
        (b"\xff\xfeversion: 1", "(file): not UTF-8 text (byte 0)"),
    ],
)
def test_not_a_protocol_at_all(text, expected):
    with pytest.raises(ProtocolError) as info:
        parse_protocol(text)
    assert info.value.errors[0].startswith(expected)


@pytest.mark.req("X-1.3")
def test_missing_file_is_one_line_not_a_traceback(tmp_path, capsys):
    assert main(["protocol", "validate", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("(file): cannot read") and "Traceback" not in err


@pytest.mark.req("X-1.3")
def test_console_script_exit_code_and_stderr():
    # the real process, as a user runs it
    run = subprocess.run([sys.executable, "-m", "annulus", "protocol", "validate", str(BAD / "wrong_type_ratio.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.startswith("arms[2].ratio: ")
    ok = subprocess.run([sys.executable, "-m", "annulus", "protocol", "validate", str(default_protocol_path())],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr


@pytest.mark.req("X-1.3")
def test_show_prints_summary(capsys):
    assert main(["protocol", "show"]) == 0
    out = capsys.readouterr().out
    assert "ChiCTR2200058291" in out and "I10" in out and "E10" in out and "m24" in out
