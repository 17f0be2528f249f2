"""``annulus selfentry issue-due``: the schedule's questionnaire links. For every participant in
the trial whose visit window with a patient-reported questionnaire is open, with no link waiting
and the questionnaire not done, a one-time link is issued and sent through the configured sender
(``ANNULUS_SELFENTRY_SENDER``). Run it daily (cron or a timer); running it again issues nothing new.

``annulus selfentry to-remind``: the participants whose link is waiting, to remind."""

from __future__ import annotations

from annulus.cli import CliError, setup_django


def register(subparsers) -> None:
    parser = subparsers.add_parser("selfentry", help="participants' own questionnaires: links by the schedule")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    due = sub.add_parser("issue-due", help="issue and send a link for every visit whose window is open")
    due.add_argument("--site-url", default="", help="the address the links start with (default: ANNULUS_SITE_URL)")
    due.set_defaults(func=issue_due)
    remind = sub.add_parser("to-remind", help="list the links issued and not yet answered")
    remind.set_defaults(func=to_remind)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _label(p) -> str:
    return p.case_number or p.screening_number


def issue_due(args) -> int:
    site_url = args.site_url.strip()
    if site_url and not site_url.startswith(("http://", "https://")):
        raise CliError(f"--site-url {site_url!r} must start with http:// or https://")
    setup_django()
    from django.core.exceptions import ImproperlyConfigured

    from annulus.selfentry import services
    from annulus.trial.lock import TrialLocked

    try:
        report = services.issue_due(url_base=site_url or None)
    except TrialLocked as exc:
        raise CliError(exc.message) from None
    except ImproperlyConfigured as exc:
        raise CliError(str(exc)) from None
    for p, key, channel in report.issued:
        print(f"issued  {_label(p):<8} {key:<10} sent ({channel})")
    for p, key, reason in report.skipped:
        print(f"skipped {_label(p):<8} {key:<10} {reason}")
    print(f"{len(report.issued)} link(s) issued and sent, {len(report.skipped)} visit(s) left for the coordinator.")
    return 0


def to_remind(args) -> int:
    setup_django()
    from django.utils import timezone

    from annulus.selfentry.selectors import to_remind as rows_to_remind

    rows = rows_to_remind()
    if not rows:
        print("Nobody to remind: no questionnaire link is waiting.")
        return 0
    print(f"{'case':<8} {'phone':<18} {'visit':<24} works until")
    for r in rows:
        p = r["participant"]
        until = timezone.localdate(r["link"].expires_at)
        print(f"{_label(p):<8} {(p.phone or '-')[:18]:<18} {r['visit_name'][:24]:<24} {until}")
    return 0
