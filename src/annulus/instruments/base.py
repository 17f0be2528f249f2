"""Result and error types shared by every instrument, and the item checks they all use.

Items arrive as raw answers in the instrument's published order; ``None`` means "not answered".
Field names use the 0-based position in that list (``items[6]``) so that a message can be traced
to the exact JSON element, while the message text uses the form's 1-based item number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence


class InstrumentError(ValueError):
    """An answer that breaks an instrument's rules; ``field`` names the offending input."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Score:
    """A computed score.

    ``score`` is the single total (``None`` when it cannot be computed, with ``reason``, or for
    instruments without a single total such as SF-36). ``parts`` holds sub-scores and the
    arithmetic behind the total; ``summary`` holds named results that are reported at the top
    level of :meth:`to_dict` (SF-36 scales, lab panel flags).
    """

    name: str
    score: float | None
    parts: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    reason: str | None = None
    unit: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "score": self.score,
            "unit": self.unit,
        }
        out.update(self.summary)
        out["parts"] = self.parts
        out["missing"] = list(self.missing)
        out["reason"] = self.reason
        return out


def check_items(name: str, items: Any, count: int) -> list[Any]:
    """The item list itself: a list of exactly ``count`` answers."""
    if not isinstance(items, (list, tuple)):
        raise InstrumentError("items", f"{name} items must be a list of {count} answers")
    if len(items) != count:
        raise InstrumentError(
            "items", f"{name} needs {count} item{'s' if count != 1 else ''}, got {len(items)}"
        )
    return list(items)


def number(value: Any, field_name: str, label: str) -> float:
    """A finite number (bool and strings are refused: "abc" or "5" are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InstrumentError(field_name, f"{label} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise InstrumentError(field_name, f"{label} must be a finite number, got {value!r}")
    return float(value)


def coded(value: Any, field_name: str, label: str, allowed: Iterable[int]) -> int:
    """A response code from a fixed set (1.0 is accepted as 1; 1.5 is not a code)."""
    allowed = list(allowed)
    span = _describe(allowed)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InstrumentError(field_name, f"{label} must be {span}, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise InstrumentError(field_name, f"{label} must be {span}, got {value!r}")
    code = int(value)
    if code not in allowed:
        raise InstrumentError(field_name, f"{label} must be {span}, got {code}")
    return code


def _describe(allowed: Sequence[int]) -> str:
    ordered = sorted(allowed)
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}–{ordered[-1]}"
    # Keep the form's own order for a non-contiguous set (JOA bladder: 0, -3 or -6).
    return ", ".join(str(a) for a in allowed[:-1]) + f" or {allowed[-1]}"
