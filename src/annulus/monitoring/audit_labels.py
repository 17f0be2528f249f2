"""Readable names for the audit events of source-data verification and review findings: the
visit, form and items by their names in the page's language (the data dictionary and the
protocol), and the items verified as a short list of item names. The stored event keeps each
item's revision and value hash; the page does not show them. Read by ``annulus.audit.present``."""

from __future__ import annotations

from django.utils.translation import gettext as _

OBJECT_TYPES = ("sdv_mark", "review_finding")


def _names(cache: dict, language: str):
    """(protocol, dictionary, {(form, item): label}) of the protocol in force, once per page."""
    key = ("monitoring-names", language)
    if key not in cache:
        from annulus.trial.selectors import active_protocol, data_dictionary

        from .selectors import item_labels

        protocol = active_protocol()
        cache[key] = (protocol, data_dictionary(), item_labels(protocol, language))
    return cache[key]


def _value(value):
    """A context value as stored, or the new side of an ``[old, new]`` pair."""
    return value[1] if isinstance(value, (list, tuple)) and len(value) == 2 else value


def _item_name(items: dict, form: str, item: str) -> str:
    return items.get((form, item)) or item


def labels(object_type: str, body: dict, language: str, cache: dict) -> dict | None:
    if object_type not in OBJECT_TYPES:
        return None
    from .selectors import form_name, visit_name

    fields = {"visit": _("Visit"), "form": _("Form"), "record": _("Record"), "item": _("Item"),
              "items": _("Items verified"), "category": _("Category"), "text": _("Finding"),
              "status": _("Status"), "resolution": _("Resolution")}
    changes = body.get("changes") or {}
    protocol, dictionary, items = _names(cache, language)
    visit, form, item = (str(_value(changes.get(k)) or "") for k in ("visit", "form", "item"))
    context: dict = {}
    values: dict = {}
    parts = []
    if visit:
        try:
            context["visit"] = visit_name(protocol, visit, language)
        except Exception:  # a key the schedule no longer knows: shown as stored
            context["visit"] = visit
        values["visit"] = {visit: context["visit"]}
        parts.append(context["visit"])
    if form:
        context["form"] = form_name(protocol, form, language, dictionary)
        values["form"] = {form: context["form"]}
        parts.append(context["form"])
    if item:
        context["item"] = _item_name(items, form, item)
        values["item"] = {item: context["item"]}
    in_record = ("visit", "form")
    if object_type == "sdv_mark":
        verified = changes.get("items")
        if isinstance(verified, dict):
            # in the order of the form (the stored record sorts its keys: s1, s10, s2 ...)
            order = {e.item: n for n, e in enumerate(dictionary.form(form).items)} if dictionary.form(form) else {}
            ranked = sorted(verified, key=lambda i: (order.get(i, len(order)), i))
            context["items"] = ", ".join(_item_name(items, form, i) if i else _("whole form") for i in ranked)
        if not changes.get("record"):
            in_record += ("record",)
        record = _("Source-data verification")
        return {"fields": fields, "context": context, "values": values, "in_record": in_record,
                "record": " · ".join([record, *parts])}
    from .models import ReviewFinding

    values.update({"category": {k: str(v) for k, v in ReviewFinding.CATEGORIES},
                   "status": {k: str(v) for k, v in ReviewFinding.STATUSES}})
    if not changes.get("record"):
        in_record += ("record",)
    return {"fields": fields, "record": " · ".join([_("Review finding"), *parts]), "context": context,
            "values": values, "in_record": in_record}
