"""Readable names for the audit events of visits and eCRF forms: the items' labels from the form
specifications (``u_rbc__unit`` -> "Red blood cells (urine) · unit"), coded answers by their label,
the visit and form by name. Read by ``annulus.audit.present``."""

from __future__ import annotations

from django.utils.translation import gettext as _

from annulus.errors import RuleViolation

from .models import HARVEST_RECORD, parse_visit_key

OBJECT_TYPES = ("crf_form", "visit", HARVEST_RECORD)


def _protocol(version: str, cache: dict):
    """The protocol an event was written under (the one in force when it is unknown)."""
    key = ("protocol", version)
    if key not in cache:
        from annulus.trial.models import ProtocolVersion
        from annulus.trial.selectors import active_protocol, protocol_for

        pv = ProtocolVersion.objects.filter(version=version).first() if version else None
        cache[key] = protocol_for(pv) if pv else active_protocol()
    return cache[key]


def _visit_name(protocol, key, language: str) -> str:
    try:
        visit_id, number = parse_visit_key(str(key))
    except (RuleViolation, ValueError):
        return str(key)
    pv = next((v for v in protocol.schedule.visits if v.id == visit_id), None)
    if pv is not None and not number:
        return pv.name.get(language)
    return _("Unscheduled") + f" {number}"


def _form_name(protocol, form_id: str, language: str) -> str:
    form = next((f for f in protocol.schedule.forms if f.id == form_id), None)
    return form.name.get(language) if form else form_id


def _spec(protocol, form_id: str, cache: dict):
    key = ("spec", id(protocol), form_id)
    if key not in cache:
        from .crf import spec_for

        try:
            cache[key] = spec_for(protocol, form_id)
        except RuleViolation:
            cache[key] = None
    return cache[key]


def labels(object_type: str, body: dict, language: str, cache: dict) -> dict | None:
    if object_type not in OBJECT_TYPES:
        return None
    protocol = _protocol(body.get("protocol_version") or "", cache)
    changes = body.get("changes") or {}
    fields = {"visit": _("Visit"), "form": _("Form"), "revision": _("Revision"), "state": _("Form state"),
              "collected_at": _("Collected at"), "visit_date": _("Visit date"), "outcome": _("Outcome"),
              "completed_at": _("Visit complete at"), "forms": _("Forms")}
    values: dict = {}
    context: dict = {}
    record = _("Visit")
    in_record: tuple = ()
    visit = changes.get("visit")
    if isinstance(visit, list) and len(visit) == 2:
        visit = visit[1]
    if visit:
        context["visit"] = _visit_name(protocol, visit, language)
        values["visit"] = {str(visit): context["visit"]}
        record = _("Visit") + f" · {context['visit']}"
        in_record = ("visit",)
    if object_type == HARVEST_RECORD:
        return {"fields": fields, "record": _("Liposuction")}
    if object_type == "crf_form":
        form_id = str(changes.get("form") or "")
        context["form"] = _form_name(protocol, form_id, language)
        record = context["form"] + (f" · {context['visit']}" if visit else "")
        in_record = ("visit", "form")
        spec = _spec(protocol, form_id, cache)
        if spec is not None:
            groups = {i.id: i for i in spec.items}
            for item in spec.items:
                label = item.label(language)
                parent = groups.get(item.group) if item.group and item.group != item.id else None
                if parent is not None:
                    label = f"{parent.label(language)} · {label}"
                fields[item.id] = label
                if item.choices:
                    zh = (language or "").lower().startswith("zh")
                    values[item.id] = {str(c[0]): (c[2] if zh else c[1]) for c in item.choices if c[0] != ""}
            from .selectors import FORM_STATE_LABELS

            values["state"] = {k: str(v) for k, v in FORM_STATE_LABELS.items()}
    return {"fields": fields, "values": values, "context": context, "record": record, "in_record": in_record}
