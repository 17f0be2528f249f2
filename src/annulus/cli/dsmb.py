"""``annulus dsmb report|schedule`` (the DSMB interim safety report) and ``annulus safety clocks``
(SAE reporting clocks; with ``--notify`` the overdue ones are notified, for a periodic job)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from annulus.cli import CliError, setup_django


def register(subparsers) -> None:
    parser = subparsers.add_parser("dsmb", help="DSMB interim safety reports")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    r = sub.add_parser("report", help="produce an interim safety report as HTML or PDF")
    r.add_argument("--as-of", required=True, help="data cut-off date, YYYY-MM-DD (not in the future)")
    kind = r.add_mutually_exclusive_group(required=True)
    kind.add_argument("--closed", dest="kind", action="store_const", const="closed", help="by arm (DSMB closed session)")
    kind.add_argument("--open", dest="kind", action="store_const", const="open", help="pooled")
    r.add_argument("--out", required=True, help="output file ending in .html or .pdf")
    r.add_argument("--language", choices=["en", "zh-hans"], default="en",
                   help="the report's language (both are kept with the report; default en)")
    r.add_argument("--user", help="produce it as this user (a closed report needs a DSMB member); without it "
                                  "the report is a scheduled system run")
    r.set_defaults(func=report)
    s = sub.add_parser("schedule", help="list the six-monthly due dates; --generate produces the missing ones")
    s.add_argument("--generate", action="store_true")
    s.set_defaults(func=schedule)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    safety = subparsers.add_parser("safety", help="safety tools")
    ssub = safety.add_subparsers(dest="action", metavar="ACTION")
    c = ssub.add_parser("clocks", help="list SAE reports not yet sent with their time left")
    c.add_argument("--notify", action="store_true", help="notify the site team of newly overdue reports")
    c.set_defaults(func=clocks)
    safety.set_defaults(func=lambda args: safety.print_help() or 2)


def _date(text: str) -> date:
    from annulus import dates

    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise CliError(f"--as-of: '{text}' is not a date (YYYY-MM-DD)") from None
    if dates.problem(value):
        raise CliError(f"--as-of: {text} {dates.OUT_OF_RANGE}")
    return value


def report(args) -> int:
    out = Path(args.out)
    if out.suffix.lower() not in (".html", ".pdf"):
        raise CliError("--out: the file must end in .html or .pdf")
    if not out.parent.exists():
        raise CliError(f"--out: folder {out.parent} does not exist")
    as_of = _date(args.as_of)
    setup_django()
    from django.contrib.auth import get_user_model

    from annulus.errors import NotPermitted, RuleViolation
    from annulus.safety import reports, services

    user = None
    if args.user:
        user = get_user_model().objects.filter(username=args.user, is_active=True).first()
        if user is None:
            raise CliError(f"--user: no active user '{args.user}'")
    try:
        rep = services.generate_report(actor=user, as_of=as_of, kind=args.kind)
    except RuleViolation as exc:
        raise CliError(f"{exc.field}: {exc.message}") from None
    except NotPermitted:
        raise CliError(f"--user: '{args.user}' may not produce a {args.kind} report") from None
    if out.suffix.lower() == ".pdf":
        out.write_bytes(reports.render_pdf(rep.html_in(args.language)))
    else:
        out.write_text(rep.html_in(args.language), encoding="utf-8")
    s = rep.summary
    print(f"{args.kind} report as of {as_of.isoformat()}: {s['population']} participants, {s['events']} AEs, "
          f"{s['sae_events']} SAEs -> {out}")
    return 0


def schedule(args) -> int:
    setup_django()
    from annulus.safety import reports, services
    from annulus.safety.models import DsmbReport
    from annulus.trial.selectors import active_protocol

    months = active_protocol().safety.dsmb_interim_months
    if args.generate:
        for rep in services.generate_due_reports():
            print(f"produced {rep.kind} report as of {rep.as_of.isoformat()}")
    first = reports.first_enrolment()
    if first is None:
        print("no enrolment yet: no interim report is due")
        return 0
    print(f"first enrolment {first.isoformat()}; an interim report every {months} months")
    for due in reports.schedule(months=months):
        kinds = sorted(set(DsmbReport.objects.filter(as_of=due).values_list("kind", flat=True)))
        print(f"  {due.isoformat()}  {', '.join(kinds) if kinds else 'not produced'}")
    return 0


def clocks(args) -> int:
    setup_django()
    from django.utils import timezone

    from annulus.safety import selectors, services

    if args.notify:
        print(f"{services.notify_overdue()} newly overdue report(s) notified")
    for row in selectors.clock_rows(selectors.sae_reports(only_open=True)):
        r = row["r"]
        print(f"{r.adverse_event.label:<14} {r.recipient_name:<28} due {timezone.localtime(r.due_at):%Y-%m-%d %H:%M}  "
              f"{row['clock']['text']}{'  [' + r.calendar_warning + ']' if r.calendar_warning else ''}")
    return 0
