"""A large ADaM export is written by several processes, one range of participants each, and its
files are byte for byte those one process writes; a part whose blind differs from the export's
fails the export (X-7.6).

The trial is filled and exported in processes of their own, as ``annulus report`` runs it: a
scratch SQLite file, or a scratch PostgreSQL database when the suite runs on PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import postgres_url

pytestmark = [pytest.mark.req("X-7.6")]

SRC = Path(__file__).resolve().parents[1] / "src"

EXPORT = r"""
import json, sys
from datetime import datetime
from pathlib import Path
from annulus.cli import setup_django
setup_django()
from django.contrib.auth import get_user_model
from annulus.exports.services import run_export
user = get_user_model().objects.get(username="statistician")
seen = []
run = run_export(actor=user, fmt="adam", out_dir=Path(sys.argv[1]), as_of=datetime.fromisoformat(sys.argv[2]),
                 language=sys.argv[3], at_most="blinded", transport=False, progress=lambda d, t: seen.append((d, t)))
print(json.dumps({"subjects": run.subjects, "progress": seen[-1], "started": seen[0]}))
"""


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    """A filled trial of 23 participants in a database of its own; its URL and environment."""
    tmp = tmp_path_factory.mktemp("parts")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANNULUS_", "DJANGO_"))}
    env.update({"ANNULUS_VAR_DIR": str(tmp / "var"), "PYTHONPATH": str(SRC) + os.pathsep + env.get("PYTHONPATH", "")})
    pg = postgres_url()
    if pg:
        import psycopg

        base, _, _ = pg.rpartition("/")
        name = f"annulus_parts_{os.getpid()}"
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        env["DATABASE_URL"] = f"{base}/{name}"
    else:
        env["DATABASE_URL"] = f"sqlite:///{tmp / 'trial.sqlite3'}"
    for args in (["migrate"], ["bench", "fill", "-n", "23", "--seed", "4"]):
        done = subprocess.run([sys.executable, "-m", "annulus", *args], env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    yield {"env": env, "tmp": tmp}
    if pg:
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _export(trial, out: Path, workers: int, language: str = "en") -> dict:
    env = {**trial["env"], "ANNULUS_EXPORT_WORKERS": str(workers)}
    done = subprocess.run([sys.executable, "-c", EXPORT, str(out), "2026-11-30T12:00:00+00:00", language], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != "manifest.json"}


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_an_export_in_three_parts_is_byte_for_byte_the_export_of_one_process(trial, language):
    one = _export(trial, trial["tmp"] / f"one-{language}", 1, language)
    three = _export(trial, trial["tmp"] / f"three-{language}", 3, language)
    assert one["subjects"] == three["subjects"] >= 23
    assert three["progress"] == [three["subjects"], three["subjects"]] and three["started"][0] == 0
    a, b = _files(trial["tmp"] / f"one-{language}"), _files(trial["tmp"] / f"three-{language}")
    assert set(a) == set(b) and {"adsl.csv", "adeff_vas.csv", "adlb.csv", "adae.csv", "adsv.csv"} <= set(a)
    for name in a:
        assert a[name] == b[name], name
    # each participant once, in participant-number order
    rows = list(csv.DictReader(io.StringIO(b["adsl.csv"].decode("utf-8"))))
    assert len(rows) == three["subjects"]
    ids = [r["SCRNID"] for r in rows]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    manifest = json.loads((trial["tmp"] / f"three-{language}" / "manifest.json").read_text())
    assert manifest["scope"]["count"] == three["subjects"]


def test_ranges_cover_every_participant_once_in_order():
    from annulus.exports.parts import ranges

    numbers = [f"S{i:04d}" for i in range(1, 24)]
    for k in (1, 2, 3, 5, 23, 40):
        parts = ranges(numbers, k)
        covered = [n for after, upto in parts for n in numbers
                   if (after is None or n > after) and (upto is None or n <= upto)]
        assert covered == numbers
        assert len(parts) == min(k, len(numbers))


def test_a_part_whose_blind_differs_from_the_exports_fails_the_export(trial, tmp_path, monkeypatch):
    from annulus.exports import parts

    for key, value in trial["env"].items():
        monkeypatch.setenv(key, value)
    statistician = subprocess.run(
        [sys.executable, "-c", "from annulus.cli import setup_django; setup_django(); "
                               "from django.contrib.auth import get_user_model; "
                               "print(get_user_model().objects.get(username='statistician').pk)"],
        env=trial["env"], capture_output=True, text=True)
    spec = {"actor": int(statistician.stdout.strip()), "fmt": "adam", "as_of": "2026-11-30T12:00:00+00:00",
            "created_at": "2026-11-30T12:00:00+00:00", "identifiable": False, "excel_bom": False, "language": "en",
            "at_most": "arms", "transport": False, "blinding": "arms"}  # the trial is blinded: a part says so
    with pytest.raises(RuntimeError, match="the blind changed while the export was written"):
        parts.write(spec, [(None, None)], tmp_path)
    assert not any(tmp_path.iterdir())  # nothing of the part is left
