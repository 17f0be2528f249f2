"""Data completeness and trial conduct for the report, from ADSV, ADDV and ADSL (no Django).

- ``visits``: per scheduled visit and column (arms, then overall; overall only when blinded), the
  randomised participants' visits by status (``SVSTAT``): done in / out of window (``AWSTAT`` IN
  vs EARLY or LATE), missed, not yet due, after the end of study;
- ``data_cleaning``: per visit, forms complete, forms source-verified (``SDVFORMS``) and queries
  open / raised (``QRYOPEN`` / ``QRYTOT``) as of the export's as-of time;
- ``deviations``: protocol deviations (ADDV) by category (``DVCAT``) and status (``DVSTAT``);
- ``unblindings``: participants whose treatment was revealed by an emergency unblinding
  (``EMUNBLFL``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from annulus.report.adsl import flag, number, split_arms, text

STATUSES = ("in_window", "out_of_window", "missed", "not_due", "after_eos")


def _status(r: Mapping) -> str | None:
    s = text(r, "SVSTAT").upper()
    if s == "DONE":
        return "in_window" if text(r, "AWSTAT").upper() in ("IN", "") else "out_of_window"
    return {"MISSED": "missed", "NOT DUE": "not_due", "AFTER EOS": "after_eos"}.get(s)


def _columns(adsl_rows: Sequence[Mapping], arms: Sequence[str] | None) -> list[tuple[str | None, set[str]]]:
    groups = [] if arms is None else split_arms(adsl_rows, arms, lambda r: flag(r, "RANDFL"))
    overall = [r for r in adsl_rows if flag(r, "RANDFL")]
    return [(a, {text(r, "USUBJID") for r in m}) for a, m in [*groups, (None, overall)]]


def _visit_order(adsv_rows: Sequence[Mapping]) -> list[str]:
    days: dict[str, float] = {}
    for r in adsv_rows:
        v = text(r, "AVISIT")
        if v and v not in days:
            days[v] = number(r, "AVISITN") or 0.0
    return sorted(days, key=lambda v: (days[v], v))


def tables(adsl_rows: Sequence[Mapping], adsv_rows: Sequence[Mapping], addv_rows: Sequence[Mapping], *,
           arms: Sequence[str] | None) -> dict:
    columns = _columns(adsl_rows, arms)
    col_of = {}
    for i, (_, members) in enumerate(columns[:-1]):
        for s in members:
            col_of[s] = i
    randomised = columns[-1][1]
    visits = _visit_order(adsv_rows)
    counts = {v: [Counter() for _ in columns] for v in visits}
    cleaning = {v: Counter() for v in visits}
    for r in adsv_rows:
        s, v = text(r, "USUBJID"), text(r, "AVISIT")
        if s not in randomised or v not in counts:
            continue
        st = _status(r)
        if st is None:
            continue
        idx = [len(columns) - 1] + ([col_of[s]] if s in col_of else [])
        for i in idx:
            counts[v][i][st] += 1
        c = cleaning[v]
        c["forms"] += int(number(r, "FORMS") or 0)
        c["sdv"] += int(number(r, "SDVFORMS") or 0)
        c["open"] += int(number(r, "QRYOPEN") or 0)
        c["raised"] += int(number(r, "QRYTOT") or 0)
    visit_rows = [{"visit": v, "cells": [{k: counts[v][i][k] for k in STATUSES} for i in range(len(columns))]}
                  for v in visits]
    cleaning_rows = [{"visit": v, **{k: cleaning[v][k] for k in ("forms", "sdv", "open", "raised")}} for v in visits]
    total = Counter()
    for c in cleaning.values():
        total.update(c)
    deviations = Counter()
    statuses = Counter()
    for r in addv_rows:
        if text(r, "USUBJID") in randomised or not randomised:
            deviations[text(r, "DVCAT") or "other"] += 1
            statuses[text(r, "DVSTAT").lower() or "open"] += 1
    unblinded = [{"n": sum(1 for r in adsl_rows if text(r, "USUBJID") in m and flag(r, "EMUNBLFL")), "of": len(m)}
                 for _, m in columns]
    return {"columns": [{"arm": a, "n": len(m)} for a, m in columns], "visits": visit_rows,
            "data_cleaning": cleaning_rows,
            "data_cleaning_total": {k: total[k] for k in ("forms", "sdv", "open", "raised")},
            "deviations": sorted(deviations.items(), key=lambda kv: (-kv[1], kv[0])),
            "deviation_status": dict(sorted(statuses.items())), "unblindings": unblinded}
