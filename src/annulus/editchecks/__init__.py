"""Soft edit checks (X-7.4): the protocol's ``edit_checks`` evaluated on one participant's data,
given as plain values (no Django import). A finding does not refuse a save; the queries app
raises a query on the item it names, and closes it when the finding is gone.

    >>> data = Casebook(visits=(VisitData("baseline", 0, date(2026, 1, 1), {"vas": Form({"vas_mm": 70})}),
    ...                         VisitData("w1", 1, date(2026, 1, 9), {"vas": Form({"vas_mm": 10})})))
    >>> [f.item for f in evaluate(protocol.edit_checks, data, protocol)]
    ['vas_mm']

Each ``Finding`` is addressed as the rest of the trial addresses data: (visit, form, record,
item), with the visit key as in URLs ("" for the adverse-event log, record = the adverse event's
id there). ``fingerprint`` is the failing values in words: a query closed by its raiser on one
fingerprint is not raised again until the values change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

# the check of an adverse event before the treatment, under its name and its older one
AE_BEFORE_TREATMENT = ("ae_before_treatment", "ae_before_transplant")

# which data each kind of check reads: a change to one of these re-runs the checks of that kind
READS = {
    "change_between_visits": {"form", "visit"},
    "above": {"form"},
    "lab_outside_range": {"form"},
    "visit_before_consent": {"visit", "consent"},
    # the treatment's date: a cell product's own record ("treatment"), or the visit and the eCRF
    # form that record a procedure (the queries app names that form)
    **dict.fromkeys(AE_BEFORE_TREATMENT, {"adverse_event", "treatment", "visit", "form"}),
}


@dataclass(frozen=True)
class Form:
    """One eCRF form's answers (``items``) and scores (``computed``)."""

    items: dict
    computed: dict = field(default_factory=dict)


@dataclass(frozen=True)
class VisitData:
    key: str  # the visit key of URLs: protocol visit id, or u1, u2 ... for unscheduled visits
    order: int  # the schedule's order (visits are taken by date first, then this)
    visit_date: date | None
    forms: dict  # form id -> Form


@dataclass(frozen=True)
class AdverseEventData:
    id: int
    onset: date
    causality_product: str


@dataclass(frozen=True)
class Casebook:
    visits: tuple = ()
    consent_date: date | None = None  # the first consent's local date
    treatment_date: date | None = None  # the day the treatment procedure was recorded as done
    adverse_events: tuple = ()


@dataclass(frozen=True)
class Finding:
    check_id: str
    visit: str
    form: str
    record: int
    item: str
    fingerprint: str

    @property
    def key(self) -> tuple:
        return (self.check_id, self.visit, self.form, self.record, self.item)


def _number(value):
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _g(x: float) -> str:
    return f"{x:g}"


def _value(form: Form, check) -> float | None:
    if getattr(check, "score", None):
        return _number(form.computed.get(check.score))
    return _number(form.items.get(check.item))


def _change_between_visits(check, data: Casebook, protocol) -> list[Finding]:
    out = []
    previous = None
    for v in sorted(data.visits, key=lambda v: (v.visit_date or date.max, v.order)):
        form = v.forms.get(check.form)
        value = _value(form, check) if form is not None else None
        if value is None:
            continue
        if previous is not None and abs(value - previous[1]) > check.max_change:
            out.append(Finding(check.id, v.key, check.form, 0, check.item,
                               f"{previous[0]} {_g(previous[1])} → {v.key} {_g(value)}"))
        previous = (v.key, value)
    return out


def _above(check, data: Casebook, protocol) -> list[Finding]:
    out = []
    for v in data.visits:
        form = v.forms.get(check.form)
        value = _value(form, check) if form is not None else None
        if value is not None and value > check.max:
            out.append(Finding(check.id, v.key, check.form, 0, check.item, _g(round(value, 4))))
    return out


def lab_forms(protocol, forms: list[str] | tuple = ()) -> dict[str, list]:
    """The laboratory forms a check covers (all of the schedule's when ``forms`` is empty): form id
    -> the panel's numeric analytes with both reference limits."""
    out = {}
    for f in protocol.schedule.forms:
        if not f.panel or (forms and f.id not in forms):
            continue
        panel = protocol.lab_panel(f.panel)
        out[f.id] = [a for a in panel.analytes if a.kind == "numeric" and (a.low is not None or a.high is not None)]
    return out


def _lab_outside_range(check, data: Casebook, protocol) -> list[Finding]:
    out = []
    covered = lab_forms(protocol, check.forms)
    for v in data.visits:
        for form_id, analytes in covered.items():
            form = v.forms.get(form_id)
            if form is None:
                continue
            for a in analytes:
                value = _number(form.items.get(a.id))
                if value is None:
                    continue
                unit = form.items.get(f"{a.id}__unit")
                if unit not in (None, "", a.unit):
                    continue  # a value in another unit is judged by the form's own conversion, not here
                high = a.high * check.factor if a.high is not None and a.high > 0 else None
                low = a.low / check.factor if a.low is not None and a.low > 0 else None
                if high is not None and value > high:
                    out.append(Finding(check.id, v.key, form_id, 0, a.id, f"{_g(value)} > {_g(round(high, 6))}"))
                elif low is not None and value < low:
                    out.append(Finding(check.id, v.key, form_id, 0, a.id, f"{_g(value)} < {_g(round(low, 6))}"))
    return out


def _visit_before_consent(check, data: Casebook, protocol) -> list[Finding]:
    if data.consent_date is None:
        return []
    return [Finding(check.id, v.key, "", 0, "visit_date", f"{v.visit_date.isoformat()} < {data.consent_date.isoformat()}")
            for v in data.visits if v.visit_date is not None and v.visit_date < data.consent_date]


def _ae_before_treatment(check, data: Casebook, protocol) -> list[Finding]:
    if data.treatment_date is None:
        return []
    related = set(protocol.safety.related_causality)
    return [Finding(check.id, "", "adverse_event", ae.id, "onset_at",
                    f"{ae.onset.isoformat()} < {data.treatment_date.isoformat()} · {ae.causality_product}")
            for ae in data.adverse_events
            if ae.onset < data.treatment_date and ae.causality_product in related]


KINDS = {
    "change_between_visits": _change_between_visits,
    "above": _above,
    "lab_outside_range": _lab_outside_range,
    "visit_before_consent": _visit_before_consent,
    **dict.fromkeys(AE_BEFORE_TREATMENT, _ae_before_treatment),
}


def evaluate(checks, data: Casebook, protocol) -> list[Finding]:
    """Every finding of ``checks`` (the protocol's ``edit_checks`` or a subset) on one casebook."""
    out = []
    for check in checks:
        out.extend(KINDS[check.kind](check, data, protocol))
    return out


def checks_reading(protocol, sources: set[str]) -> list:
    """The protocol's checks that read any of ``sources`` ("form", "visit", "consent",
    "adverse_event", "treatment")."""
    return [c for c in (getattr(protocol, "edit_checks", None) or []) if READS[c.kind] & sources]
