"""Open work before the database lock: SAE reports not yet sent (and still required)."""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _g
from django.utils.translation import gettext_lazy as _

from .models import SaeReport

ORDER = 30
GROUP = "sae_reports"
TITLE = _("SAE reports not yet sent")


def open_items() -> list[dict]:
    rows = (SaeReport.objects.filter(sent_at__isnull=True, not_required_since__isnull=True)
            .select_related("adverse_event__participant").order_by("due_at", "id"))
    return [{"key": f"sae_report:{r.pk}",
             "label": f"{r.adverse_event.participant.label} · {r.adverse_event.label} · {r.recipient_name} · "
                      f"{_g('due by')} {timezone.localtime(r.due_at):%Y-%m-%d %H:%M}",
             "link": reverse("safety_sae_report", args=[r.pk])} for r in rows]
