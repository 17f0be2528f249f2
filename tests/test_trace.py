"""`annulus trace` builds the requirement -> tests table from the markers."""

from pathlib import Path

from annulus.cli import main


def test_trace_lists_covered_and_uncovered_requirements(tmp_path: Path, capsys):
    reqs = tmp_path / "REQUIREMENTS.md"
    reqs.write_text("# R\n- P-1.1 First thing.\n- P-1.2 Second thing\n  continued here.\n- X-9.9 Nobody tests this.\n")
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_a.py").write_text(
        "import pytest\n"
        "pytestmark = pytest.mark.req('P-1.2')\n"
        "@pytest.mark.req('P-1.1', 'P-7.7')\n"
        "def test_one():\n    assert True\n"
        "class TestGroup:\n"
        "    @pytest.mark.req('P-1.1')\n"
        "    def test_two(self):\n        assert True\n"
    )
    out = tmp_path / "trace.md"
    code = main(["trace", "--requirements", str(reqs), "--tests", str(tests), "--out", str(out), "--check"])
    text = out.read_text()
    assert code == 1  # has no test and --check was given
    assert "2 of 3 requirements" in text
    assert "test_a.py::test_one" in text and "test_a.py::TestGroup::test_two" in text
    assert "| **X-9.9** Nobody tests this. | 0 | **NO TEST** |" in text
    assert "- P-7.7" in text.split("not in REQUIREMENTS.md")[1]
    assert "Second thing continued here." in text
    assert "without: X-9.9" in capsys.readouterr().out


def test_trace_missing_requirements_file_is_one_line(tmp_path: Path, capsys):
    code = main(["trace", "--requirements", str(tmp_path / "nope.md"), "--out", str(tmp_path / "t.md")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no such file" in err[0]
