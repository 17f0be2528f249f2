"""SF-36 scored by the public-domain RAND 36-Item Health Survey 1.0 rules (P-5.4).

Scale scores — source: RAND Health Care, "36-Item Short Form Survey (SF-36) Scoring
Instructions"
(http://www.rand.org/health/surveys_tools/mos/mos_core_36item_scoring.html),
and Hays RD, Sherbourne CD, Mazel RM. The RAND 36-Item Health Survey 1.0. Health Econ
1993;2:217–227.
  Step 1: each precoded response (1-based, as printed on the form) is recoded to 0–100 by
          Table 1, so that a higher value is always a better health state.
  Step 2: each of the eight scales is the mean of its recoded items (Table 2). Item 2 (health
          change) belongs to no scale.
  Missing items: RAND averages the items answered. A scale is scored only when at least half
          of its items are answered — the half-items rule of Ware JE et al., SF-36 Health Survey
          Manual and Interpretation Guide (1993). For the RAND scales this equals the manual's
          substitution of the person's mean of the answered items.

Summary scores — source: Ware JE, Kosinski M, Keller SD. SF-36 Physical and Mental Health
Summary Scales: A User's Manual. Boston: The Health Institute, 1994. Each scale is
z-standardised with the 1990 US general-population mean and SD, weighted by the factor-score
coefficients, summed, and transformed to a T score: 50 + 10 × aggregate. PCS and MCS are
computed only when all eight scales are available (as in the manual). The manual derived these
constants on SF-36 (Medical Outcomes Trust) scale scores; applying them to RAND scale scores is
the usual approximation (RAND and SF-36 scoring differ only for bodily pain and general health,
see docs/instruments.md).
"""

from __future__ import annotations

import math
from typing import Any

from .base import Score, check_items, coded
from .items import Ask, FormSpec, Item, SelfReport

NAME = "sf36"
N_ITEMS = 36

# RAND Table 1: response code -> recoded value, by item number (1-based).
_FIVE_DOWN = {1: 100.0, 2: 75.0, 3: 50.0, 4: 25.0, 5: 0.0}
_THREE_UP = {1: 0.0, 2: 50.0, 3: 100.0}
_TWO_UP = {1: 0.0, 2: 100.0}
_SIX_DOWN = {1: 100.0, 2: 80.0, 3: 60.0, 4: 40.0, 5: 20.0, 6: 0.0}
_SIX_UP = {1: 0.0, 2: 20.0, 3: 40.0, 4: 60.0, 5: 80.0, 6: 100.0}
_FIVE_UP = {1: 0.0, 2: 25.0, 3: 50.0, 4: 75.0, 5: 100.0}

RECODE: dict[int, dict[int, float]] = {}
for _items, _table in (
    ((1, 2, 20, 22, 34, 36), _FIVE_DOWN),
    (range(3, 13), _THREE_UP),
    (range(13, 20), _TWO_UP),
    ((21, 23, 26, 27, 30), _SIX_DOWN),
    ((24, 25, 28, 29, 31), _SIX_UP),
    ((32, 33, 35), _FIVE_UP),
):
    for _n in _items:
        RECODE[_n] = _table
assert sorted(RECODE) == list(range(1, N_ITEMS + 1))

# RAND Table 2: the items averaged into each scale.
SCALES: dict[str, tuple[int, ...]] = {
    "PF": tuple(range(3, 13)),  # physical functioning
    "RP": (13, 14, 15, 16),  # role limitations due to physical health
    "BP": (21, 22),  # pain
    "GH": (1, 33, 34, 35, 36),  # general health
    "VT": (23, 27, 29, 31),  # energy/fatigue (vitality)
    "SF": (20, 32),  # social functioning
    "RE": (17, 18, 19),  # role limitations due to emotional problems
    "MH": (24, 25, 26, 28, 30),  # emotional well-being (mental health)
}
SCALE_NAMES = {
    "PF": "physical functioning",
    "RP": "role limitations due to physical health",
    "BP": "bodily pain",
    "GH": "general health",
    "VT": "energy/fatigue",
    "SF": "social functioning",
    "RE": "role limitations due to emotional problems",
    "MH": "emotional well-being",
}

# Ware, Kosinski & Keller 1994: 1990 US general population (n = 2,393 with all eight scales).
US_1990_MEAN = {
    "PF": 84.52404,
    "RP": 81.19907,
    "BP": 75.49196,
    "GH": 72.21316,
    "VT": 61.05453,
    "SF": 83.59753,
    "RE": 81.29467,
    "MH": 74.84212,
}
US_1990_SD = {
    "PF": 22.89490,
    "RP": 33.79729,
    "BP": 23.55879,
    "GH": 20.16964,
    "VT": 20.86942,
    "SF": 22.37642,
    "RE": 33.02717,
    "MH": 18.01189,
}
# Factor-score coefficients for the physical (PCS) and mental (MCS) component summaries.
PCS_COEF = {
    "PF": 0.42402,
    "RP": 0.35119,
    "BP": 0.31754,
    "GH": 0.24954,
    "VT": 0.02877,
    "SF": -0.00753,
    "RE": -0.19206,
    "MH": -0.22069,
}
MCS_COEF = {
    "PF": -0.22999,
    "RP": -0.12329,
    "BP": -0.09731,
    "GH": -0.01571,
    "VT": 0.23534,
    "SF": 0.26876,
    "RE": 0.43407,
    "MH": 0.48581,
}


def recode(item_number: int, code: Any, field_name: str) -> float:
    """RAND Table 1 value (0–100) for one response code; refuses codes not on the form."""
    table = RECODE[item_number]
    return table[coded(code, field_name, f"SF-36 item {item_number}", table.keys())]


def summary_scores(scales: dict[str, float | None]) -> tuple[float | None, float | None]:
    """PCS and MCS as T scores, or ``(None, None)`` unless all eight scales are present."""
    if any(scales.get(k) is None for k in SCALES):
        return None, None
    z = {k: (scales[k] - US_1990_MEAN[k]) / US_1990_SD[k] for k in SCALES}  # type: ignore[operator]
    pcs = 50.0 + 10.0 * math.fsum(z[k] * PCS_COEF[k] for k in SCALES)
    mcs = 50.0 + 10.0 * math.fsum(z[k] * MCS_COEF[k] for k in SCALES)
    return pcs, mcs


def score_sf36(items: list[Any]) -> Score:
    items = check_items("SF-36", items, N_ITEMS)
    recoded: dict[int, float | None] = {}
    missing: list[str] = []
    for i, value in enumerate(items):
        field_name = f"items[{i}]"
        if value is None:
            recoded[i + 1] = None
            missing.append(field_name)
        else:
            recoded[i + 1] = recode(i + 1, value, field_name)

    scales: dict[str, float | None] = {}
    detail: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for key, numbers in SCALES.items():
        answered = [v for n in numbers if (v := recoded[n]) is not None]
        # Half-items rule: at least half of the scale's items (e.g. 2 of 3, 1 of 2, 5 of 10).
        enough = 2 * len(answered) >= len(numbers)
        scales[key] = math.fsum(answered) / len(answered) if enough else None
        detail[key] = {"answered": len(answered), "of": len(numbers)}
        if not enough:
            problems.append(
                f"{key} not scored: {len(answered)} of {len(numbers)} items answered, "
                "at least half needed"
            )
    pcs, mcs = summary_scores(scales)
    if pcs is None:
        problems.append("PCS and MCS need all eight scales")
    summary: dict[str, Any] = {**scales, "PCS": pcs, "MCS": mcs}
    return Score(
        NAME,
        None,  # SF-36 has no single total: the results are the eight scales and two summaries
        parts={"scales": detail, "health_change": recoded[2]},
        missing=missing,
        reason="; ".join(problems) or None,
        unit="0-100 (scales), T score (PCS, MCS)",
        summary=summary,
    )


# ---- the form (items as printed; read and scored by annulus.visits.crf) ---------------------

_SF36_STEMS = [
    ("General health", "总体健康"), ("Health compared with one year ago", "与一年前相比的健康"),
    ("Vigorous activities", "剧烈活动"), ("Moderate activities", "中等强度活动"),
    ("Lifting or carrying groceries", "提或搬运杂物"), ("Climbing several flights of stairs", "爬数层楼梯"),
    ("Climbing one flight of stairs", "爬一层楼梯"), ("Bending, kneeling or stooping", "弯腰、屈膝或下蹲"),
    ("Walking more than a mile", "步行1500米以上"), ("Walking several blocks", "步行数百米"),
    ("Walking one block", "步行一百米"), ("Bathing or dressing yourself", "自己洗澡或穿衣"),
    ("Physical: cut down time on work", "身体原因：减少工作时间"), ("Physical: accomplished less", "身体原因：完成的比想要的少"),
    ("Physical: limited in kind of work", "身体原因：工作种类受限"), ("Physical: difficulty performing work", "身体原因：工作困难"),
    ("Emotional: cut down time on work", "情绪原因：减少工作时间"), ("Emotional: accomplished less", "情绪原因：完成的比想要的少"),
    ("Emotional: did work less carefully", "情绪原因：工作不如平时仔细"),
    ("Social activities interfered (extent)", "社交活动受影响程度"), ("Bodily pain (how much)", "身体疼痛程度"),
    ("Pain interfered with work", "疼痛影响工作"), ("Full of pep", "充满活力"), ("Very nervous", "非常紧张"),
    ("Down in the dumps", "情绪低落无法振作"), ("Calm and peaceful", "平静"), ("Lot of energy", "精力充沛"),
    ("Downhearted and blue", "沮丧忧郁"), ("Worn out", "精疲力竭"), ("Happy", "快乐"), ("Tired", "疲倦"),
    ("Social activities interfered (time)", "社交活动受影响的时间"), ("Get sick easier", "比别人容易生病"),
    ("As healthy as anybody", "与别人一样健康"), ("Expect health to get worse", "预计健康会变差"),
    ("Health is excellent", "健康状况极好"),
]


# RAND 36 response options as printed, by item (code = position, 1-based)
_SF36_OPTIONS = {
    "health": [("Excellent", "极好"), ("Very good", "很好"), ("Good", "好"), ("Fair", "一般"), ("Poor", "差")],
    "change": [("Much better now than one year ago", "比一年前好多了"),
               ("Somewhat better now than one year ago", "比一年前好一些"), ("About the same", "差不多"),
               ("Somewhat worse now than one year ago", "比一年前差一些"),
               ("Much worse now than one year ago", "比一年前差多了")],
    "limited": [("Yes, limited a lot", "有很大限制"), ("Yes, limited a little", "有一点限制"),
                ("No, not limited at all", "毫无限制")],
    "yes_no": [("Yes", "是"), ("No", "否")],
    "extent": [("Not at all", "完全没有"), ("Slightly", "有一点"), ("Moderately", "中等"), ("Quite a bit", "相当多"),
               ("Extremely", "非常多")],
    "pain": [("None", "无"), ("Very mild", "很轻微"), ("Mild", "轻微"), ("Moderate", "中等"), ("Severe", "严重"),
             ("Very severe", "很严重")],
    "interfere": [("Not at all", "完全没有"), ("A little bit", "有一点"), ("Moderately", "中等"),
                  ("Quite a bit", "相当多"), ("Extremely", "非常多")],
    "time6": [("All of the time", "所有时间"), ("Most of the time", "大部分时间"), ("A good bit of the time", "相当多时间"),
              ("Some of the time", "一部分时间"), ("A little of the time", "小部分时间"), ("None of the time", "没有")],
    "time5": [("All of the time", "所有时间"), ("Most of the time", "大部分时间"), ("Some of the time", "一部分时间"),
              ("A little of the time", "小部分时间"), ("None of the time", "没有")],
    "true": [("Definitely true", "绝对正确"), ("Mostly true", "大部分正确"), ("Don't know", "不能肯定"),
             ("Mostly false", "大部分错误"), ("Definitely false", "绝对错误")],
}


def _sf36_kind(n: int) -> str:
    if n == 1:
        return "health"
    if n == 2:
        return "change"
    if 3 <= n <= 12:
        return "limited"
    if 13 <= n <= 19:
        return "yes_no"
    if n == 20:
        return "extent"
    if n == 21:
        return "pain"
    if n == 22:
        return "interfere"
    if 23 <= n <= 31:
        return "time6"
    if n == 32:
        return "time5"
    return "true"


def _sf36codes(n: int) -> tuple:
    return tuple((str(c), f"{c} {en}", f"{c} {zh}") for c, (en, zh) in enumerate(_SF36_OPTIONS[_sf36_kind(n)], 1))


# The questions as the participant reads them: the RAND 36-Item Health Survey 1.0 (RAND Health
# Care; public domain), items 1-36 in their published order with the instruction that introduces
# each run of items. The eCRF keeps its short labels, for transcribing a paper form. Chinese: the
# project holds no public Chinese text of the survey and no licence for a validated translation,
# so the Chinese pages keep the eCRF's Chinese labels; a licensed translation, once obtained,
# goes into ``zh`` and ``lead_zh`` here.
_ACTIVITIES = ("The following items are about activities you might do during a typical day. Does your health now "
               "limit you in these activities? If so, how much?")
_PHYSICAL = ("During the past 4 weeks, have you had any of the following problems with your work or other regular "
             "daily activities as a result of your physical health?")
_EMOTIONAL = ("During the past 4 weeks, have you had any of the following problems with your work or other regular "
              "daily activities as a result of any emotional problems (such as feeling depressed or anxious)?")
_FEELING = ("These questions are about how you feel and how things have been with you during the past 4 weeks. "
            "For each question, please give the one answer that comes closest to the way you have been feeling. "
            "How much of the time during the past 4 weeks...")
_TRUE_FALSE = "How TRUE or FALSE is each of the following statements for you?"
_RAND36: list[tuple[str, str]] = [
    ("", "In general, would you say your health is:"),
    ("", "Compared to one year ago, how would you rate your health in general now?"),
    (_ACTIVITIES, "Vigorous activities, such as running, lifting heavy objects, participating in strenuous sports"),
    (_ACTIVITIES, "Moderate activities, such as moving a table, pushing a vacuum cleaner, bowling, or playing golf"),
    (_ACTIVITIES, "Lifting or carrying groceries"),
    (_ACTIVITIES, "Climbing several flights of stairs"),
    (_ACTIVITIES, "Climbing one flight of stairs"),
    (_ACTIVITIES, "Bending, kneeling, or stooping"),
    (_ACTIVITIES, "Walking more than a mile"),
    (_ACTIVITIES, "Walking several blocks"),
    (_ACTIVITIES, "Walking one block"),
    (_ACTIVITIES, "Bathing or dressing yourself"),
    (_PHYSICAL, "Cut down the amount of time you spent on work or other activities"),
    (_PHYSICAL, "Accomplished less than you would like"),
    (_PHYSICAL, "Were limited in the kind of work or other activities"),
    (_PHYSICAL, "Had difficulty performing the work or other activities (for example, it took extra effort)"),
    (_EMOTIONAL, "Cut down the amount of time you spent on work or other activities"),
    (_EMOTIONAL, "Accomplished less than you would like"),
    (_EMOTIONAL, "Didn't do work or other activities as carefully as usual"),
    ("", "During the past 4 weeks, to what extent has your physical health or emotional problems interfered with "
         "your normal social activities with family, friends, neighbors, or groups?"),
    ("", "How much bodily pain have you had during the past 4 weeks?"),
    ("", "During the past 4 weeks, how much did pain interfere with your normal work (including both work outside "
         "the home and housework)?"),
    (_FEELING, "Did you feel full of pep?"),
    (_FEELING, "Have you been a very nervous person?"),
    (_FEELING, "Have you felt so down in the dumps that nothing could cheer you up?"),
    (_FEELING, "Have you felt calm and peaceful?"),
    (_FEELING, "Did you have a lot of energy?"),
    (_FEELING, "Have you felt downhearted and blue?"),
    (_FEELING, "Did you feel worn out?"),
    (_FEELING, "Have you been a happy person?"),
    (_FEELING, "Did you feel tired?"),
    ("", "During the past 4 weeks, how much of the time has your physical health or emotional problems interfered "
         "with your social activities (like visiting with friends, relatives, etc.)?"),
    (_TRUE_FALSE, "I seem to get sick a little easier than other people"),
    (_TRUE_FALSE, "I am as healthy as anybody I know"),
    (_TRUE_FALSE, "I expect my health to get worse"),
    (_TRUE_FALSE, "My health is excellent"),
]
assert len(_RAND36) == N_ITEMS
ASKS = {f"q{n}": Ask(text, "", lead) for n, (lead, text) in enumerate(_RAND36, 1)}

FORM = FormSpec("sf36", tuple(Item(f"q{n}", f"{n}. {en}", f"{n}. {zh}", "code", _sf36codes(n), required=False)
                              for n, (en, zh) in enumerate(_SF36_STEMS, 1)),
                "Enter the response code the patient circled (1-based, as printed on the RAND 36 form). "
                "A scale is scored when at least half of its items are answered.",
                "录入患者圈选的答案编号（从1开始，与RAND 36表格一致）。每个维度至少答一半条目方可计分。",
                asks=ASKS, self_report=SelfReport(intro=(
                    "This survey asks for your views about your health. Choose one answer for each question. If "
                    "you are unsure how to answer, please give the best answer you can.",
                    "本问卷了解您对自己健康状况的看法。每题选择一个答案；如果不确定如何回答，请选择最接近的答案。")),
                sdtm_prefix="SF36")  # QSTESTCD SF3601-SF3636
