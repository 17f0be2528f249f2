"""The edit checks re-run whenever the data they read change, in the transaction of the change:
the visits app's ``forms_saved`` signal (a visit's eCRF forms, new ones inserted in bulk without
post_save) and post_save of the visits, the adverse events, the consents and the
transplantation record."""

from __future__ import annotations

import threading

from django.db.models.signals import post_save

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


def _visit_saved(sender, instance, raw=False, **kwargs):
    if not raw:
        _run(instance.participant_id, {"visit"})


def _ae_saved(sender, instance, raw=False, **kwargs):
    if not raw:
        _run(instance.participant_id, {"adverse_event"})


def _consent_saved(sender, instance, raw=False, **kwargs):
    if not raw:
        _run(instance.participant_id, {"consent"})


def _treatment_saved(sender, instance, raw=False, **kwargs):
    if not raw:
        _run(instance.participant_id, {"treatment"})


def _forms_saved(sender, participant_id=None, forms=(), **kwargs):
    _run(participant_id, {"form"}, set(forms))


def connect() -> None:
    from annulus.allocation.models import Transplant
    from annulus.participants.models import Consent
    from annulus.safety.models import AdverseEvent
    from annulus.visits.models import FormRecord, Visit
    from annulus.visits.signals import forms_saved

    post_save.connect(_visit_saved, sender=Visit, dispatch_uid="queries.visit")
    post_save.connect(_ae_saved, sender=AdverseEvent, dispatch_uid="queries.ae")
    post_save.connect(_consent_saved, sender=Consent, dispatch_uid="queries.consent")
    post_save.connect(_treatment_saved, sender=Transplant, dispatch_uid="queries.transplant")
    forms_saved.connect(_forms_saved, sender=FormRecord, dispatch_uid="queries.forms")
