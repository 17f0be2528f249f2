"""``annulus report --out FILE.html|FILE.pdf [--as-of T] [--language zh-hans] [--blinded|--unblinded]
[--user NAME]``: the trial report (X-8.5), built from the analysis datasets exported for the user
as of a time: CONSORT flow, baseline table, primary and secondary end points by the protocol's
analysis plan, safety, data completeness and a reproducibility block.

``--blinded`` (the default) pools everything, whoever asks; ``--unblinded`` shows what the user's
export may show: group labels A-D after the first-level unblinding, treatments after the second
(refused before the first). ``annulus report --from DIR`` builds the same document from an export
folder already made (``annulus export --adam DIR``), without the database: the data review can be
repeated on the files alone. The format follows the file's suffix."""

from __future__ import annotations

import sys
from pathlib import Path

from annulus.cli import CliError, setup_django

OPTION = {"as_of": "--as-of", "language": "--language", "format": "--out", "unblinded": "--unblinded",
          "out": "--out"}


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="the trial report (HTML or PDF): CONSORT, Table 1, end points, "
                                             "safety, conduct",
                              description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("--out", metavar="FILE", required=True, help="the report file: .html or .pdf")
    p.add_argument("--as-of", metavar="T", help="the data as they stood at this time: YYYY-MM-DD (end of that day) "
                                                "or YYYY-MM-DDTHH:MM (site time); default now")
    p.add_argument("--language", choices=["en", "zh-hans", "zh"], default="en", help="language (default en)")
    blind = p.add_mutually_exclusive_group()
    blind.add_argument("--blinded", dest="unblinded", action="store_false",
                       help="pooled over all arms (default)")
    blind.add_argument("--unblinded", dest="unblinded", action="store_true",
                       help="by group label or treatment, as far as the user's role and the unblinding allow")
    p.add_argument("--from", dest="folder", metavar="DIR",
                   help="build from an analysis-dataset export folder instead of the database")
    p.add_argument("--json", metavar="FILE", help="also write every number of the report as JSON")
    p.add_argument("--user", metavar="USERNAME", help="the user who asks (default: $ANNULUS_USER)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run, unblinded=False)


def _format(out: str) -> str:
    suffix = Path(out).suffix.lower()
    if suffix not in (".html", ".pdf"):
        raise CliError(f"--out: {out} must end in .html or .pdf")
    return suffix[1:]


def run(args) -> int:
    fmt = _format(args.out)
    language = "zh-hans" if args.language == "zh" else args.language
    if args.folder:
        return _from_folder(args, fmt, language)
    setup_django()
    from django.db import DatabaseError

    try:
        return _from_database(args, fmt, language)
    except DatabaseError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CliError(f"the database cannot be read ({first}); run `annulus serve` once to set it up") from None


def _from_folder(args, fmt: str, language: str) -> int:
    from annulus import __version__
    from annulus.protocol import default_protocol_path, load_protocol
    from annulus.report import document

    folder = Path(args.folder)
    if not folder.is_dir():
        raise CliError(f"--from: {folder} is not a folder")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise CliError(f"--out: {out.parent} does not exist")
    try:
        protocol = load_protocol(default_protocol_path())
        results = _bar(args, lambda tick: document.compute(folder, protocol, language=language, progress=tick,
                                                           code_version=__version__))
        html = document.render(results)
        data = html.encode("utf-8") if fmt == "html" else document.pdf(html)
    except (document.ReportError, ValueError) as exc:
        raise CliError(f"--from: {exc}") from None
    out.write_bytes(data)
    _json(args, results)
    print(f"{fmt} report ({results['blinding']}) of {folder} -> {out}")
    return 0


def _from_database(args, fmt: str, language: str) -> int:
    from annulus.accounts.permissions import role_of
    from annulus.cli.export import _user
    from annulus.errors import NotPermitted, RuleViolation
    from annulus.exports.services import parse_as_of
    from annulus.reports import services

    user = _user(args.user)
    try:
        as_of = parse_as_of(args.as_of)
        report = _bar(args, lambda tick: services.build(actor=user, as_of=as_of, language=language,
                                                        unblinded=args.unblinded, fmt=fmt, out=Path(args.out),
                                                        progress=tick, origin="cli",
                                                        results_sink=lambda r: _json(args, r)))
    except RuleViolation as exc:
        problems = getattr(exc, "violations", None) or [exc]
        raise CliError("; ".join(f"{OPTION.get(v.field, v.field)}: {v.message}" for v in problems)) from None
    except NotPermitted:
        raise CliError(f"--user: '{user.username}' ({role_of(user) or 'no role'}) may not build the trial report")
    from django.utils import timezone

    print(f"{fmt} report ({report.blinding}) as of {timezone.localtime(report.as_of):%Y-%m-%d %H:%M} -> "
          f"{report.path}: {report.size} bytes, sha256 {report.sha256[:12]}")
    return 0


def _json(args, results) -> None:
    if args.json:
        import json

        from annulus.report.document import public

        Path(args.json).write_text(json.dumps(public(results), indent=1, ensure_ascii=False), encoding="utf-8")


def _bar(args, work):
    """Run ``work(tick)`` with a progress bar on stderr when it is a terminal."""
    if args.no_progress or not sys.stderr.isatty():
        return work(lambda done, total, step: None)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    columns = (TextColumn("report: {task.fields[step]}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("report", total=None, step="")

        def tick(done: int, total: int, step: str) -> None:
            bar.update(task, completed=done, total=total, step=step)

        return work(tick)
