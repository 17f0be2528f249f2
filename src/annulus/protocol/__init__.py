"""Protocol as data: load, validate and query a declarative protocol file (pure core, no Django).

>>> from annulus.protocol import load_protocol, default_protocol_path
>>> p = load_protocol(default_protocol_path())
>>> [a.id for a in p.arms]
['high', 'mid', 'low', 'control']
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import ValidationError

from .rules import EligibilityResult, EvidenceError, clean_evidence, clean_value, evaluate
from .schema import Arm, Criterion, Procedure, Protocol, Visit

__all__ = [
    "Arm",
    "Criterion",
    "EligibilityResult",
    "EvidenceError",
    "Procedure",
    "Protocol",
    "ProtocolError",
    "Visit",
    "clean_evidence",
    "clean_value",
    "default_protocol_path",
    "evaluate",
    "load_protocol",
    "parse_protocol",
    "parse_protocol_once",
    "protocol_digest",
    "shipped_protocol_paths",
]

MAX_BYTES = 1_000_000


class ProtocolError(ValueError):
    """The file is not a valid protocol; ``errors`` lists ``path: message`` lines."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


def default_protocol_path() -> Path:
    """The shipped DLBP protocol (``protocols/dlbp-admsc.yaml`` at the top of the checkout)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "protocols" / "dlbp-admsc.yaml"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("protocols/dlbp-admsc.yaml not found")


def shipped_protocol_paths() -> list[Path]:
    """Every protocol file shipped in ``protocols/`` (the default one first)."""
    default = default_protocol_path()
    return [default, *sorted(p for p in default.parent.glob("*.yaml") if p != default)]


# the tags of the eligibility rule union; pydantic puts the tag into the error location
_RULE_KINDS = {"age_at_least", "number", "one_of", "all_equal", "count_true", "flag", "any", "all"}
# the tags of the product union
_PRODUCT_KINDS = {"cell_suspension", "kit"}
# "relative.path[0].field: message" raised by a cross-field validator
_RELATIVE = re.compile(r"^([a-z_][a-z0-9_]*(?:\[\d+\])*(?:\.[a-z_][a-z0-9_]*(?:\[\d+\])*)*): (.+)$", re.S)


def _loc(loc: tuple) -> str:
    out = ""
    prev: list = []
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or "[" in str(part):
            pass  # pydantic's internal validator markers say nothing to a reader
        elif part in _PRODUCT_KINDS and prev == ["product"]:
            pass  # the product's kind is already in the file (or implied: cell_suspension)
        elif part in _RULE_KINDS and prev and (prev[-1] == "rule" or (isinstance(prev[-1], int) and prev[-2:-1] == ["rules"])):
            pass  # the union tag after a rule is already in the file as its `kind`
        else:
            out += ("." if out else "") + str(part)
        prev.append(part)
    return out or "(top level)"


def _lines(loc: tuple, msg: str) -> list[str]:
    """One ``path: message`` line per problem; cross-field validators name a path relative to
    the model they check, which is joined to the model's own location."""
    where = _loc(loc)
    out = []
    for line in msg.split("\n"):
        m = _RELATIVE.match(line)
        if m:
            rel, text = m.groups()
            path = rel if where == "(top level)" else f"{where}.{rel}"
            out.append(f"{path}: {text}")
        else:
            out.append(f"{where}: {line}")
    return out


MAX_DEPTH = 40  # nesting of mappings and lists; the shipped protocol needs 8


class _PlainDataLoader(yaml.SafeLoader):
    """YAML as plain data: no anchors or aliases (``&a`` / ``*a``, also ``<<: *a`` merges), so a
    small file cannot expand into a huge one, and at most MAX_DEPTH levels of nesting, so a file
    of brackets cannot exhaust the parser's recursion."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise ProtocolError([f"line {event.start_mark.line + 1}: anchors and aliases (&name, *name) are not "
                                 "allowed in a protocol file; write the value out"])
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise ProtocolError([f"line {event.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep"])
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _load_yaml(text: str):
    loader = _PlainDataLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def parse_protocol(text: str | bytes) -> Protocol:
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise ProtocolError([f"(file): larger than {MAX_BYTES} bytes"])
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError([f"(file): not UTF-8 text (byte {exc.start})"]) from None
    try:
        data = _load_yaml(text)
    except RecursionError:
        raise ProtocolError([f"(file): nested more than {MAX_DEPTH} levels deep"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        raise ProtocolError([f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    if not isinstance(data, dict):
        raise ProtocolError(["(top level): a protocol is a mapping of keys"])
    try:
        return Protocol.model_validate(data)
    except RecursionError:
        raise ProtocolError([f"(file): nested more than {MAX_DEPTH} levels deep"]) from None
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            errors.extend(_lines(err["loc"], err["msg"].removeprefix("Value error, ")))
        raise ProtocolError(errors) from None


@lru_cache(maxsize=8)
def parse_protocol_once(text: str | bytes) -> Protocol:
    """``parse_protocol``, once per text in a process: the same file is read at every start, on
    every load of the shipped protocol and for every version in force, and parsing (YAML and
    validation) takes a tenth of a second. A Protocol is frozen, so one parse may be shared. A
    text that fails raises each time (failures are not kept)."""
    return parse_protocol(text)


def load_protocol(path: str | Path) -> Protocol:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:  # refuse before reading a huge file into memory
            raise ProtocolError([f"(file): larger than {MAX_BYTES} bytes"])
        raw = path.read_bytes()
    except OSError as exc:
        raise ProtocolError([f"(file): cannot read {path} ({exc.strerror})"]) from None
    return parse_protocol(raw)


def protocol_digest(text: str | bytes) -> str:
    if isinstance(text, str):
        text = text.encode("utf-8")
    return hashlib.sha256(text).hexdigest()
