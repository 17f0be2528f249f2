"""Open work before the database lock: enrolled participants without an end-of-study status."""

from __future__ import annotations

from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from . import states
from .models import Participant

ORDER = 10
GROUP = "participants"
TITLE = _("Participants without an end-of-study status (completed, withdrawn or lost to follow-up)")

ENDED = (states.COMPLETED, states.WITHDRAWN, states.LOST)


def open_items() -> list[dict]:
    rows = (Participant.objects.filter(case_number__isnull=False).exclude(status__in=ENDED)
            .order_by("case_number").only("id", "case_number", "screening_number", "status"))
    return [{"key": f"participant:{p.pk}", "label": f"{p.label} · {p.status_label}",
             "link": reverse("participant", args=[p.pk])} for p in rows]
