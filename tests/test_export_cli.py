"""``annulus export`` (X-7.6): the export from the command line, each bad input one line and exit 2."""

from __future__ import annotations

import json

import pytest

from annulus.audit.models import AuditEvent
from annulus.cli import main
from annulus.exports.models import ExportRun

pytestmark = pytest.mark.req("X-7.6")

FMT = "csv"


@pytest.fixture
def trial(users, make_participant):
    return [make_participant("enrolled"), make_participant("screen_failed")]


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["export", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code, err, *words):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("annulus export: error: "), err
    for w in words:
        assert w in lines[0], lines[0]


def test_export_from_the_command_line(capsys, users, trial, tmp_path):
    out = tmp_path / "out"
    code, text, err = _run(capsys, "--format", FMT, "--out", str(out), "--user", "t_statistician", "--no-progress")
    assert code == 0, err
    assert f"{FMT} export of 2 participant(s)" in text and "blinded" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stamp"]["created_by"] == "t_statistician"
    e = AuditEvent.objects.order_by("-id").first()
    assert (e.action, e.object_type, e.actor_username) == ("export", "export_run", "t_statistician")
    assert ExportRun.objects.get().origin == "cli"


def test_the_user_comes_from_annulus_user(capsys, users, trial, tmp_path, monkeypatch):
    monkeypatch.setenv("ANNULUS_USER", "t_data_manager")
    code, _, err = _run(capsys, "--format", FMT, "--out", str(tmp_path / "o"))
    assert code == 0, err
    assert AuditEvent.objects.order_by("-id").first().actor_username == "t_data_manager"


def test_adam_shorthand(capsys, users, trial, tmp_path):
    code, text, err = _run(capsys, "--adam", str(tmp_path / "adam"), "--user", "t_statistician")
    assert code == 0, err
    assert ExportRun.objects.get().format == "adam"
    assert (tmp_path / "adam" / "manifest.json").exists() and (tmp_path / "adam" / "adeff.csv").exists()


def test_unknown_format(capsys, users, tmp_path):
    code, _, err = _run(capsys, "--format", "xlsx", "--out", str(tmp_path / "o"), "--user", "t_monitor")
    _one_line_error(code, err, "--format", "xlsx", "csv")


def test_role_not_allowed(capsys, users, tmp_path):
    for role in ("designer", "dsmb", "ethics", "admin"):
        code, _, err = _run(capsys, "--format", FMT, "--out", str(tmp_path / role), "--user", f"t_{role}")
        _one_line_error(code, err, "--user", f"t_{role}", "may not export")
    assert not ExportRun.objects.exists()


def test_unknown_or_missing_user(capsys, users, tmp_path, monkeypatch):
    monkeypatch.delenv("ANNULUS_USER", raising=False)
    code, _, err = _run(capsys, "--format", FMT, "--out", str(tmp_path / "o"))
    _one_line_error(code, err, "--user")
    code, _, err = _run(capsys, "--format", FMT, "--out", str(tmp_path / "o"), "--user", "nobody")
    _one_line_error(code, err, "--user", "nobody")


def test_future_as_of(capsys, users, tmp_path):
    code, _, err = _run(capsys, "--format", FMT, "--out", str(tmp_path / "o"), "--user", "t_monitor",
                        "--as-of", "2099-01-01T00:00")
    _one_line_error(code, err, "--as-of", "future")


def test_implausible_as_of(capsys, users, tmp_path):
    code, _, err = _run(capsys, "--format", FMT, "--out", str(tmp_path / "o"), "--user", "t_monitor",
                        "--as-of", "2999-01-01")
    _one_line_error(code, err, "--as-of", "must be between 1900-01-01 and 2100-12-31")


def test_as_of_before_the_trial(capsys, users, tmp_path):
    code, _, err = _run(capsys, "--format", FMT, "--out", str(tmp_path / "o"), "--user", "t_monitor",
                        "--as-of", "2001-01-01")
    _one_line_error(code, err, "--as-of", "before the trial")


def test_unreadable_as_of(capsys, users, tmp_path):
    code, _, err = _run(capsys, "--format", FMT, "--out", str(tmp_path / "o"), "--user", "t_monitor",
                        "--as-of", "last tuesday")
    _one_line_error(code, err, "--as-of", "last tuesday")


def test_identifiable_not_allowed(capsys, users, tmp_path):
    code, _, err = _run(capsys, "--format", FMT, "--out", str(tmp_path / "o"), "--user", "t_statistician",
                        "--identifiable")
    _one_line_error(code, err, "--identifiable")


def test_non_empty_folder_needs_force(capsys, users, trial, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = _run(capsys, "--format", FMT, "--out", str(out), "--user", "t_monitor")
    _one_line_error(code, err, "--out", "not empty", "--force")
    assert not ExportRun.objects.exists()
    code, _, err = _run(capsys, "--format", FMT, "--out", str(out), "--user", "t_monitor", "--force")
    assert code == 0, err
    assert (out / "keep.txt").read_text() == "mine" and (out / "manifest.json").exists()


def test_empty_trial_gives_valid_empty_files(capsys, users, tmp_path):
    out = tmp_path / "empty"
    code, text, err = _run(capsys, "--format", FMT, "--out", str(out), "--user", "t_monitor")
    assert code == 0, err
    assert "0 participant(s)" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["scope"]["count"] == 0
    for f in manifest["files"]:
        assert (out / f["name"]).stat().st_size > 0
    import csv

    for name in ("long.csv", "wide.csv", "subjects.csv", "adverse_events.csv"):
        with open(out / name, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
        assert len(rows) == 1 and len(rows[0]) > 1, name  # the header, no participant
