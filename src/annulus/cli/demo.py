"""``annulus demo``: migrate, fill a demo trial (once), print the URL and logins, serve.
``annulus serve``: migrate and serve without demo data.

``annulus serve`` in production (``--production``, ``ANNULUS_PRODUCTION=1`` or ``ANNULUS_SECRET_KEY``
set) collects the static files (hashed names, compressed) and runs gunicorn: several worker
processes with a few threads each, sized to the machine's cores, access log on stdout. Otherwise,
and always for ``annulus demo``, it is Django's development server."""

from __future__ import annotations

import os
import sys

from annulus.cli import CliError, setup_django


def register(subparsers) -> None:
    d = subparsers.add_parser("demo", help="start Annulus with the shipped protocol and a demo trial")
    d.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--seed", type=int, default=2022)
    d.add_argument("--candidates", type=int, default=DEMO_CANDIDATES,
                   help=f"people pre-screened for the demo trial ({MIN_CANDIDATES}-{MAX_CANDIDATES}, default "
                        f"{DEMO_CANDIDATES}); fewer fill faster")
    d.add_argument("--no-serve", action="store_true", help="fill the database and stop")
    d.add_argument("--protocol", metavar="FILE", default=None,
                   help="the protocol file of the demo trial (default: ANNULUS_PROTOCOL_FILE, else the first shipped "
                        "protocol); one trial per database: give another trial its own ANNULUS_VAR_DIR")
    d.set_defaults(func=demo)
    s = subparsers.add_parser("serve", help="migrate and serve (no demo data)")
    s.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--production", action="store_true",
                   help="serve with gunicorn and production settings (also when ANNULUS_PRODUCTION=1 or "
                        "ANNULUS_SECRET_KEY is set); needs ANNULUS_SECRET_KEY, ANNULUS_EMAIL_BACKEND, ANNULUS_SITE_URL")
    s.add_argument("--workers", type=int, default=None,
                   help=f"gunicorn worker processes (default 2 x cores + 1, at most {MAX_WORKERS}: {default_workers()})")
    s.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                   help=f"threads per worker (default {DEFAULT_THREADS})")
    s.add_argument("--timeout", type=int, default=120, help="seconds before a silent worker is restarted (default 120)")
    s.set_defaults(func=serve)


MAX_WORKERS = 8
DEFAULT_THREADS = 4
DEMO_CANDIDATES, MIN_CANDIDATES, MAX_CANDIDATES = 130, 20, 1000


def default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(2, min(2 * cores + 1, MAX_WORKERS))


def _production(args) -> bool:
    flag = os.environ.get("ANNULUS_PRODUCTION", "").strip().lower() in ("1", "true", "yes", "on")
    return bool(getattr(args, "production", False)) or flag or "ANNULUS_SECRET_KEY" in os.environ


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


def _choose_protocol(path: str) -> None:
    """The demo's protocol file: it must exist and validate (one line naming the problem if not)."""
    from pathlib import Path

    from annulus.protocol import ProtocolError, load_protocol

    file = Path(path)
    if not file.is_file():
        raise CliError(f"--protocol: no such file {path}")
    try:
        load_protocol(file)
    except ProtocolError as exc:
        raise CliError(f"--protocol: {path} is not a valid protocol ({exc.errors[0] if exc.errors else exc})") from None
    os.environ["ANNULUS_PROTOCOL_FILE"] = str(file.resolve())


def _same_trial() -> None:
    """One trial per database: a database holding another trial than the file's is refused."""
    from pathlib import Path

    from django.conf import settings

    from annulus.protocol import load_protocol
    from annulus.trial.selectors import active_protocol

    wanted = load_protocol(Path(settings.ANNULUS_PROTOCOL_FILE)).trial.id
    held = active_protocol().trial.id
    if held != wanted:
        where = settings.DATABASES["default"].get("NAME", "")
        raise CliError(f"the database {where} holds the trial {held}, not {wanted}: give each trial its own "
                       "database (another ANNULUS_VAR_DIR or DATABASE_URL)")


def demo(args) -> int:
    if _production(args):
        raise CliError("the demo fills a made-up trial and serves it with the development server: not in production "
                       "(ANNULUS_PRODUCTION or ANNULUS_SECRET_KEY is set); use annulus serve")
    # links in the demo's e-mails point at the address it serves (unless a site URL is configured)
    os.environ.setdefault("ANNULUS_SITE_URL", f"http://{args.host}:{args.port}")
    # the demo's emergency letters need a 24-hour contact; a real installation names its own
    os.environ.setdefault("ANNULUS_EMERGENCY_CONTACT", "Demo trial emergency line (24 h), +86 411 0000 0000")
    if not (MIN_CANDIDATES <= args.candidates <= MAX_CANDIDATES):
        raise CliError(f"--candidates: give {MIN_CANDIDATES} to {MAX_CANDIDATES} (got {args.candidates})")
    if args.protocol:
        _choose_protocol(args.protocol)
    setup_django()
    _migrate()
    from annulus.participants.models import Participant
    from annulus.trial.demo import DEMO_PASSWORD, build_demo, create_demo_users, demo_notes, demo_users
    from annulus.trial.services import load_default_protocol

    _load_shipped_protocol(load_default_protocol)
    _same_trial()
    if Participant.objects.exists():
        print("Demo data already present; serving it.")
        users = create_demo_users()
    else:
        print("Filling the demo trial through the services (about a minute on two cores)...")
        import time

        from rich.progress import Progress

        started = time.monotonic()
        with Progress(transient=True) as bar:
            task = bar.add_task("demo", total=None)
            users = build_demo(seed=args.seed, candidates=args.candidates,
                               progress=lambda msg: bar.update(task, description=msg)).users
        print(f"Demo trial filled in {time.monotonic() - started:.0f} s "
              f"({Participant.objects.count()} people pre-screened).")
    url = f"http://{args.host}:{args.port}/"
    print(f"\nAnnulus is at {url}  (API: {url}api/v1/docs)")
    from django.conf import settings

    if settings.EMAIL_BACKEND.endswith("filebased.EmailBackend"):
        print(f"E-mails are written to files in {settings.EMAIL_FILE_PATH}/, not sent.")
    print(f"Demo logins (password for all: {DEMO_PASSWORD}):")
    for username, role, name, is_pi in demo_users():
        print(f"  {username:<13} {role}{' (principal investigator)' if is_pi else ''}")
    for line in demo_notes(users):
        print(line)
    sys.stdout.flush()
    if args.no_serve:
        return 0
    return _serve(args.host, args.port)


def serve(args) -> int:
    production = _production(args)
    if production:
        os.environ["ANNULUS_PRODUCTION"] = "1"
        if not (0 < args.port < 65536):
            raise CliError(f"--port {args.port} is not a TCP port")
        for name in ("workers", "threads", "timeout"):
            value = getattr(args, name)
            if value is not None and not 1 <= value <= 1000:
                raise CliError(f"--{name} {value} is not between 1 and 1000")
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
    if production:
        return _serve_production(args)
    return _serve(args.host, args.port)


def _serve_production(args) -> int:
    """Collect the static files, then replace this process by gunicorn (signals reach it directly)."""
    from django.core.management import call_command
    from django.db import connections

    call_command("collectstatic", interactive=False, verbosity=0)
    connections.close_all()
    workers = args.workers or default_workers()
    argv = [sys.executable, "-m", "gunicorn", "annulus.site.wsgi:application",
            "--bind", f"{args.host}:{args.port}",
            "--workers", str(workers), "--threads", str(args.threads), "--worker-class", "gthread",
            "--timeout", str(args.timeout), "--graceful-timeout", "30",
            "--access-logfile", "-", "--error-logfile", "-",
            "--no-control-socket"]  # several servers on one host would share its default path
    print(f"Serving on http://{args.host}:{args.port}/ with gunicorn: {workers} workers x {args.threads} threads",
          flush=True)
    sys.stderr.flush()
    os.execv(sys.executable, argv)
    return 0  # pragma: no cover (execv does not return)
