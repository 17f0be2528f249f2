"""``annulus score NAME``: score one instrument from raw item answers read as JSON on stdin.

    echo '{"items": [2, 2, 2, 1, 2, 2, 1, 2, 1, 1]}' | annulus score odi

Prints the result as JSON (exit 0, also when too many items are missing: the score is then
null with the reason). A bad item, a wrong number of items or unreadable input is one line on
stderr and exit 2. ``annulus score --list`` lists the instruments.
"""

from __future__ import annotations

import json
import sys

from annulus.cli import CliError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "score",
        help="score an instrument from raw answers on stdin",
        description='Read {"items": [...]} on stdin (raw answers in the published item order, '
        "null for a missing answer) and print the computed score as JSON.",
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="instrument (see --list)")
    parser.add_argument("--list", action="store_true", help="list the instruments and exit")
    parser.add_argument(
        "--max-missing",
        type=int,
        choices=(0, 1, 2),
        default=None,
        help="ODI only: missing sections allowed (default 1, the published rule)",
    )
    parser.set_defaults(func=run)


def _read_items(stream) -> list:
    raw = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CliError(f"stdin is not UTF-8 text (byte {exc.start})") from None
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise CliError(f"stdin is not valid JSON: {exc.msg} at {where}") from None
    if not isinstance(doc, dict) or "items" not in doc:
        raise CliError('stdin must be a JSON object {"items": [...]}')
    if not isinstance(doc["items"], list):
        raise CliError("items: must be a list of answers")
    return doc["items"]


def run(args) -> int:
    from annulus.instruments import INSTRUMENTS, InstrumentError, get_instrument

    if args.list:
        for inst in INSTRUMENTS.values():
            plural = "s" if inst.n_items != 1 else " "
            print(f"{inst.name:<12} {inst.n_items:>2} item{plural}  {inst.title}")
        return 0
    if not args.name:
        raise CliError("NAME is required (or use --list)")
    try:
        instrument = get_instrument(args.name)
    except InstrumentError as exc:
        raise CliError(exc.message) from None
    options = {}
    if args.max_missing is not None:
        if instrument.name != "odi":
            raise CliError("--max-missing applies to odi only")
        options["max_missing"] = args.max_missing
    items = _read_items(sys.stdin)
    try:
        result = instrument.score(items, **options)
    except InstrumentError as exc:
        raise CliError(str(exc)) from None
    print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    return 0
