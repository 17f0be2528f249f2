"""Backup and restore (X-7.3): ``annulus backup`` copies the database while it runs (pg_dump's
custom format on PostgreSQL, the online backup API on SQLite) with its SHA-256 and audit head;
``annulus restore`` loads it into an empty database only, checks the file first, and verifies the
restored trail: against checkpoints, a backup older than the newest one is reported as a rollback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connection

from annulus.audit import keys
from annulus.audit.models import AuditHead
from annulus.cli import main

from .conftest import postgres_url

pytestmark = pytest.mark.req("X-7.3")
SRC = Path(__file__).resolve().parents[1] / "src"


def _annulus(*args, database_url: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("ANNULUS_TEST_DB_NAME",)}
    env.update({"DATABASE_URL": database_url, "PYTHONPATH": str(SRC) + os.pathsep + env.get("PYTHONPATH", ""),
                **(env_extra or {})})
    return subprocess.run([sys.executable, "-m", "annulus", *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.fixture
def keyed(tmp_path, settings):
    path = keys.generate(tmp_path / "audit.key")
    settings.AUDIT_KEY_FILE = str(path)
    return path


@pytest.fixture
def scratch_database():
    """An empty database to restore into: a new SQLite file, or a new PostgreSQL database."""
    url = postgres_url()
    if url is None:
        yield None
        return
    import psycopg

    name = f"annulus_restore_{uuid.uuid4().hex[:10]}"
    base = url.rsplit("/", 1)[0]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_backup_then_restore_into_an_empty_database_and_catch_a_rollback(committed_db, keyed, make_participant,
                                                                         tmp_path, scratch_database, capsys):
    make_participant("enrolled")
    out = tmp_path / "trial.backup"
    assert main(["backup", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    manifest = json.loads(Path(str(out) + ".json").read_text())
    head = AuditHead.objects.get(id=1)
    assert manifest["audit"] == {"count": head.count, "hash": head.last_hash}
    assert manifest["format"] == ("postgresql-custom" if connection.vendor == "postgresql" else "sqlite")
    assert f"sha256 {manifest['sha256']}" in printed and f"audit trail of {head.count} events" in printed
    # the trail goes on after the backup, and a checkpoint records it
    checkpoints = tmp_path / "checkpoints"
    make_participant("consented")
    assert main(["audit", "checkpoint", "--out", str(checkpoints)]) == 0
    capsys.readouterr()

    target = scratch_database or f"sqlite:///{tmp_path / 'restored.sqlite3'}"
    env = {"ANNULUS_AUDIT_KEY_FILE": str(keyed), "ANNULUS_VAR_DIR": str(tmp_path / "var")}
    done = _annulus("restore", str(out), database_url=target, env_extra=env)
    assert done.returncode == 0, done.stderr + done.stdout
    assert f"audit trail intact: {head.count} events checked, MACs checked" in done.stdout
    # against the checkpoint written after it, the same backup is a rollback
    again = scratch_database
    if again is None:
        again = f"sqlite:///{tmp_path / 'restored-2.sqlite3'}"
    else:  # a second empty PostgreSQL database: drop and create the scratch one again
        import psycopg

        base, name = again.rsplit("/", 1)
        with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
    done = _annulus("restore", str(out), "--checkpoints", str(checkpoints), database_url=again, env_extra=env)
    assert done.returncode == 1, done.stderr + done.stdout
    assert "(rollback)" in done.stdout and f"the trail has {head.count} events" in done.stdout
    # the restored database is no longer empty: a second restore into it is refused, naming why
    done = _annulus("restore", str(out), database_url=again, env_extra=env)
    assert done.returncode == 2 and "the database is not empty" in done.stderr and "Traceback" not in done.stderr


def test_a_changed_backup_file_is_refused(committed_db, make_participant, tmp_path, capsys):
    make_participant("consented")
    out = tmp_path / "trial.backup"
    assert main(["backup", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["backup", "--out", str(out)]) == 2
    assert "exists: a backup never overwrites a file" in capsys.readouterr().err
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0xFF
    out.write_bytes(bytes(data))
    done = _annulus("restore", str(out), database_url=f"sqlite:///{tmp_path / 'x.sqlite3'}",
                    env_extra={"ANNULUS_VAR_DIR": str(tmp_path / "var")})
    assert done.returncode == 2 and "does not match the SHA-256 its manifest records" in done.stderr
    assert not (tmp_path / "x.sqlite3").exists() or (tmp_path / "x.sqlite3").stat().st_size == 0
