"""Adverse events of the DLBP trial at plausible rates (pure, seeded; no Django).

Per participant, from the procedure dates: bruising after liposuction (common, mild, related to
liposuction), injection-site pain (common, mild, related to the injection), a transient flare of
back pain after the intradiscal injection (frequent, mild to severe), an unrelated upper
respiratory infection (background), and rarely discitis (serious: hospitalisation). Rates
follow published intradiscal cell-therapy and discography series: most events mild and
self-limiting, discitis well under 5 % of injections. Events with onset after ``today`` are not
produced; events still running on ``today`` have no end and are "recovering"."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import numpy as np

# term, MedDRA PT code (empty where not coded here), per-participant probability
KINDS = {
    "bruising": ("Post-liposuction bruising", "", 0.35),
    "injection_pain": ("Injection-site pain", "10022086", 0.30),
    "back_pain": ("Transient back-pain flare", "10003988", 0.22),
    "uri": ("Upper respiratory tract infection", "10046306", 0.12),
    "discitis": ("Discitis", "", 0.03),
}
MEDDRA_VERSION = "27.0"
# a higher cell dose gives somewhat more injection-related pain (used only when the arm is known)
DOSE_FACTOR = {"high": 1.3, "mid": 1.1, "low": 1.0, "control": 0.8}


@dataclass
class SimParticipant:
    id: int
    consented_on: date
    liposuction_on: date
    injection_on: date
    arm: str | None = None


@dataclass
class SimEvent:
    participant_id: int
    kind: str
    fields: dict = field(default_factory=dict)


def _at(day: date, rng, hours=(8, 20)) -> datetime:
    """A naive local clock time on ``day`` (the caller attaches the site's zone)."""
    return datetime.combine(day, time(int(rng.integers(*hours)), int(rng.integers(0, 60))))


def _event(kind, pid, rng, onset_day, today, *, grade, days, lipo, inj, prod, expected="expected",
           action="none", serious=False, criteria=(), description=""):
    if onset_day > today:
        return None
    term, code, _ = KINDS[kind]
    onset = _at(onset_day, rng)
    end_day = onset_day + timedelta(days=int(days))
    ended = end_day < today
    fields = dict(term=term, meddra_pt_code=code, meddra_version=MEDDRA_VERSION if code else "",
                  description=description, onset_at=onset, end_at=_at(end_day, rng) if ended else None,
                  serious=serious, serious_criteria=list(criteria), grade=int(grade),
                  causality_liposuction=lipo, causality_injection=inj, causality_product=prod,
                  expectedness=expected, action_taken=action, outcome="recovered" if ended else "recovering")
    if serious:
        known_day = onset_day + timedelta(days=int(rng.integers(0, 2)))
        fields["first_knowledge_at"] = max(onset + timedelta(hours=2), _at(min(known_day, today), rng))
    if fields["end_at"] is not None and fields["end_at"] <= onset:
        fields["end_at"] = onset + timedelta(hours=6)
    return SimEvent(pid, kind, fields)


def simulate_adverse_events(participants: list[SimParticipant], *, seed: int, today: date) -> list[SimEvent]:
    """The events of all participants, in onset order. The same seed gives the same events."""
    rng = np.random.default_rng([seed, 6])
    out: list[SimEvent] = []
    for p in participants:
        factor = DOSE_FACTOR.get(p.arm or "", 1.0)
        lipo_done, inj_done = p.liposuction_on <= today, p.injection_on <= today
        if lipo_done and rng.random() < KINDS["bruising"][2]:
            out.append(_event("bruising", p.id, rng, p.liposuction_on + timedelta(days=int(rng.integers(0, 2))), today,
                              grade=1, days=rng.integers(5, 15), lipo=str(rng.choice(["probable", "definite"])),
                              inj="not_applicable", prod="not_applicable",
                              description="Bruising of the abdominal harvest site."))
        if inj_done and rng.random() < min(0.95, KINDS["injection_pain"][2] * factor):
            out.append(_event("injection_pain", p.id, rng, p.injection_on + timedelta(days=int(rng.integers(0, 2))), today,
                              grade=1 + int(rng.random() < 0.25), days=rng.integers(1, 7), lipo="not_related",
                              inj="probable", prod=str(rng.choice(["unlikely", "possible"])),
                              description="Pain at the needle entry site."))
        if inj_done and rng.random() < min(0.95, KINDS["back_pain"][2] * factor):
            grade = int(rng.choice([1, 2, 3], p=[0.45, 0.45, 0.10]))
            out.append(_event("back_pain", p.id, rng, p.injection_on + timedelta(days=int(rng.integers(1, 15))), today,
                              grade=grade, days=rng.integers(3, 22), lipo="not_related", inj="possible",
                              prod=str(rng.choice(["unlikely", "possible"])),
                              action="treatment" if grade >= 2 else "none",
                              description="Transient increase of low back pain; analgesics."))
        if rng.random() < KINDS["uri"][2]:
            start = p.consented_on + timedelta(days=3)
            span = max(1, (today - start).days)
            out.append(_event("uri", p.id, rng, start + timedelta(days=int(rng.integers(0, span))), today,
                              grade=1, days=rng.integers(4, 10), lipo="not_related",
                              inj="not_related" if inj_done else "not_applicable",
                              prod="not_related" if inj_done else "not_applicable", description="Common cold."))
        if inj_done and rng.random() < KINDS["discitis"][2]:
            out.append(_event("discitis", p.id, rng, p.injection_on + timedelta(days=int(rng.integers(7, 31))), today,
                              grade=3, days=rng.integers(20, 45), lipo="not_related", inj="probable", prod="possible",
                              expected="unexpected", action="hospitalised", serious=True, criteria=["hospitalisation"],
                              description="Fever and severe back pain; MRI consistent with L4-5 discitis; "
                                          "intravenous antibiotics."))
    events = [e for e in out if e is not None]
    events.sort(key=lambda e: (e.fields["onset_at"], e.participant_id))
    return events
