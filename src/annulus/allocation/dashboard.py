from annulus.accounts.permissions import has
from annulus.participants.selectors import scoped

from . import selectors


def panels(request):
    """Counts that do not depend on arm: envelopes opened, released, dispensed, transplanted;
    and for the two key holders, their own work queue."""
    user = request.user
    if has(user, "allocation.release"):
        return [_pharmacy_queue(user)]
    if has(user, "allocation.generate"):
        return [{"template": "allocation/_designer_panel.html", "order": 30, "summary": selectors.list_summary(user),
                 "tasks": _designer_tasks()}]
    if not has(user, "allocation.view"):
        return []
    from .models import Dispensing, EmergencyUnblinding, Envelope, Transplant

    return [{"template": "allocation/_dashboard.html", "order": 30,
             "opened": scoped(user, Envelope.objects.filter(participant__isnull=False)).count(),
             "dispensed": scoped(user, Dispensing.objects, "envelope__participant").count(),
             "transplanted": scoped(user, Transplant.objects).count(),
             "unblinded": scoped(user, EmergencyUnblinding.objects).values("participant").distinct().count(),
             "has_list": selectors.current_list() is not None}]


def _pharmacy_queue(user=None) -> dict:
    """What waits for the pharmacist, in counts (the pharmacy page lists the drug codes), of the
    participants of ``user``'s sites."""
    from .models import Dispensing, Envelope, ProductRelease, Transplant

    opened = set(scoped(user, Envelope.objects.filter(participant__isnull=False)).values_list("pk", flat=True))
    passed = set(ProductRelease.objects.filter(superseded=False, passed=True).values_list("envelope_id", flat=True))
    failed = set(ProductRelease.objects.filter(superseded=False, passed=False).values_list("envelope_id", flat=True))
    dispensed = set(Dispensing.objects.values_list("envelope_id", flat=True))
    transplanted = set(scoped(user, Transplant.objects).values_list("envelope_id", flat=True))
    # the queue itself, in order of opening within each kind: release checks first (nothing can be
    # dispensed before them), then quarantined lots to test again or replace, then dispensing
    kinds = [("release", opened - passed - failed), ("retest", (opened & failed) - passed),
             ("dispense", (opened & passed) - dispensed)]
    envelopes = {e.pk: e for e in Envelope.objects.filter(pk__in=set().union(*(ids for _, ids in kinds)))}
    queue = [{"kind": kind, "envelope": envelopes[pk]}
             for kind, ids in kinds for pk in sorted(ids, key=lambda i: envelopes[i].random_number)]
    return {"template": "allocation/_pharmacy_panel.html", "order": 30,
            "to_release": len(opened - passed - failed), "failed": len(opened & failed - passed),
            "to_dispense": len((opened & passed) - dispensed), "awaiting_transplant": len(dispensed - transplanted),
            "transplanted": len(transplanted), "queue": queue[:QUEUE_SHOWN], "more": max(0, len(queue) - QUEUE_SHOWN)}


QUEUE_SHOWN = 15


def _designer_tasks() -> list[dict]:
    """What waits for the level-1 key holder: the list to generate, the holder documents not yet
    handed out (downloaded), and the first-level unblinding once the database is locked."""
    from django.urls import reverse
    from django.utils.translation import gettext as _

    from annulus.audit.models import AuditEvent
    from annulus.audit.selectors import decoded
    from annulus.randomisation.documents import HOLDERS, LEVEL1_FILE, allocation_table_name
    from annulus.trial.selectors import trial_state

    lst = selectors.current_list()
    page = reverse("allocation_designer")
    if lst is None:
        return [{"text": _("Generate and seal the allocation list"), "link": page}]
    tasks = []
    exported = set()
    for e in AuditEvent.objects.filter(action="export", object_type="allocation_list", object_id=str(lst.pk)):
        document = (decoded(e).get("changes") or {}).get("document")
        if isinstance(document, list) and document:
            exported.add(document[-1])
    for name in [allocation_table_name(h) for h in HOLDERS] + [LEVEL1_FILE]:
        if name not in exported:
            tasks.append({"text": _("Hand out %(document)s (not yet downloaded)") % {"document": name}, "link": page})
    if trial_state() == "locked" and "level1" not in selectors.unblinding_steps():
        tasks.append({"text": _("Release the group labels for the analysis (first-level unblinding)"),
                      "link": reverse("unblinding")})
    return tasks
