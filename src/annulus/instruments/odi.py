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
from .items import FormSpec, Item, SelfReport, codes

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


# ---- the form (items as printed; read and scored by annulus.visits.crf) ---------------------

_ODI_SECTIONS = [
    ("Pain intensity", "疼痛程度"), ("Personal care", "个人护理"), ("Lifting", "提物"), ("Walking", "行走"),
    ("Sitting", "坐"), ("Standing", "站立"), ("Sleeping", "睡眠"), ("Sex life", "性生活"),
    ("Social life", "社会生活"), ("Travelling", "旅行"),
]
# The six statements of each section (ODI version 2.1a, Fairbank & Pynsent 2000), scored 0-5 in
# their printed order; the option shows the score and the statement the patient ticked.
_ODI_STATEMENTS = [
    [("I have no pain at the moment", "目前我没有疼痛"),
     ("The pain is very mild at the moment", "目前疼痛非常轻微"),
     ("The pain is moderate at the moment", "目前疼痛中等"),
     ("The pain is fairly severe at the moment", "目前疼痛相当严重"),
     ("The pain is very severe at the moment", "目前疼痛非常严重"),
     ("The pain is the worst imaginable at the moment", "目前疼痛是能想象到的最严重程度")],
    [("I can look after myself normally without causing extra pain", "我能正常照顾自己，不会引起额外疼痛"),
     ("I can look after myself normally but it causes extra pain", "我能正常照顾自己，但会引起额外疼痛"),
     ("It is painful to look after myself and I am slow and careful", "照顾自己时会疼痛，我动作缓慢而小心"),
     ("I need some help but manage most of my personal care", "我需要一些帮助，但大部分个人护理能自己完成"),
     ("I need help every day in most aspects of self-care", "大部分个人护理每天都需要别人帮助"),
     ("I do not get dressed, I wash with difficulty and stay in bed", "我不能穿衣，洗漱困难，只能卧床")],
    [("I can lift heavy weights without extra pain", "我能提重物，不会引起额外疼痛"),
     ("I can lift heavy weights but it gives extra pain", "我能提重物，但会引起额外疼痛"),
     ("Pain prevents me from lifting heavy weights off the floor, but I can manage if they are conveniently "
      "placed, e.g. on a table", "疼痛使我不能从地上提起重物，但重物放在方便的位置（如桌上）时可以"),
     ("Pain prevents me from lifting heavy weights, but I can manage light to medium weights if they are "
      "conveniently positioned", "疼痛使我不能提起重物，但放在方便位置的轻到中等重量物品可以提起"),
     ("I can lift very light weights", "我只能提起很轻的物品"),
     ("I cannot lift or carry anything at all", "我完全不能提起或搬运任何东西")],
    [("Pain does not prevent me walking any distance", "疼痛不影响我行走任何距离"),
     ("Pain prevents me from walking more than 1 mile", "疼痛使我不能行走超过1英里（约1.6公里）"),
     ("Pain prevents me from walking more than 1/2 mile", "疼痛使我不能行走超过半英里（约800米）"),
     ("Pain prevents me from walking more than 100 yards", "疼痛使我不能行走超过100码（约90米）"),
     ("I can only walk using a stick or crutches", "我只能借助手杖或拐杖行走"),
     ("I am in bed most of the time", "我大部分时间卧床")],
    [("I can sit in any chair as long as I like", "我能坐在任何椅子上，想坐多久就坐多久"),
     ("I can only sit in my favourite chair as long as I like", "只有坐在自己喜欢的椅子上，我才能想坐多久就坐多久"),
     ("Pain prevents me sitting more than one hour", "疼痛使我不能坐超过1小时"),
     ("Pain prevents me from sitting more than 30 minutes", "疼痛使我不能坐超过30分钟"),
     ("Pain prevents me from sitting more than 10 minutes", "疼痛使我不能坐超过10分钟"),
     ("Pain prevents me from sitting at all", "疼痛使我完全不能坐")],
    [("I can stand as long as I want without extra pain", "我能想站多久就站多久，不会引起额外疼痛"),
     ("I can stand as long as I want but it gives me extra pain", "我能想站多久就站多久，但会引起额外疼痛"),
     ("Pain prevents me from standing for more than 1 hour", "疼痛使我不能站立超过1小时"),
     ("Pain prevents me from standing for more than 30 minutes", "疼痛使我不能站立超过30分钟"),
     ("Pain prevents me from standing for more than 10 minutes", "疼痛使我不能站立超过10分钟"),
     ("Pain prevents me from standing at all", "疼痛使我完全不能站立")],
    [("My sleep is never disturbed by pain", "我的睡眠从不受疼痛干扰"),
     ("My sleep is occasionally disturbed by pain", "我的睡眠偶尔受疼痛干扰"),
     ("Because of pain I have less than 6 hours sleep", "因为疼痛，我的睡眠少于6小时"),
     ("Because of pain I have less than 4 hours sleep", "因为疼痛，我的睡眠少于4小时"),
     ("Because of pain I have less than 2 hours sleep", "因为疼痛，我的睡眠少于2小时"),
     ("Pain prevents me from sleeping at all", "疼痛使我完全无法入睡")],
    [("My sex life is normal and causes no extra pain", "我的性生活正常，不会引起额外疼痛"),
     ("My sex life is normal but causes some extra pain", "我的性生活正常，但会引起一些额外疼痛"),
     ("My sex life is nearly normal but is very painful", "我的性生活接近正常，但非常疼痛"),
     ("My sex life is severely restricted by pain", "我的性生活因疼痛受到严重限制"),
     ("My sex life is nearly absent because of pain", "因为疼痛，我几乎没有性生活"),
     ("Pain prevents any sex life at all", "疼痛使我完全没有性生活")],
    [("My social life is normal and gives me no extra pain", "我的社会生活正常，不会引起额外疼痛"),
     ("My social life is normal but increases the degree of pain", "我的社会生活正常，但会加重疼痛"),
     ("Pain has no significant effect on my social life apart from limiting my more energetic interests, "
      "e.g. sport", "除了限制较剧烈的活动（如运动）外，疼痛对我的社会生活没有明显影响"),
     ("Pain has restricted my social life and I do not go out as often", "疼痛限制了我的社会生活，我不常外出"),
     ("Pain has restricted my social life to my home", "疼痛使我的社会生活仅限于家中"),
     ("I have no social life because of pain", "因为疼痛，我没有社会生活")],
    [("I can travel anywhere without pain", "我能去任何地方旅行，不会疼痛"),
     ("I can travel anywhere but it gives me extra pain", "我能去任何地方旅行，但会引起额外疼痛"),
     ("Pain is bad but I manage journeys over two hours", "疼痛很严重，但我能完成超过2小时的旅程"),
     ("Pain restricts me to journeys of less than one hour", "疼痛使我只能进行少于1小时的旅程"),
     ("Pain restricts me to short necessary journeys under 30 minutes", "疼痛使我只能进行少于30分钟的必要短途旅行"),
     ("Pain prevents me from travelling except to receive treatment", "疼痛使我除了去接受治疗外不能旅行")],
]
FORM = FormSpec("odi", tuple(Item(f"s{i}", f"{i}. {en}", f"{i}. {zh}", kind="code", required=False,
                                 choices=codes(*[(n, f"{n} – {sen}", f"{n} – {szh}")
                                                  for n, (sen, szh) in enumerate(_ODI_STATEMENTS[i - 1])]))
                    for i, (en, zh) in enumerate(_ODI_SECTIONS, 1)),
               "Score each section 0 (first statement) to 5 (last statement). One section may be left "
               "unanswered (not applicable); the percent uses the sections answered.",
               "每节按 0（第一项陈述）至 5（最后一项陈述）计分。可有一节不适用未答，百分比按已答节数计算。",
               self_report=SelfReport(intro=(
                   "How does your back pain affect your everyday life? In each section choose the one statement "
                   "that best describes you today.",
                   "腰痛对您的日常生活有何影响？每一部分请选择最符合您今天情况的一项陈述。")),
               sdtm_prefix="ODI")  # QSTESTCD ODI01-ODI10
