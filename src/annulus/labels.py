"""Field labels shown to people (no Django import): one rule for adding a unit to a label."""

from __future__ import annotations

import re


def with_unit(label: str, unit: str, language: str = "en") -> str:
    """``label (unit)``, or ``label（unit）`` in Chinese; the label alone when it already names
    the unit in brackets of either width ("VAS pain (0-100 mm)", "ODI（%）", "(mm from 'no pain')")."""
    if not unit:
        return label
    named = re.compile(r"(?<![A-Za-z])" + re.escape(unit.strip()) + r"(?![A-Za-z])")
    for inside in re.findall(r"[(（]([^()（）]*)[)）]", label):
        if named.search(inside):
            return label
    if (language or "").lower().startswith("zh"):
        return f"{label}（{unit}）"
    return f"{label} ({unit})"
