"""``annulus queries recheck [--participant ID ...]``: re-run every edit check of the protocol in
force on the data already entered (after an amendment adds checks, or for data entered before a
check existed). A finding without an active query raises one; an active check query whose finding
is gone is closed by the system; each is audited, as when the checks run on a save. Prints every
query raised and closed, then the totals. Refused once the database is locked."""

from __future__ import annotations

import sys

from annulus.cli import CliError, setup_django


def register(subparsers) -> None:
    parser = subparsers.add_parser("queries", help="queries and edit checks")
    sub = parser.add_subparsers(dest="queries_command", metavar="SUBCOMMAND")
    p = sub.add_parser("recheck", help="re-run every edit check on the data entered (all participants or those given)")
    p.add_argument("--participant", action="append", default=[], metavar="ID",
                   help="a participant's id (as in /participants/ID/) or screening number; may be repeated")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=recheck)
    parser.set_defaults(func=lambda args: _usage(parser))


def _usage(parser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _participants(given: list[str]) -> list[int]:
    from annulus.participants.models import Participant

    if not given:
        return list(Participant.objects.order_by("pk").values_list("pk", flat=True))
    out = []
    for raw in given:
        text = str(raw).strip()
        found = None
        if text.isdigit():
            found = Participant.objects.filter(pk=int(text)).values_list("pk", flat=True).first()
        if found is None and text:
            found = Participant.objects.filter(screening_number__iexact=text).values_list("pk", flat=True).first()
        if found is None:
            raise CliError(f"--participant {raw!r}: no such participant (give the id or the screening number)")
        out.append(found)
    return list(dict.fromkeys(out))


def _run(ids: list[int], progress: bool) -> None:
    from annulus.queries.services import run_all_checks

    if not progress:
        for pid in ids:
            run_all_checks([pid])
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = ("re-running the edit checks", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("participants", total=len(ids))
        for pid in ids:
            run_all_checks([pid])
            bar.update(task, advance=1)


def recheck(args) -> int:
    setup_django()
    from django.db import DatabaseError

    try:
        return _recheck(args)
    except DatabaseError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CliError(f"the database cannot be read ({first}); run `annulus serve` once to set it up") from None


def _recheck(args) -> int:
    from django.db.models import Max
    from django.utils import timezone

    from annulus.queries.models import CHECK, CLOSED, Query
    from annulus.queries.selectors import target_text
    from annulus.trial.lock import TrialLocked, is_locked, locked_at

    if is_locked():
        raise CliError(str(TrialLocked(locked_at()).message))
    ids = _participants(args.participant)
    last = Query.objects.aggregate(n=Max("id"))["n"] or 0
    started = timezone.now()
    try:
        _run(ids, progress=not args.no_progress and sys.stderr.isatty() and len(ids) > 1)
    except TrialLocked as exc:  # signed while this ran: what ran before is kept, each in its transaction
        raise CliError(str(exc.message)) from None
    raised = list(Query.objects.filter(id__gt=last, origin=CHECK).select_related("participant").order_by("id"))
    closed = list(Query.objects.filter(id__lte=last, origin=CHECK, status=CLOSED, closed_by__isnull=True,
                                       closed_at__gte=started, participant_id__in=ids)
                  .select_related("participant").order_by("id"))
    for word, rows in (("raised", raised), ("closed", closed)):
        for q in rows:
            print(f"{word}  {q.label}  {q.participant.label} · {target_text(q, 'en')} · check {q.check_id}")
    print(f"{len(ids)} participant(s) checked: {len(raised)} query(ies) raised, {len(closed)} closed")
    return 0
