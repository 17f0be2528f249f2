from annulus.accounts.permissions import has
from annulus.participants.models import Withdrawal

from . import selectors
from .models import AdverseEvent


def panels(request, participant):
    if not has(request.user, "safety.view"):
        return []
    events = list(AdverseEvent.objects.filter(participant=participant).order_by("onset_at", "id"))
    w = Withdrawal.objects.filter(participant=participant, adverse_event_id__isnull=False).first()
    linked = next((e for e in events if w and e.pk == w.adverse_event_id), None)
    return [{"template": "safety/_participant_panel.html", "order": 50, "p": participant, "events": events,
             "withdrawal_ae": linked, "tasks": list(selectors.tasks(participant.pk)),
             "can_edit": has(request.user, "safety.edit"),
             "can_add": has(request.user, "safety.edit") and participant.consents.exists()}]
