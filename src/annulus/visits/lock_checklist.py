"""Open work before the database lock: eCRF forms saved as drafts (not complete)."""

from __future__ import annotations

from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext as _g
from django.utils.translation import gettext_lazy as _

from annulus.trial.selectors import active_protocol

from .models import UNSCHEDULED, FormRecord
from .selectors import form_name

ORDER = 20
GROUP = "draft_forms"
TITLE = _("Draft forms (saved but not complete)")


def open_items() -> list[dict]:
    protocol = active_protocol()
    names = {v.id: v.name.get(get_language()) for v in protocol.schedule.visits}
    rows = (FormRecord.objects.filter(state=FormRecord.DRAFT)
            .select_related("visit", "participant").order_by("participant__case_number", "visit_id", "form_id"))
    out = []
    for r in rows:
        v = r.visit
        visit = names.get(v.visit_id) if v.visit_id != UNSCHEDULED else f"{_g('Unscheduled')} {v.number}"
        out.append({"key": f"crf_form:{r.pk}",
                    "label": f"{r.participant.label} · {visit or v.visit_id} · {form_name(protocol, r.form_id)}",
                    "link": reverse("crf_form", args=[r.participant_id, v.key, r.form_id])})
    return out
