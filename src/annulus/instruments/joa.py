"""JOA score for low back pain, 1986 version, 29 points (P-5.3).

Source: Japanese Orthopaedic Association. Assessment of treatment for low back pain.
J Jpn Orthop Assoc 1986;60:391–394 (in Japanese). English description of the items and scores:
Nakamura M, Miyamoto K, Shimizu K. J Orthop Sci 2009;14:367–373.

Fourteen clinician-rated items in the published order:

  subjective symptoms (9): low back pain 0–3, leg pain and/or tingling 0–3, gait 0–3
  clinical signs (6): straight-leg raising 0–2, sensory disturbance 0–2, motor disturbance 0–2
  restriction of activities of daily living (14), each 0 (severe) / 1 (moderate) / 2 (none):
      turn over while lying, standing, washing, leaning forward, sitting (about 1 hour),
      lifting or holding a heavy object, walking
  urinary bladder function: 0 normal, −3 mild dysuria, −6 severe dysuria

Total −6..29 (higher is better). There is no published rule for missing items, so every item
is required; a missing item leaves the total empty.

Recovery rate (Hirabayashi K et al., Spine 1981;6:354–364, applied to the 29-point scale):
(post − pre) / (29 − pre) × 100 %, undefined when the pre-treatment score is already 29.
"""

from __future__ import annotations

from typing import Any

from .base import InstrumentError, Score, check_items, coded, number
from .items import Ask, FormSpec, Item, SelfReport, codes

NAME = "joa"
MAX_TOTAL = 29
MIN_TOTAL = -6

# (key, label, domain, allowed codes) in the published order.
ITEMS: tuple[tuple[str, str, str, tuple[int, ...]], ...] = (
    ("low_back_pain", "low back pain", "subjective", (0, 1, 2, 3)),
    ("leg_pain", "leg pain and/or tingling", "subjective", (0, 1, 2, 3)),
    ("gait", "gait", "subjective", (0, 1, 2, 3)),
    ("slr", "straight-leg raising test", "clinical_signs", (0, 1, 2)),
    ("sensory", "sensory disturbance", "clinical_signs", (0, 1, 2)),
    ("motor", "motor disturbance", "clinical_signs", (0, 1, 2)),
    ("turn_over", "turn over while lying", "adl", (0, 1, 2)),
    ("standing", "standing", "adl", (0, 1, 2)),
    ("washing", "washing", "adl", (0, 1, 2)),
    ("leaning_forward", "leaning forward", "adl", (0, 1, 2)),
    ("sitting", "sitting (about 1 hour)", "adl", (0, 1, 2)),
    ("lifting", "lifting or holding heavy objects", "adl", (0, 1, 2)),
    ("walking", "walking", "adl", (0, 1, 2)),
    ("bladder", "urinary bladder function", "bladder", (0, -3, -6)),
)
DOMAIN_MAX = {"subjective": 9, "clinical_signs": 6, "adl": 14, "bladder": 0}


def score_joa(items: list[Any]) -> Score:
    items = check_items("JOA", items, len(ITEMS))
    values: dict[str, int | None] = {}
    missing: list[str] = []
    for i, (value, (key, label, _domain, allowed)) in enumerate(zip(items, ITEMS)):
        field_name = f"items[{i}]"
        if value is None:
            missing.append(field_name)
            values[key] = None
            continue
        values[key] = coded(value, field_name, f"JOA item {i + 1} ({label})", allowed)
    domains: dict[str, int | None] = {}
    for domain in DOMAIN_MAX:
        scores = [values[k] for k, _l, d, _a in ITEMS if d == domain]
        domains[domain] = None if None in scores else sum(scores)  # type: ignore[arg-type]
    parts = {"items": values, **domains}
    if missing:
        return Score(
            NAME,
            None,
            parts=parts,
            missing=missing,
            reason=(
                f"JOA needs all 14 items (no published missing-item rule); {len(missing)} missing"
            ),
            unit="points",
        )
    total = sum(v for v in domains.values() if v is not None)
    return Score(NAME, float(total), parts=parts, unit="points")


def _total(value: Any, field_name: str) -> float:
    total = number(value, field_name, "JOA total")
    if not MIN_TOTAL <= total <= MAX_TOTAL:
        raise InstrumentError(field_name, f"JOA total must be −6–29, got {value!r}")
    return total


def recovery_rate(pre: Any, post: Any) -> float | None:
    """Hirabayashi recovery rate in %; ``None`` when either score is missing or pre is 29."""
    if pre is None or post is None:
        return None
    pre_total = _total(pre, "pre")
    post_total = _total(post, "post")
    if pre_total == MAX_TOTAL:
        return None  # no room for improvement: the rate is undefined, not 0 or 100
    return (post_total - pre_total) / (MAX_TOTAL - pre_total) * 100.0


# ---- the part the patient answers, in the patient's words -----------------------------------
# The subjective symptoms, the restriction of daily activities and the bladder function are the
# patient's to tell (the clinical signs are the investigator's examination). The grade of each
# answer is the item's code, so the scoring is unchanged. The 1986 score names no recall period;
# the participant describes how things are now.
#
# Checked item by item and grade by grade against published descriptions of the 1986 score
# (looked up in December 2026; the English full text of Nakamura et al. 2009 was not among the
# stored pages, so the check rests on these Chinese clinical forms of the score):
#   [A] "腰椎间盘突出症入院评分标准: 腰椎JOA（日本骨科协会）评分", Dongchuan District Hospital of
#       Traditional Chinese Medicine, https://docx.baby/p/20786969250246.html
#   [B] "康复医学科JOA腰痛疾患疗效评定表" (a close rendering of the Japanese form),
#       https://m.1wenmi.com/doc/277691.html
#   [C] "下腰痛JOA评分表", https://360docs.net/doc/1017350159.html
# Low back pain, leg pain and/or tingling, gait, the seven activities and their order agree with
# [A]-[C] as worded here. Corrected after the check: the middle grade of the daily activities is
# a slight restriction ([A] 轻度受限, [B] 轻度困难), not a moderate one; the mild bladder grade
# names its signs ([B] 尿频、排尿踌躇、残尿感), and trouble caused by a disease of the urinary tract
# itself is left out, as the form says ([B] 由于尿路疾患而产生的排尿障碍除外).
_ADL_LEAD = ("How much are you restricted in this everyday activity?", "这项日常活动受限的程度如何？")
_ADL_WORDS = {"0": ("Severely restricted", "明显受限"), "1": ("Slightly restricted", "轻度受限"),
              "2": ("Not restricted", "不受限")}


def _adl(en: str, zh: str) -> Ask:
    return Ask(en, zh, *_ADL_LEAD, choices=_ADL_WORDS)


ASKS = {
    "low_back_pain": Ask("Which of these best describes your low back pain?", "哪一项最符合您的腰痛情况？", choices={
        "3": ("No low back pain", "无腰痛"),
        "2": ("Occasional mild pain", "偶有轻度腰痛"),
        "1": ("Frequent mild pain or occasional severe pain", "经常轻度腰痛或偶有严重腰痛"),
        "0": ("Frequent or continuous severe pain", "频繁或持续的严重腰痛")}),
    "leg_pain": Ask("Which of these best describes pain and/or tingling in your legs?",
                    "哪一项最符合您下肢疼痛和/或麻木的情况？", choices={
        "3": ("No leg pain or tingling", "无下肢疼痛或麻木"),
        "2": ("Occasional slight leg pain or tingling", "偶有轻度下肢疼痛或麻木"),
        "1": ("Frequent slight, or occasional severe, leg pain or tingling", "经常轻度或偶有严重的下肢疼痛或麻木"),
        "0": ("Frequent or continuous severe leg pain or tingling", "频繁或持续的严重下肢疼痛或麻木")}),
    "gait": Ask("Which of these best describes your walking?", "哪一项最符合您的行走情况？", choices={
        "3": ("I walk normally", "行走正常"),
        "2": ("I can walk farther than 500 m, although it brings on pain, tingling and/or muscle weakness",
              "能步行500米以上，但会出现疼痛、麻木和/或肌肉无力"),
        "1": ("I cannot walk farther than 500 m because of leg pain, tingling and/or muscle weakness",
              "因下肢疼痛、麻木和/或肌肉无力，步行不能超过500米"),
        "0": ("I cannot walk farther than 100 m because of leg pain, tingling and/or muscle weakness",
              "因下肢疼痛、麻木和/或肌肉无力，步行不能超过100米")}),
    "turn_over": _adl("Turning over while lying down", "躺着时翻身"),
    "standing": _adl("Standing up", "站起"),
    "washing": _adl("Washing your face", "洗脸"),
    "leaning_forward": _adl("Leaning forward, or standing for a long time", "弯腰前倾或长时间站立"),
    "sitting": _adl("Sitting for a long time (about 1 hour)", "长时间坐着（约1小时）"),
    "lifting": _adl("Lifting or holding a heavy object", "提起或拿着重物"),
    "walking": _adl("Walking", "行走"),
    "bladder": Ask("How is your passing of urine?", "您的排尿情况如何？",
                   "Leave out any trouble caused by a disease of the bladder or urinary tract itself.",
                   "由泌尿系统本身疾病引起的排尿问题不计在内。", choices={
        "0": ("Normal", "正常"),
        "-3": ("Mild difficulty passing urine (passing urine often, waiting for it to start, or feeling "
               "that the bladder is not empty afterwards)", "轻度排尿困难（尿频、排尿踌躇或排尿后残尿感）"),
        "-6": ("Severe difficulty passing urine (leaking urine, or unable to pass urine)",
               "重度排尿困难（尿失禁或尿潴留）")}),
}

# the item groups the participant answers: all but the clinical signs; saved as a draft for the
# investigator to add the examination
PATIENT_GROUPS = ("subjective", "adl", "bladder")
SELF_REPORT = SelfReport(
    intro=("Your low back pain, your legs, your daily activities and your bladder as they are now. Choose the one "
           "answer that fits best.", "您目前的腰痛、下肢、日常活动和排尿情况。请选择最符合的一个答案。"),
    groups=PATIENT_GROUPS)

# ---- the form (items as printed; read and scored by annulus.visits.crf) ---------------------

_SEVERITY3 = codes((0, "0 severe", "0 重度"), (1, "1 moderate", "1 中度"), (2, "2 none", "2 无"))
_SUBJ = codes((0, "0", "0"), (1, "1", "1"), (2, "2", "2"), (3, "3 none", "3 无"))
_SIGN = codes((0, "0", "0"), (1, "1", "1"), (2, "2 normal", "2 正常"))
_BLADDER = codes((0, "0 normal", "0 正常"), (-3, "−3 mild dysuria", "−3 轻度排尿困难"),
                  (-6, "−6 severe dysuria", "−6 重度排尿困难"))
# the items are named, not numbered: their QS test code is their place on the form (JOA01-JOA14)
FORM = FormSpec("joa", (
    Item("low_back_pain", "Low back pain (0–3)", "腰痛（0–3）", "code", _SUBJ, group="subjective", sdtm_code="JOA01"),
    Item("leg_pain", "Leg pain and/or tingling (0–3)", "下肢痛和/或麻木（0–3）", "code", _SUBJ, group="subjective", sdtm_code="JOA02"),
    Item("gait", "Gait (0–3)", "步态（0–3）", "code", _SUBJ, group="subjective", sdtm_code="JOA03"),
    Item("slr", "Straight-leg raising (0–2)", "直腿抬高试验（0–2）", "code", _SIGN, group="signs", sdtm_code="JOA04"),
    Item("sensory", "Sensory disturbance (0–2)", "感觉障碍（0–2）", "code", _SIGN, group="signs", sdtm_code="JOA05"),
    Item("motor", "Motor disturbance (0–2)", "运动障碍（0–2）", "code", _SIGN, group="signs", sdtm_code="JOA06"),
    Item("turn_over", "Turn over while lying", "卧床翻身", "code", _SEVERITY3, group="adl", sdtm_code="JOA07"),
    Item("standing", "Standing", "站立", "code", _SEVERITY3, group="adl", sdtm_code="JOA08"),
    Item("washing", "Washing", "洗漱", "code", _SEVERITY3, group="adl", sdtm_code="JOA09"),
    Item("leaning_forward", "Leaning forward", "前屈", "code", _SEVERITY3, group="adl", sdtm_code="JOA10"),
    Item("sitting", "Sitting (about 1 hour)", "坐（约1小时）", "code", _SEVERITY3, group="adl", sdtm_code="JOA11"),
    Item("lifting", "Lifting or holding heavy objects", "举重物或持重物", "code", _SEVERITY3, group="adl", sdtm_code="JOA12"),
    Item("walking", "Walking", "行走", "code", _SEVERITY3, group="adl", sdtm_code="JOA13"),
    Item("bladder", "Urinary bladder function", "膀胱功能", "code", _BLADDER, group="bladder", sdtm_code="JOA14"),
), "Clinician-rated; all fourteen items are needed for the 29-point total.",
   "由医生评定；29分总分需全部14项。", asks=ASKS, self_report=SELF_REPORT, sdtm_prefix="JOA")
