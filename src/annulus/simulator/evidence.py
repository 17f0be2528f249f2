"""Screening candidates for any protocol, from its eligibility fields and rules (pure, seeded).

Every value is derived from the protocol: for each criterion the simulator makes the evidence
that satisfies it (an inclusion rule holds, an exclusion rule does not), then about
``FAIL_SHARE`` of the candidates get one criterion (a fifth of those two) made to fail. The result
is checked with the protocol's own evaluator (``annulus.protocol.evaluate``): a candidate's
``intended_failing`` lists exactly the criteria the evaluator finds failing, so the share and
the reasons of screen failures are what the simulator meant them to be.

How values are drawn for each rule kind (no trial's names or numbers are written here):

* ``age_at_least``: an age a gamma-distributed span above the threshold (mean 20 years, kept
  below 90); a failing age lies 1-8 years below it (never below 16). The date of birth gives
  that age in whole years on the day of pre-screening.
* ``number``: the interval where the rule holds, within the field's ``min``/``max``. A value on
  the passing side is drawn near the threshold that bounds it (a gamma distance, a quarter of the
  room to the other end on average), or spread over the interval when the rule bounds both
  sides; a failing value lies just across a threshold. A field that is also a laboratory
  analyte of the protocol (same unit, id equal or starting with the analyte's id and ``_``) is
  drawn from that analyte's reference range instead, kept inside the passing interval.
  Integers are whole, decimals have one decimal place.
* ``flag``, ``one_of``, ``all_equal``, ``count_true``: the answers that make the rule hold or not;
  ``any`` and ``all`` combine their rules (an ``any`` that must fail has every rule fail, one
  that must hold has one rule hold).
* Fields no rule uses: a yes/no field is no, a choice field its first choice, a number the middle
  of its range.

A criterion on pregnancy or lactation (a field whose id says so) fails only for women. Sites
recruit unevenly (weights from a Dirichlet draw per seed); sex, initials, phone and the
recruitment source (the protocol's list, the first most common) are drawn as in the built-in
model.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np

from annulus.protocol.rules import age_in_years, evaluate
from annulus.protocol.schema import AgeAtLeast, AllEqual, AllOf, AnyOf, CountTrue, Flag, NumberRule, OneOf, _rule_fields

FAIL_SHARE = 0.30  # candidates with a screen failure (one criterion, a fifth of them two)
FEMALE_P = 0.55
CONSENT_P = 0.88
MAX_TRIES = 40


class _Unmakeable(Exception):
    """The rule cannot be given the wanted outcome within its fields' ranges."""


def _is_pregnancy_field(field_id: str) -> bool:
    return "pregnan" in field_id or "lactat" in field_id


# ---- number fields ----------------------------------------------------------------------------


def _interval(rule: NumberRule, spec) -> tuple[float, bool, float, bool]:
    """(low, low_open, high, high_open) where the rule holds, cut to the field's range."""
    lo, lo_open, hi, hi_open = -math.inf, False, math.inf, False
    if rule.min is not None:
        lo = rule.min
    if rule.min_exclusive is not None and rule.min_exclusive >= lo:
        lo, lo_open = rule.min_exclusive, True
    if rule.max is not None:
        hi = rule.max
    if rule.max_exclusive is not None and rule.max_exclusive <= hi:
        hi, hi_open = rule.max_exclusive, True
    if spec.min is not None and spec.min > lo:
        lo, lo_open = spec.min, False
    if spec.max is not None and spec.max < hi:
        hi, hi_open = spec.max, False
    return lo, lo_open, hi, hi_open


def _step(spec) -> float:
    return 1.0 if spec.type == "integer" else 0.1


def _fit(value: float, lo: float, lo_open: bool, hi: float, hi_open: bool, spec) -> float | None:
    """``value`` rounded to the field's precision and moved inside the interval; None if the
    interval holds no such value."""
    step = _step(spec)
    lo_ok = lo + (step if lo_open else 0.0) if math.isfinite(lo) else -math.inf
    hi_ok = hi - (step if hi_open else 0.0) if math.isfinite(hi) else math.inf
    if math.isfinite(lo_ok):
        lo_ok = math.ceil(round(lo_ok / step, 6)) * step
    if math.isfinite(hi_ok):
        hi_ok = math.floor(round(hi_ok / step, 6)) * step
    if lo_ok > hi_ok + 1e-9:
        return None
    v = min(max(round(value / step) * step, lo_ok), hi_ok)
    return int(round(v)) if spec.type == "integer" else round(v, 1)


def _analyte_for(protocol, spec):
    for panel in protocol.lab_panels:
        for a in panel.analytes:
            if a.kind != "numeric" or (a.unit or "") != (spec.unit or ""):
                continue
            if spec.id == a.id or spec.id.startswith(a.id + "_"):
                return a
    return None


def _regions(rule: NumberRule, spec, want: bool) -> list[tuple]:
    """The intervals of the field's range where the rule holds (``want``) or not, each as
    (low, low_open, high, high_open, low_is_threshold, high_is_threshold)."""
    lo, lo_open, hi, hi_open = _interval(rule, spec)
    rule_lo = rule.min is not None or rule.min_exclusive is not None
    rule_hi = rule.max is not None or rule.max_exclusive is not None
    if want:
        return [(lo, lo_open, hi, hi_open, rule_lo, rule_hi)]
    fmin = spec.min if spec.min is not None else -math.inf
    fmax = spec.max if spec.max is not None else math.inf
    out = []
    if rule_lo and math.isfinite(lo) and (fmin < lo or (lo_open and fmin <= lo)):
        out.append((fmin, False, lo, not lo_open, False, True))
    if rule_hi and math.isfinite(hi) and (fmax > hi or (hi_open and fmax >= hi)):
        out.append((hi, not hi_open, fmax, False, True, False))
    return out


def _inside(v, lo, lo_open, hi, hi_open) -> bool:
    return v is not None and lo <= v <= hi and not (lo_open and v == lo) and not (hi_open and v == hi)


def _draw_number(rng, spec, region, *, typical: bool, analyte=None):
    """A value in the region. A typical value (the criterion passes) comes from the analyte's
    reference range when the field is one, else near the threshold that bounds the region (a
    quarter of the room to its other end on average), or spread over the region when both ends
    are thresholds. An atypical value (the criterion fails) lies just across the threshold."""
    lo, lo_open, hi, hi_open, t_lo, t_hi = region
    finite_lo, finite_hi = math.isfinite(lo), math.isfinite(hi)
    room = (hi - lo) if finite_lo and finite_hi else max(abs(lo if finite_lo else hi if finite_hi else 10.0), 10.0)
    if typical and analyte is not None and analyte.low is not None and analyte.high is not None:
        span = analyte.high - analyte.low
        for _ in range(20):
            v = _fit(rng.normal(analyte.low + 0.35 * span, span / 5), lo, lo_open, hi, hi_open, spec)
            if _inside(v, lo, lo_open, hi, hi_open):
                return v
    if typical and finite_lo and finite_hi and t_lo == t_hi:
        u = rng.beta(1.6, 2.2) if t_lo else rng.beta(2.0, 2.0)
        return _fit(lo + u * (hi - lo), lo, lo_open, hi, hi_open, spec)
    shape, scale = (2.0, room / 8) if typical else (1.5, max(room / 10, _step(spec)))
    distance = rng.gamma(shape, scale)
    for _ in range(10):  # a value piled up at the far end of the range is not plausible
        if distance <= 0.7 * room:
            break
        distance = rng.gamma(shape, scale)
    distance = min(distance, 0.7 * room)
    if finite_lo and (t_lo or not finite_hi):
        return _fit(lo + distance, lo, lo_open, hi, hi_open, spec)
    if finite_hi:
        return _fit(hi - distance, lo, lo_open, hi, hi_open, spec)
    return _fit(rng.normal(0, 10), lo, lo_open, hi, hi_open, spec)


# ---- making a rule hold or fail -------------------------------------------------------------


class _Maker:
    def __init__(self, protocol, rng, on: date, sex: str):
        self.protocol = protocol
        self.fields = {f.id: f for f in protocol.eligibility.fields}
        self.rng = rng
        self.on = on
        self.sex = sex

    def make(self, rule, want: bool, values: dict, typical: bool = True) -> None:
        """Set the rule's fields so that it holds (``want``) or not; ``typical``: the criterion
        passes, so the values are the usual ones rather than just across a threshold."""
        rng, fields = self.rng, self.fields
        if isinstance(rule, AgeAtLeast):
            if want:
                age = min(rule.years + rng.gamma(2.0, 10.0), max(rule.years + 1.0, 90.0))
            else:
                if rule.years <= 16:
                    raise _Unmakeable(rule.field)
                age = max(16.0, rule.years - rng.uniform(1.0, 8.0))
            born = self.on - timedelta(days=int(age * 365.25))
            whole = int(age)
            # the age in whole years on the day is the one meant (leap days aside)
            while age_in_years(born, self.on) > whole:
                born += timedelta(days=1)
            while age_in_years(born, self.on) < whole:
                born -= timedelta(days=1)
            values[rule.field] = born
        elif isinstance(rule, NumberRule):
            spec = fields[rule.field]
            regions = _regions(rule, spec, want)
            order = rng.permutation(len(regions)) if regions else []
            for k in order:
                v = _draw_number(rng, spec, regions[int(k)], typical=typical,
                                 analyte=_analyte_for(self.protocol, spec))
                if v is not None:
                    values[rule.field] = v
                    break
            else:
                raise _Unmakeable(rule.field)
        elif isinstance(rule, Flag):
            values[rule.field] = rule.value if want else (not rule.value)
        elif isinstance(rule, OneOf):
            spec = fields[rule.field]
            pool = list(rule.values) if want else [c for c in (spec.choices or []) if c not in rule.values]
            if not pool:
                raise _Unmakeable(rule.field)
            values[rule.field] = str(pool[int(rng.integers(0, len(pool)))])
        elif isinstance(rule, AllEqual):
            for f in rule.fields:
                values[f] = rule.value
            if not want:
                f = rule.fields[int(rng.integers(0, len(rule.fields)))]
                values[f] = self._other(fields[f], rule.value)
        elif isinstance(rule, CountTrue):
            n = len(rule.fields)
            if want:
                if rule.min > n:
                    raise _Unmakeable(rule.fields[0])
                k = int(rng.integers(rule.min, n + 1))
            else:
                k = int(rng.integers(0, rule.min))
            yes = set(rng.permutation(n)[:k].tolist())
            for i, f in enumerate(rule.fields):
                values[f] = i in yes
        elif isinstance(rule, AnyOf):
            if want:
                chosen = int(rng.integers(0, len(rule.rules)))
                for i, r in enumerate(rule.rules):
                    if i != chosen:  # the others as they usually are
                        self.make(r, False, values, True)
                self.make(rule.rules[chosen], True, values, typical)
            else:
                for r in rule.rules:
                    self.make(r, False, values, typical)
        elif isinstance(rule, AllOf):
            if want:
                for r in rule.rules:
                    self.make(r, True, values, typical)
            else:
                chosen = int(rng.integers(0, len(rule.rules)))
                for i, r in enumerate(rule.rules):
                    if i != chosen:
                        self.make(r, True, values, True)
                self.make(rule.rules[chosen], False, values, typical)
        else:
            raise TypeError(f"unknown rule {rule!r}")

    def _other(self, spec, value):
        if spec.type == "boolean":
            return not value
        if spec.type == "choice":
            pool = [c for c in spec.choices or [] if c != value]
            if not pool:
                raise _Unmakeable(spec.id)
            return pool[int(self.rng.integers(0, len(pool)))]
        raise _Unmakeable(spec.id)

    def free_value(self, spec):
        """A field no rule uses."""
        if spec.type == "boolean":
            return False
        if spec.type == "choice":
            return spec.choices[0]
        if spec.type in ("integer", "decimal"):
            lo = spec.min if spec.min is not None else 0.0
            hi = spec.max if spec.max is not None else lo + 100.0
            return _fit(lo + self.rng.beta(2, 2) * (hi - lo), lo, False, hi, False, spec)
        if spec.type == "date":
            return self.on - timedelta(days=int(self.rng.integers(30, 3650)))
        return ""


def _criteria(protocol):
    elig = protocol.eligibility
    return [(c, "inclusion") for c in elig.inclusion] + [(c, "exclusion") for c in elig.exclusion]


def _failure_weight(c, box: str) -> float:
    """How often a criterion is the reason for a screen failure: thresholds on scores and
    measurements most often, age and exclusion flags less."""
    r = c.rule
    if isinstance(r, AgeAtLeast):
        return 0.5
    if isinstance(r, (NumberRule, CountTrue)) or (isinstance(r, (AnyOf, AllOf)) and box == "exclusion"):
        return 2.0 if box == "inclusion" else 1.0
    return 1.2 if box == "inclusion" else 0.7


def protocol_evidence(protocol, rng, on: date, sex: str, *, fail: int) -> tuple[dict, tuple[str, ...]]:
    """One candidate's evidence (JSON-ready: dates as ISO strings) and the criteria meant to fail
    (``fail`` of them, 0 for an eligible candidate). The protocol's evaluator agrees."""
    criteria = _criteria(protocol)
    weights = np.array([_failure_weight(c, box) for c, box in criteria])
    for _ in range(MAX_TRIES):
        maker = _Maker(protocol, rng, on, sex)
        values: dict = {}
        try:
            for c, box in criteria:
                maker.make(c.rule, box == "inclusion", values, True)
        except _Unmakeable as exc:
            raise ValueError(f"eligibility: criterion rules cannot all be met ({exc})") from None
        failing: list[str] = []
        if fail:
            order = rng.choice(len(criteria), size=len(criteria), replace=False, p=weights / weights.sum())
            for i in order:
                c, box = criteria[int(i)]
                if len(failing) >= fail:
                    break
                if sex != "F" and any(_is_pregnancy_field(f) for f in _rule_fields(c.rule)):
                    continue
                trial = dict(values)
                try:
                    maker.make(c.rule, box != "inclusion", trial, False)
                except _Unmakeable:
                    continue
                values = trial
                failing.append(c.id)
        for spec in protocol.eligibility.fields:
            if spec.id not in values:
                values[spec.id] = maker.free_value(spec)
        result = evaluate(protocol.eligibility, values, on)
        if sorted(r.criterion.id for r in result.failing) == sorted(failing) and not result.undecided:
            evidence = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in values.items()}
            ids = [c.id for c, _ in criteria]
            return evidence, tuple(sorted(failing, key=ids.index))
    raise ValueError("eligibility: could not make evidence that fails exactly the chosen criteria")


def site_weights(protocol, seed: int) -> tuple[list[str], np.ndarray]:
    """The protocol's site ids and how unevenly they recruit (a Dirichlet draw per seed, the
    larger centres first in no particular order)."""
    ids = [s.id for s in protocol.site_list]
    if len(ids) == 1:
        return ids, np.ones(1)
    w = np.random.default_rng([seed, 31]).dirichlet(np.full(len(ids), 2.5))
    return ids, w


def source_weights(protocol) -> np.ndarray:
    """The recruitment sources in the protocol's order, the first the most common."""
    n = len(protocol.recruitment_sources)
    w = 0.6 ** np.arange(n)
    return w / w.sum()
