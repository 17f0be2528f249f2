"""Reading ADSL rows for the trial report (no Django).

The report reads only the exported analysis datasets. ``read(path)`` gives the rows of an
``adsl.csv`` as dictionaries of text (a UTF-8 file, with or without the byte-order mark that the
Excel option writes); the counting functions also take rows built by hand, whose values may be
text, numbers or None.

Columns used (``annulus.interchange.adam``): ``USUBJID``, ``TRT01P`` (only in an export allowed to
show arms), ``RANDFL``/``ITTFL``/``SAFFL``/``PPROTFL``/``ELIGFL``/``EMUNBLFL`` ("Y"/"N"; ELIGFL
empty before the eligibility decision), ``SCRFCRIT``, ``LASTVIS``, ``EOSSTT``, ``DCSREAS``, ``AGE``,
``SEX``, ``PAINDUR``, the baseline scores ``BASEVAS`` ... ``BASEMCS`` and the baseline imaging
``BASEPFIR``, ``BASEMODI``, ``BASEDHT``, ``BASEROM``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

ARM_COLUMN = "TRT01P"


def read(path: str | Path) -> list[dict[str, str]]:
    """The rows of an ADSL CSV file, one dictionary of text per participant."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def text(row: Mapping, column: str) -> str:
    """A cell as stripped text ("" when missing)."""
    value = row.get(column)
    return "" if value is None else str(value).strip()


def flag(row: Mapping, column: str) -> bool:
    """A population or record flag: "Y" is True, "N" or empty is False; anything else is refused."""
    value = text(row, column).upper()
    if value == "Y":
        return True
    if value in ("N", ""):
        return False
    raise ValueError(f"{column} of {text(row, 'USUBJID') or '?'} is {value!r}, not Y, N or empty")


def number(row: Mapping, column: str) -> float | None:
    """A numeric cell as a float (None when empty); text that is not a finite number is refused."""
    value = row.get(column)
    if value is None or (isinstance(value, str) and value.strip() in ("", ".", "NA")):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{column} of {text(row, 'USUBJID') or '?'} is {value!r}, not a number")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{column} of {text(row, 'USUBJID') or '?'} is {value!r}, not a number") from None
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError(f"{column} of {text(row, 'USUBJID') or '?'} is {value!r}, not a finite number")
    return x


def split_arms(rows: Iterable[Mapping], arms: Sequence[str] | None,
               member=lambda row: flag(row, "RANDFL")) -> list[tuple[str | None, list[Mapping]]]:
    """The rows for which ``member(row)`` holds, one group per column of a report: with ``arms``
    given, one group per arm in that order (by ``TRT01P``); with ``arms=None`` (blinded), one pooled
    group keyed None, and ``TRT01P`` is not read at all. A member row whose ``TRT01P`` is missing
    or not one of ``arms`` is refused naming it."""
    members = [r for r in rows if member(r)]
    if arms is None:
        return [(None, members)]
    arms = list(arms)
    if not arms:
        raise ValueError("no arms given: a blinded report passes arms=None")
    if len(set(arms)) != len(arms):
        raise ValueError(f"arms are given twice: {arms}")
    groups: dict[str, list[Mapping]] = {a: [] for a in arms}
    for r in members:
        arm = text(r, ARM_COLUMN)
        if not arm:
            raise ValueError(f"{text(r, 'USUBJID') or '?'} has no {ARM_COLUMN}: "
                             "a blinded export can only be reported pooled (arms=None)")
        if arm not in groups:
            raise ValueError(f"{ARM_COLUMN} of {text(r, 'USUBJID') or '?'} is {arm!r}, not one of {arms}")
        groups[arm].append(r)
    return list(groups.items())
