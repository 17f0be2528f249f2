"""``annulus dictionary [--csv FILE] [--protocol FILE] [--language en|zh]``: the data dictionary.

Without ``--csv`` prints every form and its items (type, unit, range, required, SDV, SDTM, label);
with ``--csv FILE`` writes the same CSV as the page's download (UTF-8 with a byte-order mark so
spreadsheet programs read the Chinese labels, a header row, both languages as columns; ``-`` is
stdout). The protocol is the one in force in the database, or ``--protocol FILE`` (no database).
"""

from __future__ import annotations

import sys

from annulus.cli import CliError


def register(subparsers) -> None:
    parser = subparsers.add_parser("dictionary", help="print the data dictionary or write it as CSV")
    parser.add_argument("--csv", metavar="FILE", help="write the dictionary as CSV to FILE ('-': stdout)")
    parser.add_argument("--protocol", metavar="FILE", help="build it from this protocol file instead of the "
                        "version in force in the database")
    parser.add_argument("--language", default="en", choices=["en", "zh"], help="labels in this language")
    parser.set_defaults(func=run)


def _dictionary(path: str | None):
    if path:
        from annulus.dictionary import build
        from annulus.protocol import ProtocolError, load_protocol

        try:
            return build(load_protocol(path))
        except ProtocolError as exc:
            raise CliError(f"{path}: " + "; ".join(exc.errors)) from None
        except OSError as exc:
            raise CliError(f"{path}: {exc.strerror}") from None
    from annulus.cli import setup_django

    setup_django()
    from annulus.trial.selectors import data_dictionary

    return data_dictionary()


def _text(d, language: str) -> str:
    out = [f"Data dictionary, protocol version {d.protocol_version}: {len(d.entries)} items on {len(d.forms)} forms"]
    for f in d.forms:
        visits = ", ".join(f.visits) or {"log": "any time (log)", "participant": "once per participant"}.get(f.scope, "")
        out.append(f"\n{f.id} — {f.name(language)} [{f.scope}; {visits}]")
        for e in f.items:
            unit = f" {e.unit}" if e.unit else ""
            rng = f" {e.range_text}" if e.range_text else ""
            sdv = ("SDV 100%" + (f" ({e.sdv_when})" if e.sdv_when else "")) if e.sdv_critical else "sampled"
            req = "required" if e.required else "optional"
            out.append(f"  {e.item:<32} {e.type:<8}{unit}{rng}  {req}  {sdv}  {e.sdtm or '-'}  {e.label(language)}")
            if e.codelist:
                out.append(f"  {'':<32} codes: {e.codelist_text(language)}")
    return "\n".join(out) + "\n"


def run(args) -> int:
    from annulus.dictionary import to_csv

    d = _dictionary(args.protocol)
    if args.csv is None:
        sys.stdout.write(_text(d, args.language))
        return 0
    data = "\ufeff" + to_csv(d)
    if args.csv == "-":
        sys.stdout.write(data)
        return 0
    try:
        with open(args.csv, "w", encoding="utf-8", newline="") as fh:
            fh.write(data)
    except OSError as exc:
        raise CliError(f"{args.csv}: {exc.strerror}") from None
    print(f"{args.csv}: {len(d.entries)} items on {len(d.forms)} forms (protocol version {d.protocol_version})")
    return 0
