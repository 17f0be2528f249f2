"""Readable names for the audit events of data exports. Read by ``annulus.audit.present``."""

from __future__ import annotations

from django.utils.translation import gettext as _

from .models import BLINDINGS, FORMAT_CHOICES, ORIGINS


def labels(object_type: str, body: dict, language: str, cache: dict) -> dict | None:
    if object_type != "export_run":
        return None
    return {"record": _("Data export"),
            "fields": {"format": _("Format"), "scope": _("Scope"), "subjects": _("Participants"),
                       "blinding": _("Blinding"), "blinded": _("Blinded"), "identifiable": _("Identifiable"),
                       "drug_codes": _("Drug codes"), "as_of": _("Data as of"),
                       "audit_chain_count": _("Audit trail length at the as-of time"),
                       "audit_chain_hash": _("Audit trail hash at the as-of time"), "origin": _("Made from"),
                       "files": _("Files (size, SHA-256)")},
            "values": {"format": {k: str(v) for k, v in FORMAT_CHOICES}, "blinding": {k: str(v) for k, v in BLINDINGS},
                       "origin": {k: str(v) for k, v in ORIGINS}}}
