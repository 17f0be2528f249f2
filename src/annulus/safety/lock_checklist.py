"""Open work before the database lock: SAE reports not yet sent or not yet acknowledged by their
recipient (while still required), adverse events without a final outcome, and adverse-event
tasks neither answered by an adverse event nor dismissed."""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _g
from django.utils.translation import gettext_lazy as _

from .models import OUTCOMES, AdverseEvent, AeTask, SaeReport
from .services import ENDED_OUTCOMES

ORDER = 30
GROUP = "sae_reports"
TITLE = _("SAE reports not yet sent or not yet acknowledged by the recipient")

# An adverse event has its final outcome when it is recovered/resolved, recovered with sequelae
# or fatal (each with its end date, which the event form requires for these). "Recovering",
# "not recovered" and "unknown" are the outcomes still open at the lock: the event is followed up
# to one of the final ones, or the principal investigator waives it (e.g. ongoing at the end of
# follow-up) with a reason.
OPEN_OUTCOMES = tuple(value for value, _label in OUTCOMES if value not in ENDED_OUTCOMES)


def _when(dt) -> str:
    return f"{timezone.localtime(dt):%Y-%m-%d %H:%M}"


def open_items() -> list[dict]:
    from annulus.trial.selectors import active_protocol

    from .clock_text import recipient_name

    protocol = active_protocol()
    rows = (SaeReport.objects.filter(acknowledged_at__isnull=True, not_required_since__isnull=True)
            .select_related("adverse_event__participant").order_by("due_at", "id"))
    out = []
    for r in rows:
        head = f"{r.adverse_event.participant.label} · {r.adverse_event.label} · {recipient_name(r, protocol)}"
        if r.sent_at is None:
            out.append({"key": f"sae_report:{r.pk}", "label": f"{head} · {_g('not sent')}, {_g('due by')} {_when(r.due_at)}",
                        "link": reverse("safety_sae_report", args=[r.pk])})
        else:
            # a separate item: a waiver of the unsent report does not cover its acknowledgement
            out.append({"key": f"sae_report_ack:{r.pk}",
                        "label": f"{head} · {_g('sent')} {_when(r.sent_at)}, {_g('not acknowledged')}",
                        "link": reverse("safety_sae_report", args=[r.pk])})
    return out


def open_outcomes() -> list[dict]:
    names = dict(OUTCOMES)
    rows = (AdverseEvent.objects.filter(outcome__in=OPEN_OUTCOMES).select_related("participant")
            .order_by("participant__case_number", "participant_id", "number"))
    return [{"key": f"ae_outcome:{ae.pk}",
             "label": f"{ae.label} · {ae.term} · {_g('onset')} {timezone.localtime(ae.onset_at):%Y-%m-%d} · "
                      f"{_g('outcome')}: {names[ae.outcome]}",
             "link": reverse("safety_ae_edit", args=[ae.pk])} for ae in rows]


def open_tasks() -> list[dict]:
    rows = AeTask.objects.filter(closed_at__isnull=True).select_related("participant").order_by("opened_at", "id")
    return [{"key": f"ae_task:{t.pk}", "label": f"{t.participant.label} · {t.get_source_display()} · {t.description}",
             "link": reverse("safety_ae_task", args=[t.pk])} for t in rows]


GROUPS = [
    {"group": GROUP, "title": TITLE, "order": ORDER, "open_items": open_items},
    {"group": "ae_outcomes", "title": _("Adverse events without a final outcome (recovering, not recovered or "
                                        "unknown; final: recovered, recovered with sequelae or fatal)"),
     "order": ORDER + 1, "open_items": open_outcomes},
    {"group": "ae_tasks", "title": _("Adverse-event tasks still open"), "order": ORDER + 2, "open_items": open_tasks},
]
