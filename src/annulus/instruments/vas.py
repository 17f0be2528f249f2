"""Visual analogue scale for pain, 0–100 mm (the trial's primary end point, P-5.1).

The patient marks a 100 mm line from "no pain" (0) to "worst imaginable pain" (100); the score
is the measured distance in millimetres. Fractions of a millimetre are kept as measured.
There is one item, so a missing answer leaves no score (no imputation).
"""

from __future__ import annotations

from typing import Any

from .base import InstrumentError, Score, check_items, number
from .items import LINE, FormSpec, Item, SelfReport

NAME = "vas"
MIN_MM = 0.0
MAX_MM = 100.0


def vas_value(value: Any, field_name: str = "items[0]") -> float:
    """A VAS reading in mm, refused outside 0–100."""
    mm = number(value, field_name, "VAS")
    if not MIN_MM <= mm <= MAX_MM:
        raise InstrumentError(field_name, f"VAS must be 0–100 mm, got {value!r}")
    return mm


def score_vas(items: list[Any]) -> Score:
    (value,) = check_items("VAS", items, 1)
    if value is None:
        return Score(NAME, None, missing=["items[0]"], reason="VAS not answered", unit="mm")
    mm = vas_value(value)
    return Score(NAME, mm, parts={"vas_mm": mm}, unit="mm")


def change_from_baseline(baseline: Any, value: Any) -> float | None:
    """Follow-up minus baseline in mm (negative = less pain); ``None`` if either is missing."""
    if baseline is None or value is None:
        return None
    return vas_value(value, "value") - vas_value(baseline, "baseline")


# ---- how the participant marks it on their own (the self-entry pages) ------------------------
# the 100 mm line, touched where the pain is; nothing is marked until then
SELF_REPORT = SelfReport(
    # a protocol names the pain it asks about in its form's ``self_report_intro``
    intro=("How bad is your pain right now? Put the marker on the line: the left end is no pain, the right "
           "end is the worst pain you can imagine.",
           "您现在的疼痛有多严重？请在线上做标记：左端表示无痛，右端表示您能想象到的最剧烈疼痛。"),
    way=LINE,
    question=("Your pain right now", "您现在的疼痛"),
    ends=(("no pain", "无痛"), ("worst imaginable pain", "能想象到的最剧烈疼痛")),
    words={"name": ("Your pain right now, from no pain (0) to worst imaginable pain (100)",
                    "您现在的疼痛，从无痛（0）到能想象到的最剧烈疼痛（100）"),
           "number": ("Your pain, from 0 (no pain) to 100 (worst imaginable pain)",
                      "您的疼痛，从 0（无痛）到 100（能想象到的最剧烈疼痛）"),
           "unmarked": ("Not marked yet: touch the line where your pain is.",
                        "尚未标记：请在线上点击代表您疼痛程度的位置。")},
)

# ---- the form (items as printed; read and scored by annulus.visits.crf) ---------------------

FORM = FormSpec("vas", (Item("vas_mm", "Pain on the 100 mm line (mm from 'no pain')", "100 mm 直线上的疼痛（距“无痛”端毫米数）",
                            unit="mm", min=0, max=100, sdtm_code="VAS"),),
               "Measure the patient's mark from the 'no pain' end in millimetres.",
               "从“无痛”端测量患者标记位置，单位毫米。", self_report=SELF_REPORT, sdtm_prefix="VAS")
