"""Every eCRF form of the schedule as a ``FormSpec`` (no Django): the instruments' forms declared
beside their scorers, the adverse-event review, and the vital-sign and laboratory forms built from
the protocol file."""

from __future__ import annotations

from annulus.errors import RuleViolation

from . import imaging, joa, koos, nrs, odi, sf36, vas
from .items import FormSpec, Item, codes
from .labs import lab_form
from .vitals import vitals_form

# ---- adverse-event review ---------------------------------------------------------------------
YES_NO = codes(("no", "no", "否"), ("yes", "yes", "是"))
AE_REVIEW = FormSpec("adverse_events", (
    Item("new_events", "Any new or worsening adverse event since the last visit?", "自上次访视以来有无新发或加重的不良事件？",
         "choice", YES_NO),
    Item("notes", "Notes", "备注", "text", required=False),
), "Ask about symptoms, treatments and hospital stays since the last visit; record each event on the adverse-event form.",
   "询问自上次访视以来的症状、治疗和住院情况；每个事件在不良事件表中记录。")


STATIC_SPECS = {s.id: s for s in (vas.FORM, odi.FORM, joa.FORM, sf36.FORM, imaging.FORM, koos.FORM, nrs.FORM,
                                  AE_REVIEW)}


def spec_for(protocol, form_id: str) -> FormSpec:
    form = next((f for f in protocol.schedule.forms if f.id == form_id), None)
    if form is None:
        raise RuleViolation("form", f"unknown form '{form_id}'")
    if form.panel:
        return lab_form(protocol, form.id, form.panel)
    if form.procedure and form.procedure not in protocol.page_procedures:
        return procedure_form(protocol, form.id, form.procedure)
    if form_id == "vitals" or form.instrument == "vitals":
        return vitals_form(protocol)
    key = form.instrument or form.id
    if key in STATIC_SPECS:
        return STATIC_SPECS[key]
    raise RuleViolation("form", f"'{form_id}' is a procedure record, not an eCRF form")


# ---- procedure records ------------------------------------------------------------------------
# How a procedure field's type is asked on the eCRF: integers and decimals as numbers, a yes/no
# as a choice with nothing ticked, dates and times as such.
_PROCEDURE_KINDS = {"integer": "number", "decimal": "number", "boolean": "choice", "choice": "choice",
                    "text": "text", "date": "date", "datetime": "datetime"}


def procedure_form(protocol, form_id: str, procedure_id: str) -> FormSpec:
    """The eCRF form recording a declared procedure: one item per field of the procedure, in
    the file's order, with its label, unit, range and choices (``extra["procedure"]`` is the
    procedure)."""
    proc = protocol.procedure(procedure_id)
    items = []
    for f in proc.fields:
        kind = _PROCEDURE_KINDS[f.type]
        if f.type == "boolean":
            choices = YES_NO
        elif f.type == "choice":
            choices = tuple((c, c, c) for c in f.choices)
        else:
            choices = ()
        items.append(Item(f.id, f.label.en, f.label.zh, kind, choices, unit=f.unit or "", min=f.min, max=f.max,
                          step="1" if f.type == "integer" else "any", required=f.required))
    if "dispensing" in proc.checks:
        # the product's checks at dispensing, answered by the person dispensing the kit
        for c in protocol.product.kit_checks:
            if c.kind == "confirmed":
                items.append(Item(KIT_CHECK + c.id, c.label.en, c.label.zh, "choice", YES_NO, group="kit_checks"))
            else:
                items.append(Item(KIT_CHECK + c.id, c.label.en, c.label.zh, "number", unit=c.unit or "",
                                  group="kit_checks"))
    # a kit number is typed or scanned on one line
    short = {f.id for f in proc.fields if f.means == "kit_number"}
    return FormSpec(form_id, tuple(items), extra={"procedure": proc, "short": short})


# the item id of a kit check of the product on a dispensing record: "kit_check__seal_intact"
KIT_CHECK = "kit_check__"
