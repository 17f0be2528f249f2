"""Audit events as people read them: the event's context (which visit, which form, which
revision) apart from its changes, each change as old → new with the item's label, values readable
(codes by their label, times in the site's time zone), and a running number within the
participant's trail instead of the global sequence number for a blinded reader.

Why the running number: event ids are the chain's global sequence, so the gaps between the ids
of one participant's events count every other event written in between, including the ones a
blinded reader may not see (allocation, pharmacy, DSMB). A blinded reader gets the event's place
in the trail he may read (1 = the participant's first event) and never the global id.

Labels come from the apps: each app may have ``audit_labels.py`` with
``labels(object_type, body, language, cache) -> {"fields": {key: label}, "values": {key: {raw: label}},
"context": {key: label of the value}, "record": str, "in_record": keys the record's name already
says, "hidden": keys kept in the record but not shown}``, every part optional; and ``ACTIONS``,
``{action: label}`` for the actions an app writes that ``ACTION_NAMES`` does not name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .models import AuditEvent

# what an event did and to which kind of record, as people read them (never the stored code)
ACTION_NAMES = {
    "create": gettext_lazy("created"), "change": gettext_lazy("changed"), "void": gettext_lazy("voided"),
    "sign": gettext_lazy("signed"), "unblind": gettext_lazy("unblinded"), "export": gettext_lazy("exported"),
    "raise": gettext_lazy("raised"), "login": gettext_lazy("logged in"), "logout": gettext_lazy("logged out"),
    "login_failed": gettext_lazy("failed login"), "verify": gettext_lazy("verified"),
}
RECORD_NAMES = {
    "adverse_event": gettext_lazy("Adverse event"), "ae_task": gettext_lazy("Adverse-event task"),
    "allocation_list": gettext_lazy("Allocation list"), "api_token": gettext_lazy("API token"),
    "appointment": gettext_lazy("Appointment"), "consent": gettext_lazy("Consent"), "crf_form": gettext_lazy("eCRF form"),
    "dispensing": gettext_lazy("Dispensing"), "dsmb_alert": gettext_lazy("DSMB alert"),
    "dsmb_recommendation": gettext_lazy("DSMB recommendation"), "dsmb_report": gettext_lazy("DSMB report"),
    "eligibility_decision": gettext_lazy("Eligibility decision"),
    "emergency_unblinding": gettext_lazy("Emergency unblinding"), "liposuction": gettext_lazy("Liposuction"),
    "lock_waiver": gettext_lazy("Lock checklist waiver"), "notification": gettext_lazy("Notification"),
    "participant": gettext_lazy("Participant"), "product_release": gettext_lazy("Product release"),
    "protocol_version": gettext_lazy("Protocol version"), "randomisation": gettext_lazy("Randomisation"),
    "reminder_call": gettext_lazy("Reminder call"), "sae_report": gettext_lazy("SAE report"),
    "screening_evidence": gettext_lazy("Screening evidence"), "transplant": gettext_lazy("Transplantation"),
    "trial_state": gettext_lazy("Trial state"), "unblinding_step": gettext_lazy("Unblinding step"),
    "user": gettext_lazy("User account"), "visit": gettext_lazy("Visit"), "withdrawal": gettext_lazy("Withdrawal"),
    "sdv_mark": gettext_lazy("Source-data verification"), "review_finding": gettext_lazy("Review finding"),
    "record_lock": gettext_lazy("Record lock"), "query": gettext_lazy("Query"),
    "casebook_signature": gettext_lazy("Casebook signature"),
}


def action_name(action: str) -> str:
    return str(ACTION_NAMES.get(action) or app_action_names().get(action) or _humanise(action))


def app_action_names() -> dict:
    """The actions the apps name in their ``audit_labels.py`` (``ACTIONS = {action: label}``)."""
    from annulus.trial.extensions import app_modules

    out = {}
    for module in app_modules("audit_labels"):
        out.update(getattr(module, "ACTIONS", {}))
    return out


def record_name(object_type: str) -> str:
    return str(RECORD_NAMES.get(object_type) or _humanise(object_type))
from .selectors import decoded


@dataclass
class Change:
    key: str
    label: str
    old: str
    new: str


@dataclass
class Shown:
    """One event as shown: ``number`` is its place in the participant's trail; ``id`` the global
    sequence number, or None for a blinded reader."""

    number: int
    id: int | None
    timestamp: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    record: str
    reason: str
    hash: str
    context: list[tuple[str, str]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    raw_changes: dict = field(default_factory=dict)

    @property
    def action_label(self) -> str:
        return action_name(self.action)


def is_pair(value: Any) -> bool:
    """A change is stored as ``[old, new]``; anything else in ``changes`` is context."""
    return isinstance(value, (list, tuple)) and len(value) == 2


def _humanise(key: str) -> str:
    return key.replace("__", " ").replace("_", " ")


def _when(text: str) -> str | None:
    """An ISO date-time with an offset (how the audit stores times, in UTC) in the site's zone."""
    if len(text) < 16 or text[4:5] != "-" or "T" not in text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        return None
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")


def show_value(value: Any, choices: dict | None = None) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "∅"
    if choices and str(value) in choices:
        return str(choices[str(value)])
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, (list, tuple)):
        return ", ".join(show_value(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {show_value(v)}" for k, v in value.items())
    if isinstance(value, str):
        return _when(value) or value
    return str(value)


def present(event: AuditEvent, number: int, *, blinded: bool, language: str | None = None,
            cache: dict | None = None) -> Shown:
    from annulus.trial.extensions import audit_labels

    language = language or get_language() or "en"
    body = decoded(event)
    changes = body.get("changes") or {}
    names = audit_labels(event.object_type, body, language, cache) or _own_labels(event.object_type)
    fields, values, context_values = names.get("fields", {}), names.get("values", {}), names.get("context", {})
    shown = Shown(number=number, id=None if blinded else event.pk, timestamp=event.timestamp,
                  actor=event.actor_username, action=event.action, object_type=event.object_type,
                  object_id=event.object_id, record=names.get("record") or record_name(event.object_type),
                  reason=event.reason, hash=event.hash, raw_changes=changes)
    for key, value in changes.items():
        if key in names.get("hidden", ()):
            continue  # kept in the record (raw_changes), not shown
        label = str(fields.get(key) or _humanise(key))
        if is_pair(value):
            shown.changes.append(Change(key, label, show_value(value[0], values.get(key)),
                                        show_value(value[1], values.get(key))))
        elif key not in names.get("in_record", ()):
            shown.context.append((label, str(context_values.get(key) or show_value(value, values.get(key)))))
    return shown


def _own_labels(object_type: str) -> dict:
    """Names for events no app labels: a waiver of the pre-lock checklist (on the trail of the
    participant whose line it waived) shows the line as it read, not the line's key."""
    if object_type == "lock_waiver":
        return {"fields": {"label": _("Open item")}, "hidden": ("item",)}
    return {}


def trail_numbers(participant_id: int) -> dict[int, int]:
    """Event id -> its place in the participant's trail (1 = first), whatever the filter."""
    ids = AuditEvent.objects.filter(participant_id=participant_id).order_by("id").values_list("id", flat=True)
    return {pk: n for n, pk in enumerate(ids, 1)}


def present_trail(events, participant_id: int, *, blinded: bool) -> list[Shown]:
    """``events`` (of one participant, any order, any filter) as shown to a reader."""
    numbers = trail_numbers(participant_id)
    language = get_language() or "en"
    cache: dict = {}
    return [present(e, numbers[e.pk], blinded=blinded, language=language, cache=cache) for e in events]
