"""``annulus migrate``: apply the database migrations (as the owner role when
``ANNULUS_OWNER_DATABASE_URL`` is set, then grant the application's role its rights; see
``annulus.dbroles``)."""

from __future__ import annotations

from annulus.cli import setup_django


def register(subparsers) -> None:
    m = subparsers.add_parser("migrate", help="apply the database migrations (as the owner role when one is set) "
                                              "and grant the application's role its rights")
    m.set_defaults(func=run)


def run(args) -> int:
    setup_django()
    from annulus import dbroles

    dbroles.migrate()
    if dbroles.owner_alias() != "default":
        print(f"migrations applied as the owner; role {dbroles.app_role()} may read and write the trial's tables and "
              "only read and append to the audit trail")
    else:
        print("migrations applied")
    return 0
