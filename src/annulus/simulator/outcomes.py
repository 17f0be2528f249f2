"""Seeded answers to every eCRF form of any protocol's schedule (pure, no Django).

``ProtocolOutcomes(protocol).participant(arm, seed=, index=, evidence=)`` gives one participant's
item answers at every visit of the schedule (each form's ``FormSpec`` from
``annulus.instruments.forms.spec_for``; procedure records are left to the services that record
the procedures), the visits missed, and the visit after which the participant drops out. Every
number comes from the protocol; nothing here names a trial.

The model, chosen to look like the trial the protocol expects:

* Each participant has a latent severity in [0, 1] (1 = worst). At baseline it is drawn from
  Beta(4, 3.3) (mean 0.55), or, when the participant's screening evidence holds a score that a
  form asks again (an evidence field with the same range as a number item of the form, sharing
  a word of its id, and used by a criterion or a randomisation factor), from that screening
  value: the item's answer at the baseline visit is the screening value give or take one step
  (60 % the same), so a participant stays in the stratum the screening value put them in.
* Days count from the treatment procedure (``treatment: true``); visits before it carry the
  baseline severity. Improvement after it = (placebo response 0.12 + arm effect) x
  (1 - exp(-days / tau)), tau = 15 % of the last visit's day (7-45 days), times a per-person
  responder factor N(1, 0.3), plus visit noise N(0, 0.14). The arm effect of the highest dose
  is the protocol's standardised difference (``sample_size.delta / sample_size.sd``) x 0.2, the
  model's SD of a change; lower doses follow an Emax curve (ED50 half the highest
  ``dose_score``), and the control arm has none.
* Each item of an instrument form follows the severity with its own person-level offset
  (N(0, 0.08)) and visit noise (N(0, 0.10)). Which end of an item is worse is found from the
  instrument's own scoring and the direction of benefit of the form's analysis parameters
  (``lower_is_better``): the item is moved from its lowest to its highest answer and the score
  watched; so NRS falls and KOOS rises when a participant improves. A form without a declared
  parameter is taken as a symptom scale (a higher answer is worse). One optional item in a
  hundred is left blank when the form still scores.
* Laboratory values: per participant and analyte a level within the reference range (mean at
  35 % of the range, SD a fifth of it; visit noise), 3 % of values outside the range (each such
  value judged: 20 % clinically significant); qualitative analytes read the normal result.
  Vital signs: normal adult values within the protocol's plausibility limits. The
  adverse-event review says yes at 6 % of the visits after treatment.
* Each follow-up visit is missed with probability 5 %; dropout follows an exponential time
  with 90 % of the protocol's assumed dropout gone by the last visit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from annulus.errors import RuleViolation
from annulus.instruments import INSTRUMENTS, InstrumentError
from annulus.instruments.forms import AE_REVIEW, spec_for
from annulus.instruments.vitals import ALIASES as VITAL_ALIASES
from annulus.protocol.schema import CONSENT_ANCHOR, _rule_fields

PLACEBO = 0.12
CHANGE_SD = 0.2
VISIT_SD = 0.14
ITEM_SD = 0.10
ITEM_OFFSET_SD = 0.08
MISS_P = 0.05
BLANK_P = 0.01
LAB_OUT_P = 0.03
AE_YES_P = 0.06
# normal adult vital signs (mean, SD, decimals) by the vital-sign ids the instruments know
VITAL_NORMS = {"temperature": (36.6, 0.25, 1), "pulse": (74.0, 8.0, 0), "respiration": (16.0, 2.0, 0),
               "systolic": (126.0, 13.0, 0), "diastolic": (78.0, 8.0, 0)}


@dataclass
class ProtocolTrajectory:
    """One participant's answers: ``visits`` maps a visit id to ``{form id: {item id: answer}}``
    (the visits attended, up to dropout), ``missed`` the visits missed, ``dropout_after`` the
    last visit attended before dropping out (``None``: stays to the end). ``days`` gives each
    visit's day counted from the treatment."""

    arm: str
    dose: float
    severity0: float
    visits: dict = field(default_factory=dict)
    missed: set = field(default_factory=set)
    dropout_after: str | None = None
    days: dict = field(default_factory=dict)


def _tokens(text: str) -> set[str]:
    return {t for t in re.split(r"[^a-z0-9]+", text.lower()) if t}


def visit_days(protocol) -> dict[str, int]:
    """Each visit's target day counted from the treatment procedure (negative: before it)."""
    procedures = {p.id: p for p in protocol.procedure_list}
    cache: dict[str, int] = {CONSENT_ANCHOR: 0}

    def event_day(name: str, depth: int = 0) -> int:
        if name in cache:
            return cache[name]
        p = procedures.get(name)
        day = 0
        if p is not None and p.timing is not None and depth < 20:
            day = event_day(p.timing.after, depth + 1) + p.timing.offset_days
        elif p is not None:
            # a procedure without timing: the day of the visit that does it, if that visit has one
            visit = next((v for v in protocol.schedule.visits if v.procedure == name and v.anchor != name), None)
            if visit is not None and depth < 20:
                day = event_day(visit.anchor, depth + 1) + visit.offset_days
        cache[name] = day
        return day

    treatment = protocol.treatment_procedure
    if treatment is not None:
        zero = event_day(treatment.id)
    else:
        follow = next((v for v in protocol.schedule.visits if v.follow_up), None)
        zero = event_day(follow.anchor) if follow is not None else 0
    return {v.id: event_day(v.anchor) + v.offset_days - zero for v in protocol.schedule.visits}


def _item_values(item) -> list[float] | None:
    """The answers an item can take, lowest first (codes), or its [min, max] (numbers)."""
    if item.kind == "code":
        try:
            return sorted(float(c[0]) for c in item.choices)
        except ValueError:
            return None
    if item.kind == "number" and item.min is not None and item.max is not None:
        return [float(item.min), float(item.max)]
    return None


def _score_value(instrument, answers: list) -> float | None:
    try:
        result = instrument.score(answers)
    except (InstrumentError, ValueError, TypeError):
        return None
    if result.score is not None:
        return float(result.score)
    numbers = [v for v in result.summary.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return float(np.mean(numbers)) if numbers else None


def _as_answer(item, value: float):
    return int(round(value)) if item.kind == "code" or item.step == "1" or float(value).is_integer() else value


class ProtocolOutcomes:
    """The answer model of one protocol (built once; then ``participant`` per participant)."""

    def __init__(self, protocol):
        self.protocol = protocol
        self.days = visit_days(protocol)
        self.baseline = protocol.schedule.baseline_visit
        self.specs = {}
        self.instrument_of = {}
        for f in protocol.schedule.forms:
            if f.procedure:
                continue
            try:
                self.specs[f.id] = spec_for(protocol, f.id)
            except RuleViolation:
                continue
            key = f.instrument or f.id
            if not f.panel and key in INSTRUMENTS:
                self.instrument_of[f.id] = INSTRUMENTS[key]
        vital_ids = {v.id for v in protocol.vital_signs}
        self.vital_forms = {fid for fid, s in self.specs.items()
                            if vital_ids and {i.id for i in s.items} == vital_ids and "panel" not in s.extra}
        self.directions = {fid: self._directions(fid) for fid in self.instrument_of}
        arms = protocol.arms
        top = max((a.dose_score for a in arms if not a.control), default=0.0)
        ed50 = top / 2 if top > 0 else 1.0
        d = protocol.sample_size.delta / protocol.sample_size.sd
        self.effect = {}
        for a in arms:
            if a.control or top <= 0:
                frac = 0.0 if a.control else 1.0
            else:
                frac = (a.dose_score / (ed50 + a.dose_score)) / (top / (ed50 + top))
            self.effect[a.id] = d * CHANGE_SD * frac
        last = max(self.days.values()) if self.days else 1
        self.tau = float(np.clip(0.15 * max(last, 1), 7, 45))
        self.last_day = max(last, 1)
        self.dropout = protocol.sample_size.dropout * 0.9
        self.links = self._screening_links()

    # -- which end of an item is worse ------------------------------------------------------------

    def _lower_is_better(self, form_id: str) -> bool:
        plan = self.protocol.analysis
        codes = [p.code for p in plan.parameters]
        for ep in ([plan.primary] if plan.primary else []) + list(plan.secondary):
            codes.append(ep.parameter)
        found = {plan.parameter_source(c) for c in codes}
        directions = {lib for src in found if src is not None for form, lib in [src] if form == form_id}
        return directions != {False}  # no parameter, or lower is better: a symptom scale

    def _directions(self, form_id: str) -> dict[str, int]:
        """item id -> +1 when a higher answer is worse, -1 when it is better."""
        spec, instrument = self.specs[form_id], self.instrument_of[form_id]
        lower_better = self._lower_is_better(form_id)
        ranges = [_item_values(i) for i in spec.items]
        mid = [None if r is None else _as_answer(i, r[len(r) // 2] if i.kind == "code" else (r[0] + r[-1]) / 2)
               for i, r in zip(spec.items, ranges)]
        out = {}
        for j, (item, r) in enumerate(zip(spec.items, ranges)):
            if r is None:
                continue
            low, high = list(mid), list(mid)
            low[j], high[j] = _as_answer(item, r[0]), _as_answer(item, r[-1])
            s_low, s_high = _score_value(instrument, low), _score_value(instrument, high)
            rising = None if s_low is None or s_high is None or s_low == s_high else s_high > s_low
            if rising is None:
                out[item.id] = 1
            else:
                out[item.id] = 1 if rising == lower_better else -1
        return out

    def _screening_links(self) -> dict[tuple[str, str], str]:
        """(form id, item id) -> the evidence field that measured it at screening."""
        used = set()
        for c in list(self.protocol.eligibility.inclusion) + list(self.protocol.eligibility.exclusion):
            used |= _rule_fields(c.rule)
        rand = self.protocol.randomisation
        used |= {f.source for f in (rand.strata or []) + (rand.factors or [])}
        links = {}
        for ev in self.protocol.eligibility.fields:
            if ev.type not in ("integer", "decimal") or ev.id not in used or ev.min is None or ev.max is None:
                continue
            for fid in self.instrument_of:
                for item in self.specs[fid].items:
                    if (item.kind == "number" and item.min == ev.min and item.max == ev.max
                            and _tokens(ev.id) & (_tokens(item.id) | _tokens(fid))):
                        links[(fid, item.id)] = ev.id
        return links

    # -- one participant --------------------------------------------------------------------------

    def participant(self, arm: str, *, seed: int, index: int, evidence: dict | None = None) -> ProtocolTrajectory:
        """One participant of ``arm`` (an arm id of the protocol); ``index`` separates the
        participants of one seed; ``evidence`` (the candidate's screening evidence) anchors the
        baseline on the screening scores. The same arguments give the same answers."""
        protocol = self.protocol
        arm_def = protocol.arm(arm)
        rng = np.random.default_rng([seed, index, 78])
        evidence = evidence or {}
        linked = {k: evidence.get(v) for k, v in self.links.items() if evidence.get(v) is not None}
        if linked:
            (fid, iid), value = next(iter(linked.items()))
            item = self.specs[fid].item(iid)
            s0 = float(np.clip((float(value) - item.min) / (item.max - item.min), 0, 1))
        else:
            s0 = float(rng.beta(4.0, 3.3))
        responder = float(np.clip(rng.normal(1.0, 0.3), 0.1, 2.0))
        offsets = {fid: {i.id: float(rng.normal(0, ITEM_OFFSET_SD)) for i in self.specs[fid].items}
                   for fid in self.instrument_of}
        lab_z = {}
        rate = -math.log(1 - self.dropout) / self.last_day if self.dropout > 0 else 0.0
        dropout_day = float(rng.exponential(1 / rate)) if rate > 0 else math.inf
        traj = ProtocolTrajectory(arm=arm, dose=float(arm_def.dose_score), severity0=round(s0, 4), days=dict(self.days))
        baseline_id = self.baseline.id if self.baseline is not None else None
        last_attended = None
        for visit in sorted(protocol.schedule.visits, key=lambda v: self.days[v.id]):
            day = self.days[visit.id]
            if day > 0 and day > dropout_day:
                traj.dropout_after = last_attended or baseline_id
                break
            if day > 0 and visit.id != baseline_id and rng.random() < MISS_P:
                traj.missed.add(visit.id)
                continue
            if day > 0:
                gain = (PLACEBO + self.effect[arm]) * (1 - math.exp(-day / self.tau)) * responder
                s = float(np.clip(s0 - gain + rng.normal(0, VISIT_SD), 0, 1))
            else:
                s = s0
            forms = {}
            for fid in visit.forms:
                spec = self.specs.get(fid)
                if spec is None:
                    continue
                if "panel" in spec.extra:
                    forms[fid] = self._labs(rng, spec.extra["panel"], lab_z)
                elif fid in self.vital_forms:
                    forms[fid] = self._vitals(rng)
                elif spec is AE_REVIEW:
                    forms[fid] = {"new_events": "yes" if day > 0 and rng.random() < AE_YES_P else "no"}
                elif fid in self.instrument_of:
                    forms[fid] = self._instrument(rng, fid, s, offsets[fid],
                                                  linked if visit.id == baseline_id or day <= 0 else {})
                else:
                    forms[fid] = self._plain(rng, spec)
            traj.visits[visit.id] = forms
            last_attended = visit.id
        return traj

    def _instrument(self, rng, fid: str, s: float, offsets: dict, linked: dict) -> dict:
        spec, directions = self.specs[fid], self.directions[fid]
        out = {}
        for item in spec.items:
            values = _item_values(item)
            if values is None:
                continue
            if (fid, item.id) in linked:
                step = float(rng.choice([-1, 0, 1], p=[0.2, 0.6, 0.2]))
                v = float(np.clip(float(linked[(fid, item.id)]) + step, values[0], values[-1]))
                out[item.id] = _as_answer(item, v)
                continue
            bad = float(np.clip(s + offsets[item.id] + rng.normal(0, ITEM_SD), 0, 1))
            position = bad if directions.get(item.id, 1) > 0 else 1 - bad
            if item.kind == "code":
                out[item.id] = _as_answer(item, values[int(round(position * (len(values) - 1)))])
            else:
                v = values[0] + position * (values[-1] - values[0])
                out[item.id] = _as_answer(item, round(v) if item.step == "1" else round(v, 1))
        blanks = [i.id for i in spec.items if not i.required and i.id in out and rng.random() < BLANK_P]
        if blanks:
            trial = {k: v for k, v in out.items() if k not in blanks}
            answers = [trial.get(i.id) for i in spec.items]
            result = self.instrument_of[fid].score(answers)
            summary = [v for v in result.summary.values() if not isinstance(v, (list, dict))]
            if result.score is not None or (summary and all(v is not None for v in summary)):
                out = trial
        return out

    def _labs(self, rng, panel, lab_z: dict) -> dict:
        out = {}
        for a in panel.analytes:
            if a.kind == "qualitative":
                out[a.id] = a.normal or "negative"
                continue
            low = a.low if a.low is not None else 0.0
            high = a.high if a.high is not None else (low * 2 if low > 0 else 1.0)
            span = max(high - low, 1e-9)
            decimals = 0 if span >= 20 else 1 if span >= 2 else 2
            z = lab_z.setdefault((panel.id, a.id), float(rng.normal(0, 1)))
            value = low + 0.35 * span + span / 5 * (0.8 * z + 0.5 * float(rng.normal(0, 1)))
            judged = None
            if rng.random() < LAB_OUT_P:
                value = high * rng.uniform(1.05, 1.6) if (rng.random() < 0.7 or low <= 0) else low * rng.uniform(0.6, 0.95)
                judged = "yes" if rng.random() < 0.2 else "no"
            value = max(round(float(value), decimals), 0.0)
            out[a.id] = int(value) if decimals == 0 else value
            outside = (a.low is not None and out[a.id] < a.low) or (a.high is not None and out[a.id] > a.high)
            if outside:
                out[f"{a.id}__cs"] = judged or "no"
        return out

    def _vitals(self, rng) -> dict:
        out = {}
        for v in self.protocol.vital_signs:
            norm = VITAL_NORMS.get(VITAL_ALIASES.get(v.id, v.id))
            if norm is None:
                mean, sd, decimals = (v.min + v.max) / 2, (v.max - v.min) / 20, (1 if v.max - v.min < 20 else 0)
            else:
                mean, sd, decimals = norm
            value = float(np.clip(rng.normal(mean, sd), v.min, v.max))
            out[v.id] = round(value, decimals) if decimals else int(round(value))
        ids = {VITAL_ALIASES.get(v.id, v.id): v.id for v in self.protocol.vital_signs}
        sys_id, dia_id = ids.get("systolic"), ids.get("diastolic")
        if sys_id and dia_id and out[dia_id] >= out[sys_id] - 20:
            out[dia_id] = max(int(out[sys_id]) - 25, int(self.protocol_vital(dia_id).min))
        return out

    def protocol_vital(self, vital_id: str):
        return next(v for v in self.protocol.vital_signs if v.id == vital_id)

    def _plain(self, rng, spec) -> dict:
        """A form the model has no instrument for: middle numbers, the first choice, no text."""
        out = {}
        for item in spec.items:
            values = _item_values(item)
            if values is not None:
                out[item.id] = _as_answer(item, values[len(values) // 2] if item.kind == "code"
                                          else round((values[0] + values[-1]) / 2, 1))
            elif item.kind == "choice" and item.required and item.choices:
                out[item.id] = next(c[0] for c in item.choices if c[0] != "")
            elif item.kind == "bool" and item.required:
                out[item.id] = False
        return out


_MODELS: dict[int, tuple[object, ProtocolOutcomes]] = {}


def outcomes_for(protocol) -> ProtocolOutcomes:
    """The answer model of ``protocol`` (built once per protocol object)."""
    entry = _MODELS.get(id(protocol))
    if entry is None or entry[0] is not protocol:
        if len(_MODELS) > 16:
            _MODELS.clear()
        entry = (protocol, ProtocolOutcomes(protocol))
        _MODELS[id(protocol)] = entry
    return entry[1]


def simulate_protocol_participant(protocol, arm: str, *, seed: int, index: int,
                                  evidence: dict | None = None) -> ProtocolTrajectory:
    """One participant's answers at every visit of ``protocol`` (see the module docstring)."""
    return outcomes_for(protocol).participant(arm, seed=seed, index=index, evidence=evidence)


def simulate_protocol_arms(protocol, n_per_arm: int, *, seed: int) -> dict[str, list[ProtocolTrajectory]]:
    """Whole arms without screening evidence, for checking the arms' effects."""
    model = outcomes_for(protocol)
    return {a.id: [model.participant(a.id, seed=seed, index=i + 1000 * k) for i in range(n_per_arm)]
            for k, a in enumerate(protocol.arms)}
