"""Realistic screening candidates: the built-in model of the DLBP trial, and any other protocol
from its eligibility rules (``annulus.simulator.evidence``).

``generate_candidates(n, seed, start, days)`` is the built-in model; with ``protocol=`` it serves
that protocol: the built-in model when the protocol's evidence fields are the ones it makes
(``builtin_candidates_fit``; its candidates are then the same as without the protocol, plus the
site), else candidates made from the protocol's own fields, rules, sites and recruitment sources.

Built-in model: rates are chosen so that roughly 55-65 % of consented candidates pass screening, in line with
single-centre discogenic-pain trials, where the imaging criteria (Modic I/II, concordant
single-level discography) and pain thresholds exclude most: each candidate draws a profile and
each exclusion-prone finding is sampled with its own rate, so the failing criteria vary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from .evidence import CONSENT_P, FAIL_SHARE, FEMALE_P, protocol_evidence, site_weights, source_weights

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
    # set when the candidates are made for a protocol: the site that recruits the candidate, and
    # the criteria the evidence was made to fail (empty: eligible), as the protocol's evaluator finds
    site: str | None = None
    intended_failing: tuple = ()

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


def generate_candidates(n: int, seed: int, start: date, days: int, protocol=None) -> list[Candidate]:
    """``n`` candidates pre-screened between ``start`` and ``start + days``, in date order. Without
    ``protocol`` (or for a protocol the built-in model fits) the DLBP model; else from the
    protocol's eligibility rules. The same arguments give the same candidates."""
    if protocol is not None:
        if not builtin_candidates_fit(protocol):
            return protocol_candidates(protocol, n, seed=seed, start=start, days=days)
        out = _builtin_candidates(n, seed, start, days)
        ids, weights = site_weights(protocol, seed)
        site_rng = np.random.default_rng([seed, 32])  # its own stream: the rest stays the same
        for c in out:
            c.site = ids[int(site_rng.choice(len(ids), p=weights))]
        return out
    return _builtin_candidates(n, seed, start, days)


def _builtin_candidates(n: int, seed: int, start: date, days: int) -> list[Candidate]:
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


def builtin_evidence_fields() -> frozenset[str]:
    """The evidence fields the built-in model fills."""
    return frozenset(_builtin_candidates(1, 0, date(2000, 1, 1), 1)[0].evidence)


def builtin_candidates_fit(protocol) -> bool:
    """The built-in model serves a protocol whose evidence fields and recruitment sources are
    the ones it makes."""
    ids = {f.id for f in protocol.eligibility.fields}
    return ids == builtin_evidence_fields() and set(SOURCES) <= set(protocol.recruitment_sources)


def protocol_candidates(protocol, n: int, *, seed: int, start: date, days: int) -> list[Candidate]:
    """``n`` candidates of any protocol, from its eligibility fields and rules, sites and
    recruitment sources (``annulus.simulator.evidence``), pre-screened between ``start`` and
    ``start + days`` in date order."""
    rng = np.random.default_rng([seed, 17])
    offsets = np.sort(rng.integers(0, max(days, 1), size=n))
    site_ids, site_w = site_weights(protocol, seed)
    sources, source_w = list(protocol.recruitment_sources), source_weights(protocol)
    out = []
    for i in range(n):
        sex = "F" if _p(rng, FEMALE_P) else "M"
        surname, given = str(rng.choice(SURNAMES)), str(rng.choice(GIVEN))
        pre = start + timedelta(days=int(offsets[i]))
        fail = 0
        if _p(rng, FAIL_SHARE):
            fail = int(rng.choice([1, 2], p=[0.8, 0.2]))
        evidence, failing = protocol_evidence(protocol, rng, pre, sex, fail=fail)
        out.append(Candidate(
            index=i + 1,
            full_name=f"{surname} {given}",
            initials=(surname[0] + given[0]).upper(),
            sex=sex,
            phone=f"138{rng.integers(10_000_000, 99_999_999)}",
            source=sources[int(rng.choice(len(sources), p=source_w))],
            prescreened_on=pre,
            consents=_p(rng, CONSENT_P),
            consent_delay_days=int(rng.integers(0, 8)),
            evidence=evidence,
            site=site_ids[int(rng.choice(len(site_ids), p=site_w))],
            intended_failing=failing,
        ))
    return out
