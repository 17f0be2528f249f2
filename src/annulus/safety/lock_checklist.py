"""Open work before the database lock: SAE reports not yet sent (and still required), and
adverse-event tasks neither answered by an adverse event nor dismissed."""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _g
from django.utils.translation import gettext_lazy as _

from .models import AeTask, SaeReport

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


def open_tasks() -> list[dict]:
    rows = AeTask.objects.filter(closed_at__isnull=True).select_related("participant").order_by("opened_at", "id")
    return [{"key": f"ae_task:{t.pk}", "label": f"{t.participant.label} · {t.get_source_display()} · {t.description}",
             "link": reverse("safety_ae_task", args=[t.pk])} for t in rows]


GROUPS = [
    {"group": GROUP, "title": TITLE, "order": ORDER, "open_items": open_items},
    {"group": "ae_tasks", "title": _("Adverse-event tasks still open"), "order": ORDER + 1, "open_items": open_tasks},
]
