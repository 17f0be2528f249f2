"""Deciding eligibility criteria from entered evidence (P-2.1, P-2.2, X-2.5).

A criterion evaluates to ``True`` (it holds), ``False`` (it does not) or ``None`` (evidence is
missing, so it cannot be decided yet). For inclusion criteria ``True`` is good; for exclusion
criteria ``True`` excludes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Mapping

from annulus import dates

from .schema import (
    AgeAtLeast,
    AllEqual,
    AllOf,
    AnyOf,
    CountTrue,
    Criterion,
    Eligibility,
    EvidenceField,
    Flag,
    NumberRule,
    OneOf,
    _rule_fields,
)


class EvidenceError(ValueError):
    """An evidence value breaks its field's rule; ``field`` names the field. ``message`` is in
    English; ``rule`` (one of ``EVIDENCE_RULES``), ``params`` and ``label`` (the field's label in
    both languages) let an application say the same in the reader's language."""

    def __init__(self, field_id: str, message: str, rule: str = "", params: dict | None = None, label=None):
        super().__init__(f"{field_id}: {message}")
        self.field = field_id
        self.message = message
        self.rule = rule
        self.params = params or {}
        self.label = label


# each rule's English message ("%(label)s" the field's label): EvidenceError.message is this,
# filled in; an application translates the same text
EVIDENCE_RULES = {
    "unknown": "is not an evidence field of this protocol",
    "date": "%(label)s must be a date (YYYY-MM-DD), got %(value)s",
    "future": "%(label)s cannot be in the future (%(value)s)",
    "date_range": "%(label)s must be between %(earliest)s and %(latest)s (%(value)s)",
    "number": "%(label)s must be a number",
    "number_got": "%(label)s must be a number, got %(value)s",
    "finite": "%(label)s must be a finite number",
    "whole": "%(label)s must be a whole number, got %(value)s",
    "min": "%(label)s must be at least %(limit)s%(unit)s, got %(value)s",
    "max": "%(label)s must be at most %(limit)s%(unit)s, got %(value)s",
    "yes_no": "%(label)s must be yes or no, got %(value)s",
    "choice": "%(label)s must be one of %(choices)s, got %(value)s",
    "long": "%(label)s must be at most 2000 characters",
}


def _refuse(spec: EvidenceField, rule: str, **params) -> EvidenceError:
    params = {k: str(v) for k, v in params.items()}
    return EvidenceError(spec.id, EVIDENCE_RULES[rule] % {"label": spec.label.en, **params}, rule, params, spec.label)


def age_in_years(born: date, on: date) -> int:
    years = on.year - born.year
    if (on.month, on.day) < (born.month, born.day):
        years -= 1
    return years


def clean_value(spec: EvidenceField, raw: Any, today: date | None = None) -> Any:
    """Convert and check one evidence value; raise EvidenceError naming the field and rule."""
    if raw is None or raw == "":
        return None
    if spec.type == "date":
        if isinstance(raw, date):
            value = raw
        else:
            try:
                value = date.fromisoformat(str(raw))
            except ValueError:
                raise _refuse(spec, "date", value=repr(raw)) from None
        if today is not None and value > today:
            raise _refuse(spec, "future", value=value.isoformat())
        if dates.problem(value):
            raise _refuse(spec, "date_range", earliest=dates.EARLIEST.isoformat(), latest=dates.LATEST.isoformat(),
                          value=value.isoformat())
        return value
    if spec.type in ("integer", "decimal"):
        if isinstance(raw, bool):
            raise _refuse(spec, "number")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise _refuse(spec, "number_got", value=repr(raw)) from None
        if value != value or value in (float("inf"), float("-inf")):
            raise _refuse(spec, "finite")
        if spec.type == "integer":
            if value != int(value):
                raise _refuse(spec, "whole", value=repr(raw))
            value = int(value)
        unit = f" {spec.unit}" if spec.unit else ""
        if spec.min is not None and value < spec.min:
            raise _refuse(spec, "min", limit=f"{spec.min:g}", unit=unit, value=f"{value:g}")
        if spec.max is not None and value > spec.max:
            raise _refuse(spec, "max", limit=f"{spec.max:g}", unit=unit, value=f"{value:g}")
        return value
    if spec.type == "boolean":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "yes", "1", "on"):
            return True
        if text in ("false", "no", "0", "off"):
            return False
        raise _refuse(spec, "yes_no", value=repr(raw))
    if spec.type == "choice":
        text = str(raw)
        if text not in (spec.choices or []):
            raise _refuse(spec, "choice", choices=", ".join(spec.choices or []), value=repr(raw))
        return text
    text = str(raw)
    if len(text) > 2000:
        raise _refuse(spec, "long")
    return text


def evaluate_rule(rule, values: Mapping[str, Any], reference_date: date) -> bool | None:
    if isinstance(rule, AgeAtLeast):
        born = values.get(rule.field)
        return None if born is None else age_in_years(born, reference_date) >= rule.years
    if isinstance(rule, NumberRule):
        v = values.get(rule.field)
        if v is None:
            return None
        return not (
            (rule.min is not None and v < rule.min)
            or (rule.max is not None and v > rule.max)
            or (rule.min_exclusive is not None and v <= rule.min_exclusive)
            or (rule.max_exclusive is not None and v >= rule.max_exclusive)
        )
    if isinstance(rule, OneOf):
        v = values.get(rule.field)
        return None if v is None else v in rule.values
    if isinstance(rule, AllEqual):
        vs = [values.get(f) for f in rule.fields]
        if any(v is not None and v != rule.value for v in vs):
            return False
        return None if any(v is None for v in vs) else True
    if isinstance(rule, CountTrue):
        vs = [values.get(f) for f in rule.fields]
        yes = sum(1 for v in vs if v is True)
        if yes >= rule.min:
            return True
        unknown = sum(1 for v in vs if v is None)
        return None if yes + unknown >= rule.min else False
    if isinstance(rule, Flag):
        v = values.get(rule.field)
        return None if v is None else v is rule.value
    if isinstance(rule, AnyOf):
        results = [evaluate_rule(r, values, reference_date) for r in rule.rules]
        if any(r is True for r in results):
            return True
        return None if any(r is None for r in results) else False
    if isinstance(rule, AllOf):
        results = [evaluate_rule(r, values, reference_date) for r in rule.rules]
        if any(r is False for r in results):
            return False
        return None if any(r is None for r in results) else True
    raise TypeError(f"unknown rule {rule!r}")


@dataclass(frozen=True)
class CriterionResult:
    criterion: Criterion
    box: str  # "inclusion" | "exclusion"
    holds: bool | None
    missing: tuple[str, ...] = ()  # the criterion's evidence fields with no value yet

    @property
    def passed(self) -> bool | None:
        """True when the criterion does not stand in the way of enrolment. A rule may be decided
        before all its evidence is in (2 of 4 manifestations already present); it fails at once,
        but it is met only on complete evidence, so every eligible record holds every value."""
        if self.holds is None:
            return None
        ok = self.holds if self.box == "inclusion" else not self.holds
        return None if ok and self.missing else ok


@dataclass(frozen=True)
class EligibilityResult:
    results: list[CriterionResult] = field(default_factory=list)

    @property
    def failing(self) -> list[CriterionResult]:
        return [r for r in self.results if r.passed is False]

    @property
    def undecided(self) -> list[CriterionResult]:
        return [r for r in self.results if r.passed is None]

    @property
    def outcome(self) -> str:
        """'ineligible' as soon as one criterion fails, else 'incomplete' or 'eligible'."""
        if self.failing:
            return "ineligible"
        if self.undecided:
            return "incomplete"
        return "eligible"


def clean_evidence(eligibility: Eligibility, raw: Mapping[str, Any], today: date | None = None) -> dict[str, Any]:
    """Check every supplied value; unknown field names are errors, never ignored."""
    known = {f.id: f for f in eligibility.fields}
    cleaned: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise EvidenceError(key, EVIDENCE_RULES["unknown"], "unknown")
        cleaned[key] = clean_value(known[key], value, today=today)
    return cleaned


def evaluate(eligibility: Eligibility, values: Mapping[str, Any], reference_date: date) -> EligibilityResult:
    def one(c: Criterion, box: str) -> CriterionResult:
        needed = dict.fromkeys(c.fields + sorted(_rule_fields(c.rule)))
        missing = tuple(f for f in needed if values.get(f) is None)
        return CriterionResult(c, box, evaluate_rule(c.rule, values, reference_date), missing)

    results = [one(c, "inclusion") for c in eligibility.inclusion] + [one(c, "exclusion") for c in eligibility.exclusion]
    return EligibilityResult(results)
