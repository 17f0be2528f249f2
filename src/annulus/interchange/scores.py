"""The derived scores an export carries, declared once (no Django).

The eCRF computes each scored form's results when it is saved (``annulus.visits.crf.compute``)
and keeps them nested as the instruments return them (``{"name": "odi", "score": 32.0,
"parts": {...}}``; SF-36's scales at the top level; imaging as four sub-results). An export
wants one number per score: ``flatten(form_id, computed)`` turns the stored dict into
``{score id: number}`` and ``SCORES[form_id]`` declares each id with its labels and unit, so a
writer can name its columns, variable labels and QS test codes without reading the nesting.

A score that cannot be computed (an unanswered form, no adjacent normal disc) is ``None``; a
score the stored dict does not hold at all (``change_from_baseline`` before a baseline VAS) is
left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Score:
    id: str
    label_en: str
    label_zh: str
    unit: str = ""

    def label(self, language: str | None) -> str:
        return self.label_zh if (language or "").lower().startswith("zh") else self.label_en


SF36_SCALES = (
    ("pf", "PF", "SF-36 physical functioning", "SF-36 生理功能"),
    ("rp", "RP", "SF-36 role limitations (physical)", "SF-36 生理职能"),
    ("bp", "BP", "SF-36 bodily pain", "SF-36 躯体疼痛"),
    ("gh", "GH", "SF-36 general health", "SF-36 总体健康"),
    ("vt", "VT", "SF-36 vitality", "SF-36 活力"),
    ("sf", "SF", "SF-36 social functioning", "SF-36 社会功能"),
    ("re", "RE", "SF-36 role limitations (emotional)", "SF-36 情感职能"),
    ("mh", "MH", "SF-36 mental health", "SF-36 精神健康"),
)

# Modic change types as an ordinal score (the worse of the two endplates)
MODIC_ORDINAL = {"none": 0, "I": 1, "II": 2, "III": 3}

SCORES: dict[str, tuple[Score, ...]] = {
    "vas": (
        Score("vas_mm", "VAS low back pain", "VAS 腰痛评分", "mm"),
        Score("change_from_baseline", "VAS change from baseline", "VAS 较基线变化", "mm"),
    ),
    "odi": (Score("odi_percent", "Oswestry Disability Index", "Oswestry 功能障碍指数", "%"),),
    "joa": (Score("joa_total", "JOA low back pain score (total)", "JOA 下腰痛评分（总分）", "points"),),
    "sf36": (
        Score("pcs", "SF-36 physical component summary", "SF-36 生理健康总评", "T score"),
        Score("mcs", "SF-36 mental component summary", "SF-36 心理健康总评", "T score"),
        *(Score(sid, en, zh, "0-100") for sid, _key, en, zh in SF36_SCALES),
    ),
    "imaging": (
        Score("modic_score", "Modic change (worse endplate: 0 none, 1 I, 2 II, 3 III)",
              "Modic 改变（较重终板：0 无，1 I型，2 II型，3 III型）", "type"),
        Score("pfirrmann_grade", "Pfirrmann grade (1-5)", "Pfirrmann 分级（1-5）", "grade"),
        Score("disc_height_score", "Disc height loss against adjacent normal discs",
              "椎间盘高度较相邻正常椎间盘丢失", "%"),
        Score("rom_score", "Segmental range of motion (flexion-extension)", "节段活动度（屈伸）", "degrees"),
    ),
}


def score(form_id: str, score_id: str) -> Score | None:
    """The declaration of one score (None when the form has no such score)."""
    return next((s for s in SCORES.get(form_id, ()) if s.id == score_id), None)


def _num(v):
    """A finite number as int or float; None for anything else."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if not math.isfinite(v):
        return None
    return v


def _total(d) -> float | None:
    return _num(d.get("score")) if isinstance(d, dict) else None


def _modic(d) -> int | None:
    if not isinstance(d, dict):
        return None
    parts = d.get("parts") or {}
    types = [MODIC_ORDINAL.get(str(parts.get(k))) for k in ("superior_endplate", "inferior_endplate")]
    types = [t for t in types if t is not None]
    if types:
        return max(types)
    s = _num(d.get("score"))
    return int(s) if s is not None else None


def flatten(form_id: str, computed) -> dict:
    """The stored (nested) results of one form as ``{score id: number}`` for the ids ``SCORES``
    declares for that form; ``{}`` for a form without scores or without computed results."""
    if not isinstance(computed, dict) or not computed or form_id not in SCORES:
        return {}
    if form_id == "vas":
        out = {"vas_mm": _total(computed)}
        if "change_from_baseline" in computed:
            out["change_from_baseline"] = _num(computed.get("change_from_baseline"))
        return out
    if form_id == "odi":
        return {"odi_percent": _total(computed)}
    if form_id == "joa":
        return {"joa_total": _total(computed)}
    if form_id == "sf36":
        out = {"pcs": _num(computed.get("PCS")), "mcs": _num(computed.get("MCS"))}
        for sid, key, _en, _zh in SF36_SCALES:
            out[sid] = _num(computed.get(key))
        return out
    if form_id == "imaging":
        grade = _total(computed.get("pfirrmann"))
        return {
            "modic_score": _modic(computed.get("modic")),
            "pfirrmann_grade": int(grade) if grade is not None else None,
            "disc_height_score": _total(computed.get("disc_height")),
            "rom_score": _total(computed.get("rom")),
        }
    return {}


def flatten_keys(computed, keys) -> dict:
    """An instrument's stored results reduced to the score keys a protocol's analysis declares
    (``analysis.parameters``: the NRS's ``score``, the KOOS subscales ``pain`` ...) as ``{key:
    number}``; a key the results hold without a number (a subscale not scored) is None."""
    if not isinstance(computed, dict) or not computed:
        return {}
    return {k: _num(computed.get(k)) for k in keys if k in computed}


def flatten_record(computed) -> dict:
    """A procedure record's stored results (a kit return's ``compliance``: percent, days, units,
    acceptable) as ``{key_part: number or yes/no}``; text parts (the kit number, dates) are the
    record's own items and left out."""
    if not isinstance(computed, dict):
        return {}
    out = {}
    for key, value in computed.items():
        parts = value.items() if isinstance(value, dict) else ((None, value),)
        for part, v in parts:
            if isinstance(v, bool) or _num(v) is not None:
                out[key if part is None else f"{key}_{part}"] = v
    return out
