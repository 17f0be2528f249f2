"""Two PostgreSQL roles: the owner, which runs the migrations and owns every table, and the role
the application connects as, which owns nothing.

Set ``DATABASE_URL`` to the application's role and ``ANNULUS_OWNER_DATABASE_URL`` to the owner
(same database). ``migrate()`` then runs the migrations as the owner and grants the application
what it needs and no more: it may read and write the trial's tables, but on the audit trail it may
only read and append (no UPDATE, DELETE or TRUNCATE), and, owning nothing, it can neither ALTER a
table nor disable a trigger. Without ``ANNULUS_OWNER_DATABASE_URL`` (SQLite, development, tests)
the one connection does both.
"""

from __future__ import annotations

OWNER = "owner"
APPEND_ONLY = ("audit_auditevent",)


def owner_alias() -> str:
    from django.conf import settings

    return OWNER if OWNER in settings.DATABASES else "default"


def migrate(verbosity: int = 0) -> None:
    """Apply the migrations (as the owner when one is configured), then grant the application's
    role its rights."""
    from django.core.management import call_command

    alias = owner_alias()
    call_command("migrate", interactive=False, verbosity=verbosity, database=alias)
    if alias != "default":
        grant()


def app_role() -> str:
    from django.db import connections

    with connections["default"].cursor() as cur:
        cur.execute("SELECT current_user")
        return cur.fetchone()[0]


def grant() -> str:
    """Grant the application's role (the user of ``DATABASE_URL``) the rights it needs on every
    table, as the owner. Returns the role's name."""
    from django.db import connections

    role = app_role()
    owner = connections[OWNER]
    quoted = owner.ops.quote_name(role)
    with owner.cursor() as cur:
        cur.execute("SELECT current_user")
        if cur.fetchone()[0] == role:
            return role  # one role for both: nothing to split
        cur.execute(f"GRANT USAGE ON SCHEMA public TO {quoted}")
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}")
        cur.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}")
        for table in APPEND_ONLY:
            cur.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {owner.ops.quote_name(table)} FROM {quoted}")
    return role
