"""Open work before the database lock: eCRF forms saved as drafts (not complete), and scheduled
visits whose window has closed with the visit neither recorded as done nor as missed."""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _g
from django.utils.translation import gettext_lazy as _

from annulus.participants import states as pstates
from annulus.participants.models import Participant
from annulus.trial.selectors import active_protocol

from .models import UNSCHEDULED, FormRecord
from .selectors import active_schedules, form_name

ORDER = 20
GROUP = "draft_forms"
TITLE = _("Draft forms (saved but not complete)")

# whose schedule counts: participants still in the trial and those who completed it (withdrawn,
# lost and screen-failed participants have no visits left to do or miss)
SCHEDULED = tuple(pstates.ACTIVE_AFTER_ENROLMENT | {pstates.COMPLETED})


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


def open_visits(today=None) -> list[dict]:
    """Protocol visits (not the liposuction or transplantation procedures, recorded on their own
    pages) whose window closed before ``today`` and that have no visit record, attended or missed.
    The schedule may already show such a visit as missed once its grace period is over; the lock
    waits for the record all the same (recorded as missed with the reason, or entered late)."""
    today = today or timezone.localdate()
    people = Participant.objects.filter(case_number__isnull=False, status__in=SCHEDULED)
    out = []
    for p, slots in active_schedules(today=today, people=people):
        for s in slots:
            if s.visit_id == UNSCHEDULED or s.procedure or s.record is not None:
                continue
            if s.window_end is None or s.window_end >= today:
                continue
            out.append({"key": f"visit:{p.pk}:{s.visit_id}",
                        "label": f"{p.label} · {s.name} · {_g('window')} {s.window_start:%Y-%m-%d} – "
                                 f"{s.window_end:%Y-%m-%d} · {_g('closed, no visit recorded')}",
                        "link": reverse("visit", args=[p.pk, s.key])})
    return out


GROUPS = [
    {"group": GROUP, "title": TITLE, "order": ORDER, "open_items": open_items},
    {"group": "visits_open", "title": _("Visits neither done nor missed (window closed, nothing recorded)"),
     "order": ORDER + 1, "open_items": open_visits},
]
