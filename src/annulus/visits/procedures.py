"""The checks of a procedure record kept as an eCRF form (every procedure but the cell product's,
``Protocol.page_procedures``), run when such a form is saved, and what they add to its results.

- A date or a time on the record is not in the future.
- ``dispensing``: to complete the record, the kit number must be one the system allocated to the
  participant for this visit (the allocation app tells, through ``add_kit_source``; which kit
  holds what is never said), no more units than a kit holds, and every check of the product at
  dispensing (``product.kit_checks``) passed.
- ``returns``: the kit must be one dispensed to this participant (on a complete dispensing record
  of an earlier or the same visit) and not already returned; no more units come back than went
  out; the compliance (``product.compliance``) is computed from the units and the days between
  dispensing and return, and stored with the record.
- The treatment procedure (``treatment: true``): its complete record at its visit makes a
  randomised participant treated (``treated_by``).

The fields are found by what they mean (``means`` in the protocol), never by their ids."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal

from django.utils import timezone

from annulus.errors import RuleViolation
from annulus.instruments.forms import KIT_CHECK

from .models import FormRecord, Visit

DONE = (FormRecord.COMPLETE, FormRecord.CHANGED)

# fn(participant_id, visit_key) -> the kit numbers the system allocated to the participant for
# that visit; registered by the app that allocates kits
_kit_sources: list[Callable[[int, str], set[str]]] = []


def add_kit_source(fn: Callable[[int, str], set[str]]) -> None:
    if fn not in _kit_sources:
        _kit_sources.append(fn)


def may_save(user, protocol, form_id: str) -> bool:
    """Whether the user may save the form: a procedure's record by a role that records it
    (``recorded_by``), any other form with the right to edit visits."""
    from annulus.accounts.permissions import has, role_of

    proc = record_procedure(protocol, form_id)
    if proc is not None:
        return role_of(user) in proc.recorded_by
    return has(user, "visits.edit")


def record_procedure(protocol, form_id: str):
    """The procedure the form records as an eCRF form, or None."""
    return protocol.record_form_procedure(form_id)


def kit_normalised(value) -> str:
    """A kit number as typed or scanned, compared without case, spaces or dashes' variants."""
    return str(value or "").strip().upper().replace(" ", "").replace("\u2010", "-").replace("\u2212", "-")


def allocated_kits(participant_id: int, visit_key: str) -> set[str]:
    out: set[str] = set()
    for fn in _kit_sources:
        out |= {kit_normalised(k) for k in fn(participant_id, visit_key)}
    return out


def record_date(spec, items: dict, visit: Visit) -> date:
    """The day the procedure was done: its first date or time field, else the visit's day."""
    for item in spec.items:
        value = items.get(item.id)
        if value and item.kind == "date":
            return date.fromisoformat(value)
        if value and item.kind == "datetime":
            return timezone.localdate(datetime.fromisoformat(value))
    return visit.visit_date


def check(protocol, spec, visit: Visit, items: dict, *, complete: bool, record: FormRecord | None) -> dict:
    """Check one procedure record about to be saved; return what it adds to the form's results
    (the compliance of a return). Raises ``RuleViolation`` naming the field."""
    proc = spec.extra["procedure"]
    today = timezone.localdate()
    for item in spec.items:
        value = items.get(item.id)
        if value and item.kind in ("date", "datetime"):
            day = date.fromisoformat(value) if item.kind == "date" else timezone.localdate(datetime.fromisoformat(value))
            if day > today:
                raise RuleViolation(item.id, f"{item.en} cannot be in the future")
    if not complete:
        return {}
    out = {}
    if "dispensing" in proc.checks:
        _check_dispensing(protocol, proc, spec, visit, items)
    if "returns" in proc.checks:
        out["compliance"] = _compliance(protocol, proc, spec, visit, items, record)
    return out


def _check_dispensing(protocol, proc, spec, visit: Visit, items: dict) -> None:
    kit_field = proc.field_meaning("kit_number").id
    kit = kit_normalised(items.get(kit_field))
    allocated = allocated_kits(visit.participant_id, visit.key)
    if not allocated:
        raise RuleViolation(kit_field, "no kit has been allocated to this participant for this visit yet; "
                                       "allocate one first")
    if kit not in allocated:
        raise RuleViolation(kit_field, "is not the kit allocated to this participant for this visit; "
                                       "do not dispense it")
    units_field = proc.field_meaning("units_dispensed").id
    if items.get(units_field) is not None and items[units_field] > protocol.product.units_per_kit:
        raise RuleViolation(units_field, f"a kit holds {protocol.product.units_per_kit} units")
    failing = []
    for c in protocol.product.kit_checks:
        value = items.get(KIT_CHECK + c.id)
        if c.kind == "confirmed":
            passed = value == "yes"
        elif value is None:
            passed = False
        else:
            v = Decimal(str(value))
            passed = {"min": lambda: v >= Decimal(str(c.min)), "max": lambda: v <= Decimal(str(c.max)),
                      "range": lambda: Decimal(str(c.min)) <= v <= Decimal(str(c.max)),
                      "equals": lambda: v == Decimal(str(c.value))}.get(c.kind, lambda: False)()
        if not passed:
            failing.append(c)
    if failing:
        c = failing[0]
        raise RuleViolation(KIT_CHECK + c.id, f"{c.label.en}: the check is not passed; this kit cannot be "
                                              "dispensed")


def _dispensed(protocol, participant_id: int, kit: str, before: Visit):
    """(units dispensed, day dispensed) of the kit on a complete dispensing record of the
    participant at this or an earlier visit, or None."""
    from annulus.instruments.forms import spec_for

    dispensing = {f.id for f in protocol.schedule.forms
                  if (p := protocol.form_procedure(f.id)) is not None and "dispensing" in p.checks}
    rows = (FormRecord.objects.filter(participant_id=participant_id, form_id__in=dispensing, state__in=DONE)
            .select_related("visit").order_by("-id"))
    for r in rows:
        if r.visit.visit_date > before.visit_date:
            continue
        spec = spec_for(protocol, r.form_id)
        proc = spec.extra["procedure"]
        if kit_normalised(r.items.get(proc.field_meaning("kit_number").id)) == kit:
            return r.items.get(proc.field_meaning("units_dispensed").id), record_date(spec, r.items, r.visit)
    return None


def _compliance(protocol, proc, spec, visit: Visit, items: dict, record: FormRecord | None) -> dict:
    kit_field = proc.field_meaning("kit_number").id
    kit = kit_normalised(items.get(kit_field))
    found = _dispensed(protocol, visit.participant_id, kit, visit)
    if found is None:
        raise RuleViolation(kit_field, "is not a kit dispensed to this participant")
    again = (FormRecord.objects.filter(participant_id=visit.participant_id, form_id=spec.id, state__in=DONE)
             .exclude(pk=record.pk if record is not None else None))
    if any(kit_normalised(r.items.get(kit_field)) == kit for r in again):
        raise RuleViolation(kit_field, "this kit's return is already recorded")
    dispensed, dispensed_on = found
    returned_field = proc.field_meaning("units_returned").id
    returned = items.get(returned_field) or 0
    lost_field = proc.field_meaning("units_lost")
    lost = (items.get(lost_field.id) or 0) if lost_field else 0
    if returned + lost > (dispensed or 0):
        raise RuleViolation(returned_field, f"{returned + lost} units returned or lost, but {dispensed} were dispensed "
                                            "with this kit")
    returned_on = record_date(spec, items, visit)
    if returned_on < dispensed_on:
        raise RuleViolation(returned_field, f"the kit was dispensed on {dispensed_on}, after {returned_on}")
    rule = protocol.product.compliance
    days = (returned_on - dispensed_on).days
    percent = rule.percent(dispensed - lost, returned, days)
    return {"kit": kit, "dispensed": dispensed, "returned": returned, "lost": lost, "days": days,
            "percent": None if percent is None else round(percent, 1), "acceptable": rule.acceptable(percent),
            "dispensed_on": dispensed_on.isoformat()}


def treated_by(protocol, visit: Visit, records) -> bool:
    """Whether the saved forms include the complete record of the treatment procedure at its
    visit (what makes a randomised participant treated)."""
    treatment = protocol.treatment_procedure
    if treatment is None or treatment.id in protocol.page_procedures:
        return False
    pv = protocol.procedure_visit(treatment.id)
    form = protocol.procedure_form(treatment.id)
    if pv is None or visit.visit_id != pv.id or visit.number != 0:
        return False
    if form is None or form.id not in visit.forms:
        return visit.outcome == "attended"
    return any(r.form_id == form.id and r.state in DONE for r in records)
