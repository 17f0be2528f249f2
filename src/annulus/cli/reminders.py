"""``annulus reminders --date YYYY-MM-DD``: the reminder call list for that day (P-4.6) -
participants with a visit the next day, with name, phone, visit and window."""

from __future__ import annotations

from datetime import date

from annulus.cli import CliError, setup_django


def register(subparsers) -> None:
    parser = subparsers.add_parser("reminders", help="print the reminder call list for a day (visits the next day)")
    parser.add_argument("--date", default="", help="the day of the calls, YYYY-MM-DD (default: today)")
    parser.set_defaults(func=run)


def run(args) -> int:
    day = None
    if args.date:
        try:
            day = date.fromisoformat(args.date)
        except ValueError:
            raise CliError(f"--date {args.date!r} is not a date (YYYY-MM-DD)") from None
        from annulus import dates

        if dates.problem(day):
            raise CliError(f"--date {args.date}: {dates.OUT_OF_RANGE}")
    setup_django()
    from django.utils import timezone

    from annulus.visits.selectors import call_list

    day = day or timezone.localdate()
    rows = call_list(day)
    if not rows:
        print(f"{day}: no visits on the next day; nobody to call.")
        return 0
    visit_on = rows[0]["visit_on"]
    print(f"Reminder calls on {day} for visits on {visit_on} ({len(rows)}):")
    print(f"{'case':<6} {'name':<22} {'phone':<18} {'visit':<28} {'window':<25} reminded")
    for r in rows:
        p, s, call = r["participant"], r["slot"], r["call"]
        window = f"{s.window_start} – {s.window_end}"
        done = f"{call.get_outcome_display()} by {call.called_by.username}" if call else "no"
        print(f"{p.case_number or p.screening_number:<6} {(p.full_name or p.initials)[:22]:<22} "
              f"{(p.phone or '-')[:18]:<18} {s.name[:28]:<28} {window:<25} {done}")
    return 0
