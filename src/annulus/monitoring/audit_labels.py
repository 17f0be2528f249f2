"""Readable names for the audit events of source-data verification and review findings."""

from __future__ import annotations

from django.utils.translation import gettext as _

OBJECT_TYPES = ("sdv_mark", "review_finding")


def labels(object_type: str, body: dict, language: str, cache: dict) -> dict | None:
    if object_type not in OBJECT_TYPES:
        return None
    fields = {"visit": _("Visit"), "form": _("Form"), "record": _("Record"), "item": _("Item"),
              "items": _("Items verified"), "category": _("Category"), "text": _("Finding"),
              "status": _("Status"), "resolution": _("Resolution")}
    if object_type == "sdv_mark":
        return {"fields": fields, "record": _("Source-data verification")}
    from .models import ReviewFinding

    return {"fields": fields, "record": _("Review finding"),
            "values": {"category": {k: str(v) for k, v in ReviewFinding.CATEGORIES},
                       "status": {k: str(v) for k, v in ReviewFinding.STATUSES}}}
