"""The CONSORT 2010 flow of participants, counted from ADSL, and its diagram as SVG (no Django).

``counts(adsl_rows, arms=..., visits=...)`` returns a ``Consort``; ``svg(consort, language=...)``
draws it. Every number comes from one ADSL row per consented participant
(``annulus.interchange.adam``); nothing else is read.

How each box is counted:

- **Assessed for eligibility**: every ADSL row (ADSL holds everyone who gave informed consent and
  entered screening, screen failures included).
- **Excluded**: every row not randomised (``RANDFL`` not "Y"), so assessed = excluded + randomised.
  Each is counted in exactly one of:

  - *not meeting eligibility criteria*: ``ELIGFL`` = "N" (or ``DCSREAS`` = "SCREEN FAILURE"); by
    criterion from ``SCRFCRIT`` (the ids of the failed criteria, comma-separated): a participant
    failing several criteria counts once in the total and once under each criterion (so the
    criteria may add up to more than the total); a failure with no criterion recorded is counted
    as such;
  - *declined or withdrew before randomisation*: ``EOSSTT`` = "DISCONTINUED" for another reason,
    by ``DCSREAS``;
  - *lost before randomisation*: ``DCSREAS`` = "LOST TO FOLLOW-UP";
  - *eligible, awaiting randomisation*: ``ELIGFL`` = "Y", still ongoing;
  - *eligibility not yet decided*: ``ELIGFL`` empty, still ongoing.

- **Randomised**: ``RANDFL`` = "Y"; **allocated** per arm by ``TRT01P`` (one column per arm, in
  the order of ``arms``), or all pooled in one column when ``arms`` is None (the blinded report:
  ``TRT01P`` is then never read, so the result cannot depend on it).
- **Received the allocated intervention**: ``SAFFL`` = "Y" (transplanted). The others, by reason:
  ``DCSREAS`` when they left, "awaiting" the treatment (the protocol's treatment procedure) while ongoing.
- **Follow-up** (participants who received the intervention): ``EOSSTT`` "COMPLETED" = completed,
  "ONGOING" (or empty) = still in follow-up, "DISCONTINUED" = lost to follow-up (``DCSREAS`` =
  "LOST TO FOLLOW-UP") or discontinued (any other ``DCSREAS``, by reason). Losses and
  discontinuations are also counted by the last scheduled visit attended (``LASTVIS``): "after
  3 months" means the participant attended the 3-month visit and no later one.
- **Analysis**: intention to treat ``ITTFL`` = "Y", safety ``SAFFL`` = "Y", per protocol
  ``PPROTFL`` = "Y", counted among the randomised of the column. Those excluded from the
  per-protocol population are counted once, under the first per-protocol rule they fail
  (``PPEXREAS``: not treated, not eligible, left before the primary visit, primary visit not yet
  due, missed or out of its window, emergency unblinding). An ADSL without ``PPEXREAS`` (written
  before it existed) gives every reason the flags show (a participant may count under several)
  and "primary visit not attended in its window" for what remains of the rule.

The labels of the diagram are in ``LABELS``, one dictionary per language.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from xml.sax.saxutils import escape, quoteattr

from annulus.report.adsl import flag, split_arms, text

LOST = "LOST TO FOLLOW-UP"
SCREEN_FAILURE = "SCREEN FAILURE"
OTHER = "OTHER"
# DCSREAS terms in the order they are listed; others follow in alphabetical order
REASON_ORDER = ("WITHDRAWAL BY SUBJECT", "ADVERSE EVENT", "PHYSICIAN DECISION", SCREEN_FAILURE, LOST, OTHER)
AWAITING_TREATMENT = "awaiting_treatment"
OTHER_EXCLUSIONS = ("withdrew", "lost", "awaiting_randomisation", "in_screening")
PP_REASONS = ("not_treated", "not_eligible", "discontinued_before_primary", "primary_not_due", "primary_missed",
              "primary_out_of_window", "emergency_unblinding", "primary_visit")
# PPEXREAS (the first per-protocol rule a participant fails, ``annulus.interchange.adam``) -> reason
PPEXREAS = {"NOT TREATED": "not_treated", "NOT ELIGIBLE": "not_eligible", "ELIGIBILITY NOT CONFIRMED": "not_eligible",
            "DISCONTINUED BEFORE PRIMARY VISIT": "discontinued_before_primary",
            "PRIMARY VISIT NOT YET DUE": "primary_not_due", "PRIMARY VISIT MISSED": "primary_missed",
            "PRIMARY VISIT OUT OF WINDOW": "primary_out_of_window", "EMERGENCY UNBLINDING": "emergency_unblinding"}


# --- the counts -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Count:
    """A number of participants under a key (a criterion id, a DCSREAS term, a fixed reason)."""
    key: str
    n: int


@dataclass(frozen=True)
class VisitLosses:
    """Participants who left after attending ``after`` (the ``LASTVIS``; None: no scheduled visit
    attended) and no later scheduled visit."""
    after: str | None
    lost: int
    discontinued: int
    reasons: tuple[Count, ...]  # the discontinued by DCSREAS (the lost are not in it)


@dataclass(frozen=True)
class ArmFlow:
    """One column of the diagram: an arm (``TRT01P``), or all arms pooled (``arm`` None)."""
    arm: str | None
    allocated: int
    received: int
    not_received: int
    not_received_reasons: tuple[Count, ...]  # DCSREAS terms and "awaiting_treatment"
    completed: int
    ongoing: int
    lost: int
    discontinued: int
    discontinued_reasons: tuple[Count, ...]  # DCSREAS terms
    by_visit: tuple[VisitLosses, ...]  # None first, then one per visit of ``Consort.visits``
    itt: int
    safety: int
    per_protocol: int
    pp_excluded: int
    pp_excluded_reasons: tuple[Count, ...]  # PP_REASONS, every one, in that order


@dataclass(frozen=True)
class Consort:
    blinded: bool  # True: one pooled column (arms=None)
    visits: tuple[str, ...]
    assessed: int
    excluded: int
    not_eligible: int
    criteria: tuple[Count, ...]  # criterion id -> participants failing it (I1.. then E1.. then others)
    criteria_not_recorded: int  # not eligible with no SCRFCRIT
    other_excluded: tuple[Count, ...]  # OTHER_EXCLUSIONS, every one, in that order
    withdrew_reasons: tuple[Count, ...]  # the "withdrew" before randomisation, by DCSREAS
    randomised: int
    arms: tuple[ArmFlow, ...]

    def as_dict(self) -> dict:
        return asdict(self)

    def total(self, field: str) -> int:
        """A per-column count summed over the columns (``total("itt")``)."""
        return sum(getattr(a, field) for a in self.arms)


def _reason_key(reason: str) -> tuple:
    return (REASON_ORDER.index(reason), "") if reason in REASON_ORDER else (len(REASON_ORDER), reason)


def _reasons(counter: Counter) -> tuple[Count, ...]:
    keys = sorted((k for k, n in counter.items() if n), key=lambda k: (k == AWAITING_TREATMENT, _reason_key(k)))
    return tuple(Count(k, counter[k]) for k in keys)


def criterion_sort_key(cid: str) -> tuple:
    """Inclusion criteria (I1, I2 ... I10) first, then exclusion criteria (E1 ...), then others."""
    m = re.fullmatch(r"([A-Za-z]*)(\d+)(.*)", cid)
    if not m:
        return (3, 0, cid)
    prefix = m.group(1).upper()
    return ({"I": 0, "E": 1}.get(prefix, 2), int(m.group(2)), prefix + m.group(3))


def _criteria(row: Mapping) -> list[str]:
    return sorted({c.strip() for c in text(row, "SCRFCRIT").split(",") if c.strip()}, key=criterion_sort_key)


def _leaving_reason(row: Mapping) -> str:
    return text(row, "DCSREAS").upper() or OTHER


def _status(row: Mapping) -> str:
    status = text(row, "EOSSTT").upper()
    return status if status in ("COMPLETED", "DISCONTINUED") else "ONGOING"


def _arm_flow(arm: str | None, rows: list[Mapping], visits: tuple[str, ...]) -> ArmFlow:
    received = [r for r in rows if flag(r, "SAFFL")]
    not_received = Counter()
    for r in rows:
        if not flag(r, "SAFFL"):
            not_received[AWAITING_TREATMENT if _status(r) == "ONGOING" else _leaving_reason(r)] += 1
    completed = ongoing = lost = 0
    reasons: Counter = Counter()
    by_visit = {v: [0, 0, Counter()] for v in (None, *visits)}
    for r in received:
        status = _status(r)
        if status == "COMPLETED":
            completed += 1
            continue
        if status == "ONGOING":
            ongoing += 1
            continue
        last = text(r, "LASTVIS") or None
        if last not in by_visit:
            raise ValueError(f"LASTVIS of {text(r, 'USUBJID') or '?'} is {last!r}, "
                             f"not one of the visits {list(visits)}")
        reason = _leaving_reason(r)
        if reason == LOST:
            lost += 1
            by_visit[last][0] += 1
        else:
            reasons[reason] += 1
            by_visit[last][1] += 1
            by_visit[last][2][reason] += 1
    itt = [r for r in rows if flag(r, "ITTFL")]
    pp_reasons = Counter()
    pp_excluded = 0
    for r in itt:
        if flag(r, "PPROTFL"):
            continue
        pp_excluded += 1
        if "PPEXREAS" in r:  # the export names the first failing rule: one reason per participant
            code = text(r, "PPEXREAS").upper()
            if code not in PPEXREAS:
                raise ValueError(f"PPEXREAS of {text(r, 'USUBJID') or '?'} is {code!r}, not one of {sorted(PPEXREAS)}")
            pp_reasons[PPEXREAS[code]] += 1
            continue
        why = [k for k, hit in (("not_treated", not flag(r, "SAFFL")),
                                ("not_eligible", text(r, "ELIGFL").upper() != "Y"),
                                ("emergency_unblinding", flag(r, "EMUNBLFL"))) if hit]
        for k in why or ["primary_visit"]:
            pp_reasons[k] += 1
    return ArmFlow(
        arm=arm, allocated=len(rows), received=len(received), not_received=len(rows) - len(received),
        not_received_reasons=_reasons(not_received), completed=completed, ongoing=ongoing, lost=lost,
        discontinued=sum(reasons.values()), discontinued_reasons=_reasons(reasons),
        by_visit=tuple(VisitLosses(v, b[0], b[1], _reasons(b[2])) for v, b in by_visit.items()),
        itt=len(itt), safety=len(received), per_protocol=sum(flag(r, "PPROTFL") for r in rows),
        pp_excluded=pp_excluded, pp_excluded_reasons=tuple(Count(k, pp_reasons[k]) for k in PP_REASONS))


def counts(adsl_rows: Iterable[Mapping], *, arms: Sequence[str] | None, visits: Sequence[str]) -> Consort:
    """The CONSORT 2010 flow counted from ADSL rows (see the module's documentation).

    ``arms``: the ``TRT01P`` values in the order of the columns, or None for the blinded report
    (one pooled column; ``TRT01P`` is not read). ``visits``: the protocol's scheduled visit ids in
    schedule order (every value ``LASTVIS`` can take; another value is refused naming it)."""
    rows = list(adsl_rows)
    visits = tuple(visits)
    if len(set(visits)) != len(visits):
        raise ValueError(f"visits are given twice: {list(visits)}")
    criteria: Counter = Counter()
    not_recorded = not_eligible = 0
    other = Counter()
    withdrew = Counter()
    for r in rows:
        if flag(r, "RANDFL"):
            continue
        if text(r, "ELIGFL").upper() == "N" or _leaving_reason(r) == SCREEN_FAILURE:
            not_eligible += 1
            failed = _criteria(r)
            criteria.update(failed)
            not_recorded += not failed
        elif _status(r) != "ONGOING":
            reason = _leaving_reason(r)
            if reason == LOST:
                other["lost"] += 1
            else:
                other["withdrew"] += 1
                withdrew[reason] += 1
        elif text(r, "ELIGFL").upper() == "Y":
            other["awaiting_randomisation"] += 1
        else:
            other["in_screening"] += 1
    columns = split_arms(rows, arms)
    randomised = sum(len(members) for _, members in columns)
    return Consort(
        blinded=arms is None, visits=visits, assessed=len(rows), excluded=len(rows) - randomised,
        not_eligible=not_eligible,
        criteria=tuple(Count(c, criteria[c]) for c in sorted(criteria, key=criterion_sort_key)),
        criteria_not_recorded=not_recorded,
        other_excluded=tuple(Count(k, other[k]) for k in OTHER_EXCLUSIONS),
        withdrew_reasons=_reasons(withdrew), randomised=randomised,
        arms=tuple(_arm_flow(arm, members, visits) for arm, members in columns))


# --- the words --------------------------------------------------------------------------------------

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "CONSORT 2010 flow diagram",
        "n": "{label}\u00a0(n={n})",
        "stage_enrolment": "Enrolment",
        "stage_allocation": "Allocation",
        "stage_follow_up": "Follow-up",
        "stage_analysis": "Analysis",
        "assessed": "Assessed for eligibility",
        "excluded": "Excluded",
        "not_eligible": "Not meeting eligibility criteria",
        "criterion_I": "Inclusion criterion {id} not met",
        "criterion_E": "Exclusion criterion {id} met",
        "criterion": "Criterion {id}",
        "criterion_named": "{id}: {name}",
        "criteria_not_recorded": "Criterion not recorded",
        "withdrew": "Declined or withdrew before randomisation",
        "lost": "Lost before randomisation",
        "awaiting_randomisation": "Eligible, awaiting randomisation",
        "in_screening": "Eligibility not yet decided",
        "randomised": "Randomised",
        "allocated": "Allocated to {arm}",
        "allocated_pooled": "Allocated, all arms pooled (blinded)",
        "received": "Received allocated intervention",
        "not_received": "Did not receive allocated intervention",
        "awaiting_treatment": "Awaiting {treatment}",
        "treatment": "treatment",
        "lost_to_follow_up": "Lost to follow-up",
        "discontinued": "Discontinued",
        "after_visit": "after {visit}",
        "after_none": "before any scheduled visit",
        "reason_after": "{reason}, {after}",
        "completed": "Completed follow-up",
        "ongoing": "Still in follow-up",
        "itt": "Analysed, intention to treat",
        "safety": "Safety population",
        "per_protocol": "Per-protocol population",
        "pp_excluded": "Excluded from per-protocol analysis",
        "not_treated": "Did not receive the product",
        "not_eligible_pp": "Eligibility not confirmed",
        "emergency_unblinding": "Emergency unblinding",
        "primary_visit": "Primary visit not attended in its window",
        "discontinued_before_primary": "Left before the primary visit",
        "primary_not_due": "Primary visit not yet due",
        "primary_missed": "Primary visit missed",
        "primary_out_of_window": "Primary visit out of its window",
        "WITHDRAWAL BY SUBJECT": "Withdrawal by participant",
        "ADVERSE EVENT": "Adverse event",
        "PHYSICIAN DECISION": "Physician decision",
        "SCREEN FAILURE": "Found ineligible",
        "LOST TO FOLLOW-UP": "Lost to follow-up",
        "OTHER": "Other reason",
        "group": "Group {x}",
        "visit_w": "{k} week",
        "visit_w_plural": "{k} weeks",
        "visit_m": "{k} month",
        "visit_m_plural": "{k} months",
        "visit_liposuction": "liposuction",
        "visit_baseline": "baseline",
        "visit_transplant": "transplantation",
    },
    "zh": {
        "title": "CONSORT 2010流程图",
        "n": "{label}（n={n}）",
        "stage_enrolment": "招募",
        "stage_allocation": "分配",
        "stage_follow_up": "随访",
        "stage_analysis": "分析",
        "assessed": "接受合格性评估",
        "excluded": "排除",
        "not_eligible": "不符合入选条件",
        "criterion_I": "不符合纳入标准{id}",
        "criterion_E": "符合排除标准{id}",
        "criterion": "标准{id}",
        "criterion_named": "{id}：{name}",
        "criteria_not_recorded": "未记录具体标准",
        "withdrew": "随机前拒绝参加或退出",
        "lost": "随机前失访",
        "awaiting_randomisation": "合格，待随机",
        "in_screening": "合格性尚未判定",
        "randomised": "随机分组",
        "allocated": "分配至{arm}",
        "allocated_pooled": "已分配，各组合并（盲态）",
        "received": "接受分配的干预",
        "not_received": "未接受分配的干预",
        "awaiting_treatment": "等待{treatment}",
        "treatment": "治疗",
        "lost_to_follow_up": "失访",
        "discontinued": "中止研究",
        "after_visit": "{visit}访视后",
        "after_none": "首次计划访视前",
        "reason_after": "{reason}，{after}",
        "completed": "完成随访",
        "ongoing": "仍在随访",
        "itt": "意向性治疗分析",
        "safety": "安全性分析集",
        "per_protocol": "符合方案集",
        "pp_excluded": "未纳入符合方案分析",
        "not_treated": "未接受{treatment}",
        "not_eligible_pp": "合格性未确认",
        "emergency_unblinding": "紧急揭盲",
        "primary_visit": "主要终点访视未在窗口期内完成",
        "discontinued_before_primary": "主要终点访视前退出",
        "primary_not_due": "主要终点访视尚未到期",
        "primary_missed": "主要终点访视缺失",
        "primary_out_of_window": "主要终点访视超出窗口期",
        "WITHDRAWAL BY SUBJECT": "受试者主动退出",
        "ADVERSE EVENT": "不良事件",
        "PHYSICIAN DECISION": "研究者决定",
        "SCREEN FAILURE": "发现不符合入选条件",
        "LOST TO FOLLOW-UP": "失访",
        "OTHER": "其他原因",
        "group": "{x}组",
        "visit_w": "{k}周",
        "visit_w_plural": "{k}周",
        "visit_m": "{k}个月",
        "visit_m_plural": "{k}个月",
        "visit_liposuction": "吸脂",
        "visit_baseline": "基线",
        "visit_transplant": "移植",
    },
}


def _words(language: str) -> dict[str, str]:
    lang = (language or "en").lower()
    key = "zh" if lang.startswith("zh") else "en" if lang.startswith("en") else None
    if key is None:
        raise ValueError(f"language {language!r} is not one of {sorted(LABELS)}")
    return LABELS[key]


def visit_name(visit: str, language: str = "en") -> str:
    """A visit id of the protocol in words: ``w1`` "1 week", ``m12`` "12 months" / "12个月"."""
    w = _words(language)
    m = re.fullmatch(r"([wm])(\d+)", visit)
    if m:
        k = int(m.group(2))
        return w[f"visit_{m.group(1)}" + ("" if k == 1 else "_plural")].format(k=k)
    return w.get(f"visit_{visit}", visit)


def arm_name(arm: str, language: str = "en") -> str:
    """``TRT01P`` as shown: a group label "Group A" becomes "A组" in Chinese; a treatment name is
    shown as exported."""
    m = re.fullmatch(r"Group ([A-Z])", arm)
    return _words(language)["group"].format(x=m.group(1)) if m else arm


def reason_name(key: str, language: str = "en") -> str:
    return _words(language).get(key, key.capitalize() if key.isupper() else key)


# --- the diagram ------------------------------------------------------------------------------------

FONT = 12
LINE = 16
PAD = 8
INDENT = 14
MARGIN = 16
GAP = 26
STRIP = 26
STRIP_GAP = 12
FONT_FAMILY = ("'DejaVu Sans', Arial, Helvetica, 'Noto Sans CJK SC', 'Source Han Sans SC', "
               "'WenQuanYi Micro Hei', 'Microsoft YaHei', 'PingFang SC', sans-serif")
_IDEOGRAPH = r"\u3400-\u9fff\uf900-\ufaff"
_TOKENS = re.compile(rf"[{_IDEOGRAPH}]|[^ {_IDEOGRAPH}]+| +")  # no break at a no-break space
_CLOSING = set("，。：；、）》」』,.:;)!?%")


# advance widths (em) of the printable ASCII characters (32-126) in DejaVu Sans and DejaVu Sans
# Bold, one of the widest sans-serif fonts: the estimate holds for the narrower ones (Arial, ...)
_ASCII = (
    (0.318, 0.401, 0.46, 0.838, 0.636, 0.95, 0.78, 0.275, 0.39, 0.39, 0.5, 0.838, 0.318, 0.361, 0.318, 0.337,
     0.636, 0.636, 0.636, 0.636, 0.636, 0.636, 0.636, 0.636, 0.636, 0.636, 0.337, 0.337, 0.838, 0.838, 0.838,
     0.531, 1.0, 0.684, 0.686, 0.698, 0.77, 0.632, 0.575, 0.775, 0.752, 0.295, 0.295, 0.656, 0.557, 0.863,
     0.748, 0.787, 0.603, 0.787, 0.695, 0.635, 0.611, 0.732, 0.684, 0.989, 0.685, 0.611, 0.685, 0.39, 0.337,
     0.39, 0.838, 0.5, 0.5, 0.613, 0.635, 0.55, 0.635, 0.615, 0.352, 0.635, 0.634, 0.278, 0.278, 0.579, 0.278,
     0.974, 0.634, 0.612, 0.635, 0.635, 0.411, 0.521, 0.392, 0.634, 0.592, 0.818, 0.592, 0.592, 0.525, 0.636,
     0.337, 0.636, 0.838),
    (0.348, 0.456, 0.521, 0.838, 0.696, 1.002, 0.872, 0.306, 0.457, 0.457, 0.523, 0.838, 0.38, 0.415, 0.38,
     0.365, 0.696, 0.696, 0.696, 0.696, 0.696, 0.696, 0.696, 0.696, 0.696, 0.696, 0.4, 0.4, 0.838, 0.838, 0.838,
     0.58, 1.0, 0.774, 0.762, 0.734, 0.83, 0.683, 0.683, 0.821, 0.837, 0.372, 0.372, 0.775, 0.637, 0.995, 0.837,
     0.85, 0.733, 0.85, 0.77, 0.72, 0.682, 0.812, 0.774, 1.103, 0.771, 0.724, 0.725, 0.457, 0.365, 0.457, 0.838,
     0.5, 0.5, 0.675, 0.716, 0.593, 0.716, 0.678, 0.435, 0.716, 0.712, 0.343, 0.343, 0.665, 0.343, 1.042, 0.712,
     0.687, 0.716, 0.716, 0.493, 0.595, 0.478, 0.712, 0.652, 0.924, 0.645, 0.652, 0.582, 0.712, 0.365, 0.712,
     0.838),
)


def text_width(s: str, bold: bool = False) -> float:
    """An estimate (on the wide side) of the width of ``s`` in pixels at the diagram's font size:
    DejaVu Sans widths for ASCII, 1 em for CJK characters, 0.8 em for anything else."""
    table = _ASCII[bool(bold)]
    em = 0.0
    for ch in s:
        code = ord(ch)
        if 32 <= code < 127:
            em += table[code - 32]
        elif ch == "\u00a0":
            em += table[0]
        elif unicodedata.east_asian_width(ch) in ("W", "F"):
            em += 1.0
        else:
            em += 0.8
    return em * FONT * 1.03


def _wrap(s: str, width: float, bold: bool) -> list[str]:
    tokens: list[str] = []
    for t in _TOKENS.findall(s):
        glue = t[0] in _CLOSING or t.startswith("（n=")  # no line starts with these
        if tokens and not t.isspace() and glue and not tokens[-1].isspace():
            tokens[-1] += t
        else:
            tokens.append(t)
    lines, current = [], ""
    for t in tokens:
        if current and text_width(current + t, bold) > width and not t.isspace():
            lines.append(current.rstrip())
            current = t
        elif current or not t.isspace():
            current += t
        while text_width(current, bold) > width and len(current) > 1:  # a word longer than the line
            cut = max(k for k in range(1, len(current)) if k == 1 or text_width(current[:k], bold) <= width)
            lines.append(current[:cut])
            current = current[cut:]
    if current.strip():
        lines.append(current.rstrip())
    return lines or [""]


@dataclass
class _Box:
    entries: list[tuple[str, int, bool]]  # (text, indent level, bold)
    width: float
    x: float = 0.0
    y: float = 0.0
    height: float = 0.0

    def lines(self) -> list[tuple[str, int, bool]]:
        out = []
        for s, level, bold in self.entries:
            for part in _wrap(s, self.width - 2 * PAD - level * INDENT, bold):
                out.append((part, level, bold))
        return out

    def natural_height(self) -> float:
        return len(self.lines()) * LINE + 2 * PAD

    def svg(self) -> list[str]:
        out = [f'<rect x="{_f(self.x)}" y="{_f(self.y)}" width="{_f(self.width)}" height="{_f(self.height)}" '
               f'fill="#ffffff" stroke="#222222" stroke-width="1"/>']
        for i, (s, level, bold) in enumerate(self.lines()):
            weight = ' font-weight="bold"' if bold else ""
            out.append(f'<text x="{_f(self.x + PAD + level * INDENT)}" y="{_f(self.y + PAD + (i + 1) * LINE - 4)}"'
                       f'{weight}>{escape(s)}</text>')
        return out


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _arrow(x1: float, y1: float, x2: float, y2: float) -> list[str]:
    """A straight vertical or horizontal arrow from (x1, y1) to (x2, y2), head drawn as a polygon
    (no markers: every SVG renderer draws it)."""
    size = 6
    if x1 == x2:
        d = 1 if y2 > y1 else -1
        tip = [(x2, y2), (x2 - size / 2, y2 - d * size), (x2 + size / 2, y2 - d * size)]
        end = (x2, y2 - d * size)
    else:
        d = 1 if x2 > x1 else -1
        tip = [(x2, y2), (x2 - d * size, y2 - size / 2), (x2 - d * size, y2 + size / 2)]
        end = (x2 - d * size, y2)
    points = " ".join(f"{_f(a)},{_f(b)}" for a, b in tip)
    return [_line(x1, y1, *end), f'<polygon points="{points}" fill="#222222"/>']


def _line(x1: float, y1: float, x2: float, y2: float) -> str:
    return f'<line x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" stroke="#222222" stroke-width="1"/>'


def _upright(label: str) -> bool:
    """Chinese is written top to bottom with upright characters; other text is turned."""
    return all(unicodedata.east_asian_width(ch) in ("W", "F") for ch in label)


def _stage_length(label: str) -> float:
    return len(label) * (FONT + 4) if _upright(label) else text_width(label, True)


def _stage_label(label: str, x: float, mid: float) -> list[str]:
    """A stage's name in its strip, centred on ``mid``: one character under another (upright) or
    turned a quarter to the left. Plain text elements, no writing-mode (not every renderer has it)."""
    if not _upright(label):
        return [f'<text x="{_f(x)}" y="{_f(mid + FONT * 0.35)}" transform="rotate(-90 {_f(x)} {_f(mid)})" '
                f'text-anchor="middle" font-weight="bold">{escape(label)}</text>']
    step = FONT + 4
    top = mid - len(label) * step / 2
    return [f'<text x="{_f(x)}" y="{_f(top + i * step + step / 2 + FONT * 0.35)}" text-anchor="middle" '
            f'font-weight="bold">{escape(ch)}</text>' for i, ch in enumerate(label)]


def _enrolment_boxes(c: Consort, lang: str, criterion_names: Mapping[str, str]) -> tuple[_Box, _Box, _Box]:
    w = _words(lang)
    n = w["n"].format
    assessed = _Box([(n(label=w["assessed"], n=c.assessed), 0, True)], 260)
    entries = [(n(label=w["excluded"], n=c.excluded), 0, True),
               (n(label=w["not_eligible"], n=c.not_eligible), 1, False)]
    for crit in c.criteria:
        kind = re.fullmatch(r"([IE])\d+", crit.key)
        label = w[f"criterion_{kind.group(1)}" if kind else "criterion"].format(id=crit.key)
        if crit.key in criterion_names:
            label = w["criterion_named"].format(id=crit.key, name=criterion_names[crit.key])
        entries.append((n(label=label, n=crit.n), 2, False))
    if c.criteria_not_recorded:
        entries.append((n(label=w["criteria_not_recorded"], n=c.criteria_not_recorded), 2, False))
    for other in c.other_excluded:
        if other.key == "withdrew" or other.n:
            entries.append((n(label=w[other.key], n=other.n), 1, False))
        if other.key == "withdrew":
            entries += [(n(label=reason_name(r.key, lang), n=r.n), 2, False)
                        for r in c.withdrew_reasons]
    excluded = _Box(entries, 380)
    randomised = _Box([(n(label=w["randomised"], n=c.randomised), 0, True)], 260)
    return assessed, excluded, randomised


def _capital(s: str) -> str:
    return s[:1].upper() + s[1:]


def _column_boxes(a: ArmFlow, lang: str, width: float, visit_names: Mapping[str, str],
                  arm_names: Mapping[str, str], shown_visits: list, treatment: str) -> tuple[_Box, _Box, _Box]:
    w = _words(lang)
    n = w["n"].format

    def reason(key):
        return w[key].format(treatment=treatment) if key == AWAITING_TREATMENT else reason_name(key, lang)

    def after(visit):
        if visit is None:
            return w["after_none"]
        return w["after_visit"].format(visit=visit_names.get(visit) or visit_name(visit, lang))

    if a.arm is None:
        head = w["allocated_pooled"]
    else:
        head = w["allocated"].format(arm=arm_names.get(a.arm) or arm_name(a.arm, lang))
    allocation = [(n(label=head, n=a.allocated), 0, True),
                  (n(label=w["received"], n=a.received), 1, False),
                  (n(label=w["not_received"], n=a.not_received), 1, False)]
    allocation += [(n(label=reason(r.key), n=r.n), 2, False) for r in a.not_received_reasons]

    losses = {v.after: v for v in a.by_visit}
    follow = [(n(label=w["lost_to_follow_up"], n=a.lost), 0, True)]
    follow += [(n(label=_capital(after(v)), n=losses[v].lost), 1, False) for v in shown_visits if losses[v].lost]
    follow.append((n(label=w["discontinued"], n=a.discontinued), 0, True))
    for v in shown_visits:
        for r in losses[v].reasons:
            follow.append((n(label=w["reason_after"].format(reason=reason(r.key), after=after(v)), n=r.n), 1, False))
    follow += [(n(label=w["completed"], n=a.completed), 0, False), (n(label=w["ongoing"], n=a.ongoing), 0, False)]

    analysis = [(n(label=w["itt"], n=a.itt), 0, True),
                (n(label=w["safety"], n=a.safety), 1, False),
                (n(label=w["per_protocol"], n=a.per_protocol), 1, False),
                (n(label=w["pp_excluded"], n=a.pp_excluded), 1, False)]
    analysis += [(n(label=w["not_eligible_pp" if r.key == "not_eligible" else r.key].format(treatment=treatment),
                    n=r.n), 2, False)
                 for r in a.pp_excluded_reasons if r.n]
    return _Box(allocation, width), _Box(follow, width), _Box(analysis, width)


def svg(consort: Consort, *, language: str = "en", visit_names: Mapping[str, str] | None = None,
        criterion_names: Mapping[str, str] | None = None, arm_names: Mapping[str, str] | None = None,
        treatment: str | None = None) -> str:
    """The CONSORT 2010 diagram of ``consort`` as an SVG document (text).

    Rows Enrolment / Allocation / Follow-up / Analysis, named in a strip on the left; one column
    per arm, or one pooled column. ``language`` "en" or "zh". Optional words: ``visit_names``
    (visit id -> name; by default "1 week", "12 months" ... from the id), ``criterion_names``
    (criterion id -> text, shown beside the id) and ``arm_names`` (``TRT01P`` -> name; by default
    ``TRT01P`` itself, "Group A" as "A组" in Chinese) and ``treatment`` (the treatment as running
    text names it, "transplantation": the protocol's ``treatment_event_name``; by default
    "treatment"). The same counts give the same bytes."""
    w = _words(language)
    lang = "zh" if w is LABELS["zh"] else "en"
    visit_names, criterion_names, arm_names = visit_names or {}, criterion_names or {}, arm_names or {}
    cols = len(consort.arms)
    col_w = 276.0 if cols > 1 else 360.0
    col_gap = 20.0
    # visits with a loss in any column, so that the columns list the same visits in the same order
    shown = [v for v in (None, *consort.visits)
             if any(x.after == v and (x.lost or x.discontinued) for a in consort.arms for x in a.by_visit)]
    assessed, excluded, randomised = _enrolment_boxes(consort, lang, criterion_names)
    columns = [_column_boxes(a, lang, col_w, visit_names, arm_names, shown, treatment or w["treatment"])
               for a in consort.arms]

    left = MARGIN + STRIP + STRIP_GAP
    cols_w = cols * col_w + (cols - 1) * col_gap
    cx = left + max(cols_w, assessed.width) / 2
    width = max(left + cols_w, cx + 40 + excluded.width) + MARGIN
    stage_min = {k: _stage_length(w[f"stage_{k}"]) + 2 * PAD for k in ("allocation", "follow_up", "analysis")}

    y = MARGIN
    for b in (assessed, excluded, randomised):
        b.height = b.natural_height()
    assessed.x, assessed.y = cx - assessed.width / 2, y
    excluded.x, excluded.y = cx + 40, assessed.y + assessed.height + GAP
    randomised.x, randomised.y = cx - randomised.width / 2, excluded.y + excluded.height + GAP
    stages = [("enrolment", assessed.y, randomised.y + randomised.height)]
    y = randomised.y + randomised.height + GAP + (12 if cols > 1 else 0)
    col_x = [left + i * (col_w + col_gap) for i in range(cols)]
    for row, key in enumerate(("allocation", "follow_up", "analysis")):
        h = max([stage_min[key], *(col[row].natural_height() for col in columns)])
        for x, col in zip(col_x, columns):
            col[row].x, col[row].y, col[row].height = x, y, h
        stages.append((key, y, y + h))
        y += h + GAP
    height = y - GAP + MARGIN

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_f(width)}" height="{_f(height)}" '
           f'viewBox="0 0 {_f(width)} {_f(height)}" font-family={quoteattr(FONT_FAMILY)} font-size="{FONT}" '
           f'fill="#111111">',
           f"<title>{escape(w['title'])}</title>",
           f'<rect x="0" y="0" width="{_f(width)}" height="{_f(height)}" fill="#ffffff"/>']
    for key, top, bottom in stages:
        mid = (top + bottom) / 2
        sx = MARGIN + STRIP / 2
        out.append(f'<rect x="{MARGIN}" y="{_f(top)}" width="{STRIP}" height="{_f(bottom - top)}" rx="6" ry="6" '
                   f'fill="#dbe7f3" stroke="#5b7fa6" stroke-width="1"/>')
        out += _stage_label(w[f"stage_{key}"], sx, mid)
    for b in (assessed, excluded, randomised, *(b for col in columns for b in col)):
        out += b.svg()
    # enrolment: assessed -> randomised, with the exclusions branching off to the right
    out += _arrow(cx, assessed.y + assessed.height, cx, randomised.y)
    out += _arrow(cx, excluded.y + min(excluded.height / 2, 3 * LINE), excluded.x,
                  excluded.y + min(excluded.height / 2, 3 * LINE))
    # randomised -> each column
    top = columns[0][0].y
    if cols == 1:
        out += _arrow(cx, randomised.y + randomised.height, cx, top)
    else:
        bus = randomised.y + randomised.height + (top - randomised.y - randomised.height) / 2
        out.append(_line(cx, randomised.y + randomised.height, cx, bus))
        centres = [x + col_w / 2 for x in col_x]
        out.append(_line(centres[0], bus, centres[-1], bus))
        for x in centres:
            out += _arrow(x, bus, x, top)
    for x, col in zip(col_x, columns):
        for upper, lower in zip(col, col[1:]):
            out += _arrow(x + col_w / 2, upper.y + upper.height, x + col_w / 2, lower.y)
    out.append("</svg>")
    return "\n".join(out) + "\n"
