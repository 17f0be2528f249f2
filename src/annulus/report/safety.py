"""The trial report's safety tables (P-8.4), from ADSL, ADAE and ADLB (no Django).

Denominators are the safety population of each column (``SAFFL`` = "Y" in ADSL; the pooled column
alone in a blinded report, which never reads ``TRT01P``). Only treatment-emergent events count
(``TRTEMFL`` = "Y": onset on or after transplantation) and only for participants of the safety
population. "n (%)" counts participants with at least one such event; the 95 % interval of the
percentage is the exact Clopper–Pearson interval (as R ``binom.test``); "events" counts events.

- ``summary``: any AE, serious AE, related AE (``AREL`` = "RELATED"), grade 3 or higher
  (``AETOXGR``), AE leading to withdrawal (``AEWDFL``), death (``AESDTH``);
- ``by_term``: by system organ class (``AEBODSYS``; "not coded" when empty) and term (``AEDECOD``),
  participants counted once per class and once per term;
- ``by_grade``: participants by their worst grade;
- ``lab_shifts``: per analyte, participants normal at baseline (``BNRIND`` = "NORMAL") whose worst
  post-baseline value (``ANRIND``) was high or low, over those normal at baseline with a
  post-baseline value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from annulus.report.adsl import flag, number, split_arms, text
from annulus.stats.safety_tables import clopper_pearson

SUMMARY_ROWS = ("any", "serious", "related", "grade3", "withdrawal", "death")
LAB_COLUMNS = ("USUBJID", "PARAMCD", "LBCAT", "PARAM", "ABLFL", "ANRIND")


def read_lab(path: str | Path) -> pd.DataFrame:
    """The columns of an ``adlb.csv`` that the shift table reads, as text ("" when empty): a
    laboratory dataset has many rows (one per participant, analyte and visit), read at C speed."""
    frame = pd.read_csv(path, usecols=lambda c: c in LAB_COLUMNS, dtype=str, keep_default_na=False,
                        encoding="utf-8-sig")
    return frame.reindex(columns=list(LAB_COLUMNS), fill_value="")


def _columns(adsl_rows: Iterable[Mapping], arms: Sequence[str] | None) -> list[tuple[str | None, set[str]]]:
    rows = list(adsl_rows)
    groups = [] if arms is None else split_arms(rows, arms, lambda r: flag(r, "SAFFL"))
    overall = [r for r in rows if flag(r, "SAFFL")]
    return [(a, {text(r, "USUBJID") for r in members}) for a, members in [*groups, (None, overall)]]


def _cell(subjects: set[str], of: set[str], events: int | None, level: float) -> dict:
    k, n = len(subjects & of), len(of)
    lo, hi = clopper_pearson(k, n, level) if n else (None, None)
    return {"n": k, "of": n, "percent": 100.0 * k / n if n else None,
            "lower": None if lo is None else 100 * lo, "upper": None if hi is None else 100 * hi, "events": events}


def _emergent(adae_rows: Iterable[Mapping], safety: set[str]) -> list[Mapping]:
    return [e for e in adae_rows if text(e, "USUBJID") in safety and text(e, "TRTEMFL").upper() == "Y"]


def _is(e: Mapping, kind: str) -> bool:
    if kind == "any":
        return True
    if kind == "serious":
        return text(e, "AESER").upper() == "Y"
    if kind == "related":
        return text(e, "AREL").upper() == "RELATED"
    if kind == "grade3":
        g = number(e, "AETOXGR")
        return g is not None and g >= 3
    if kind == "withdrawal":
        return text(e, "AEWDFL").upper() == "Y"
    if kind == "death":
        return text(e, "AESDTH").upper() == "Y"
    raise ValueError(kind)


def tables(adsl_rows: Sequence[Mapping], adae_rows: Sequence[Mapping], adlb_rows: Sequence[Mapping] | pd.DataFrame, *,
           arms: Sequence[str] | None, level: float = 0.95) -> dict:
    """Every safety table of the report, one cell per column (arms in order, then overall)."""
    columns = _columns(adsl_rows, arms)
    safety = columns[-1][1]
    events = _emergent(adae_rows, safety)
    summary = []
    for kind in SUMMARY_ROWS:
        hit = [e for e in events if _is(e, kind)]
        who = {text(e, "USUBJID") for e in hit}
        cells = [_cell(who, members, sum(1 for e in hit if text(e, "USUBJID") in members), level)
                 for _, members in columns]
        summary.append({"key": kind, "cells": cells})
    return {"columns": [{"arm": a, "n": len(m)} for a, m in columns], "summary": summary,
            "by_term": _by_term(events, columns, level), "by_grade": _by_grade(events, columns, level),
            "lab_shifts": _lab_shifts(adlb_rows, columns, level), "events": len(events)}


def _by_term(events: list[Mapping], columns, level: float) -> list[dict]:
    classes: dict[str, dict[str, list[Mapping]]] = {}
    for e in events:
        soc = text(e, "AEBODSYS")
        term = text(e, "AEDECOD") or text(e, "AETERM")
        classes.setdefault(soc, {}).setdefault(term, []).append(e)

    def cells(evs):
        who = {text(e, "USUBJID") for e in evs}
        return [_cell(who, m, sum(1 for e in evs if text(e, "USUBJID") in m), level) for _, m in columns]

    def size(evs):
        return len({text(e, "USUBJID") for e in evs})

    out = []
    for soc, terms in sorted(classes.items(), key=lambda kv: (-size([e for t in kv[1].values() for e in t]), kv[0])):
        every = [e for t in terms.values() for e in t]
        out.append({"kind": "soc", "label": soc, "cells": cells(every)})
        for term, evs in sorted(terms.items(), key=lambda kv: (-size(kv[1]), kv[0].lower())):
            out.append({"kind": "term", "label": term, "cells": cells(evs)})
    return out


def _by_grade(events: list[Mapping], columns, level: float) -> list[dict]:
    worst: dict[str, int] = {}
    for e in events:
        g = number(e, "AETOXGR")
        if g is not None:
            s = text(e, "USUBJID")
            worst[s] = max(worst.get(s, 0), int(g))
    out = []
    for grade in range(1, 6):
        who = {s for s, g in worst.items() if g == grade}
        out.append({"grade": grade, "cells": [_cell(who, m, None, level) for _, m in columns]})
    return out


def _text(values: pd.Series, *, upper: bool = False) -> pd.Series:
    """Each cell as stripped text (upper case for a code), made once per distinct value."""
    codes, distinct = pd.factorize(values)
    made = [str(v).strip() for v in distinct]
    table = pd.array([m.upper() for m in made] if upper else made, dtype=object)
    return pd.Series(table.take(codes), index=values.index, dtype=object)


def _lab_shifts(adlb_rows: Sequence[Mapping] | pd.DataFrame, columns, level: float) -> list[dict]:
    """Per analyte (in order of category and name, each named by its first row): participants of
    the safety population normal at baseline (their last baseline row) with a post-baseline value,
    and those of them whose worst post-baseline indicator was high, or low."""
    safety = columns[-1][1]
    lab = adlb_rows if isinstance(adlb_rows, pd.DataFrame) else pd.DataFrame(list(adlb_rows))
    lab = lab.reindex(columns=list(LAB_COLUMNS)).fillna("")
    lab = pd.DataFrame({c: _text(lab[c], upper=c in ("ABLFL", "ANRIND")) for c in LAB_COLUMNS})
    lab = lab[lab["USUBJID"].isin(safety)]
    if lab.empty:
        return []
    names = lab.drop_duplicates("PARAMCD").set_index("PARAMCD")
    at_base = lab["ABLFL"] == "Y"
    indicator = lab["ANRIND"]
    base = lab[at_base].assign(IND=indicator[at_base]).drop_duplicates(["USUBJID", "PARAMCD"], keep="last")
    later = ~at_base & (indicator != "")
    post = lab.loc[later, ["USUBJID", "PARAMCD"]].assign(HIGH=(indicator[later] == "HIGH").to_numpy(),
                                                         LOW=(indicator[later] == "LOW").to_numpy())
    worst = post.groupby(["USUBJID", "PARAMCD"], sort=False)[["HIGH", "LOW"]].any().reset_index()
    # normal at baseline, with a post-baseline value: whether any later value was high, or low
    normal = base.loc[base["IND"] == "NORMAL", ["USUBJID", "PARAMCD"]].merge(worst, on=["USUBJID", "PARAMCD"])
    by_code = {code: group for code, group in normal.groupby("PARAMCD", sort=False)}
    out = []
    order = sorted(names.index, key=lambda c: (names.at[c, "LBCAT"] or "", names.at[c, "PARAM"] or c))
    for code in order:
        group = by_code.get(code, normal.iloc[:0])
        who = set(group["USUBJID"])
        high = set(group.loc[group["HIGH"], "USUBJID"])
        low = set(group.loc[group["LOW"], "USUBJID"])
        out.append({"code": code, "category": names.at[code, "LBCAT"], "label": names.at[code, "PARAM"] or code,
                    "high": [_cell(high, who & m, None, level) for _, m in columns],
                    "low": [_cell(low, who & m, None, level) for _, m in columns]})
    return out
