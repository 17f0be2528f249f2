"""``annulus user create``: an account made on the server itself, for the first administrator
and principal investigator of a new installation (the app then creates the others, with a PI's
co-signature for unblinded roles). The password is read from ``ANNULUS_PASSWORD`` or asked for
without echo; it must pass the same password rules as in the app."""

from __future__ import annotations

import getpass
import os

from annulus.cli import CliError, setup_django


def register(subparsers) -> None:
    parser = subparsers.add_parser("user", help="create an account from the server's command line")
    sub = parser.add_subparsers(dest="user_command", metavar="ACTION")
    create = sub.add_parser("create", help="create an account (first administrator, first PI)")
    create.add_argument("username")
    create.add_argument("--role", required=True, help="a role of the protocol (admin, investigator, ...)")
    create.add_argument("--pi", action="store_true", help="the principal investigator")
    create.add_argument("--full-name", default="")
    create.add_argument("--email", default="")
    create.add_argument("--phone", default="")
    create.set_defaults(func=run_create)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def run_create(args) -> int:
    password = os.environ.get("ANNULUS_PASSWORD")
    if password is None:
        try:
            password = getpass.getpass(f"Password for {args.username}: ")
            again = getpass.getpass("Again: ")
        except (EOFError, KeyboardInterrupt):
            raise CliError("no password given (set ANNULUS_PASSWORD or type it at the prompt)") from None
        if password != again:
            raise CliError("the two passwords differ")
    setup_django()

    from annulus.accounts.services import create_user
    from annulus.dbroles import migrate
    from annulus.errors import RuleViolation
    from annulus.trial.selectors import active_protocol
    from annulus.trial.services import load_default_protocol

    migrate()
    load_default_protocol()
    roles = {r.id for r in active_protocol().roles}
    try:
        user = create_user(actor=None, username=args.username, password=password, role=args.role, known_roles=roles,
                           email=args.email, full_name=args.full_name, is_pi=args.pi, phone=args.phone)
    except RuleViolation as exc:
        raise CliError(f"{exc.field}: {exc.message}") from None
    print(f"created {user.username} ({args.role}{', principal investigator' if args.pi else ''})")
    return 0
