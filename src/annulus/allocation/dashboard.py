from annulus.accounts.permissions import has

from . import selectors


def panels(request):
    """Counts that do not depend on arm: envelopes opened, released, dispensed, transplanted."""
    user = request.user
    if not has(user, "allocation.view"):
        return []
    from .models import Dispensing, EmergencyUnblinding, Envelope, Transplant

    return [{"template": "allocation/_dashboard.html", "order": 30,
             "opened": Envelope.objects.filter(participant__isnull=False).count(),
             "dispensed": Dispensing.objects.count(), "transplanted": Transplant.objects.count(),
             "unblinded": EmergencyUnblinding.objects.values("participant").distinct().count(),
             "has_list": selectors.current_list() is not None}]
