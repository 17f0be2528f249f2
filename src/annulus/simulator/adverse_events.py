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


# ---- any protocol -------------------------------------------------------------------------------
#
# Events of a trial the simulator has no model for, from the protocol: the follow-up length (the
# last visit's day after the treatment procedure), the arms' dose scores and the control arm.
# Background events (unrelated to the product) occur at monthly rates over the follow-up in every
# arm; product-related events start in the first weeks of treatment (exponential onset, mean 14
# days) with a per-participant probability scaled by the arm's dose relative to the highest
# (the control arm: half the lowest rate, the nocebo response of a blinded trial). A rare serious
# event of each kind: pneumonia needing hospitalisation (background), a hypersensitivity reaction
# (related, unexpected). The causality to the product is judged; so is the causality to each
# procedure the protocol names (``safety.causality_of``): "not_applicable" (not yet done) before
# the treatment when the procedure is the treatment, else mostly not related - drawn from a
# stream of its own, so that the other draws do not depend on how many procedures are named.

# kind: (term, MedDRA PT code, rate per participant-month, grade probabilities 1/2/3, days lasting)
BACKGROUND = {
    "nasopharyngitis": ("Nasopharyngitis", "10028810", 0.030, (0.8, 0.2, 0.0), (4, 10)),
    "headache": ("Headache", "10019211", 0.015, (0.7, 0.3, 0.0), (1, 4)),
    "back_pain": ("Back pain", "10003988", 0.010, (0.6, 0.35, 0.05), (3, 21)),
    "hypertension": ("Hypertension", "10020772", 0.004, (0.5, 0.5, 0.0), (30, 120)),
    "fall": ("Fall", "10016173", 0.004, (0.7, 0.25, 0.05), (1, 3)),
}
# kind: (term, MedDRA PT code, probability per participant at the highest dose, grades, days)
RELATED = {
    "nausea": ("Nausea", "10028813", 0.08, (0.75, 0.25, 0.0), (2, 14)),
    "dyspepsia": ("Dyspepsia", "10013946", 0.07, (0.8, 0.2, 0.0), (3, 21)),
    "diarrhoea": ("Diarrhoea", "10012735", 0.05, (0.8, 0.2, 0.0), (2, 7)),
    "dizziness": ("Dizziness", "10013573", 0.04, (0.85, 0.15, 0.0), (1, 7)),
    "alt_increased": ("Alanine aminotransferase increased", "10001551", 0.02, (0.6, 0.3, 0.1), (14, 42)),
}
SERIOUS_BACKGROUND = ("Pneumonia", "10035664", 0.0015)  # per participant-month
SERIOUS_RELATED = ("Hypersensitivity", "10020751", 0.005)  # per participant at the highest dose


@dataclass
class TreatedParticipant:
    """A participant of any protocol: consent, first day of treatment (the procedure with
    ``treatment: true``), arm id (``None``: not known, counted as the highest dose's half)."""

    id: int
    consented_on: date
    treated_on: date
    arm: str | None = None


def _dose_fraction(protocol, arm_id: str | None) -> float:
    top = max((a.dose_score for a in protocol.arms if not a.control), default=0.0)
    arm = next((a for a in protocol.arms if a.id == arm_id), None)
    if arm is None:
        return 0.5
    if arm.control:
        return 0.0
    return arm.dose_score / top if top > 0 else 1.0


def _grade(rng, probabilities) -> int:
    return int(rng.choice([1, 2, 3], p=list(probabilities)))


def simulate_protocol_adverse_events(protocol, participants: list[TreatedParticipant], *, seed: int,
                                     today: date) -> list[SimEvent]:
    """The events of all participants of ``protocol``, in onset order (the fields of
    ``simulate_adverse_events``'s events). The same seed gives the same events."""
    from .outcomes import visit_days

    rng = np.random.default_rng([seed, 7])
    judged = np.random.default_rng([seed, 8])  # the causalities to the protocol's procedures
    treatment = getattr(protocol.treatment_procedure, "id", None)
    procedures = [(c.field, c.procedure) for c in protocol.safety.causality_of]
    follow_days = max(max(visit_days(protocol).values()), 28)
    months = follow_days / 30.4
    lowest_related = min(p for _, _, p, _, _ in RELATED.values())
    out: list[SimEvent] = []

    def add(kind, p, onset_day, term, code, grade, days, *, product, expected="expected", serious=False,
            action=None, description=""):
        if onset_day > today or onset_day < p.consented_on:
            return
        fields_ = dict(term=term, meddra_pt_code=code, meddra_version=MEDDRA_VERSION if code else "",
                       description=description, serious=serious, grade=grade)
        onset = _at(onset_day, rng)
        end_day = onset_day + timedelta(days=int(days))
        ended = end_day < today
        fields_.update(onset_at=onset, end_at=_at(end_day, rng) if ended else None,
                       serious_criteria=["hospitalisation"] if serious else [],
                       **{field: ("not_applicable" if procedure == treatment and onset_day < p.treated_on
                                  else str(judged.choice(["not_related", "unlikely"], p=[0.8, 0.2])))
                          for field, procedure in procedures},
                       causality_product=product if onset_day >= p.treated_on else "not_applicable",
                       expectedness=expected,
                       action_taken=action or ("treatment" if grade >= 2 else "none"),
                       outcome="recovered" if ended else "recovering")
        if serious:
            known_day = onset_day + timedelta(days=int(rng.integers(0, 2)))
            fields_["first_knowledge_at"] = max(onset + timedelta(hours=2), _at(min(known_day, today), rng))
        if fields_["end_at"] is not None and fields_["end_at"] <= onset:
            fields_["end_at"] = onset + timedelta(hours=6)
        out.append(SimEvent(p.id, kind, fields_))

    for p in participants:
        frac = _dose_fraction(protocol, p.arm)
        start = p.consented_on + timedelta(days=1)
        end = p.treated_on + timedelta(days=int(follow_days))
        span = max(1, (end - start).days)
        for kind, (term, code, rate, grades, (d0, d1)) in BACKGROUND.items():
            if rng.random() < 1 - np.exp(-rate * months):
                onset = start + timedelta(days=int(rng.integers(0, span)))
                add(kind, p, onset, term, code, _grade(rng, grades), rng.integers(d0, d1 + 1),
                    product=str(rng.choice(["not_related", "unlikely"], p=[0.7, 0.3])))
        for kind, (term, code, prob, grades, (d0, d1)) in RELATED.items():
            chance = prob * frac if frac > 0 else lowest_related / 2
            if rng.random() < chance:
                onset = p.treated_on + timedelta(days=int(min(rng.exponential(14.0), follow_days)))
                add(kind, p, onset, term, code, _grade(rng, grades), rng.integers(d0, d1 + 1),
                    product=str(rng.choice(["possible", "probable"], p=[0.6, 0.4])))
        term, code, rate = SERIOUS_BACKGROUND
        if rng.random() < 1 - np.exp(-rate * months):
            onset = start + timedelta(days=int(rng.integers(0, span)))
            add("pneumonia", p, onset, term, code, 3, rng.integers(7, 21), product="not_related", serious=True,
                action="hospitalised", description="Community-acquired pneumonia; admitted for intravenous antibiotics.")
        term, code, prob = SERIOUS_RELATED
        if rng.random() < prob * frac:
            onset = p.treated_on + timedelta(days=int(rng.integers(1, 15)))
            add("hypersensitivity", p, onset, term, code, 3, rng.integers(3, 10), product="probable",
                expected="unexpected", serious=True, action="hospitalised",
                description="Generalised urticaria and facial swelling; study treatment stopped; admitted for observation.")
    out.sort(key=lambda e: (e.fields["onset_at"], e.participant_id))
    return out
