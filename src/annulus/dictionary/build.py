"""Build the data dictionary of one protocol version (no Django).

The items come from where they are declared once: the instruments' forms
(``annulus.instruments``), the vital-sign and laboratory forms built from the protocol, the
protocol's screening evidence fields, and the records declared in ``annulus.dictionary.records``.
"""

from __future__ import annotations

from annulus.instruments.forms import spec_for
from annulus.instruments.items import FormSpec, Item

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


def _ecrf_form(protocol, schedule_form, spec: FormSpec, visits: tuple) -> FormDef:
    if schedule_form.panel:
        source = f"protocol: lab_panels.{schedule_form.panel}"
    elif spec.id == "vitals":
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
        hint = mapping.sdtm(schedule_form.id, item.id, instrument=schedule_form.instrument or "",
                            panel=schedule_form.panel or "", group=item.group)
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
                          hint=mapping.sdtm("screening", f.id, criterion=decides.get(f.id, "")), unit=f.unit or "",
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


def _record_form(protocol, record: records.RecordForm, *, name: tuple[str, str] | None = None,
                 visits: tuple | None = None) -> FormDef:
    visits = record.visits if visits is None else visits
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
        entries.append(_entry(record.id, item.id, item.en, item.zh, item.type,
                              source=f"model: {model}.{item.model_field}", visits=visits,
                              sdv_rules=mapping.critical_rules(protocol),
                              hint=mapping.sdtm(record.id, item.id), unit=item.unit, min=item.min, max=item.max,
                              codelist=tuple(codelist), required=item.required))
    en, zh = name or (record.en, record.zh)
    return FormDef(record.id, en, zh, record.scope, tuple(visits), tuple(entries), f"model: {record.model}")


def build(protocol) -> Dictionary:
    """Every captured item of ``protocol``: the screening records, then each form of the schedule
    in the protocol's order, then the adverse-event log and the end of study."""
    forms = [_record_form(protocol, records.BY_ID[r]) for r in records.BEFORE_SCHEDULE]
    for sf in protocol.schedule.forms:
        visits = tuple(v.id for v in protocol.schedule.visits if sf.id in v.forms)
        if sf.id in records.PROCEDURES:
            forms.append(_record_form(protocol, records.BY_ID[sf.id], name=(sf.name.en, sf.name.zh), visits=visits))
            continue
        forms.append(_ecrf_form(protocol, sf, spec_for(protocol, sf.id), visits))
    forms.extend(_record_form(protocol, records.BY_ID[r]) for r in records.AFTER_SCHEDULE)
    ids = [f.id for f in forms]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ValueError(f"form ids declared twice: {', '.join(duplicated)}")
    return Dictionary(tuple(forms), protocol_version=str(protocol.version))
