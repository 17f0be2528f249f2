"""Field labels shown to people (no Django import): one rule for adding a unit to a label."""

from __future__ import annotations

import re


def _bare(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def with_unit(label: str, unit: str, language: str = "en") -> str:
    """``label (unit)``, or ``label（unit）`` in Chinese; the label alone when it already names
    the unit in brackets of either width ("VAS pain (0-100 mm)", "ODI（%）")."""
    if not unit:
        return label
    for inside in re.findall(r"[(（]([^()（）]*)[)）]", label):
        if _bare(inside).endswith(_bare(unit)):
            return label
    if (language or "").lower().startswith("zh"):
        return f"{label}（{unit}）"
    return f"{label} ({unit})"
