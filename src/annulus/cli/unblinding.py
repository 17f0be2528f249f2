"""``annulus unblinding seal|emergencies``: check the sealed allocation list; list every
emergency unblinding (number, reason, scope, time) for the end-of-trial report. Neither prints a
group label or a treatment."""

from __future__ import annotations

import csv
import sys

from annulus.cli import CliError, setup_django


def register(subparsers) -> None:
    parser = subparsers.add_parser("unblinding", help="the sealed allocation list and emergency unblindings")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    s = sub.add_parser("seal", help="check the stored list against the checksums sealed at generation (and replay "
                                    "minimisation from its seed); exit 1 if broken")
    s.set_defaults(func=seal)
    e = sub.add_parser("emergencies", help="list every emergency unblinding as CSV (number, case, time, by, reason, scope)")
    e.set_defaults(func=emergencies)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def seal(args) -> int:
    setup_django()
    from annulus.allocation import services

    lst = services.current_list()
    if lst is None:
        raise CliError("no allocation list has been generated")
    problems = services.seal_problems(lst)
    if problems:
        for p in problems:
            print(f"BROKEN {p}")
        return 1
    if lst.method == "minimisation":
        made = lst.envelopes.count()
        print(f"minimisation intact: the seed, settings, labels and pool of {lst.n} drug codes match the checksums "
              f"sealed at generation, and all {made} allocations replay from the seed and the recorded levels")
    else:
        print(f"allocation list intact: {lst.n} envelopes match the checksums sealed at generation")
    return 0


def emergencies(args) -> int:
    setup_django()
    from django.utils import timezone

    from annulus.allocation.models import EmergencyUnblinding

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["number", "case_number", "time", "by", "reason", "scope"])
    for r in EmergencyUnblinding.objects.select_related("participant", "requested_by").order_by("number"):
        writer.writerow([r.label, r.participant.case_number, timezone.localtime(r.at).isoformat(timespec="minutes"),
                         r.requested_by.username, r.reason, r.scope])
    return 0
