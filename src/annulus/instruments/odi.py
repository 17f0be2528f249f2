"""Oswestry Disability Index, version 2.1a (P-5.2).

Source: Fairbank JCT, Pynsent PB. The Oswestry Disability Index. Spine 2000;25(22):2940–2953,
appendix "Scoring": each of the ten sections is scored 0 (first statement) to 5 (last
statement); index = total scored / total possible × 100 %, where the total possible is 5 for
each section answered. Their worked example: 16 / 50 × 100 = 32 %; with one section missed or
not applicable, 16 / 45 × 100 = 35.5 %.

Missing sections: the published instructions give the rule for one missing section only, so by
default one missing section is scored (denominator 45) and two or more give no score. A trial
may, as a stated analysis policy, allow up to two (``max_missing=2``, denominator 40); more than
two is never scored because the index would then rest on fewer than eight of ten sections.
"""

from __future__ import annotations

from typing import Any

from .base import Score, check_items, coded

NAME = "odi"
SECTIONS = (
    "pain intensity",
    "personal care",
    "lifting",
    "walking",
    "sitting",
    "standing",
    "sleeping",
    "sex life",
    "social life",
    "travelling",
)
PUBLISHED_MAX_MISSING = 1
POLICY_MAX_MISSING = 2


def score_odi(items: list[Any], max_missing: int = PUBLISHED_MAX_MISSING) -> Score:
    if not 0 <= max_missing <= POLICY_MAX_MISSING:
        raise ValueError(f"max_missing must be 0–{POLICY_MAX_MISSING}, got {max_missing}")
    items = check_items("ODI", items, len(SECTIONS))
    answered: dict[str, int] = {}
    missing: list[str] = []
    for i, (value, section) in enumerate(zip(items, SECTIONS)):
        field_name = f"items[{i}]"
        if value is None:
            missing.append(field_name)
            continue
        answered[section] = coded(
            value, field_name, f"ODI section {i + 1} ({section})", range(0, 6)
        )
    total = sum(answered.values())
    possible = 5 * len(answered)
    parts = {
        "sections": {s: answered.get(s) for s in SECTIONS},
        "total_scored": total,
        "total_possible": possible,
        "sections_answered": len(answered),
    }
    if len(missing) > max_missing:
        return Score(
            NAME,
            None,
            parts=parts,
            missing=missing,
            reason=(
                f"too many missing sections: {len(missing)} missing, at most {max_missing} "
                "allowed"
            ),
            unit="%",
        )
    return Score(NAME, 100.0 * total / possible, parts=parts, missing=missing, unit="%")
