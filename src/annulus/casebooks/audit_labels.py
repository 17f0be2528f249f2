"""Readable names for the audit events of casebook signatures. Read by ``annulus.audit.present``."""

from __future__ import annotations

from django.utils.translation import gettext as _


def labels(object_type: str, body: dict, language: str, cache: dict) -> dict | None:
    if object_type != "casebook_signature":
        return None
    return {"record": _("Casebook signature"),
            "fields": {"content_hash": _("Content signed (SHA-256)"), "signer_name": _("Signed by"),
                       "meaning": _("Meaning")},
            "values": {"meaning": {"I approve the data in this casebook as complete and accurate":
                                   _("I approve the data in this casebook as complete and accurate")}}}
