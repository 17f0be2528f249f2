"""Readable names for the audit events of queries. Read by ``annulus.audit.present``."""

from __future__ import annotations

from django.utils.translation import gettext as _

from .models import ASSIGNEES, ORIGINS, STATUSES


def labels(object_type: str, body: dict, language: str, cache: dict) -> dict | None:
    if object_type != "query":
        return None
    return {"record": _("Query"),
            "fields": {"status": _("Status"), "text": _("Question"), "answer": _("Answer"),
                       "assigned_to": _("To be answered by"), "origin": _("Origin"), "check": _("Edit check"),
                       "visit": _("Visit"), "form": _("Form"), "record": _("Record"), "item": _("Item")},
            "values": {"status": {k: str(v) for k, v in STATUSES}, "assigned_to": {k: str(v) for k, v in ASSIGNEES},
                       "origin": {k: str(v) for k, v in ORIGINS}}}
