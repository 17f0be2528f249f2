"""The edit checks re-run whenever the data they read change, in the transaction of the change:
post_save of the visits' forms and visits, the adverse events, the consents and the
transplantation record. A visit's new forms are inserted in bulk (no post_save), so the audit
events of that save, written in the same transaction, name them instead."""

from __future__ import annotations

import threading

from django.db.models.signals import post_init, post_save

_state = threading.local()


def _run(participant_id, sources: set[str], forms: set[str] | None = None) -> None:
    if participant_id is None or getattr(_state, "busy", False):
        return
    from . import services

    _state.busy = True
    try:
        services.run_checks(participant_id, sources, forms)
    finally:
        _state.busy = False


def _form_saved(sender, instance, raw=False, **kwargs):
    if not raw:
        _run(instance.participant_id, {"form"}, {instance.form_id})


def _visit_saved(sender, instance, raw=False, **kwargs):
    if not raw:
        _run(instance.participant_id, {"visit"})


def _ae_saved(sender, instance, raw=False, **kwargs):
    if not raw:
        _run(instance.participant_id, {"adverse_event"})


def _consent_saved(sender, instance, raw=False, **kwargs):
    if not raw:
        _run(instance.participant_id, {"consent"})


def _transplant_saved(sender, instance, raw=False, **kwargs):
    if not raw:
        _run(instance.participant_id, {"transplant"})


def _head_loaded(sender, instance, **kwargs):
    instance._count_loaded = instance.count


def _head_saved(sender, instance, raw=False, **kwargs):
    """New eCRF forms of a visit save come in bulk: their audit events of this batch name them."""
    loaded = getattr(instance, "_count_loaded", None)
    if raw or loaded is None or getattr(_state, "busy", False):
        return
    n = instance.count - loaded
    instance._count_loaded = instance.count
    if n <= 0:
        return
    from annulus.audit.models import AuditEvent

    batch = AuditEvent.objects.order_by("-id").values_list("object_type", "action", "participant_id", "payload")[:n]
    forms: dict[int, set[str]] = {}
    for object_type, action, pid, payload in batch:
        if object_type != "crf_form" or action != "create" or pid is None:
            continue
        import json

        try:
            form = json.loads(payload)["changes"]["form"]
        except (ValueError, KeyError, TypeError):
            continue
        forms.setdefault(pid, set()).add(form)
    for pid, names in forms.items():
        _run(pid, {"form"}, names)


def connect() -> None:
    from annulus.allocation.models import Transplant
    from annulus.audit.models import AuditHead
    from annulus.participants.models import Consent
    from annulus.safety.models import AdverseEvent
    from annulus.visits.models import FormRecord, Visit

    post_save.connect(_form_saved, sender=FormRecord, dispatch_uid="queries.form")
    post_save.connect(_visit_saved, sender=Visit, dispatch_uid="queries.visit")
    post_save.connect(_ae_saved, sender=AdverseEvent, dispatch_uid="queries.ae")
    post_save.connect(_consent_saved, sender=Consent, dispatch_uid="queries.consent")
    post_save.connect(_transplant_saved, sender=Transplant, dispatch_uid="queries.transplant")
    post_init.connect(_head_loaded, sender=AuditHead, dispatch_uid="queries.head_loaded")
    post_save.connect(_head_saved, sender=AuditHead, dispatch_uid="queries.head_saved")
