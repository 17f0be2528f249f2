"""Backing up and restoring the database of an installation.

``backup(out)`` copies the database as it stands, while Annulus keeps running: on PostgreSQL with
``pg_dump`` in its custom format (one consistent snapshot), on SQLite with SQLite's online backup
API. Beside the file it writes ``<file>.json``: the file's size and SHA-256, the database it came
from, the time, and the audit trail's head in the copy (event count and last hash), so that what a
backup holds can be told without restoring it.

``restore(path)`` checks the file against its SHA-256 and loads it into an EMPTY database (a
database that already holds tables is refused: a restore never overwrites a trial); the caller
then verifies the audit chain and, with checkpoints, reports a backup older than the newest
checkpoint as a rollback (``annulus restore FILE --checkpoints DIR``).

Errors a person can cause raise ``BackupError`` with one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from datetime import datetime, timezone
from pathlib import Path

MANIFEST_SUFFIX = ".json"


class BackupError(Exception):
    """A backup or restore that cannot be done (one line)."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _settings() -> dict:
    from django.db import connection

    return connection.settings_dict


def _pg_env(db: dict) -> tuple[list[str], dict]:
    args = []
    if db.get("HOST"):
        args += ["--host", str(db["HOST"])]
    if db.get("PORT"):
        args += ["--port", str(db["PORT"])]
    if db.get("USER"):
        args += ["--username", str(db["USER"])]
    env = dict(os.environ)
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    return args, env


def _run(command: list[str], env: dict) -> None:
    if shutil.which(command[0]) is None:
        raise BackupError(f"{command[0]} is not installed (the PostgreSQL client programs are needed)")
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(f"{command[0]} failed: {last[-1] if last else f'exit {done.returncode}'}")


def _sqlite_source():
    """A plain sqlite3 connection to the database Django uses (its own, for the backup API)."""
    from django.db import connection

    connection.ensure_connection()
    return connection.connection


def head_of_copy(path: Path, vendor: str) -> dict:
    """The audit head recorded in a SQLite copy (PostgreSQL's custom format is not read here: its
    head is taken from the live database in the same snapshot instead, see ``backup``)."""
    if vendor != "sqlite":
        return {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT count, last_hash FROM audit_audithead WHERE id = 1").fetchone()
    return {"count": row[0], "hash": row[1]} if row else {"count": 0, "hash": ""}


def backup(out: str | Path) -> dict:
    """Write a backup of the database to ``out`` (which must not exist) and its manifest beside it.
    Returns the manifest."""
    from django.db import connection

    out = Path(out)
    if out.exists():
        raise BackupError(f"{out} exists: a backup never overwrites a file")
    if not out.parent.is_dir():
        raise BackupError(f"folder {out.parent} does not exist")
    db = _settings()
    partial = out.with_name(out.name + ".part")
    if connection.vendor == "postgresql":
        # the head as of the dump's snapshot: read in a repeatable-read transaction whose snapshot
        # pg_dump then shares (--snapshot), so the manifest and the file agree even while users write
        from django.db import transaction

        args, env = _pg_env(db)
        with transaction.atomic():
            with connection.cursor() as cur:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur.execute("SELECT pg_export_snapshot()")
                snapshot = cur.fetchone()[0]
                cur.execute("SELECT count, last_hash FROM audit_audithead WHERE id = 1")
                row = cur.fetchone()
            _run(["pg_dump", *args, "--format=custom", "--no-owner", f"--snapshot={snapshot}",
                  f"--file={partial}", str(db["NAME"])], env)
        head = {"count": row[0], "hash": row[1]} if row else {"count": 0, "hash": ""}
        kind = "postgresql-custom"
    elif connection.vendor == "sqlite":
        source = _sqlite_source()
        target = sqlite3.connect(partial)
        try:
            source.backup(target)
        finally:
            target.close()
        head = head_of_copy(partial, "sqlite")
        kind = "sqlite"
    else:
        raise BackupError(f"no backup for a {connection.vendor} database")
    os.replace(partial, out)
    from annulus import __version__

    manifest = {"file": out.name, "format": kind, "size": out.stat().st_size, "sha256": _sha256(out),
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "database": str(db.get("NAME")), "annulus_version": __version__, "audit": head}
    Path(str(out) + MANIFEST_SUFFIX).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def read_manifest(path: Path) -> dict:
    side = Path(str(path) + MANIFEST_SUFFIX)
    if not side.is_file():
        raise BackupError(f"{side.name} is missing: the backup's checksum cannot be checked")
    try:
        return json.loads(side.read_text(encoding="utf-8"))
    except ValueError:
        raise BackupError(f"{side.name} is not a backup manifest") from None


def restore(path: str | Path) -> dict:
    """Load the backup ``path`` into the (empty) database of this installation; returns its manifest."""
    from django.db import connection

    path = Path(path)
    if not path.is_file():
        raise BackupError(f"{path} is not a file")
    manifest = read_manifest(path)
    if manifest.get("sha256") != _sha256(path):
        raise BackupError(f"{path.name} does not match the SHA-256 its manifest records: the file was changed or "
                          "damaged")
    tables = connection.introspection.table_names()
    if tables:
        raise BackupError(f"the database is not empty ({len(tables)} tables): restore into an empty database")
    kind = manifest.get("format")
    if kind == "postgresql-custom":
        if connection.vendor != "postgresql":
            raise BackupError("a PostgreSQL backup restores into PostgreSQL only")
        db = _settings()
        args, env = _pg_env(db)
        connection.close()
        _run(["pg_restore", *args, "--no-owner", "--exit-on-error", f"--dbname={db['NAME']}", str(path)], env)
    elif kind == "sqlite":
        if connection.vendor != "sqlite":
            raise BackupError("a SQLite backup restores into SQLite only")
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            source.backup(_sqlite_source())
        finally:
            source.close()
    else:
        raise BackupError(f"unknown backup format {kind!r}")
    connection.close()
    return manifest
