"""Readable names for the audit events of trial reports (the action "report" on a "trial_report").
Read by ``annulus.audit.present``."""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from annulus.exports.models import BLINDINGS

from .models import FORMATS, ORIGINS

# the event's action, as people read it
ACTIONS = {"report": gettext_lazy("report built")}


def labels(object_type: str, body: dict, language: str, cache: dict) -> dict | None:
    if object_type != "trial_report":
        return None
    return {"record": _("Trial report"),
            "fields": {"format": _("Format"), "language": _("Language of the report"), "as_of": _("Data as of"),
                       "unblinded": _("Unblinded report asked for"), "blinding": _("Blinding"),
                       "export": _("Made from export"), "sha256": _("SHA-256 of the file"), "origin": _("Made from")},
            "values": {"format": {k: str(v) for k, v in FORMATS}, "blinding": {k: str(v) for k, v in BLINDINGS},
                       "origin": {k: str(v) for k, v in ORIGINS},
                       "language": {"en": "English", "zh-hans": "中文"}}}
