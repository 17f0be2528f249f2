"""Knee injury and Osteoarthritis Outcome Score (KOOS), five subscales scored 0-100.

Sources: Roos EM, Roos HP, Lohmander LS, Ekdahl C, Beynnon BD. Knee Injury and Osteoarthritis
Outcome Score (KOOS) - development of a self-administered outcome measure. J Orthop Sports Phys
Ther 1998;28(2):88-96; Roos EM, Lohmander LS. The Knee injury and Osteoarthritis Outcome Score
(KOOS): from joint injury to osteoarthritis. Health Qual Life Outcomes 2003;1:64; and the
developers' scoring instructions "KOOS Scoring 2012" (www.koos.nu).

The 42 items, in the order of the questionnaire: Symptoms S1-S7 (S6-S7 stiffness), Pain P1-P9,
Function in daily living A1-A17, Function in sport and recreation SP1-SP5, knee-related Quality
of life Q1-Q4. Each answer is the box ticked, 0 (the first box, no problems) to 4 (the last box,
extreme problems) - for S4 and S5 ("can you straighten/bend your knee fully?") the first box is
"always", so the code is still the box's position.

Each subscale is scored on its own: 100 - mean(item codes answered) x 100 / 4, so 100 is no
knee problems and 0 extreme problems. There is no total score.

Missing items (KOOS Scoring 2012): a subscale is scored when at least half of its items are
answered (Pain 5 of 9, Symptoms 4 of 7, ADL 9 of 17, Sport/Rec 3 of 5, QOL 2 of 4); before 2012
at most two items per subscale could be missing (Pain 7, Symptoms 5, ADL 15, Sport/Rec 3, QOL 2):
``missing_rule="1998"``. A mean of the items answered is the same as the user's guide's
substitution of the subscale's average for the missing items.
"""

from __future__ import annotations

import math
from typing import Any

from .base import Score, check_items, coded
from .items import Ask, FormSpec, Item, SelfReport, codes

NAME = "koos"

# subscale key -> (label, item ids in questionnaire order)
SUBSCALES: dict[str, tuple[str, tuple[str, ...]]] = {
    "symptoms": ("Symptoms", tuple(f"s{i}" for i in range(1, 8))),
    "pain": ("Pain", tuple(f"p{i}" for i in range(1, 10))),
    "adl": ("Function in daily living (ADL)", tuple(f"a{i}" for i in range(1, 18))),
    "sport_rec": ("Function in sport and recreation (Sport/Rec)", tuple(f"sp{i}" for i in range(1, 6))),
    "qol": ("Knee-related quality of life (QOL)", tuple(f"q{i}" for i in range(1, 5))),
}
ITEM_IDS: tuple[str, ...] = tuple(i for _, ids in SUBSCALES.values() for i in ids)
N_ITEMS = len(ITEM_IDS)  # 42
MISSING_RULES = ("2012", "1998")


def items_needed(n_items: int, rule: str = "2012") -> int:
    """How many of a subscale's ``n_items`` must be answered: at least half (2012), or all but
    two (1998)."""
    if rule == "2012":
        return math.ceil(n_items / 2)
    if rule == "1998":
        return n_items - 2
    raise ValueError(f"missing_rule must be one of {', '.join(MISSING_RULES)}, got {rule!r}")


def subscale_score(codes_answered: list[int]) -> float:
    """100 - mean x 100 / 4 of the codes answered (0-4 each)."""
    return 100.0 - math.fsum(codes_answered) / len(codes_answered) * 100.0 / 4.0


def score_koos(items: list[Any], missing_rule: str = "2012") -> Score:
    if missing_rule not in MISSING_RULES:
        raise ValueError(f"missing_rule must be one of {', '.join(MISSING_RULES)}, got {missing_rule!r}")
    items = check_items("KOOS", items, N_ITEMS)
    answers: dict[str, int | None] = {}
    missing: list[str] = []
    for i, (value, item_id) in enumerate(zip(items, ITEM_IDS)):
        field_name = f"items[{i}]"
        if value is None:
            answers[item_id] = None
            missing.append(field_name)
            continue
        answers[item_id] = coded(value, field_name, f"KOOS item {item_id.upper()}", range(0, 5))
    scores: dict[str, float | None] = {}
    detail: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for key, (label, ids) in SUBSCALES.items():
        answered = [c for i in ids if (c := answers[i]) is not None]
        needed = items_needed(len(ids), missing_rule)
        enough = len(answered) >= needed
        scores[key] = subscale_score(answered) if enough and answered else None
        detail[key] = {"answered": len(answered), "of": len(ids), "needed": needed,
                       "sum": sum(answered)}
        if scores[key] is None:
            problems.append(f"{label} not scored: {len(answered)} of {len(ids)} items answered, "
                            f"{needed} needed")
    return Score(
        NAME,
        None,  # KOOS has no total: the results are the five subscales
        parts={"subscales": detail, "missing_rule": missing_rule},
        missing=missing,
        reason="; ".join(problems) or None,
        unit="0-100 (100 = no knee problems)",
        summary=scores,
    )


# ---- the form (items as printed; English from the KOOS, Chinese the project's own translation) --

_NEVER_ALWAYS = (("Never", "从不"), ("Rarely", "很少"), ("Sometimes", "有时"), ("Often", "经常"), ("Always", "总是"))
_ALWAYS_NEVER = tuple(reversed(_NEVER_ALWAYS))
_NONE_EXTREME = (("None", "无"), ("Mild", "轻度"), ("Moderate", "中度"), ("Severe", "重度"), ("Extreme", "极重度"))
_FREQUENCY = (("Never", "从不"), ("Monthly", "每月"), ("Weekly", "每周"), ("Daily", "每天"), ("Always", "总是"))
_AWARE = (("Never", "从不"), ("Monthly", "每月"), ("Weekly", "每周"), ("Daily", "每天"), ("Constantly", "一直"))
_MODIFIED = (("Not at all", "完全没有"), ("Mildly", "轻微"), ("Moderately", "中等"), ("Severely", "严重"),
             ("Totally", "完全"))
_CONFIDENCE = (("Not at all", "完全没有"), ("Mildly", "轻微"), ("Moderately", "中等"), ("Severely", "严重"),
               ("Extremely", "极其"))

# (item id, English, Chinese, answer boxes)
_ITEMS = (
    ("s1", "Do you have swelling in your knee?", "您的膝关节肿胀吗？", _NEVER_ALWAYS),
    ("s2", "Do you feel grinding, hear clicking or any other type of noise when your knee moves?",
     "膝关节活动时，您是否感到摩擦、听到咔嗒声或其他响声？", _NEVER_ALWAYS),
    ("s3", "Does your knee catch or hang up when moving?", "膝关节活动时会卡住或绞锁吗？", _NEVER_ALWAYS),
    ("s4", "Can you straighten your knee fully?", "您能完全伸直膝关节吗？", _ALWAYS_NEVER),
    ("s5", "Can you bend your knee fully?", "您能完全弯曲膝关节吗？", _ALWAYS_NEVER),
    ("s6", "How severe is your knee joint stiffness after first wakening in the morning?",
     "早晨刚醒来时，您膝关节僵硬的程度如何？", _NONE_EXTREME),
    ("s7", "How severe is your knee stiffness after sitting, lying or resting later in the day?",
     "在一天中稍晚时候坐、躺或休息后，您膝关节僵硬的程度如何？", _NONE_EXTREME),
    ("p1", "How often do you experience knee pain?", "您膝关节疼痛的频率如何？", _FREQUENCY),
    ("p2", "Pain last week: twisting/pivoting on your knee", "过去一周的疼痛：以膝关节为轴扭转/转身", _NONE_EXTREME),
    ("p3", "Pain last week: straightening knee fully", "过去一周的疼痛：完全伸直膝关节", _NONE_EXTREME),
    ("p4", "Pain last week: bending knee fully", "过去一周的疼痛：完全弯曲膝关节", _NONE_EXTREME),
    ("p5", "Pain last week: walking on flat surface", "过去一周的疼痛：在平地上行走", _NONE_EXTREME),
    ("p6", "Pain last week: going up or down stairs", "过去一周的疼痛：上下楼梯", _NONE_EXTREME),
    ("p7", "Pain last week: at night while in bed", "过去一周的疼痛：夜间卧床时", _NONE_EXTREME),
    ("p8", "Pain last week: sitting or lying", "过去一周的疼痛：坐着或躺着时", _NONE_EXTREME),
    ("p9", "Pain last week: standing upright", "过去一周的疼痛：直立站着时", _NONE_EXTREME),
    ("a1", "Difficulty last week: descending stairs", "过去一周的困难程度：下楼梯", _NONE_EXTREME),
    ("a2", "Difficulty last week: ascending stairs", "过去一周的困难程度：上楼梯", _NONE_EXTREME),
    ("a3", "Difficulty last week: rising from sitting", "过去一周的困难程度：从坐姿站起", _NONE_EXTREME),
    ("a4", "Difficulty last week: standing", "过去一周的困难程度：站立", _NONE_EXTREME),
    ("a5", "Difficulty last week: bending to floor/pick up an object", "过去一周的困难程度：弯腰到地面/捡起物品",
     _NONE_EXTREME),
    ("a6", "Difficulty last week: walking on flat surface", "过去一周的困难程度：在平地上行走", _NONE_EXTREME),
    ("a7", "Difficulty last week: getting in/out of car", "过去一周的困难程度：上下汽车", _NONE_EXTREME),
    ("a8", "Difficulty last week: going shopping", "过去一周的困难程度：外出购物", _NONE_EXTREME),
    ("a9", "Difficulty last week: putting on socks/stockings", "过去一周的困难程度：穿袜子", _NONE_EXTREME),
    ("a10", "Difficulty last week: rising from bed", "过去一周的困难程度：从床上起来", _NONE_EXTREME),
    ("a11", "Difficulty last week: taking off socks/stockings", "过去一周的困难程度：脱袜子", _NONE_EXTREME),
    ("a12", "Difficulty last week: lying in bed (turning over, maintaining knee position)",
     "过去一周的困难程度：卧床（翻身、保持膝关节姿势）", _NONE_EXTREME),
    ("a13", "Difficulty last week: getting in/out of bath", "过去一周的困难程度：进出浴缸", _NONE_EXTREME),
    ("a14", "Difficulty last week: sitting", "过去一周的困难程度：坐着", _NONE_EXTREME),
    ("a15", "Difficulty last week: getting on/off toilet", "过去一周的困难程度：坐上/离开马桶", _NONE_EXTREME),
    ("a16", "Difficulty last week: heavy domestic duties (moving heavy boxes, scrubbing floors, etc.)",
     "过去一周的困难程度：繁重家务（搬重箱子、擦地板等）", _NONE_EXTREME),
    ("a17", "Difficulty last week: light domestic duties (cooking, dusting, etc.)",
     "过去一周的困难程度：轻松家务（做饭、除尘等）", _NONE_EXTREME),
    ("sp1", "Difficulty last week: squatting", "过去一周的困难程度：下蹲", _NONE_EXTREME),
    ("sp2", "Difficulty last week: running", "过去一周的困难程度：跑步", _NONE_EXTREME),
    ("sp3", "Difficulty last week: jumping", "过去一周的困难程度：跳跃", _NONE_EXTREME),
    ("sp4", "Difficulty last week: twisting/pivoting on your injured knee", "过去一周的困难程度：以患膝为轴扭转/转身",
     _NONE_EXTREME),
    ("sp5", "Difficulty last week: kneeling", "过去一周的困难程度：跪下", _NONE_EXTREME),
    ("q1", "How often are you aware of your knee problem?", "您多久会意识到自己的膝关节问题？", _AWARE),
    ("q2", "Have you modified your life style to avoid potentially damaging activities to your knee?",
     "您是否改变了生活方式，以避免可能损伤膝关节的活动？", _MODIFIED),
    ("q3", "How much are you troubled with lack of confidence in your knee?", "您对膝关节缺乏信心的困扰程度如何？",
     _CONFIDENCE),
    ("q4", "In general, how much difficulty do you have with your knee?", "总体而言，您的膝关节有多大困难？",
     _NONE_EXTREME),
)
assert tuple(i[0] for i in _ITEMS) == ITEM_IDS
_GROUP = {item_id: key for key, (_, ids) in SUBSCALES.items() for item_id in ids}

# ---- how the participant answers on their own (the self-entry pages) --------------------------
# Each question in the questionnaire's words, with the instruction that leads each run of items;
# the answers are the boxes' words. The Chinese is the project's own translation (no validated
# Chinese KOOS is held by the project).
_LEADS = {
    "symptoms": ("These questions should be answered thinking of your knee symptoms during the last week.",
                 "请根据过去一周您膝关节的症状回答以下问题。"),
    "stiffness": ("The following questions concern the amount of joint stiffness you have experienced during the "
                  "last week in your knee. Stiffness is a sensation of restriction or slowness in the ease with "
                  "which you move your knee joint.",
                  "以下问题询问过去一周您膝关节僵硬的程度。僵硬是指活动膝关节时感到受限或迟缓。"),
    "pain": ("What amount of knee pain have you experienced the last week during the following activities?",
             "过去一周，您在进行以下活动时膝关节疼痛的程度如何？"),
    "adl": ("The following questions concern your physical function. By this we mean your ability to move around and "
            "to look after yourself. For each of the following activities please indicate the degree of difficulty "
            "you have experienced in the last week due to your knee.",
            "以下问题询问您的身体功能，即您四处活动和照顾自己的能力。请指出过去一周因膝关节问题，您进行以下每项活动的"
            "困难程度。"),
    "sport_rec": ("The following questions concern your physical function when being active on a higher level. The "
                  "questions should be answered thinking of what degree of difficulty you have experienced during "
                  "the last week due to your knee.",
                  "以下问题询问您进行较高强度活动时的身体功能。请指出过去一周因膝关节问题，您进行以下每项活动的困难程度。"),
}
_LEAD_OF = {**{f"s{i}": "symptoms" for i in range(1, 6)}, "s6": "stiffness", "s7": "stiffness",
            **{f"p{i}": "pain" for i in range(2, 10)}, **{f"a{i}": "adl" for i in range(1, 18)},
            **{f"sp{i}": "sport_rec" for i in range(1, 6)}}
_RUNS = (("Pain last week: ", "过去一周的疼痛："), ("Difficulty last week: ", "过去一周的困难程度："))


def _ask(item_id: str, en: str, zh: str) -> Ask:
    for run_en, run_zh in _RUNS:  # "Pain last week: walking on flat surface" -> "Walking on flat surface"
        if en.startswith(run_en):
            en, zh = en[len(run_en):], zh.removeprefix(run_zh)
            en = en[:1].upper() + en[1:]
    lead_en, lead_zh = _LEADS.get(_LEAD_OF.get(item_id, ""), ("", ""))
    return Ask(en, zh, lead_en, lead_zh)


ASKS = {item_id: _ask(item_id, en, zh) for item_id, en, zh, _boxes in _ITEMS}
SELF_REPORT = SelfReport(intro=(
    "These questions ask for your view about your knee: its symptoms, pain, and how well you can do your usual "
    "activities. Choose one answer for each question. If you are unsure how to answer, please give the best answer "
    "you can.",
    "以下问题了解您对自己膝关节的看法：症状、疼痛以及您进行日常活动的能力。每题选择一个答案；如果不确定如何回答，"
    "请选择最接近的答案。"))

# the items' QS test codes: the prefix and the item's id as printed (KOOSS1, KOOSP9, KOOSSP5, KOOSA17)
SDTM_PREFIX = "KOOS"
FORM = FormSpec("koos", tuple(
    Item(item_id, f"{item_id.upper()}. {en}", f"{item_id.upper()}. {zh}", kind="code", required=False,
         group=_GROUP[item_id], sdtm_code=f"{SDTM_PREFIX}{item_id.upper()}",
         choices=codes(*[(n, f"{n} – {ben}", f"{n} – {bzh}") for n, (ben, bzh) in enumerate(boxes)]))
    for item_id, en, zh, boxes in _ITEMS),
    "Think of your knee during the last week. Tick one box for each question: the code is the box's position, "
    "0 (first box) to 4 (last box). A subscale is scored when at least half of its questions are answered.",
    "请回想过去一周您膝关节的情况。每题勾选一个方框：代码为方框位置，0（第一个）至 4（最后一个）。每个分量表至少回答一半题目方可计分。",
    asks=ASKS, self_report=SELF_REPORT, sdtm_prefix=SDTM_PREFIX)
