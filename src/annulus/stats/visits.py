"""The time order of visits: one rule for ``annulus mmrm``, ``compare`` and ``dose``.

Visit labels are put in time order by the first rule that applies:

1. an explicit order (``--visit-order W1,M1,...``);
2. a numeric visit column: ``--visit-number COLUMN``, or ``AVISITN`` when the table has one (the
   analysis datasets carry AVISIT with the protocol's visit id and AVISITN with the scheduled
   day). Every label must have one number and no two labels the same number;
3. labels that are all numbers, in numeric order;
4. labels that all give a time with a unit — days < weeks < months < years, in either order
   ("Week 1", "1 week", "Month 24", "24 months", "Day -1", "Year 2"), the protocol's visit ids
   (w1, m1, m12, m24), Chinese units (1周, 3个月) — in time order, with "Screening" and "Baseline"
   before every time after day 0. A week is 7 days, a month 365.25/12 days, a year 365.25 days;
   two labels at the same time ("Month 12" and "Year 1") are refused as ambiguous;
5. labels that are one text with one number ("VIS1" … "VIS10", "V01" … "V07", "Visit 2") in the
   order of the number;
6. anything else (e.g. "Week 1" with "End of study") is refused with a message asking for
   ``--visit-order``: sorting such labels as text puts "Month 24" before "Week 1", which changes
   every time-ordered covariance (AR(1), ARH(1), Toeplitz) and the default visit of MCP-Mod.

A categorical column (library callers) keeps its category order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from annulus.stats._io import InputError

__all__ = ["order_visits", "visit_number_column", "label_time", "AVISITN"]

AVISITN = "AVISITN"

_DAYS = {"day": 1.0, "week": 7.0, "month": 365.25 / 12, "year": 365.25}
_UNITS = {
    "d": "day", "day": "day", "days": "day", "dy": "day", "天": "day", "日": "day",
    "w": "week", "wk": "week", "wks": "week", "week": "week", "weeks": "week", "周": "week",
    "m": "month", "mo": "month", "mos": "month", "mon": "month", "month": "month",
    "months": "month", "个月": "month", "月": "month",
    "y": "year", "yr": "year", "yrs": "year", "year": "year", "years": "year", "年": "year",
}
_UNIT_RE = "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
_NUM_RE = r"[-+]?\d+(?:\.\d+)?"
_UNIT_FIRST = re.compile(rf"^(?P<unit>{_UNIT_RE})\s*_?\s*(?P<num>{_NUM_RE})$", re.IGNORECASE)
_NUM_FIRST = re.compile(rf"^(?P<num>{_NUM_RE})\s*[-_ ]?\s*(?P<unit>{_UNIT_RE})$", re.IGNORECASE)
# Visits before any follow-up time: screening first, then baseline.
_BEFORE = {"screening": 0, "scr": 0, "筛选": 0, "baseline": 1, "bl": 1, "基线": 1}
_ONE_NUMBER = re.compile(_NUM_RE)


def label_time(label: str) -> float | None:
    """Days from the start of follow-up of a label with a time unit, else None.

    >>> label_time("Week 1"), label_time("m12"), label_time("24 months"), label_time("VIS1")
    (7.0, 365.25, 730.5, None)
    """
    text = str(label).strip()
    for pattern in (_UNIT_FIRST, _NUM_FIRST):
        m = pattern.match(text)
        if m:
            return float(m.group("num")) * _DAYS[_UNITS[m.group("unit").lower()]]
    return None


def _quote(labels: Iterable[str], limit: int = 4) -> str:
    labels = list(labels)
    shown = ", ".join(f"'{v}'" for v in labels[:limit])
    return shown + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


def _ask(reason: str) -> InputError:
    return InputError(f"{reason}; give the visits in time order with --visit-order "
                      "(or a numeric visit column with --visit-number)")


def _by_numbers(levels: list[str], visits: pd.Series, numbers: pd.Series, column: str) -> list[str]:
    pairs = pd.DataFrame({"v": visits.to_numpy(), "n": numbers.to_numpy()}).dropna()
    per = pairs.drop_duplicates()
    for lvl in levels:
        got = sorted(per.loc[per["v"] == lvl, "n"])
        if not got:
            raise InputError(f"visit '{lvl}' has no value in column '{column}'")
        if len(got) > 1:
            raise InputError(f"visit '{lvl}' has more than one value in column '{column}' "
                             f"({', '.join(f'{x:g}' for x in got[:3])})")
    number = per.set_index("v")["n"].to_dict()
    seen: dict[float, str] = {}
    for lvl in levels:
        other = seen.setdefault(number[lvl], lvl)
        if other != lvl:
            raise InputError(f"visits '{other}' and '{lvl}' have the same value "
                             f"{number[lvl]:g} in column '{column}'")
    return sorted(levels, key=lambda lvl: number[lvl])


def _by_time(levels: list[str]) -> list[str] | None:
    times, before = {}, {}
    for lvl in levels:
        key = str(lvl).strip().lower()
        if key in _BEFORE:
            before[lvl] = _BEFORE[key]
            continue
        t = label_time(lvl)
        if t is None:
            return None
        times[lvl] = t
    if not times:
        return None
    if before and min(times.values()) <= 0:
        first = min(times, key=times.get)
        raise _ask(f"cannot tell whether '{next(iter(before))}' comes before '{first}'")
    seen: dict[float, str] = {}
    for lvl, t in times.items():
        other = seen.setdefault(round(t, 9), lvl)
        if other != lvl:
            raise _ask(f"visits '{other}' and '{lvl}' are at the same time")
    return (sorted(before, key=before.get) + sorted(times, key=times.get))


def _by_template(levels: list[str]) -> list[str] | None:
    """One text with one number in it ("VIS1", "V01", "Visit 2"): by that number."""
    keys = {}
    for lvl in levels:
        found = list(_ONE_NUMBER.finditer(str(lvl)))
        if len(found) != 1:
            return None
        m = found[0]
        keys[lvl] = (str(lvl)[:m.start()].lower(), str(lvl)[m.end():].lower(), float(m.group()))
    if len({k[:2] for k in keys.values()}) != 1:
        return None
    numbers = [k[2] for k in keys.values()]
    if len(set(numbers)) != len(numbers):
        return None
    return sorted(levels, key=lambda lvl: keys[lvl][2])


def order_visits(
    visits: pd.Series | Sequence,
    *,
    explicit: Sequence[str] | None = None,
    numbers: pd.Series | Sequence | None = None,
    number_column: str = AVISITN,
    visit_column: str = "visit",
) -> list[str]:
    """The visit labels of ``visits`` (one entry per row; missing entries skipped) in time order,
    by the rules in this module's docstring; ``numbers`` (same length) is the numeric visit
    column. Raises ``InputError`` with one line when the order cannot be told.

    >>> order_visits(["Month 24", "Week 1", "Month 12", "Month 1"])
    ['Week 1', 'Month 1', 'Month 12', 'Month 24']
    >>> order_visits(["m24", "w1", "baseline", "m3"])
    ['baseline', 'w1', 'm3', 'm24']
    """
    series = pd.Series(visits, dtype=object) if not isinstance(visits, pd.Series) else visits
    if isinstance(series.dtype, pd.CategoricalDtype) and explicit is None and numbers is None:
        return [str(c) for c in series.cat.categories if (series == c).any()]
    present = series.dropna()
    distinct = pd.unique(present.to_numpy(dtype=object))  # in the order of appearance
    levels = list(dict.fromkeys(str(v) for v in distinct))
    if explicit is not None:
        order = [str(v).strip() for v in explicit]
        dup = [v for v in order if order.count(v) > 1]
        if dup:
            raise InputError(f"--visit-order names visit '{dup[0]}' twice")
        unknown = [v for v in levels if v not in order]
        if unknown:
            raise InputError(f"visit '{unknown[0]}' of column '{visit_column}' is not in "
                             f"--visit-order ({', '.join(order)})")
        return [v for v in order if v in set(levels)]
    if numbers is not None:
        nums = pd.to_numeric(pd.Series(numbers).reset_index(drop=True), errors="coerce")
        texts = {v: str(v) for v in distinct}  # each distinct value made text once, not once a row
        labels = pd.Series(series.map(texts).to_numpy(dtype=object), dtype=object)
        return _by_numbers(levels, labels, nums, number_column)
    if len(levels) <= 1:
        return levels
    as_numbers = pd.to_numeric(pd.Series(levels), errors="coerce")
    if not as_numbers.isna().any() and np.all(np.isfinite(as_numbers)):
        if as_numbers.nunique() != len(levels):
            raise _ask(f"visits {_quote(levels)} are different labels for the same number")
        return [lvl for _, lvl in sorted(zip(as_numbers, levels, strict=True))]
    for rule in (_by_time, _by_template):
        order = rule(levels)
        if order is not None:
            return order
    odd = [lvl for lvl in levels if label_time(lvl) is None
           and str(lvl).strip().lower() not in _BEFORE]
    raise _ask(f"cannot tell the time order of visits {_quote(odd or levels)}")


def visit_number_column(columns: Iterable[str], visit: str, visit_number: str | None) -> str | None:
    """The numeric visit column to order by: ``visit_number`` when given (it must exist), else
    ``AVISITN`` when the table has it and it is not the visit column itself."""
    columns = [str(c) for c in columns]
    if visit_number is not None:
        if visit_number not in columns:
            raise InputError(f"--visit-number column '{visit_number}' not found "
                             f"(columns: {', '.join(columns)})")
        return None if visit_number == visit else visit_number
    if AVISITN in columns and visit != AVISITN:
        return AVISITN
    return None

