"""``annulus export --format FMT --out DIR [--as-of T] [--force] [--identifiable] [--excel] [--user NAME]``:
the trial's data as the user's role may see them (blinded, pseudonymised), as of a time, in one
of the export formats, with ``manifest.json`` (the as-of time, the audit-chain head and every
file's SHA-256) beside the files. ``--adam OUT`` is ``--format adam --out OUT``: the analysis
datasets that ``annulus mmrm``, ``compare`` and ``dose`` read.

The export is made by a user of the trial and audited under that name, like every other act that
a role decides (``annulus dsmb report --user``): ``--user NAME``, or ``ANNULUS_USER`` in the
environment. A progress bar is drawn on stderr when it is a terminal."""

from __future__ import annotations

import os
import sys

from annulus.cli import CliError, setup_django

FORMAT_NAMES = ("csv", "sav", "dta", "xpt", "odm", "sdtm", "dataset-json", "adam")


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export the trial's data (CSV, SPSS, Stata, SAS, ODM, SDTM, "
                                             "Dataset-JSON, analysis datasets)")
    p.add_argument("--format", metavar="FMT", help=f"one of {', '.join(FORMAT_NAMES)}")
    p.add_argument("--out", metavar="DIR", help="output folder (new or empty)")
    p.add_argument("--adam", metavar="OUT", help="the analysis datasets into OUT (= --format adam --out OUT)")
    p.add_argument("--as-of", metavar="T", help="the data as they stood at this time: YYYY-MM-DD (end of that day) "
                                                "or YYYY-MM-DDTHH:MM (site time); default now")
    p.add_argument("--force", action="store_true", help="write into a folder that is not empty, overwriting the "
                                                        "files of the same names")
    p.add_argument("--identifiable", action="store_true",
                   help="include initials, name and phone (investigators and coordinators only; audited)")
    p.add_argument("--excel", action="store_true", help="CSV files with a UTF-8 byte-order mark for Excel")
    p.add_argument("--language", choices=["en", "zh-hans"], default="en", help="language of labels (default en)")
    p.add_argument("--user", metavar="USERNAME", help="the user who exports (default: $ANNULUS_USER)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=export)


def _arguments(args) -> tuple[str, str]:
    if args.adam:
        if args.format not in (None, "adam"):
            raise CliError(f"--adam: cannot be combined with --format {args.format}")
        if args.out and args.out != args.adam:
            raise CliError("--adam: names the output folder itself; leave out --out")
        return "adam", args.adam
    if not args.format:
        raise CliError(f"--format: required (one of {', '.join(FORMAT_NAMES)})")
    if args.format not in FORMAT_NAMES:
        raise CliError(f"--format: unknown format {args.format!r}: choose one of {', '.join(FORMAT_NAMES)}")
    if not args.out:
        raise CliError("--out: required (the output folder)")
    return args.format, args.out


def _user(name: str | None):
    from django.contrib.auth import get_user_model

    name = name or os.environ.get("ANNULUS_USER", "")
    if not name:
        raise CliError("--user: name the user who exports (the export is blinded for that user's role and audited "
                       "under that name), or set ANNULUS_USER")
    user = get_user_model().objects.filter(username=name, is_active=True).select_related("membership").first()
    if user is None:
        raise CliError(f"--user: no active user '{name}'")
    return user


OPTION = {"format": "--format", "as_of": "--as-of", "out_dir": "--out", "identifiable": "--identifiable",
          "language": "--language"}


def export(args) -> int:
    fmt, out = _arguments(args)
    setup_django()
    from django.db import DatabaseError

    try:
        return _export(args, fmt, out)
    except DatabaseError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CliError(f"the database cannot be read ({first}); run `annulus serve` once to set it up") from None


def _export(args, fmt: str, out: str) -> int:
    from annulus.accounts.permissions import role_of
    from annulus.errors import NotPermitted, RuleViolation
    from annulus.exports import services

    user = _user(args.user)
    try:
        as_of = services.parse_as_of(args.as_of)
        kwargs = dict(actor=user, fmt=fmt, out_dir=out, as_of=as_of, force=args.force,
                      identifiable=args.identifiable, excel_bom=args.excel, language=args.language)
        if args.no_progress or not sys.stderr.isatty():
            run = services.run_export(**kwargs)
        else:
            run = _with_bar(services, kwargs)
    except RuleViolation as exc:
        raise CliError(f"{OPTION.get(exc.field, exc.field)}: {exc.message}") from None
    except NotPermitted:
        raise CliError(f"--user: '{user.username}' ({role_of(user) or 'no role'}) may not export the trial's data")
    from django.utils import timezone

    print(f"{run.format} export of {run.subjects} participant(s) as of "
          f"{timezone.localtime(run.as_of):%Y-%m-%d %H:%M} ({run.blinding}"
          f"{', identifiable' if run.identifiable else ''}) -> {run.out_dir}: {len(run.files)} file(s), "
          f"audit chain {run.chain_count} {run.chain_hash[:12]}")
    return 0


def _with_bar(services, kwargs):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = (f"exporting {kwargs['fmt']}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("participants", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return services.run_export(**kwargs, progress=tick)
