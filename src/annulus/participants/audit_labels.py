"""Readable names for the audit events of participants (status by its label). Read by
``annulus.audit.present``."""

from __future__ import annotations

from django.utils.translation import gettext as _

from . import states


def labels(object_type: str, body: dict, language: str, cache: dict) -> dict | None:
    if object_type != "participant":
        return None
    return {"record": _("Participant"), "fields": {"status": _("Status"), "case_number": _("Case number")},
            "values": {"status": {k: str(v) for k, v in states.LABELS.items()}}}
