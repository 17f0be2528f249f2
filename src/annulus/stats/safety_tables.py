"""Adverse-event tables (requirement P-8.4).

Counts events and subjects with at least one event, per arm and pooled over all arms (the DSMB
open report shows only the pooled column), for: any AE, each grade, serious AEs, related AEs and
each reported term. Incidence is subjects with an event / subjects in the arm, with the exact
Clopper–Pearson 95 % interval (as R ``binom.test``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from annulus.stats import _io
from annulus.stats._io import InputError

POOLED = "All"
YES = {"yes", "y", "true", "t", "1", "serious", "related"}
NO = {"no", "n", "false", "f", "0", "not serious", "not related", "unrelated", "non-serious"}


def clopper_pearson(x: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial confidence interval for ``x`` successes out of ``n``."""
    if n <= 0:
        return (float("nan"), float("nan"))
    a = (1 - level) / 2
    lower = 0.0 if x == 0 else float(stats.beta.ppf(a, x, n - x + 1))
    upper = 1.0 if x == n else float(stats.beta.ppf(1 - a, x + 1, n - x))
    return lower, upper


def _flag(series: pd.Series, name: str) -> pd.Series:
    """Yes/no column to booleans; anything unrecognised is an error naming the value."""
    text = series.astype(str).str.strip().str.lower()
    bad = ~text.isin(YES | NO)
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"column '{name}' has a value '{series.iloc[pos]}' that is not yes/no (line {pos + 2})"
        )
    return text.isin(YES)


def load_safety_tables(
    ae: str | Path | pd.DataFrame,
    subjects: str | Path | pd.DataFrame,
    subject: str = "subject",
    arm: str = "arm",
    grade: str = "grade",
    serious: str = "serious",
    related: str = "related",
    term: str | None = "term",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read and check the AE table and the subject table; returns them with standard columns.

    Every subject in the AE table must be in the subject table (which gives the denominators), and
    the arm in the AE table, when present, must agree with it.
    """
    ae = ae.copy() if isinstance(ae, pd.DataFrame) else _io.read_csv(ae)
    subs = subjects.copy() if isinstance(subjects, pd.DataFrame) else _io.read_csv(subjects)
    _io.require_columns(subs, [subject, arm], "the subject table")
    _io.require_columns(ae, [subject, grade, serious, related, term], "the AE table")
    s = pd.DataFrame({"subject": _io.text_column(subs, subject), "arm": _io.text_column(subs, arm)})
    _io.check_one_arm_per_subject(s, "subject", "arm")
    s = s.drop_duplicates("subject")
    grades = _io.numeric_column(ae, grade, allow_missing=False)
    if ((grades % 1 != 0) | (grades < 1) | (grades > 5)).any():
        pos = int(np.flatnonzero(((grades % 1 != 0) | (grades < 1) | (grades > 5)).to_numpy())[0])
        raise InputError(f"column '{grade}' must be a CTCAE grade 1-5, got {grades.iloc[pos]:g} "
                         f"(line {pos + 2})")
    events = pd.DataFrame({
        "subject": _io.text_column(ae, subject),
        "grade": grades.astype(int),
        "serious": _flag(ae[serious], serious),
        "related": _flag(ae[related], related),
    })
    if term is not None:
        events["term"] = _io.text_column(ae, term)
    unknown = ~events["subject"].isin(s["subject"])
    if unknown.any():
        who = events["subject"][unknown].iloc[0]
        raise InputError(f"AE subject '{who}' is not in the subject table")
    if arm in ae.columns:
        ae_arm = _io.text_column(ae, arm)
        expected = events["subject"].map(s.set_index("subject")["arm"])
        clash = ae_arm != expected
        if clash.any():
            who = events["subject"][clash].iloc[0]
            raise InputError(f"subject '{who}' has arm '{ae_arm[clash].iloc[0]}' in the AE table "
                             f"but '{expected[clash].iloc[0]}' in the subject table")
    events["arm"] = events["subject"].map(s.set_index("subject")["arm"])
    return events, s


def safety_table(
    events: pd.DataFrame,
    subjects: pd.DataFrame,
    pooled: bool = True,
    by_term: bool = True,
    level: float = 0.95,
) -> pd.DataFrame:
    """One row per arm (and ``All``), category and level with events, subjects, N, incidence, CI.

    ``events`` and ``subjects`` as returned by :func:`load_safety_tables` (columns subject, arm,
    grade, serious, related[, term]; subject, arm). Categories: ``any``, ``grade`` 1–5,
    ``serious`` yes, ``related`` yes, ``serious and related`` yes, and ``term`` (each term).
    """
    arms = list(dict.fromkeys(subjects["arm"]))
    groups = [(a, set(subjects.loc[subjects["arm"] == a, "subject"])) for a in arms]
    if pooled:
        groups.append((POOLED, set(subjects["subject"])))
    everything = pd.Series(True, index=events.index)
    categories: list[tuple[str, str, pd.Series]] = [("any", "any", everything)]
    for g in range(1, 6):
        categories.append(("grade", str(g), events["grade"] == g))
    categories.append(("serious", "yes", events["serious"]))
    categories.append(("related", "yes", events["related"]))
    categories.append(("serious and related", "yes", events["serious"] & events["related"]))
    if by_term and "term" in events.columns:
        for t in sorted(events["term"].unique()):
            categories.append(("term", t, events["term"] == t))
    rows = []
    for arm_label, members in groups:
        in_arm = events["subject"].isin(members)
        n = len(members)
        for category, lvl, mask in categories:
            sel = events[in_arm & mask]
            k = sel["subject"].nunique()
            lower, upper = clopper_pearson(k, n, level)
            rows.append({"arm": arm_label, "category": category, "level": lvl, "events": len(sel),
                         "subjects": k, "n": n, "incidence": k / n if n else float("nan"),
                         "lower": lower, "upper": upper})
    return pd.DataFrame(rows)


def pooled_safety_table(events: pd.DataFrame, subjects: pd.DataFrame, **kwargs) -> pd.DataFrame:
    """The pooled column alone (all arms together), as the DSMB open report shows it."""
    table = safety_table(events, subjects, pooled=True, **kwargs)
    return table[table["arm"] == POOLED].reset_index(drop=True)
