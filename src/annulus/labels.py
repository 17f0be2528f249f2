"""Field labels shown to people (no Django import): one rule for adding a unit to a label."""

from __future__ import annotations

import re


# A protocol writes a unit once, as its export carries it ("months", "mL", "kg/m2"). Symbols read
# the same in both languages; a unit written as an English word is shown in Chinese as its word.
UNIT_WORDS_ZH = {
    "minutes": "分钟", "minute": "分钟", "hours": "小时", "hour": "小时", "days": "天", "day": "天",
    "weeks": "周", "week": "周", "months": "个月", "month": "个月", "years": "年", "year": "年",
    "times": "次", "cigarettes": "支", "tablets": "片", "capsules": "粒", "points": "分",
}


def unit_in(unit: str, language: str = "en") -> str:
    """The unit as a reader of ``language`` reads it: a word in Chinese, a symbol as written."""
    if (language or "").lower().startswith("zh"):
        return UNIT_WORDS_ZH.get((unit or "").strip().lower(), unit)
    return unit


def with_unit(label: str, unit: str, language: str = "en") -> str:
    """``label (unit)``, or ``label（unit）`` in Chinese (a unit that is a word in its Chinese
    word); the label alone when it already names the unit in brackets of either width ("VAS pain
    (0-100 mm)", "ODI（%）", "(mm from 'no pain')")."""
    if not unit:
        return label
    unit = unit_in(unit, language)
    named = re.compile(r"(?<![A-Za-z])" + re.escape(unit.strip()) + r"(?![A-Za-z])")
    for inside in re.findall(r"[(（]([^()（）]*)[)）]", label):
        if named.search(inside):
            return label
    if (language or "").lower().startswith("zh"):
        return f"{label}（{unit}）"
    return f"{label} ({unit})"
