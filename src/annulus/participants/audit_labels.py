"""Readable names for the audit events of participants (status by its label). Read by
``annulus.audit.present``."""

from __future__ import annotations

from django.utils.translation import gettext as _

from . import states


def labels(object_type: str, body: dict, language: str, cache: dict) -> dict | None:
    if object_type == "record_lock":
        return _record_lock(body)
    if object_type != "participant":
        return None
    return {"record": _("Participant"), "fields": {"status": _("Status"), "case_number": _("Case number")},
            "values": {"status": {k: str(v) for k, v in states.LABELS.items()}}}


def _record_lock(body: dict) -> dict:
    """A lock or unlock named by what it locks ("Record lock · 1 week · ODI"), the visit and form by
    their names in the page's language, never their codes."""
    from .locks import form_name, record_name, visit_name

    changes = body.get("changes") or {}
    visit, form = str(changes.get("visit") or ""), str(changes.get("form") or "")
    context: dict = {}
    if visit:
        context["visit"] = visit_name(visit)
    if form:
        context["form"] = form_name(visit, form)
    return {"record": f"{_('Record lock')} · {record_name(visit, form)}",
            "fields": {"level": _("Level"), "visit": _("Visit"), "form": _("Form"), "locked": _("Locked")},
            "values": {"level": {"casebook": _("casebook"), "visit": _("visit"), "form": _("form")}},
            "context": context, "in_record": ("visit", "form")}
