"""What an export carries of each instrument's results, and the analysis parameters they give (no Django).

The eCRF keeps each scored form's results nested as the instruments return them
(``{"name": "odi", "score": 32.0, "parts": {...}}``; SF-36's scales at the top level; imaging as
four sub-results). An export wants one number per score:

- ``RESULTS[instrument]``: the derived scores of an instrument, each an id, its label in English
  and Chinese and its unit (``ResultScore``), in the order an export lists them;
- ``flatten(instrument, computed)``: the stored dict as ``{score id: number}`` for those ids;
- ``PARAMETERS``: the efficacy parameters of the analysis datasets that the library's results give
  without a declaration in the protocol (``annulus.interchange.adam.params_for``): the ADaM
  parameter code, the instrument and its score id, the ADSL baseline column and its label, the
  direction of benefit, and the name of the baseline in the report's baseline characteristics
  table (English and Chinese; a categorical grade lists the codes the table shows). A protocol
  gets those of the instruments its forms use, in the order of its forms.

A score that cannot be computed (an unanswered form, no adjacent normal disc) is ``None``; a
score the stored dict does not hold at all (``change_from_baseline`` before a baseline VAS) is
left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from . import imaging, joa, odi, sf36, vas


@dataclass(frozen=True, slots=True)
class ResultScore:
    id: str
    label_en: str
    label_zh: str
    unit: str = ""

    def label(self, language: str | None) -> str:
        return self.label_zh if (language or "").lower().startswith("zh") else self.label_en


@dataclass(frozen=True, slots=True)
class Name:
    """A name in English and Chinese (``get(language)`` as the protocol's ``Text``)."""

    en: str
    zh: str

    def get(self, language: str | None) -> str:
        return self.zh if (language or "").lower().startswith("zh") else self.en


@dataclass(frozen=True)
class Parameter:
    code: str  # PARAMCD (at most 8 characters)
    instrument: str  # the instrument (and the first trial's form) whose results give the value
    score: str  # the score id of RESULTS[instrument]
    baseline_column: str  # ADSL baseline covariate
    baseline_label: str  # its variable label (at most 40 characters)
    lower_is_better: bool
    table_name: Name  # the baseline's row in the report's baseline characteristics table
    kind: str = "continuous"  # "continuous" | "categorical" (in that table)
    categories: tuple[str, ...] = ()  # a categorical parameter's codes, in the order the table shows


IMAGING = imaging.FORM.id

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

RESULTS: dict[str, tuple[ResultScore, ...]] = {
    vas.NAME: (
        ResultScore("vas_mm", "VAS low back pain", "VAS 腰痛评分", "mm"),
        ResultScore("change_from_baseline", "VAS change from baseline", "VAS 较基线变化", "mm"),
    ),
    odi.NAME: (ResultScore("odi_percent", "Oswestry Disability Index", "Oswestry 功能障碍指数", "%"),),
    joa.NAME: (ResultScore("joa_total", "JOA low back pain score (total)", "JOA 下腰痛评分（总分）", "points"),),
    sf36.NAME: (
        ResultScore("pcs", "SF-36 physical component summary", "SF-36 生理健康总评", "T score"),
        ResultScore("mcs", "SF-36 mental component summary", "SF-36 心理健康总评", "T score"),
        *(ResultScore(sid, en, zh, "0-100") for sid, _key, en, zh in SF36_SCALES),
    ),
    IMAGING: (
        ResultScore("modic_score", "Modic change (worse endplate: 0 none, 1 I, 2 II, 3 III)",
                    "Modic 改变（较重终板：0 无，1 I型，2 II型，3 III型）", "type"),
        ResultScore("pfirrmann_grade", "Pfirrmann grade (1-5)", "Pfirrmann 分级（1-5）", "grade"),
        ResultScore("disc_height_score", "Disc height loss against adjacent normal discs",
                    "椎间盘高度较相邻正常椎间盘丢失", "%"),
        ResultScore("rom_score", "Segmental range of motion (flexion-extension)", "节段活动度（屈伸）", "degrees"),
    ),
}

PARAMETERS: tuple[Parameter, ...] = (
    Parameter("VAS", vas.NAME, "vas_mm", "BASEVAS", "Baseline VAS (mm)", True,
              Name("VAS pain (mm)", "VAS疼痛评分（mm）")),
    Parameter("ODI", odi.NAME, "odi_percent", "BASEODI", "Baseline ODI (%)", True, Name("ODI (%)", "ODI（%）")),
    Parameter("JOA", joa.NAME, "joa_total", "BASEJOA", "Baseline JOA total", False, Name("JOA score", "JOA评分")),
    Parameter("SF36PCS", sf36.NAME, "pcs", "BASEPCS", "Baseline SF-36 PCS", False,
              Name("SF-36 physical component summary", "SF-36生理健康总分")),
    Parameter("SF36MCS", sf36.NAME, "mcs", "BASEMCS", "Baseline SF-36 MCS", False,
              Name("SF-36 mental component summary", "SF-36心理健康总分")),
    Parameter("PFIRRM", IMAGING, "pfirrmann_grade", "BASEPFIR", "Baseline Pfirrmann grade (1-5)", True,
              Name("Pfirrmann grade of L4-5", "L4-5椎间盘Pfirrmann分级"), "categorical", ("3", "4", "5")),
    Parameter("MODIC", IMAGING, "modic_score", "BASEMODI", "Baseline Modic score (0-3)", True,
              Name("Modic change of L4-5 (worse endplate)", "L4-5终板Modic改变（较重一侧）"), "categorical", ("1", "2")),
    Parameter("DISCHT", IMAGING, "disc_height_score", "BASEDHT", "Baseline disc height loss (%)", True,
              Name("Disc height loss against adjacent discs (%)", "与相邻椎间盘相比椎间盘高度丢失（%）")),
    Parameter("ROM", IMAGING, "rom_score", "BASEROM", "Baseline segmental ROM (degrees)", False,
              Name("Segmental range of motion of L4-5 (degrees)", "L4-5节段活动度（度）")),
)


def result_score(instrument: str, score_id: str) -> ResultScore | None:
    """The declaration of one score (None when the instrument has no such score)."""
    return next((s for s in RESULTS.get(instrument, ()) if s.id == score_id), None)


def parameters_of(instrument: str | None) -> tuple[Parameter, ...]:
    """The analysis parameters an instrument's results give (none for an instrument without)."""
    return tuple(p for p in PARAMETERS if p.instrument == instrument)


def finite(v):
    """A finite number as int or float; None for anything else."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if not math.isfinite(v):
        return None
    return v


def _total(d) -> float | None:
    return finite(d.get("score")) if isinstance(d, dict) else None


def _modic(d) -> int | None:
    if not isinstance(d, dict):
        return None
    parts = d.get("parts") or {}
    types = [MODIC_ORDINAL.get(str(parts.get(k))) for k in ("superior_endplate", "inferior_endplate")]
    types = [t for t in types if t is not None]
    if types:
        return max(types)
    s = finite(d.get("score"))
    return int(s) if s is not None else None


def _vas(computed) -> dict:
    out = {"vas_mm": _total(computed)}
    if "change_from_baseline" in computed:
        out["change_from_baseline"] = finite(computed.get("change_from_baseline"))
    return out


def _sf36(computed) -> dict:
    out = {"pcs": finite(computed.get("PCS")), "mcs": finite(computed.get("MCS"))}
    for sid, key, _en, _zh in SF36_SCALES:
        out[sid] = finite(computed.get(key))
    return out


def _imaging(computed) -> dict:
    grade = _total(computed.get("pfirrmann"))
    return {
        "modic_score": _modic(computed.get("modic")),
        "pfirrmann_grade": int(grade) if grade is not None else None,
        "disc_height_score": _total(computed.get("disc_height")),
        "rom_score": _total(computed.get("rom")),
    }


_FLATTEN: dict[str, Callable[[dict], dict]] = {
    vas.NAME: _vas,
    odi.NAME: lambda computed: {"odi_percent": _total(computed)},
    joa.NAME: lambda computed: {"joa_total": _total(computed)},
    sf36.NAME: _sf36,
    IMAGING: _imaging,
}


def flatten(instrument: str, computed) -> dict:
    """The stored (nested) results of one instrument as ``{score id: number}`` for the ids
    ``RESULTS`` declares for it; ``{}`` for an instrument without scores or without computed
    results."""
    if not isinstance(computed, dict) or not computed or instrument not in _FLATTEN:
        return {}
    return _FLATTEN[instrument](computed)
