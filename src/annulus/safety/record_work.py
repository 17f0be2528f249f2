"""Open safety work on a participant's record that forbids locking it (X-7.5): adverse-event
tasks neither answered nor dismissed, and SAE reports not sent or not acknowledged. They belong
to the casebook's adverse-event log (visit "", form "adverse_event")."""

from __future__ import annotations

from django.utils.translation import gettext as _

from .models import AeTask, SaeReport


def open_work(participant_id: int, visit: str, form: str) -> list[str]:
    if visit or form not in ("", "adverse_event"):
        return []
    lines = []
    for task in AeTask.objects.filter(participant_id=participant_id, closed_at__isnull=True).order_by("id"):
        lines.append(_("adverse-event task open: %(d)s") % {"d": task.description})
    reports = (SaeReport.objects.filter(adverse_event__participant_id=participant_id, not_required_since__isnull=True)
               .select_related("adverse_event").order_by("id"))
    for r in reports:
        if r.sent_at is None:
            lines.append(_("SAE report not sent: %(ae)s to %(to)s") % {"ae": r.adverse_event.term, "to": r.recipient_name})
        elif r.acknowledged_at is None:
            lines.append(_("SAE report not acknowledged: %(ae)s by %(to)s") % {
                "ae": r.adverse_event.term, "to": r.recipient_name})
    return lines
