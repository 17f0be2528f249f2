"""Build the data dictionary of one protocol version (no Django).

The items come from where they are declared once: the instruments' forms
(``annulus.instruments``, with their items' SDTM codes), the vital-sign, laboratory and procedure
forms built from the protocol (a procedure field's SDTM hint is the file's), the protocol's
screening evidence fields, and the records declared in ``annulus.dictionary.records`` (the
harvest and treatment of a cell product under the schedule form that records each).
"""

from __future__ import annotations

from annulus.instruments import vitals
from annulus.instruments.forms import AE_REVIEW, KIT_CHECK, spec_for
from annulus.instruments.items import FormSpec, Item
from annulus.instruments.qs import questionnaire

from . import mapping, records
from .model import Dictionary, Entry, FormDef

# the protocol's evidence choices in words (as the screening form shows them)
VALUE_LABELS = {"negative": ("negative", "阴性"), "positive": ("positive", "阳性"), "none": ("none", "无"),
                "normal": ("normal", "正常"), "abnormal": ("abnormal", "异常"), "unknown": ("unknown", "未知"),
                "yes": ("yes", "是"), "no": ("no", "否"), "present": ("present", "存在"),
                "absent": ("absent", "不存在")}
EVIDENCE_TYPES = {"date": "date", "integer": "integer", "decimal": "number", "boolean": "bool",
                  "choice": "choice", "text": "text"}


def _item_type(item: Item) -> str:
    if item.kind == "number":
        return "integer" if item.step == "1" else "number"
    return item.kind


def _codelist(choices) -> tuple:
    return tuple((str(v), en, zh) for v, en, zh in choices if str(v) != "")


def _entry(form: str, item_id: str, en: str, zh: str, type_: str, *, source: str, visits: tuple,
           hint: tuple[str, str, str], sdv_rules: tuple, **kw) -> Entry:
    critical, when = mapping.sdv(sdv_rules, form, item_id)
    domain, testcd, variable = hint
    return Entry(form=form, item=item_id, label_en=en, label_zh=zh, type=type_, visits=visits,
                 sdv_critical=critical, sdv_when=when, sdtm_domain=domain, sdtm_testcd=testcd,
                 sdtm_variable=variable, source=source, **kw)


def _ecrf_hint(protocol, schedule_form, spec: FormSpec, item: Item) -> tuple[str, str, str]:
    """Where an eCRF item goes in an SDTM export: a laboratory value by its analyte, a procedure's
    field by the protocol's field (a kit check as a qualifier of the dispensing), the AE review by
    its question, an instrument's item by the instrument's form."""
    if schedule_form.panel:
        return mapping.lab_item(item.id, item.group)
    procedure = spec.extra.get("procedure")
    if procedure is not None:
        if item.id.startswith(KIT_CHECK):
            return mapping.kit_check(item.id.removeprefix(KIT_CHECK))
        field = next((f for f in procedure.fields if f.id == item.id), None)
        return mapping.procedure_field(protocol, procedure, field) if field is not None else mapping.NO_HINT
    if spec.id == AE_REVIEW.id:
        return mapping.ae_review_item(item.id)
    return mapping.instrument_item(spec, item, questionnaire=questionnaire(schedule_form.instrument or spec.id)
                                   is not None)


def _ecrf_form(protocol, schedule_form, spec: FormSpec, visits: tuple) -> FormDef:
    if schedule_form.panel:
        source = f"protocol: lab_panels.{schedule_form.panel}"
    elif spec.id == vitals.NAME:
        source = "protocol: vital_signs"
    elif schedule_form.instrument:
        source = f"annulus.instruments.{schedule_form.instrument}"
    else:
        source = "annulus.instruments.forms"
    analytes = {a.id: a for a in protocol.lab_panel(schedule_form.panel).analytes
                 if a.kind == "numeric"} if schedule_form.panel else {}
    entries = []
    for item in spec.items:
        en, zh = item.en, item.zh
        owner = spec.item(item.group) if item.group and item.group != item.id else None
        if owner is not None:  # "Haemoglobin · unit"
            en, zh = f"{owner.en} · {item.en}", f"{owner.zh} · {item.zh}"
        hint = _ecrf_hint(protocol, schedule_form, spec, item)
        required = item.required and not item.id.endswith(("__unit", "__cs"))
        analyte = analytes.get(item.id)
        reference = {"ref_low": analyte.low, "ref_high": analyte.high} if analyte is not None else {}
        entries.append(_entry(schedule_form.id, item.id, en, zh, _item_type(item), source=source, visits=visits,
                              hint=hint, sdv_rules=mapping.critical_rules(protocol), unit=item.unit,
                              min=item.min, max=item.max,
                              codelist=_codelist(item.choices), required=required, group=item.group,
                              **reference))
    return FormDef(schedule_form.id, schedule_form.name.en, schedule_form.name.zh, "visit", visits, tuple(entries),
                   source)


def _protocol_codelist(protocol, form_id: str, item_id: str) -> tuple:
    if form_id == "consent":
        return tuple((v.version, f"{v.version} (approved {v.approved_on.isoformat()})",
                      f"{v.version}（{v.approved_on.isoformat()} 批准）") for v in protocol.consent.icf_versions)
    if item_id == "recruitment_source":
        words = {"inpatient_referral": ("Inpatient referral", "住院患者转介"),
                 "records_search_phone": ("Hospital records search + phone call", "检索医院病历 + 电话联系"),
                 "flyers_website": ("Flyers / website", "宣传单 / 网站")}
        return tuple((s, *words.get(s, (s, s))) for s in protocol.recruitment_sources)
    if item_id == "site":
        return tuple((site.id, site.name.en, site.name.zh) for site in protocol.site_list)
    raise ValueError(f"no protocol codelist for {form_id}.{item_id}")


def _evidence_entries(protocol, visits: tuple) -> list[Entry]:
    criteria = protocol.eligibility.inclusion + protocol.eligibility.exclusion
    decides = {}
    for c in criteria:
        for field_id in c.fields:
            decides.setdefault(field_id, c.id)
    out = []
    for f in protocol.eligibility.fields:
        if f.type == "choice":
            codelist = tuple((c, *VALUE_LABELS.get(c.lower(), (c, c))) for c in f.choices or ())
        elif f.type == "boolean":
            codelist = records.YES_NO_BOOL
        else:
            codelist = ()
        out.append(_entry("screening", f.id, f.label.en, f.label.zh, EVIDENCE_TYPES[f.type],
                          source="protocol: eligibility.fields", visits=visits,
                          sdv_rules=mapping.critical_rules(protocol),
                          hint=mapping.evidence(f.id, decides.get(f.id, "")), unit=f.unit or "",
                          min=f.min, max=f.max, codelist=codelist, required=f.id in decides,
                          group=decides.get(f.id, "")))
    return out


def _causality_entries(protocol, record: records.RecordForm, item: records.RecordItem, visits: tuple) -> list[Entry]:
    """One entry per procedure whose causality the protocol assesses (``safety.causality_of``):
    ``causality_<id>``, "Causality: <name>", exported to SUPPAE as the item's ``sdtm_qnam``."""
    model = item.model or record.model
    out = []
    for c in protocol.safety.causality_of:
        out.append(_entry(record.id, item.id.format(id=c.id), item.en.format(en=c.name.en),
                          item.zh.format(zh=c.name.zh), item.type,
                          source=f"model: {model}.{item.model_field}[{c.id}]", visits=visits,
                          sdv_rules=mapping.critical_rules(protocol), hint=("AE", c.qnam, "QVAL"),
                          unit=item.unit, min=item.min, max=item.max, codelist=tuple(item.codelist),
                          required=item.required))
    return out


def _record_form(protocol, record: records.RecordForm, *, schedule_form=None) -> FormDef:
    """A record Annulus keeps in its own table; a page procedure's (``schedule_form`` given) under
    the id, name and visits of the schedule form that records it, each item with the SDTM hint of
    the protocol field it records."""
    if schedule_form is None:
        form_id, visits, procedure = record.id, record.visits, None
    else:
        form_id = schedule_form.id
        visits = tuple(v.id for v in protocol.schedule.visits if schedule_form.id in v.forms)
        procedure = protocol.procedure(schedule_form.procedure or schedule_form.id)
    entries = []
    if record.key_value:
        entries.extend(_evidence_entries(protocol, visits))
    for item in record.items:
        if item.per_causality:
            entries.extend(_causality_entries(protocol, record, item, visits))
            continue
        codelist = item.codelist
        if codelist == records.PROTOCOL:
            codelist = _protocol_codelist(protocol, record.id, item.id)
        model = item.model or record.model
        if record.key_value:  # the screening record's own items are evidence too (the date collected)
            hint = mapping.evidence(item.id)
        elif procedure is None:
            hint = mapping.record(record.id, item.id)
        else:
            field_id = item.protocol_field or item.id
            field = next((f for f in procedure.fields if f.id == field_id), None)
            hint = mapping.procedure_field(protocol, procedure, field) if field is not None else mapping.NO_HINT
        entries.append(_entry(form_id, item.id, item.en, item.zh, item.type,
                              source=f"model: {model}.{item.model_field}", visits=visits,
                              sdv_rules=mapping.critical_rules(protocol),
                              hint=hint, unit=item.unit, min=item.min, max=item.max,
                              codelist=tuple(codelist), required=item.required))
    en, zh = (record.en, record.zh) if schedule_form is None else (schedule_form.name.en, schedule_form.name.zh)
    return FormDef(form_id, en, zh, record.scope, tuple(visits), tuple(entries), f"model: {record.model}")


def _page_procedure(schedule_form, pages: dict) -> str | None:
    """The page procedure a schedule form records, or None; in a file written before
    ``procedures:`` the form named after the procedure."""
    if schedule_form.procedure is not None:
        return schedule_form.procedure if schedule_form.procedure in pages else None
    if not schedule_form.instrument and not schedule_form.panel and schedule_form.id in pages:
        return schedule_form.id
    return None


def build(protocol) -> Dictionary:
    """Every captured item of ``protocol``: the screening records, then each form of the schedule
    in the protocol's order, then the adverse-event log and the end of study."""
    forms = [_record_form(protocol, records.BY_ID[r]) for r in records.BEFORE_SCHEDULE]
    pages = protocol.page_procedures
    for sf in protocol.schedule.forms:
        page = _page_procedure(sf, pages)
        if page is not None:
            forms.append(_record_form(protocol, records.PAGE_RECORDS[pages[page]], schedule_form=sf))
            continue
        visits = tuple(v.id for v in protocol.schedule.visits if sf.id in v.forms)
        forms.append(_ecrf_form(protocol, sf, spec_for(protocol, sf.id), visits))
    forms.extend(_record_form(protocol, records.BY_ID[r]) for r in records.AFTER_SCHEDULE)
    ids = [f.id for f in forms]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ValueError(f"form ids declared twice: {', '.join(duplicated)}")
    return Dictionary(tuple(forms), protocol_version=str(protocol.version))
