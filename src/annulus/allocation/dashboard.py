from annulus.accounts.permissions import has

from . import selectors


def panels(request):
    """Counts that do not depend on arm: envelopes opened, released, dispensed, transplanted;
    and for the two key holders, their own work queue."""
    user = request.user
    if has(user, "allocation.release"):
        return [_pharmacy_queue()]
    if has(user, "allocation.generate"):
        return [{"template": "allocation/_designer_panel.html", "order": 30, "summary": selectors.list_summary(user)}]
    if not has(user, "allocation.view"):
        return []
    from .models import Dispensing, EmergencyUnblinding, Envelope, Transplant

    return [{"template": "allocation/_dashboard.html", "order": 30,
             "opened": Envelope.objects.filter(participant__isnull=False).count(),
             "dispensed": Dispensing.objects.count(), "transplanted": Transplant.objects.count(),
             "unblinded": EmergencyUnblinding.objects.values("participant").distinct().count(),
             "has_list": selectors.current_list() is not None}]


def _pharmacy_queue() -> dict:
    """What waits for the pharmacist, in counts (the pharmacy page lists the drug codes)."""
    from .models import Dispensing, Envelope, ProductRelease, Transplant

    opened = set(Envelope.objects.filter(participant__isnull=False).values_list("pk", flat=True))
    passed = set(ProductRelease.objects.filter(superseded=False, passed=True).values_list("envelope_id", flat=True))
    failed = set(ProductRelease.objects.filter(superseded=False, passed=False).values_list("envelope_id", flat=True))
    dispensed = set(Dispensing.objects.values_list("envelope_id", flat=True))
    transplanted = set(Transplant.objects.values_list("envelope_id", flat=True))
    return {"template": "allocation/_pharmacy_panel.html", "order": 30,
            "to_release": len(opened - passed - failed), "failed": len(opened & failed - passed),
            "to_dispense": len((opened & passed) - dispensed), "awaiting_transplant": len(dispensed - transplanted),
            "transplanted": len(transplanted)}
