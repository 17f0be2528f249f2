"""Where the first protocol's ids are still written into the source (a report, no CLI).

The ids are read from ``protocols/dlbp-admsc.yaml`` itself: its visit ids, form ids, instrument
ids and procedure ids. A *literal* is one of them written as a whole quoted string - a Python
string token (``"vas"``, ``'transplant'``, also a one-word f-string such as ``f"m12"``) or a
quoted string in a Django template or the project's JavaScript - in a file under ``src/``
outside the places that are allowed to name them: ``protocols/`` (not under ``src/``), the
instruments library (``src/annulus/instruments/``, which declares and scores the instruments by
name) and ``tests/`` (not under ``src/``); database migrations are history, generated and never
edited, so they are not scanned either. Comments and docstrings do not count; an identifier
such as ``baseline_visit`` or a longer string such as ``"vas_mm"`` does not count.

``report()`` lists ``path:line:literal``; ``counts()`` the number of each literal per file, which
is what ``tests/data/protocol_literals_allowed.txt`` records (line numbers move with every edit
of a file; the count only changes when a literal is added or removed).
"""

from __future__ import annotations

import io
import re
import tokenize
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src"
FIRST_PROTOCOL = ROOT / "protocols" / "dlbp-admsc.yaml"
ALLOWED_FILE = ROOT / "tests" / "data" / "protocol_literals_allowed.txt"
# the places that may name the protocol's ids
EXEMPT = ("src/annulus/instruments/",)
SUFFIXES = (".py", ".html", ".js", ".txt")
_VENDOR = ("htmx.min.js",)


def protocol_ids(path: Path = FIRST_PROTOCOL) -> set[str]:
    """The visit, form, instrument and procedure ids of a protocol file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    schedule = data["schedule"]
    ids = {v["id"] for v in schedule["visits"]}
    ids |= {v["procedure"] for v in schedule["visits"] if v.get("procedure")}
    ids |= {f["id"] for f in schedule["forms"]}
    ids |= {f["instrument"] for f in schedule["forms"] if f.get("instrument")}
    ids |= {p["id"] for p in data.get("procedures") or []}
    return ids


def _python_strings(text: str):
    """(line, value) of each plain string token (and one-part f-string) of a Python source."""
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    fstring_parts: list[str] | None = None
    start = 0
    for tok in tokens:
        kind = tok.type
        if kind == tokenize.STRING:
            prefix = re.match(r"^[rRbBuUfF]{0,2}", tok.string).group(0)
            body = tok.string[len(prefix):]
            for quote in ('"""', "'''", '"', "'"):
                if body.startswith(quote) and body.endswith(quote) and len(body) >= 2 * len(quote):
                    value = body[len(quote):-len(quote)]
                    if not ("f" in prefix.lower() and "{" in value):  # an f-string with a field
                        yield tok.start[0], value
                    break
        elif tokenize.tok_name.get(kind) == "FSTRING_START":
            fstring_parts, start = [], tok.start[0]
        elif tokenize.tok_name.get(kind) == "FSTRING_MIDDLE" and fstring_parts is not None:
            fstring_parts.append(tok.string)
        elif tokenize.tok_name.get(kind) == "FSTRING_END" and fstring_parts is not None:
            yield start, "".join(fstring_parts)
            fstring_parts = None
        elif fstring_parts is not None and kind == tokenize.OP and tok.string == "{":
            fstring_parts.append("{")  # an f-string with a field is never a bare id


_QUOTED = re.compile(r"""(["'])([A-Za-z0-9_]+)\1""")


def _template_strings(text: str):
    for number, line in enumerate(text.splitlines(), 1):
        for m in _QUOTED.finditer(line):
            yield number, m.group(2)


def _files():
    for path in sorted(SOURCE.rglob("*")):
        rel = path.relative_to(ROOT).as_posix()
        if not path.is_file() or path.suffix not in SUFFIXES or path.name in _VENDOR:
            continue
        if any(rel.startswith(prefix) for prefix in EXEMPT) or "/locale/" in rel or "/migrations/" in rel:
            continue
        yield rel, path


def report(ids: set[str] | None = None) -> list[tuple[str, int, str]]:
    """Every (path, line, literal) of the first protocol's ids in the source, in file order."""
    ids = protocol_ids() if ids is None else ids
    out = []
    for rel, path in _files():
        text = path.read_text(encoding="utf-8")
        strings = _python_strings(text) if path.suffix == ".py" else _template_strings(text)
        out.extend((rel, line, value) for line, value in strings if value in ids)
    return out


def counts(ids: set[str] | None = None) -> Counter:
    """How many times each literal is written in each file: {(path, literal): n}."""
    return Counter((rel, value) for rel, _, value in report(ids))


def read_allowed(path: Path = ALLOWED_FILE) -> Counter:
    """The allow-list: ``path literal count`` per line; ``#`` starts a comment."""
    allowed: Counter = Counter()
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        rel, literal, n = line.split()
        allowed[(rel, literal)] = int(n)
    return allowed


def format_allowed(found: Counter) -> str:
    """The allow-list lines for ``found`` (sorted by file and literal)."""
    return "".join(f"{rel} {literal} {n}\n" for (rel, literal), n in sorted(found.items()))
