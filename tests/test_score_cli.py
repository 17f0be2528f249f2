"""`annulus score NAME`: raw answers on stdin, JSON out; bad input is one line and exit 2."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from annulus.cli import main


def run(monkeypatch, capsys, argv, stdin: bytes | str = b""):
    data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    code = main(["score", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.req("X-5.7")
def test_list_names_the_instruments(monkeypatch, capsys):
    code, out, _ = run(monkeypatch, capsys, ["--list"])
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert {"vas", "odi", "joa", "sf36"} <= set(names)


@pytest.mark.req("P-5.2", "X-5.7")
def test_odi_prints_score_and_parts(monkeypatch, capsys):
    code, out, _ = run(monkeypatch, capsys, ["odi"], '{"items": [3, 2, 2, 1, 2, 2, 1, 1, 1, 1]}')
    assert code == 0
    doc = json.loads(out)
    assert doc["score"] == 32.0
    assert doc["parts"]["total_scored"] == 16


@pytest.mark.req("P-5.1")
def test_vas(monkeypatch, capsys):
    code, out, _ = run(monkeypatch, capsys, ["vas"], '{"items": [42.5]}')
    assert code == 0 and json.loads(out)["score"] == 42.5


@pytest.mark.req("P-5.3")
def test_joa(monkeypatch, capsys):
    items = [1, 2, 2, 1, 2, 2, 1, 1, 1, 0, 1, 0, 1, 0]
    code, out, _ = run(monkeypatch, capsys, ["joa"], json.dumps({"items": items}))
    assert code == 0
    doc = json.loads(out)
    assert doc["score"] == 15.0 and doc["parts"]["adl"] == 5


@pytest.mark.req("P-5.4")
def test_sf36_prints_eight_scales_and_summaries(monkeypatch, capsys):
    items = [3, 3, 1, 2, 2, 3, 2, 3, 2, 3, 3, 3, 1, 1, 2, 2, 2, 2, 1, 2, 4, 3, 3, 5, 5, 3, 4,
             4, 4, 2, 3, 4, 4, 2, 3, 3]
    code, out, _ = run(monkeypatch, capsys, ["sf36"], json.dumps({"items": items}))
    assert code == 0
    doc = json.loads(out)
    for key in ("PF", "RP", "BP", "GH", "VT", "SF", "RE", "MH", "PCS", "MCS"):
        assert key in doc
    assert doc["PF"] == 70.0
    assert doc["PCS"] == pytest.approx(39.5227, abs=1e-4)


@pytest.mark.req("P-5.2", "X-5.7")
def test_too_many_missing_is_a_null_score_with_reason_and_exit_0(monkeypatch, capsys):
    code, out, _ = run(
        monkeypatch, capsys, ["odi"], '{"items": [1, null, 2, null, 3, null, 1, 1, 1, 1]}')
    assert code == 0
    doc = json.loads(out)
    assert doc["score"] is None
    assert doc["reason"].startswith("too many missing sections")


@pytest.mark.req("P-5.2")
def test_max_missing_option(monkeypatch, capsys):
    stdin = '{"items": [1, 1, 1, 1, 1, 1, 1, 1, null, null]}'
    code, out, _ = run(monkeypatch, capsys, ["odi", "--max-missing", "2"], stdin)
    assert code == 0 and json.loads(out)["score"] == 20.0
    code, _, err = run(monkeypatch, capsys, ["vas", "--max-missing", "2"], '{"items": [1]}')
    assert code == 2 and "odi only" in err


@pytest.mark.req("X-5.7")
@pytest.mark.parametrize(
    "argv, stdin, message",
    [
        (["sf36"], json.dumps({"items": [7] + [1] * 35}),
         "items[0]: SF-36 item 1 must be 1–5, got 7"),
        (["vas"], '{"items": [101]}', "items[0]: VAS must be 0–100 mm, got 101"),
        (["vas"], '{"items": [-1]}', "items[0]: VAS must be 0–100 mm, got -1"),
        (["vas"], '{"items": ["abc"]}', "items[0]: VAS must be a number, got 'abc'"),
        (["odi"], '{"items": [1, 2, 3]}', "items: ODI needs 10 items, got 3"),
        (["odi"], '{"items": 5}', "items: must be a list"),
        (["odi"], '[1, 2]', 'must be a JSON object {"items": [...]}'),
        (["odi"], '{"items": [1, 2,', "stdin is not valid JSON"),
        (["odi"], "", "stdin is not valid JSON"),
        (["odi"], b'{"items": [\xff]}', "stdin is not UTF-8 text"),
        (["nosuch"], '{"items": []}', "unknown instrument 'nosuch'"),
        ([], "", "NAME is required"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(monkeypatch, capsys, argv, stdin, message):
    code, out, err = run(monkeypatch, capsys, argv, stdin)
    assert code == 2
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


@pytest.mark.req("X-5.7")
def test_console_script_end_to_end():
    proc = subprocess.run(
        [sys.executable, "-m", "annulus", "score", "odi"],
        input=b'{"items": [2, 7, 2, 1, 2, 2, 1, 2, 1, 1]}',
        capture_output=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.decode().strip() == (
        "annulus score: error: items[1]: ODI section 2 (personal care) must be 0–5, got 7")
