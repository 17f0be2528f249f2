"""``annulus report``: bad input is one line and a non-zero exit, nothing written; ``--from`` builds
the report from an export folder alone; the report's words exist in both languages (X-8.5)."""

from __future__ import annotations

import json

import pytest

from annulus.cli import main
from annulus.report.words import WORDS

pytestmark = pytest.mark.req("X-8.5")


def _run(capsys, argv) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["report", "--out", "{tmp}/report.txt", "--from", "{tmp}"], "--out: {tmp}/report.txt must end in .html or .pdf"),
    (["report", "--out", "{tmp}/r.html", "--from", "{tmp}/missing"], "--from: {tmp}/missing is not a folder"),
    (["report", "--out", "{tmp}/r.html", "--from", "{tmp}"], "has no manifest.json: not an export folder"),
    (["report", "--out", "{tmp}/nowhere/r.html", "--from", "{tmp}"], "--out: {tmp}/nowhere does not exist"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path) for a in argv]
    code, err = _run(capsys, argv)
    assert code != 0 and message.format(tmp=tmp_path) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.glob("r*.*"))


def test_an_export_of_another_format_is_refused(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "csv"}), encoding="utf-8")
    code, err = _run(capsys, ["report", "--out", str(tmp_path / "r.html"), "--from", str(tmp_path)])
    assert code != 0 and "holds a 'csv' export, not the analysis datasets (adam)" in err


def test_a_manifest_that_is_not_json_is_refused(tmp_path, capsys):
    (tmp_path / "manifest.json").write_bytes(b"\x00{not json")
    code, err = _run(capsys, ["report", "--out", str(tmp_path / "r.html"), "--from", str(tmp_path)])
    assert code != 0 and "is not valid JSON" in err and len(err.strip().splitlines()) == 1


def test_both_languages_have_every_word():
    assert set(WORDS["en"]) == set(WORDS["zh"])
    for lang, words in WORDS.items():
        assert all(w.strip() for w in words.values()), lang
