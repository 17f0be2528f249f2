from annulus.accounts.permissions import has
from annulus.participants.selectors import consents_of, withdrawal_of

from . import selectors


def panels(request, participant):
    if not has(request.user, "safety.view"):
        return []
    events = list(selectors.adverse_events_of(participant.pk))
    w = withdrawal_of(participant.pk)
    w = w if w is not None and w.adverse_event_id is not None else None
    linked = next((e for e in events if w and e.pk == w.adverse_event_id), None)
    return [{"template": "safety/_participant_panel.html", "order": 50, "p": participant, "events": events,
             "withdrawal_ae": linked, "tasks": list(selectors.tasks(participant.pk)),
             "can_edit": has(request.user, "safety.edit"),
             "can_add": has(request.user, "safety.edit") and bool(consents_of(participant.pk))}]
