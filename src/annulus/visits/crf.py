"""The eCRF forms: their items (labels in English and Simplified Chinese), how raw answers are
read, and how each form is scored with ``annulus.instruments``. No Django models here; the
service stores what this module returns.

Every error is a ``RuleViolation`` naming the item as it appears on the form (``vas_mm``,
``s4``, ``q7``, ``hgb__unit``), never an instrument's internal position (``items[3]``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from annulus.errors import Problems, RuleViolation, RuleViolations
from annulus.instruments import InstrumentError, score
from annulus.instruments.imaging import modic_type, pfirrmann_grade
from annulus.instruments.labs import assess_panel
from annulus.instruments.vas import change_from_baseline
from annulus.instruments.vitals import check_vitals


@dataclass(frozen=True)
class Item:
    id: str
    en: str
    zh: str
    kind: str = "number"  # number | code | choice | text | bool
    choices: tuple = ()  # (value, en, zh)
    unit: str = ""
    min: float | None = None
    max: float | None = None
    step: str = "any"
    required: bool = True  # needed to complete the form
    group: str = ""

    def label(self, language: str | None) -> str:
        return self.zh if (language or "").lower().startswith("zh") else self.en


@dataclass(frozen=True)
class FormSpec:
    id: str
    items: tuple[Item, ...]
    intro_en: str = ""
    intro_zh: str = ""
    extra: dict = field(default_factory=dict)

    def item(self, item_id: str) -> Item | None:
        return next((i for i in self.items if i.id == item_id), None)


def _codes(*pairs) -> tuple:
    return tuple((str(v), en, zh) for v, en, zh in pairs)


# ---- VAS --------------------------------------------------------------------------------------
VAS = FormSpec("vas", (Item("vas_mm", "Pain on the 100 mm line (mm from 'no pain')", "100 mm 直线上的疼痛（距“无痛”端毫米数）",
                            unit="mm", min=0, max=100),),
               "Measure the patient's mark from the 'no pain' end in millimetres.",
               "从“无痛”端测量患者标记位置，单位毫米。")

# ---- ODI --------------------------------------------------------------------------------------
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
ODI = FormSpec("odi", tuple(Item(f"s{i}", f"{i}. {en}", f"{i}. {zh}", kind="code", required=False,
                                 choices=_codes(*[(n, f"{n} – {sen}", f"{n} – {szh}")
                                                  for n, (sen, szh) in enumerate(_ODI_STATEMENTS[i - 1])]))
                    for i, (en, zh) in enumerate(_ODI_SECTIONS, 1)),
               "Score each section 0 (first statement) to 5 (last statement). One section may be left "
               "unanswered (not applicable); the percent uses the sections answered.",
               "每节按 0（第一项陈述）至 5（最后一项陈述）计分。可有一节不适用未答，百分比按已答节数计算。")

# ---- JOA --------------------------------------------------------------------------------------
_SEVERITY3 = _codes((0, "0 severe", "0 重度"), (1, "1 moderate", "1 中度"), (2, "2 none", "2 无"))
_SUBJ = _codes((0, "0", "0"), (1, "1", "1"), (2, "2", "2"), (3, "3 none", "3 无"))
_SIGN = _codes((0, "0", "0"), (1, "1", "1"), (2, "2 normal", "2 正常"))
_BLADDER = _codes((0, "0 normal", "0 正常"), (-3, "−3 mild dysuria", "−3 轻度排尿困难"),
                  (-6, "−6 severe dysuria", "−6 重度排尿困难"))
JOA = FormSpec("joa", (
    Item("low_back_pain", "Low back pain (0–3)", "腰痛（0–3）", "code", _SUBJ, group="subjective"),
    Item("leg_pain", "Leg pain and/or tingling (0–3)", "下肢痛和/或麻木（0–3）", "code", _SUBJ, group="subjective"),
    Item("gait", "Gait (0–3)", "步态（0–3）", "code", _SUBJ, group="subjective"),
    Item("slr", "Straight-leg raising (0–2)", "直腿抬高试验（0–2）", "code", _SIGN, group="signs"),
    Item("sensory", "Sensory disturbance (0–2)", "感觉障碍（0–2）", "code", _SIGN, group="signs"),
    Item("motor", "Motor disturbance (0–2)", "运动障碍（0–2）", "code", _SIGN, group="signs"),
    Item("turn_over", "Turn over while lying", "卧床翻身", "code", _SEVERITY3, group="adl"),
    Item("standing", "Standing", "站立", "code", _SEVERITY3, group="adl"),
    Item("washing", "Washing", "洗漱", "code", _SEVERITY3, group="adl"),
    Item("leaning_forward", "Leaning forward", "前屈", "code", _SEVERITY3, group="adl"),
    Item("sitting", "Sitting (about 1 hour)", "坐（约1小时）", "code", _SEVERITY3, group="adl"),
    Item("lifting", "Lifting or holding heavy objects", "举重物或持重物", "code", _SEVERITY3, group="adl"),
    Item("walking", "Walking", "行走", "code", _SEVERITY3, group="adl"),
    Item("bladder", "Urinary bladder function", "膀胱功能", "code", _BLADDER, group="bladder"),
), "Clinician-rated; all fourteen items are needed for the 29-point total.",
   "由医生评定；29分总分需全部14项。")

# ---- SF-36 ------------------------------------------------------------------------------------
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
    "change": [("Much better than one year ago", "比一年前好多了"), ("Somewhat better", "比一年前好一些"),
               ("About the same", "差不多"), ("Somewhat worse", "比一年前差一些"), ("Much worse", "比一年前差多了")],
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


def _sf36_codes(n: int) -> tuple:
    return tuple((str(c), f"{c} {en}", f"{c} {zh}") for c, (en, zh) in enumerate(_SF36_OPTIONS[_sf36_kind(n)], 1))


SF36 = FormSpec("sf36", tuple(Item(f"q{n}", f"{n}. {en}", f"{n}. {zh}", "code", _sf36_codes(n), required=False)
                              for n, (en, zh) in enumerate(_SF36_STEMS, 1)),
                "Enter the response code the patient circled (1-based, as printed on the RAND 36 form). "
                "A scale is scored when at least half of its items are answered.",
                "录入患者圈选的答案编号（从1开始，与RAND 36表格一致）。每个维度至少答一半条目方可计分。")

# ---- imaging ----------------------------------------------------------------------------------
_MODIC = _codes(("none", "none", "无"), ("I", "type I", "I型"), ("II", "type II", "II型"), ("III", "type III", "III型"))
_PFIRRMANN = _codes(*[(g, f"grade {g}", f"{g}级") for g in ("I", "II", "III", "IV", "V")])
IMAGING = FormSpec("imaging", (
    Item("modic_superior", "Modic type, superior endplate of L4-5", "L4-5 上终板 Modic 分型", "choice", _MODIC, group="mri"),
    Item("modic_inferior", "Modic type, inferior endplate of L4-5", "L4-5 下终板 Modic 分型", "choice", _MODIC, group="mri"),
    Item("pfirrmann", "Pfirrmann grade of L4-5", "L4-5 Pfirrmann 分级", "choice", _PFIRRMANN, group="mri"),
    Item("height_index_mm", "Disc height L4-5", "L4-5 椎间盘高度", unit="mm", min=0.5, max=25, group="height"),
    Item("height_above_mm", "Disc height L3-4 (empty if not normal)", "L3-4 椎间盘高度（非正常则留空）", unit="mm",
         min=0.5, max=25, required=False, group="height"),
    Item("height_below_mm", "Disc height L5-S1 (empty if not normal)", "L5-S1 椎间盘高度（非正常则留空）", unit="mm",
         min=0.5, max=25, required=False, group="height"),
    Item("rom_flexion_deg", "L4-5 segmental angle, flexion film", "L4-5 节段角度（屈曲位片）", unit="°", min=-45, max=45, group="rom"),
    Item("rom_extension_deg", "L4-5 segmental angle, extension film", "L4-5 节段角度（伸展位片）", unit="°", min=-45, max=45, group="rom"),
), "MRI (Modic, Pfirrmann) and dynamic radiographs (disc height, range of motion).",
   "MRI（Modic、Pfirrmann）及动力位X线片（椎间盘高度、活动度）。")

# ---- adverse-event review ---------------------------------------------------------------------
_YES_NO = _codes(("no", "no", "否"), ("yes", "yes", "是"))
AE_REVIEW = FormSpec("adverse_events", (
    Item("new_events", "Any new or worsening adverse event since the last visit?", "自上次访视以来有无新发或加重的不良事件？",
         "choice", _YES_NO),
    Item("notes", "Notes", "备注", "text", required=False),
), "Ask about symptoms, treatments and hospital stays since the last visit; record each event on the adverse-event form.",
   "询问自上次访视以来的症状、治疗和住院情况；每个事件在不良事件表中记录。")

_QUALITATIVE = _codes(("negative", "negative", "阴性"), ("trace", "trace", "微量"), ("1+", "1+", "1+"),
                      ("2+", "2+", "2+"), ("3+", "3+", "3+"))
_CS = _codes(("", "—", "—"), ("no", "not clinically significant", "无临床意义"), ("yes", "clinically significant", "有临床意义"))

STATIC_SPECS = {s.id: s for s in (VAS, ODI, JOA, SF36, IMAGING, AE_REVIEW)}


def vitals_spec(protocol) -> FormSpec:
    return FormSpec("vitals", tuple(Item(v.id, v.name.en, v.name.zh, unit=v.unit, min=v.min, max=v.max)
                                    for v in protocol.vital_signs),
                    "Seated, after 5 minutes' rest.", "静坐休息5分钟后测量。")


def lab_spec(protocol, form_id: str, panel_id: str) -> FormSpec:
    panel = protocol.lab_panel(panel_id)
    items = []
    for a in panel.analytes:
        if a.kind == "qualitative":
            items.append(Item(a.id, a.name.en, a.name.zh, "choice", _QUALITATIVE, group=a.id))
        else:
            items.append(Item(a.id, a.name.en, a.name.zh, unit=a.unit, group=a.id))
            items.append(Item(f"{a.id}__unit", "unit", "单位", "text", unit=a.unit, required=False, group=a.id))
        items.append(Item(f"{a.id}__cs", "Clinically significant?", "是否有临床意义？", "choice", _CS,
                          required=False, group=a.id))
    return FormSpec(form_id, tuple(items), "Enter each result in the unit printed on the laboratory report. "
                    "Judge every value outside the reference range.",
                    "按化验单上的单位录入结果；对每个超出参考范围的值判断其临床意义。",
                    extra={"panel": panel})


def spec_for(protocol, form_id: str) -> FormSpec:
    form = next((f for f in protocol.schedule.forms if f.id == form_id), None)
    if form is None:
        raise RuleViolation("form", f"unknown form '{form_id}'")
    if form.panel:
        return lab_spec(protocol, form.id, form.panel)
    if form_id == "vitals" or form.instrument == "vitals":
        return vitals_spec(protocol)
    key = form.instrument or form.id
    if key in STATIC_SPECS:
        return STATIC_SPECS[key]
    raise RuleViolation("form", f"'{form_id}' is a procedure record, not an eCRF form")


# ---- reading raw answers ----------------------------------------------------------------------

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


def _to_number(item: Item, raw: Any) -> float | int:
    if isinstance(raw, bool):
        raise RuleViolation(item.id, f"{item.en} must be a number, got {raw!r}")
    if isinstance(raw, (int, float)):
        value = raw
    else:
        text = str(raw).strip().replace("\u2212", "-")
        if not _NUMBER.match(text):
            raise RuleViolation(item.id, f"{item.en} must be a number, got {raw!r}")
        value = float(text)
    if isinstance(value, float) and not math.isfinite(value):
        raise RuleViolation(item.id, f"{item.en} must be a finite number")
    if item.min is not None and item.max is not None and not item.min <= value <= item.max:
        unit = f" {item.unit}" if item.unit else ""
        raise RuleViolation(item.id, f"{item.en} must be {item.min:g}–{item.max:g}{unit}, got {raw!r}")
    if isinstance(value, float) and value.is_integer() and item.step == "1":
        value = int(value)
    return value


_READINGS = {"modic_superior": modic_type, "modic_inferior": modic_type, "pfirrmann": pfirrmann_grade}


def clean(spec: FormSpec, raw: dict) -> dict:
    """Raw answers (strings from a web form, or JSON values) -> typed answers; blanks are dropped.
    An unknown item, a non-number or a code the form does not print is refused, naming the item;
    every such item at once (``RuleViolations``)."""
    if not isinstance(raw, dict):
        raise RuleViolation("items", "must be an object of item -> answer")
    out: dict[str, Any] = {}
    problems = Problems()
    for key in raw:
        if spec.item(key) is None:
            problems.add(key, f"is not an item of the {spec.id} form")
    for item in spec.items:
        value = raw.get(item.id)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        with problems.check():
            out[item.id] = _clean_item(item, value)
    problems.raise_any()
    return out


def _clean_item(item: Item, value) -> Any:
    if item.kind == "number":
        return _to_number(item, value)
    if item.kind == "code":
        allowed = [c[0] for c in item.choices]
        text = str(value).strip()
        if isinstance(value, float) and value.is_integer():
            text = str(int(value))
        text = text.replace("\u2212", "-")
        if text not in allowed:
            raise RuleViolation(item.id, f"{item.en} must be one of {', '.join(allowed)}, got {value!r}")
        return int(text)
    if item.kind == "choice" and item.id in _READINGS:
        # "2", 2 and "II" are the same reading; the instrument core normalises them
        try:
            return _READINGS[item.id](value, item.id)
        except InstrumentError as exc:
            raise RuleViolation(item.id, exc.message) from None
    if item.kind == "choice":
        allowed = [c[0] for c in item.choices if c[0] != ""]
        text = str(value).strip()
        match = next((a for a in allowed if a.lower() == text.lower()), None)
        if match is None:
            raise RuleViolation(item.id, f"{item.en} must be one of {', '.join(allowed)}, got {value!r}")
        return match
    text = str(value).strip()
    if len(text) > 2000:
        raise RuleViolation(item.id, "must be at most 2000 characters")
    return text


def missing_items(spec: FormSpec, answers: dict) -> list[RuleViolation]:
    """The items a complete form needs that have no answer, each naming the item."""
    def blank(v):
        return v is None or (isinstance(v, str) and not v.strip())

    return [RuleViolation(item.id, f"{item.en} is needed to complete the form") for item in spec.items
            if item.required and blank(answers.get(item.id)) and not item.id.endswith(("__unit", "__cs"))]


# ---- scoring ----------------------------------------------------------------------------------


def _rename(exc: InstrumentError, names: dict[str, str]) -> RuleViolation:
    """Map an instrument's field (``items[3]``) to the form's item id (``s4``)."""
    return RuleViolation(names.get(exc.field, exc.field), exc.message)


def _items_score(instrument: str, ids: list[str], items: dict, **options) -> dict:
    values = [items.get(i) for i in ids]
    names = {f"items[{n}]": i for n, i in enumerate(ids)}
    try:
        result = score(instrument, values, **options)
    except InstrumentError as exc:
        raise _rename(exc, names) from None
    d = result.to_dict()
    d["missing"] = [names.get(m, m) for m in d["missing"]]
    return d


def compute(protocol, form_id: str, items: dict, *, baseline_vas: float | None = None) -> dict:
    """The scores of one form from its typed answers. Nothing here is ever typed by a user."""
    spec = spec_for(protocol, form_id)
    ids = [i.id for i in spec.items]
    if spec.id == "vas":
        out = _items_score("vas", ids, items)
        if baseline_vas is not None and out["score"] is not None:
            out["change_from_baseline"] = change_from_baseline(baseline_vas, out["score"])
        return out
    if spec.id == "odi":
        return _items_score("odi", ids, items)
    if spec.id == "joa":
        return _items_score("joa", ids, items)
    if spec.id == "sf36":
        return _items_score("sf36", ids, items)
    if spec.id == "imaging":
        return {
            "modic": _items_score("modic", ["modic_superior", "modic_inferior"], items),
            "pfirrmann": _items_score("pfirrmann", ["pfirrmann"], items),
            "disc_height": _items_score("disc_height", ["height_index_mm", "height_above_mm", "height_below_mm"], items),
            "rom": _items_score("rom", ["rom_flexion_deg", "rom_extension_deg"], items),
        }
    if spec.id == "vitals":
        limits = {v.id: v for v in protocol.vital_signs}
        from annulus.instruments.vitals import ALIASES

        names = {ALIASES.get(v.id, v.id): v.id for v in protocol.vital_signs}
        try:
            result = check_vitals({k: items.get(k) for k in limits}, limits=limits, field_names=names)
        except InstrumentError as exc:
            field_name = exc.field.removesuffix(".unit")
            raise RuleViolation(field_name, exc.message) from None
        return result.to_dict()
    if "panel" in spec.extra:
        panel = spec.extra["panel"]
        values, judgements = {}, {}
        for a in panel.analytes:
            if items.get(a.id) is None:
                if items.get(f"{a.id}__cs") is not None:
                    raise RuleViolation(f"{a.id}__cs", f"no {a.name.en} value to judge")
                continue
            entry = {"value": items[a.id]}
            if a.kind != "qualitative":
                entry["unit"] = items.get(f"{a.id}__unit", a.unit)
            values[a.id] = entry
            cs = items.get(f"{a.id}__cs")
            if cs is not None:
                judgements[a.id] = cs == "yes"
        try:
            result = assess_panel(panel.id, values, panel, judgements)
        except InstrumentError as exc:
            parts = exc.field.split(".")
            key = parts[1] if len(parts) > 1 else exc.field
            if exc.field.endswith(".unit"):
                key += "__unit"
            elif exc.field.endswith(".clinically_significant"):
                key += "__cs"
            raise RuleViolation(key, exc.message) from None
        d = result.to_dict()
        d["missing"] = [m.split(".", 1)[1] for m in d["missing"]]
        return d
    if spec.id == "adverse_events":
        return {"new_events": items.get("new_events")}
    return {}


def completion_problem(protocol, form_id: str, items: dict, computed: dict) -> RuleViolation | None:
    """Why the form cannot be completed yet, naming the item (``RuleViolations`` when several
    items are missing), or None."""
    spec = spec_for(protocol, form_id)
    missing = missing_items(spec, items)
    if missing:
        return missing[0] if len(missing) == 1 else RuleViolations(missing)
    if spec.id in ("vas", "odi", "joa") and computed.get("score") is None:
        first = (computed.get("missing") or ["items"])[0]
        return RuleViolation(first, f"cannot be scored: {computed.get('reason')}")
    if spec.id == "sf36":
        unscored = [k for k in ("PF", "RP", "BP", "GH", "VT", "SF", "RE", "MH") if computed.get(k) is None]
        if unscored:
            first = (computed.get("missing") or ["items"])[0]
            return RuleViolation(first, f"cannot be scored: {computed.get('reason')}")
    if spec.id == "imaging" and computed["disc_height"]["score"] is None:
        return RuleViolation("height_above_mm", "at least one adjacent normal disc is needed for the percent loss")
    if "panel" in spec.extra:
        pending = computed.get("needs_judgement") or []
        if pending:
            return RuleViolation(f"{pending[0]}__cs", f"{pending[0]} is outside the reference range: "
                                 "judge whether it is clinically significant")
    return None


def headline(form_id: str, computed: dict, names: dict | None = None) -> list[tuple[str, Any]]:
    """The few numbers shown beside the items and in visit tables, labelled in the page's
    language; ``names`` gives the laboratory analytes' names (id -> name), never their ids."""
    from django.utils.translation import gettext as _

    if not computed:
        return []
    if form_id == "vas":
        out = [(_("VAS (mm)"), computed.get("score"))]
        if computed.get("change_from_baseline") is not None:
            out.append((_("change from baseline"), round(computed["change_from_baseline"], 1)))
        return out
    if form_id == "odi":
        s = computed.get("score")
        return [("ODI %", None if s is None else round(s, 1))]
    if form_id == "joa":
        return [("JOA", computed.get("score"))]
    if form_id == "sf36":
        return [(k, None if computed.get(k) is None else round(computed[k], 1))
                for k in ("PF", "RP", "BP", "GH", "VT", "SF", "RE", "MH", "PCS", "MCS")]
    if form_id == "imaging":
        m = computed["modic"]["parts"]
        dh, rom = computed["disc_height"]["score"], computed["rom"]["score"]
        return [("Modic", f"{m.get('superior_endplate') or '—'}/{m.get('inferior_endplate') or '—'}"),
                ("Pfirrmann", computed["pfirrmann"]["parts"].get("grade")),
                (_("disc height loss (%)"), None if dh is None else round(dh, 1)),
                (_("range of motion (°)"), None if rom is None else round(rom, 1))]
    if "abnormal" in computed:
        flags = computed.get("abnormal") or []
        names = names or {}
        return [(_("outside the reference range"), ", ".join(names.get(a, a) for a in flags) or _("none")),
                (_("clinically significant"), _("yes") if computed.get("clinically_significant") else _("no"))]
    if form_id == "adverse_events":
        return [(_("new adverse events"), {"yes": _("yes"), "no": _("no")}.get(computed.get("new_events"),
                                                                                computed.get("new_events")))]
    if form_id == "vitals":
        p = computed.get("parts", {})
        bp = (p.get("systolic", {}).get("value"), p.get("diastolic", {}).get("value"))
        return [(_("blood pressure"), f"{bp[0]:g}/{bp[1]:g}" if None not in bp else None),
                (_("pulse"), p.get("pulse", {}).get("value"))]
    return []


def analyte_names(protocol, language: str | None) -> dict[str, str]:
    """Every laboratory analyte's name in the page's language, by id."""
    return {a.id: a.name.get(language) for panel in protocol.lab_panels for a in panel.analytes}


def answers_text(spec: FormSpec, items: dict, language: str | None) -> list[tuple[str, str]]:
    """A saved form's answers as (item label, answer) in the page's language: the choice's own
    words (an ODI statement), a number with its unit; never the item's key or a bare code."""
    out = []
    for key, value in items.items():
        item = spec.item(key)
        if item is None:
            continue
        if key.endswith("__unit"):
            continue  # shown with its value
        label = item.label(language)
        owner = spec.item(item.group) if item.group and item.group != key else None
        if owner is not None:  # "Clinically significant?" of one analyte
            label = f"{owner.label(language)} · {label}"
        if item.kind in ("code", "choice"):
            choice = next((c for c in item.choices if c[0] == str(value)), None)
            text = (choice[2] if (language or "").lower().startswith("zh") else choice[1]) if choice else str(value)
        else:
            unit = items.get(f"{key}__unit") or item.unit
            text = f"{value} {unit}".strip() if item.kind == "number" else str(value)
        out.append((label, text))
    return out


def significant_analytes(computed: dict) -> list[str]:
    """Analytes judged clinically significant (each prompts an adverse-event form)."""
    parts = computed.get("parts") or {}
    return [k for k, r in parts.items() if isinstance(r, dict) and r.get("clinically_significant")]
