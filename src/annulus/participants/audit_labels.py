"""Readable names for the audit events of participants (status by its label). Read by
``annulus.audit.present``."""

from __future__ import annotations

from django.utils.translation import gettext as _

from . import states


def labels(object_type: str, body: dict, language: str, cache: dict) -> dict | None:
    if object_type == "record_lock":
        return {"record": _("Record lock"),
                "fields": {"level": _("Level"), "visit": _("Visit"), "form": _("Form"), "locked": _("Locked")},
                "values": {"level": {"casebook": _("casebook"), "visit": _("visit"), "form": _("form")}}}
    if object_type != "participant":
        return None
    return {"record": _("Participant"), "fields": {"status": _("Status"), "case_number": _("Case number")},
            "values": {"status": {k: str(v) for k, v in states.LABELS.items()}}}
