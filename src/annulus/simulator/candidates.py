"""Realistic screening candidates for the DLBP trial.

Rates are chosen so that roughly 55-65 % of consented candidates pass screening, in line with
single-centre discogenic-pain trials, where the imaging criteria (Modic I/II, concordant
single-level discography) and pain thresholds exclude most: each candidate draws a profile and
each exclusion-prone finding is sampled with its own rate, so the failing criteria vary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

SOURCES = ["inpatient_referral", "records_search_phone", "flyers_website"]
SOURCE_P = [0.45, 0.35, 0.20]
SURNAMES = ["Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu", "Xu", "Sun", "Ma", "Zhu", "Hu", "Guo"]
GIVEN = ["Wei", "Fang", "Min", "Jing", "Lei", "Yan", "Jun", "Hui", "Tao", "Ling", "Qiang", "Xia", "Ping", "Hong", "Bo", "Na"]


@dataclass
class Candidate:
    index: int
    full_name: str
    initials: str
    sex: str
    phone: str
    source: str
    prescreened_on: date
    consents: bool
    consent_delay_days: int
    evidence: dict = field(default_factory=dict)

    @property
    def consent_date(self) -> date:
        return self.prescreened_on + timedelta(days=self.consent_delay_days)


FAILURES_TABLE = [
    # (relative frequency, evidence that fails a criterion)
    (0.16, lambda rng, sex: {"modic_type": str(rng.choice(["none", "III"]))}),
    (0.14, lambda rng, sex: {"discography_l45_only_concordant": False}),
    (0.12, lambda rng, sex: {"disc_height_loss_percent": round(float(rng.uniform(5, 19.5)), 1)}),
    (0.10, lambda rng, sex: {"odi_percent": round(float(rng.uniform(10, 29.5)), 1)}),
    (0.08, lambda rng, sex: {"vas_mm": int(rng.integers(15, 40))}),
    (0.06, lambda rng, sex: {"lbp_duration_months": int(rng.integers(3, 12))}),
    (0.06, lambda rng, sex: {"pfirrmann_grade": 2}),
    (0.06, lambda rng, sex: {"slip_mm": round(float(rng.uniform(3.5, 8)), 1)}),
    (0.05, lambda rng, sex: {"surgery_required": True}),
    (0.04, lambda rng, sex: {"hbsag": "positive"}),
    (0.04, lambda rng, sex: {"bmd_t_score": round(float(rng.uniform(-3.5, -2.5)), 1)}),
    (0.03, lambda rng, sex: {"intradiscal_injection_last_year": True}),
    (0.03, lambda rng, sex: {"systemic_disease_history": True}),
    (0.03, lambda rng, sex: {"pregnancy_or_lactation": sex == "F", "spondylitis_or_fracture": sex == "M"}),
]
FAILURES = [f for _, f in FAILURES_TABLE]
FAILURE_P = np.array([w for w, _ in FAILURES_TABLE]) / sum(w for w, _ in FAILURES_TABLE)


def _p(rng, prob: float) -> bool:
    return bool(rng.random() < prob)


def generate_candidates(n: int, seed: int, start: date, days: int) -> list[Candidate]:
    """``n`` candidates pre-screened between ``start`` and ``start + days``, in date order."""
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.integers(0, max(days, 1), size=n))
    out = []
    for i in range(n):
        sex = "F" if _p(rng, 0.48) else "M"
        surname, given = rng.choice(SURNAMES), rng.choice(GIVEN)
        age = float(np.clip(rng.normal(44, 11), 17, 78))
        pre = start + timedelta(days=int(offsets[i]))
        born = pre - timedelta(days=int(age * 365.25))
        # most referred candidates have the typical DLBP picture; a share carry one or two
        # findings that fail a criterion, drawn with realistic relative frequencies
        evidence = {
            "date_of_birth": born.isoformat(),
            "lbp_cough_sneeze": _p(rng, 0.7),
            "lbp_sitting_bending": True,
            "lbp_posture": _p(rng, 0.6),
            "lbp_relief_lying": _p(rng, 0.75),
            "lbp_duration_months": int(np.clip(rng.lognormal(3.3, 0.5), 12, 360)),
            "vas_mm": int(np.clip(round(rng.normal(64, 10)), 40, 100)),
            "odi_percent": round(float(np.clip(rng.normal(46, 10), 30, 90)), 1),
            "modic_type": str(rng.choice(["I", "II"], p=[0.45, 0.55])),
            "pfirrmann_grade": int(rng.choice([3, 4, 5], p=[0.4, 0.45, 0.15])),
            "discography_l45_only_concordant": True,
            "disc_height_loss_percent": round(float(np.clip(rng.normal(32, 7), 20, 70)), 1),
            "hbsag": "negative", "hiv": "negative", "cmv": "negative", "rubella": "negative",
            "spondylitis_or_fracture": False,
            "surgery_required": False,
            "intradiscal_injection_last_year": False,
            "slip_mm": round(float(np.clip(rng.gamma(1.5, 0.6), 0, 3)), 1),
            "angulation_deg": round(float(np.clip(rng.normal(8, 3), 0, 15)), 1),
            "bmd_t_score": round(float(np.clip(rng.normal(-0.6, 0.7), -2.4, 3)), 1),
            "pregnancy_or_lactation": False,
            "mental_or_addiction": False,
            "systemic_disease_history": False,
            "allergy_ha_contrast_anaesthetic": False,
            "previous_cell_product": False,
        }
        if _p(rng, 0.33):
            for _ in range(int(rng.choice([1, 2], p=[0.8, 0.2]))):
                kind = FAILURES[int(rng.choice(len(FAILURES), p=FAILURE_P))]
                evidence.update(kind(rng, sex))
        out.append(Candidate(
            index=i + 1,
            full_name=f"{surname} {given}",
            initials=(surname[0] + given[0]).upper(),
            sex=sex,
            phone=f"138{rng.integers(10_000_000, 99_999_999)}",
            source=str(rng.choice(SOURCES, p=SOURCE_P)),
            prescreened_on=pre,
            consents=_p(rng, 0.88),
            consent_delay_days=int(rng.integers(0, 8)),
            evidence=evidence,
        ))
    return out
