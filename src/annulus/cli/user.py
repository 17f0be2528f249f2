"""``annulus user create``: an account made on the server itself, for the first administrator
and principal investigator of a new installation (the app then creates the others, with a PI's
co-signature for unblinded roles). ``annulus user unlock`` ends an account's lockout and
``annulus user password`` resets a password (as the Users page does: its API tokens revoked, its
login locks cleared, a new password to be chosen at the next login), both with a reason, audited. The password is read from ``ANNULUS_PASSWORD`` or asked for
without echo; it must pass the same password rules as in the app."""

from __future__ import annotations

import getpass
import os

from annulus.cli import CliError, setup_django


def register(subparsers) -> None:
    parser = subparsers.add_parser("user", help="create, unlock or reset an account from the server's command line")
    sub = parser.add_subparsers(dest="user_command", metavar="ACTION")
    create = sub.add_parser("create", help="create an account (first administrator, first PI)")
    create.add_argument("username")
    create.add_argument("--role", required=True, help="a role of the protocol (admin, investigator, ...)")
    create.add_argument("--pi", action="store_true", help="the principal investigator")
    create.add_argument("--full-name", default="")
    create.add_argument("--email", default="")
    create.add_argument("--phone", default="")
    create.add_argument("--site", action="append", default=[], metavar="SITE_ID",
                        help="a site whose participants the account sees (repeat for several; none: every site)")
    create.set_defaults(func=run_create)
    unlock = sub.add_parser("unlock", help="end an account's lockout for every address (audited)")
    unlock.add_argument("username")
    unlock.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    unlock.set_defaults(func=run_unlock)
    password = sub.add_parser("password", help="reset an account's password (revokes its API tokens, clears its locks; "
                                                 "the user must change it at the next login; audited)")
    password.add_argument("username")
    password.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    password.set_defaults(func=run_password)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _new_password(username: str) -> str:
    password = os.environ.get("ANNULUS_PASSWORD")
    if password is None:
        try:
            password = getpass.getpass(f"Password for {username}: ")
            again = getpass.getpass("Again: ")
        except (EOFError, KeyboardInterrupt):
            raise CliError("no password given (set ANNULUS_PASSWORD or type it at the prompt)") from None
        if password != again:
            raise CliError("the two passwords differ")
    return password


def _server_reason(reason: str) -> str:
    """The reason given, with who ran the command on the server (the audit's actor is none)."""
    try:
        who = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in this environment
        who = "unknown"
    return f"{reason.strip()} (from the server's command line, by {who})" if reason.strip() else ""


def run_unlock(args) -> int:
    setup_django()
    from annulus.accounts.services import unlock
    from annulus.errors import RuleViolation

    try:
        sources = unlock(actor=None, username=args.username, reason=_server_reason(args.reason))
    except RuleViolation as exc:
        raise CliError(f"{exc.field}: {exc.message}") from None
    print(f"unlocked {args.username} (was locked for: {', '.join(sources)})")
    return 0


def run_password(args) -> int:
    reason = _server_reason(args.reason)
    if not reason:
        raise CliError("reason: is required")
    password = _new_password(args.username)
    setup_django()
    from django.contrib.auth import get_user_model

    from annulus.accounts.services import reset_password
    from annulus.errors import RuleViolation

    user = get_user_model().objects.filter(username=args.username).first()
    if user is None:
        raise CliError(f"username: no such user '{args.username}'")
    try:
        reset_password(actor=None, user=user, password=password, reason=reason)
    except RuleViolation as exc:
        raise CliError(f"{exc.field}: {exc.message}") from None
    print(f"password of {user.username} reset; its API tokens are revoked, its login locks cleared, "
          f"and a new password must be chosen at the next login")
    return 0


def run_create(args) -> int:
    password = _new_password(args.username)
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
                           email=args.email, full_name=args.full_name, is_pi=args.pi, phone=args.phone, sites=args.site)
    except RuleViolation as exc:
        raise CliError(f"{exc.field}: {exc.message}") from None
    scope = f"; sites {', '.join(user.membership.sites)}" if user.membership.sites else ""
    print(f"created {user.username} ({args.role}{', principal investigator' if args.pi else ''}{scope})")
    return 0
