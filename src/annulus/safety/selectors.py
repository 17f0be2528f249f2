"""Reads for the safety pages, listings, exports and the API. No allocation data here: the
closed DSMB material is served only to holders of ``dsmb.closed``."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from annulus.accounts.permissions import has
from annulus.workdays import clock_status

from .models import AdverseEvent, AeTask, DsmbAlert, DsmbReport, DsmbRecommendation, SaeReport

LISTINGS = {"all": "All adverse events", "serious": "Serious adverse events", "deaths": "Deaths"}


def events(*, listing: str = "all", participant_id: int | None = None, q: str = ""):
    qs = AdverseEvent.objects.select_related("participant")
    if listing == "serious":
        qs = qs.filter(serious=True)
    elif listing == "deaths":
        qs = qs.filter(outcome="fatal")
    if participant_id:
        qs = qs.filter(participant_id=participant_id)
    if q:
        q = q.strip()[:60]
        qs = qs.filter(Q(term__icontains=q) | Q(participant__case_number__icontains=q)
                       | Q(participant__screening_number__icontains=q) | Q(meddra_pt_code__icontains=q))
    return qs.order_by("-onset_at", "-id")


def get_event(pk: int) -> AdverseEvent | None:
    return AdverseEvent.objects.select_related("participant", "created_by").filter(pk=pk).first()


def human(delta: timedelta) -> str:
    """A time span, "1 d 3 h 5 min", in the active language."""
    minutes = int(abs(delta.total_seconds()) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = (([_("%(n)s d") % {"n": days}] if days else []) + ([_("%(n)s h") % {"n": hours}] if hours or days else [])
             + [_("%(n)s min") % {"n": mins}])
    return " ".join(parts)


def clock(report: SaeReport, now=None) -> dict:
    """State of one report's clock: running/overdue before sending, met/late after, stopped
    when the event is no longer serious."""
    now = now or timezone.now()
    if report.not_required_since and report.sent_at is None:
        return {"state": "stopped", "css": "", "text": _("not required (event no longer serious)")}
    st = clock_status(report.due_at, now, sent_at=report.sent_at)
    left = st["time_left"]
    texts = {"running": _("%(time)s left"), "overdue": _("overdue by %(time)s"),
             "met": _("sent %(time)s before the deadline"), "late": _("sent %(time)s late")}
    text = texts[st["state"]] % {"time": human(left)}
    css = {"running": "due" if left < timedelta(hours=3) else "ok", "overdue": "overdue", "met": "ok", "late": "bad"}[st["state"]]
    return {"state": st["state"], "css": css, "text": text, "seconds_left": left.total_seconds()}


def is_susar(ae: AdverseEvent, related=None) -> bool:
    """A suspected unexpected serious adverse reaction: serious, unexpected, and related to the
    study product (a causality the protocol counts as related, ``safety.related_causality``)."""
    if related is None:
        from annulus.trial.selectors import active_protocol

        related = active_protocol().safety.related_causality
    return bool(ae.serious and ae.expectedness == "unexpected" and ae.causality_product in set(related))


def sae_reports(*, only_open: bool = False):
    qs = SaeReport.objects.select_related("adverse_event__participant", "sent_by")
    if only_open:
        qs = qs.filter(sent_at__isnull=True, not_required_since__isnull=True)
    return qs.order_by("due_at", "id")


def clock_rows(reports, now=None) -> list[dict]:
    """Each report with its clock and whether its event is a SUSAR (flagged on the pages), with
    its recipient, rule and calendar warning in the active language."""
    from annulus.trial.selectors import active_protocol

    from . import clock_text

    now = now or timezone.now()
    protocol = active_protocol()
    related = protocol.safety.related_causality
    return [{"r": r, "clock": clock(r, now), "susar": is_susar(r.adverse_event, related),
             "name": clock_text.recipient_name(r, protocol), "rule": clock_text.rule(r.rule),
             "warning": clock_text.warning(r.calendar_warning)} for r in reports]


def reports_for(user):
    """Interim reports the user may open: the closed ones only for closed-report readers."""
    qs = DsmbReport.objects.defer("html", "html_zh").select_related("generated_by")
    if not has(user, "dsmb.closed"):
        qs = qs.filter(kind="open")
    return qs


def report_for(user, pk: int) -> DsmbReport | None:
    """None both when the report does not exist and when the user may not see it, so the two
    cannot be told apart."""
    if not has(user, "dsmb.open"):
        return None
    return reports_for(user).defer(None).filter(pk=pk).first()


def alerts_for(user):
    if not has(user, "dsmb.closed"):
        return DsmbAlert.objects.none()
    return DsmbAlert.objects.select_related("triggered_by_ae__participant")


def alert_for(user, pk: int) -> DsmbAlert | None:
    """One alert for a closed-report reader; None otherwise (the same answer as a missing one)."""
    return alerts_for(user).filter(pk=pk).first()


def recommendations():
    return DsmbRecommendation.objects.select_related("recorded_by")


# ---- adverse-event tasks -------------------------------------------------------------------------

def open_tasks(participant_id: int | None = None):
    """Findings that may be adverse events and still wait for the form (or a dismissal)."""
    qs = AeTask.objects.filter(closed_at__isnull=True).select_related("participant").order_by("opened_at", "id")
    return qs.filter(participant_id=participant_id) if participant_id is not None else qs


def tasks(participant_id: int):
    return AeTask.objects.filter(participant_id=participant_id).select_related(
        "adverse_event", "closed_by").order_by("opened_at", "id")


def get_task(pk) -> AeTask | None:
    return AeTask.objects.select_related("participant", "adverse_event").filter(pk=pk).first()


def open_task(participant_id: int, pk) -> AeTask | None:
    """An open task of this participant named by a query parameter, or None."""
    if not str(pk or "").isdigit():
        return None
    return AeTask.objects.filter(pk=int(pk), participant_id=participant_id, closed_at__isnull=True).first()


def audit_mismatches(participant_ids) -> list[str]:
    """Each adverse event of ``participant_ids`` whose fields in the database differ from the last
    values the audit trail records for it, or that one of them does not know: one line each."""
    from annulus.audit.selectors import replayed, same_value
    from annulus.participants.models import Participant

    from .services import snapshot

    trail = replayed("adverse_event", participant_ids)
    numbers = dict(Participant.objects.filter(pk__in=list(participant_ids)).values_list("pk", "screening_number"))
    out = []
    for ae in AdverseEvent.objects.filter(participant_id__in=list(participant_ids)).order_by("pk"):
        where = f"participant {numbers.get(ae.participant_id, ae.participant_id)}, adverse event {ae.number}"
        audited = trail.pop(str(ae.pk), None)
        if audited is None:
            out.append(f"{where}: in the database but never in the audit trail")
            continue
        for name, stored in snapshot(ae).items():
            if not same_value(stored, audited.get(name)):
                out.append(f"{where}: {name} is {stored!r} in the database but {audited.get(name)!r} in the audit "
                           "trail")
    for pk in trail:
        out.append(f"adverse event {pk}: in the audit trail but no longer in the database")
    return out
