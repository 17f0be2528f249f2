"""Open work before the database lock: every query still open or answered (not closed)."""

from __future__ import annotations

from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext as _g
from django.utils.translation import gettext_lazy as _

from . import selectors
from .models import Query

ORDER = 25
GROUP = "open_queries"
TITLE = _("Open queries (open or answered, not closed)")


def open_items() -> list[dict]:
    language = get_language()
    rows = (Query.objects.filter(status__in=selectors.ACTIVE).select_related("participant")
            .order_by("participant__case_number", "participant__screening_number", "raised_at", "id"))
    out = []
    for q in rows:
        status = q.get_status_display()
        what = selectors.target_text(q, language) or _g("casebook")
        out.append({"key": f"query:{q.pk}", "label": f"{q.participant.label} · {q.label} · {what} · {status}",
                    "link": reverse("query", args=[q.pk])})
    return out
