"""11-point numeric rating scale for pain (NRS, 0-10).

The patient circles one whole number from 0 ("no pain") to 10 ("worst pain imaginable") for
their average pain over the recall period the form prints; the score is that number. Sources:
Hawker GA, Mian S, Kendzerska T, French M. Measures of adult pain. Arthritis Care Res
2011;63(S11):S240-S252; Farrar JT, Young JP, LaMoreaux L, Werth JL, Poole RM. Clinical importance
of changes in chronic pain intensity measured on an 11-point numerical pain rating scale. Pain
2001;94:149-158. One item, so a missing answer leaves no score (no imputation); a fraction or a
value outside 0-10 is refused (the scale has eleven boxes).
"""

from __future__ import annotations

from typing import Any

from .base import Score, check_items, coded
from .items import SCALE, FormSpec, Item, SelfReport

NAME = "nrs"


def score_nrs(items: list[Any]) -> Score:
    (value,) = check_items("NRS", items, 1)
    if value is None:
        return Score(NAME, None, missing=["items[0]"], reason="NRS not answered", unit="points (0-10)")
    points = coded(value, "items[0]", "NRS pain", range(0, 11))
    return Score(NAME, float(points), parts={"nrs_pain": points}, unit="points (0-10)")


def change_from_baseline(baseline: Any, value: Any) -> int | None:
    """Follow-up minus baseline in points (negative = less pain); ``None`` if either is missing."""
    if baseline is None or value is None:
        return None
    return coded(value, "value", "NRS pain", range(0, 11)) - coded(baseline, "baseline", "NRS pain", range(0, 11))


# How the participant answers on their own (the self-entry pages): the eleven numbers in a row of
# large buttons with the words of the two ends, none chosen until the participant touches one.
# The wording is the project's own plain wording of the scale.
SELF_REPORT = SelfReport(
    intro=("This question is about the knee the research team assesses in this study (your study knee). Choose one "
           "number from 0 to 10: 0 means no pain, 10 means the worst pain you can imagine.",
           "本题询问研究人员在本研究中评估的那侧膝关节（您的研究膝关节）。请从 0 到 10 中选择一个数字：0 表示无痛，"
           "10 表示您能想象到的最剧烈疼痛。"),
    way=SCALE,
    question=("On average, how bad was the pain in your study knee over the last 7 days?",
              "过去7天里，您研究膝关节的平均疼痛程度如何？"),
    ends=(("No pain", "无痛"), ("Worst pain imaginable", "能想象到的最剧烈疼痛")),
)

FORM = FormSpec("nrs", (Item(
    "nrs_pain",
    "Average pain in the index knee over the last 7 days (0 = no pain, 10 = worst pain imaginable)",
    "过去7天目标膝关节的平均疼痛（0 = 无痛，10 = 能想象到的最剧烈疼痛）",
    kind="number", min=0, max=10, step="1", sdtm_code="NRS01"),),
    "The participant circles one whole number from 0 to 10; record that number.",
    "受试者在 0 至 10 中圈出一个整数；记录该数字。", self_report=SELF_REPORT, sdtm_prefix="NRS")
