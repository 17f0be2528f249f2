"""The application's PostgreSQL role owns nothing (X-7.3): migrations run as the owner, who grants
the application its rights; connected as the application, Annulus works (creates an account,
appends to the audit trail, verifies it) but cannot UPDATE, DELETE or TRUNCATE the audit trail,
ALTER its table or disable its triggers."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from .conftest import postgres_url

pytestmark = [pytest.mark.req("X-7.3"), pytest.mark.postgres,
              pytest.mark.skipif(postgres_url() is None, reason="needs DATABASE_URL=postgres://...")]
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def split(tmp_path):
    """A new database owned by the server's owner role, and a login role for the application."""
    import psycopg

    url = postgres_url()
    base = url.rsplit("/", 1)[0]
    name = f"annulus_roles_{uuid.uuid4().hex[:10]}"
    role = f"annulus_app_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
    scheme, rest = base.split("://", 1)
    host = rest.split("@", 1)[-1]
    try:
        yield {"owner": f"{base}/{name}", "app": f"{scheme}://{role}@{host}/{name}", "role": role,
               "var": tmp_path / "var"}
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def _annulus(split, *args, env_extra=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ANNULUS_TEST_DB_NAME"}
    env.update({"DATABASE_URL": split["app"], "ANNULUS_OWNER_DATABASE_URL": split["owner"],
                "ANNULUS_VAR_DIR": str(split["var"]),
                "PYTHONPATH": str(SRC) + os.pathsep + env.get("PYTHONPATH", ""), **(env_extra or {})})
    return subprocess.run([sys.executable, "-m", "annulus", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_the_application_role_may_append_to_the_audit_trail_and_nothing_more(split):
    import psycopg

    done = _annulus(split, "migrate")
    assert done.returncode == 0, done.stderr
    assert f"role {split['role']} may read and write the trial's tables" in done.stdout
    done = _annulus(split, "user", "create", "first_admin", "--role", "admin",
                    env_extra={"ANNULUS_PASSWORD": "Annulus-Roles-2026!"})
    assert done.returncode == 0, done.stderr  # writes rows and audit events as the application
    done = _annulus(split, "audit", "verify")
    assert done.returncode == 0 and "audit trail intact" in done.stdout, done.stdout + done.stderr
    with psycopg.connect(split["owner"]) as owner:
        tables = owner.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
                               "AND tableowner <> current_user").fetchone()[0]
        assert tables == 0  # every table belongs to the owner
        events = owner.execute("SELECT count(*) FROM audit_auditevent").fetchone()[0]
        assert events > 0
    attacks = ["UPDATE audit_auditevent SET reason = 'edited'", "DELETE FROM audit_auditevent",
               "TRUNCATE audit_auditevent", "ALTER TABLE audit_auditevent DISABLE TRIGGER USER",
               "ALTER TABLE audit_auditevent DROP COLUMN mac", "DROP TABLE audit_auditevent"]
    with psycopg.connect(split["app"], autocommit=True) as app:
        assert app.execute("SELECT current_user").fetchone()[0] == split["role"]
        for sql in attacks:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(sql)
        # what the application does need still works
        assert app.execute("SELECT count(*) FROM audit_auditevent").fetchone()[0] == events
        app.execute("UPDATE auth_user SET last_name = last_name WHERE username = 'first_admin'")
    with psycopg.connect(split["owner"]) as owner:
        assert owner.execute("SELECT count(*) FROM audit_auditevent").fetchone()[0] == events
