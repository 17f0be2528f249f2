"""``annulus demo``: migrate, fill a demo trial (once), print the URL and logins, serve.
``annulus serve``: migrate and serve without demo data."""

from __future__ import annotations

import os
import sys

from annulus.cli import CliError, setup_django


def register(subparsers) -> None:
    d = subparsers.add_parser("demo", help="start Annulus with the shipped protocol and a demo trial")
    d.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--seed", type=int, default=2022)
    d.add_argument("--no-serve", action="store_true", help="fill the database and stop")
    d.set_defaults(func=demo)
    s = subparsers.add_parser("serve", help="migrate and serve (no demo data)")
    s.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
    s.add_argument("--host", default="127.0.0.1")
    s.set_defaults(func=serve)


def _migrate():
    from annulus.dbroles import migrate

    migrate()


def _serve(host: str, port: int) -> int:
    from django.core.management import call_command

    if not (0 < port < 65536):
        raise CliError(f"--port {port} is not a TCP port")
    call_command("runserver", f"{host}:{port}", use_reloader=False, insecure_serving=True, skip_checks=True)
    return 0


def _load_shipped_protocol(load) -> None:
    """The shipped protocol file, or one line saying why the database refuses it (a database filled
    from an earlier copy of the file under the same version number)."""
    from django.conf import settings

    from annulus.errors import RuleViolation

    try:
        load()
    except RuleViolation as exc:
        where = settings.DATABASES["default"].get("NAME", "")
        raise CliError(f"the database {where} refuses the shipped protocol file ({exc.message}); it was filled from "
                       "another copy of the file: remove it (make clean-demo) or load the new file as an amendment "
                       "with a new version number") from None


def demo(args) -> int:
    # links in the demo's e-mails point at the address it serves (unless a site URL is configured)
    os.environ.setdefault("ANNULUS_SITE_URL", f"http://{args.host}:{args.port}")
    # the demo's emergency letters need a 24-hour contact; a real installation names its own
    os.environ.setdefault("ANNULUS_EMERGENCY_CONTACT", "Demo trial emergency line (24 h), +86 411 0000 0000")
    setup_django()
    _migrate()
    from annulus.participants.models import Participant
    from annulus.trial.demo import DEMO_PASSWORD, DEMO_USERS, build_demo, create_demo_users
    from annulus.trial.services import load_default_protocol

    _load_shipped_protocol(load_default_protocol)
    if Participant.objects.exists():
        print("Demo data already present; serving it.")
        create_demo_users()
    else:
        print("Filling the demo trial through the services (about a minute on two cores)...")
        import time

        from rich.progress import Progress

        started = time.monotonic()
        with Progress(transient=True) as bar:
            task = bar.add_task("demo", total=None)
            build_demo(seed=args.seed, progress=lambda msg: bar.update(task, description=msg))
        print(f"Demo trial filled in {time.monotonic() - started:.0f} s "
              f"({Participant.objects.count()} people pre-screened).")
    url = f"http://{args.host}:{args.port}/"
    print(f"\nAnnulus is at {url}  (API: {url}api/v1/docs)")
    from django.conf import settings

    if settings.EMAIL_BACKEND.endswith("filebased.EmailBackend"):
        print(f"E-mails are written to files in {settings.EMAIL_FILE_PATH}/, not sent.")
    print(f"Demo logins (password for all: {DEMO_PASSWORD}):")
    for username, role, name, is_pi in DEMO_USERS:
        print(f"  {username:<13} {role}{' (principal investigator)' if is_pi else ''}")
    sys.stdout.flush()
    if args.no_serve:
        return 0
    return _serve(args.host, args.port)


def serve(args) -> int:
    setup_django()
    _migrate()
    from annulus.trial.services import load_default_protocol

    _load_shipped_protocol(load_default_protocol)
    from django.contrib.auth import get_user_model

    if not get_user_model().objects.exists():
        print("No accounts yet: create the first administrator and principal investigator with\n"
              "  annulus user create NAME --role admin\n"
              "  annulus user create NAME --role investigator --pi")
        sys.stdout.flush()
    return _serve(args.host, args.port)
