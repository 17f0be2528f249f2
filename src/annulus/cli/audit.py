"""``annulus audit verify``: recompute the audit hash chain."""

from __future__ import annotations

from annulus.cli import setup_django


def register(subparsers) -> None:
    parser = subparsers.add_parser("audit", help="audit-trail tools")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    v = sub.add_parser("verify", help="check every audit event's hash; exit 1 naming the first bad one")
    v.set_defaults(func=verify)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def verify(args) -> int:
    setup_django()
    from annulus.audit.selectors import verify_chain

    result = verify_chain()
    if result.ok:
        print(f"audit trail intact: {result.checked} events checked")
        return 0
    print(f"audit trail BROKEN at event #{result.bad_event}: {result.problem} ({result.checked} events checked)")
    return 1
