"""Reads for the safety pages, listings, exports and the API. No allocation data here: the
closed DSMB material is served only to holders of ``dsmb.closed``."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from annulus.accounts.permissions import has
from annulus.participants.selectors import scoped
from annulus.workdays import clock_status

from .models import AdverseEvent, AeTask, DsmbAlert, DsmbReport, DsmbRecommendation, SaeReport

LISTINGS = {"all": "All adverse events", "serious": "Serious adverse events", "deaths": "Deaths"}


def events(*, listing: str = "all", participant_id: int | None = None, q: str = "", user=None):
    """Adverse events of the participants ``user`` may see (every one when ``user`` is None)."""
    qs = scoped(user, AdverseEvent.objects.select_related("participant"))
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


def adverse_events_of(participant_id: int) -> list[AdverseEvent]:
    """The participant's adverse events by onset; read once per page."""
    from annulus.trial.selectors import read_once

    return read_once(("AdverseEvent", int(participant_id)), lambda: list(
        AdverseEvent.objects.filter(participant_id=participant_id).order_by("onset_at", "id")))


def get_event(pk: int, user=None) -> AdverseEvent | None:
    """The event ``pk``; None also when it is a participant's that ``user`` may not see."""
    return scoped(user, AdverseEvent.objects.select_related("participant", "created_by")).filter(pk=pk).first()


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


def sae_reports(*, only_open: bool = False, user=None):
    qs = scoped(user, SaeReport.objects.select_related("adverse_event__participant", "sent_by"),
                "adverse_event__participant")
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


def trial_wide(user) -> bool:
    """Whether ``user`` may read material of the whole trial that names participants (the DSMB's
    interim reports list the serious events by participant): not an account limited to sites."""
    from annulus.participants.selectors import user_sites

    return user is None or user_sites(user) is None


def reports_for(user):
    """Interim reports the user may open: the closed ones only for closed-report readers; none
    for an account limited to sites (the reports are the whole trial's)."""
    qs = DsmbReport.objects.defer("html", "html_zh").select_related("generated_by")
    if not trial_wide(user):
        return qs.none()
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
    if not has(user, "dsmb.closed") or not trial_wide(user):
        return DsmbAlert.objects.none()
    return DsmbAlert.objects.select_related("triggered_by_ae__participant")


def alert_for(user, pk: int) -> DsmbAlert | None:
    """One alert for a closed-report reader; None otherwise (the same answer as a missing one)."""
    return alerts_for(user).filter(pk=pk).first()


def recommendations():
    return DsmbRecommendation.objects.select_related("recorded_by")


# ---- adverse-event tasks -------------------------------------------------------------------------

def open_tasks(participant_id: int | None = None, user=None):
    """Findings that may be adverse events and still wait for the form (or a dismissal)."""
    qs = scoped(user, AeTask.objects).filter(closed_at__isnull=True).select_related("participant").order_by("opened_at", "id")
    return qs.filter(participant_id=participant_id) if participant_id is not None else qs


def tasks(participant_id: int, user=None):
    return scoped(user, AeTask.objects).filter(participant_id=participant_id).select_related(
        "adverse_event", "closed_by").order_by("opened_at", "id")


def get_task(pk, user=None) -> AeTask | None:
    return scoped(user, AeTask.objects).select_related("participant", "adverse_event").filter(pk=pk).first()


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
    return out + sae_report_mismatches(participant_ids) + ae_task_mismatches(participant_ids)


SAE_REPORT_FIELDS = {"recipient": "recipient", "due_at": "due_at", "calendar_warning": "calendar_warning",
                     "not_required_since": "not_required_since", "sent_at": "sent_at", "sent_to": "sent_to",
                     "method": "sent_method", "acknowledged_at": "acknowledged_at",
                     "acknowledged_by": "acknowledged_by", "overdue_notified_at": "overdue_notified_at"}


def sae_report_mismatches(participant_ids) -> list[str]:
    """The SAE reports of ``participant_ids`` against the trail: recipient, deadline, calendar
    warning, not required since, expedited (SUSAR), sent (when, to whom, how, by whom),
    acknowledged (when, by whom, recorded by whom), overdue notice. Not recorded by the trail: the
    deadline's rule text, the recipient's printed name, a SUSAR clock's start, and which of the
    participant's adverse events a report belongs to (the participant is compared)."""
    from annulus.audit.selectors import against_trail, new_value, recorded, screening_numbers

    ids = list(participant_ids)
    numbers = screening_numbers(ids)
    trail = {}
    for e in recorded(["sae_report"], ids):
        mine = trail.setdefault(e.object_id, {"participant": e.participant_id})
        mine.update({name: new_value(change) for name, change in e.changes.items()})
        if "sent_at" in e.changes:
            mine["sent_by"] = e.actor
        if "acknowledged_at" in e.changes:
            mine["ack_recorded_by"] = e.actor
    rows = SaeReport.objects.filter(adverse_event__participant_id__in=ids).order_by("pk").values_list(
        "pk", "adverse_event__participant_id", "adverse_event__number", "expedited", "sent_by__username",
        "ack_recorded_by__username", *SAE_REPORT_FIELDS.values())
    fields = list(SAE_REPORT_FIELDS)
    return against_trail(
        rows, trail, what="SAE report", participant=lambda r: r[1],
        where=lambda r: f"participant {numbers.get(r[1], r[1])}, adverse event {r[2]}, SAE report {r[0]}",
        pairs=lambda r, a: [(name, value, a.get(name)) for name, value in zip(fields, r[6:])]
        + [("expedited", r[3], a.get("expedited", False)), ("sent_by", r[4], a.get("sent_by")),
           ("ack_recorded_by", r[5], a.get("ack_recorded_by"))])


def _event_number(label) -> int | None:
    """The number of an adverse event in its label as the trail keeps it ("…-AE02" -> 2)."""
    head, sep, number = str(label or "").rpartition("-AE")
    return int(number) if sep and number.isdigit() else None


def ae_task_mismatches(participant_ids) -> list[str]:
    """The adverse-event tasks of ``participant_ids`` against the trail: source, description, state
    (open, recorded, dismissed), the adverse event recorded for it (its number), the reason of a
    dismissal, who opened and who closed it. Not recorded by the trail: the finding's key, the
    suggested term, and the times (the events' own are a moment later)."""
    from annulus.audit.selectors import against_trail, author, new_value, recorded, screening_numbers

    ids = list(participant_ids)
    numbers = screening_numbers(ids)
    trail = {}
    for e in recorded(["ae_task"], ids):
        mine = trail.setdefault(e.object_id, {"participant": e.participant_id, "state": "open"})
        mine.update({name: new_value(change) for name, change in e.changes.items()})
        if e.changes.get("state") is not None and "source" not in e.changes:  # the task closed
            mine.update(closed_by=e.actor, dismissed_reason=e.reason if mine["state"] == "dismissed" else "")
        else:
            mine["opened_by"] = e.actor
    rows = AeTask.objects.filter(participant_id__in=ids).order_by("pk").values_list(
        "pk", "participant_id", "source", "description", "closed_at", "adverse_event__number", "dismissed_reason",
        "opened_by__username", "closed_by__username")

    def state(r) -> str:
        return "open" if r[4] is None else ("recorded" if r[5] is not None else "dismissed")

    return against_trail(
        rows, trail, what="adverse-event task", participant=lambda r: r[1],
        where=lambda r: f"participant {numbers.get(r[1], r[1])}, adverse-event task {r[0]}",
        pairs=lambda r, a: [("source", r[2], a.get("source")), ("description", r[3], a.get("description")),
                            ("state", state(r), a["state"]),
                            ("adverse_event", r[5], _event_number(a.get("adverse_event"))),
                            ("dismissed_reason", r[6], a.get("dismissed_reason")),
                            ("opened_by", author(r[7]), a.get("opened_by")), ("closed_by", r[8], a.get("closed_by"))])


def trial_audit_mismatches() -> list[str]:
    """The DSMB's records against the trail (once, not per participant): each alert (threshold,
    count, and whether it counts one arm or all participants: the arm itself is kept out of the
    trail by the blind, and out of these lines), each recommendation (meeting date, decision,
    summary, whether closed notes exist: their text is kept out of the trail, who recorded it) and
    each interim report (kind, data cut-off, scheduled, who produced it). Not recorded by the
    trail: an alert's events and level, a recommendation's data cut-off, a report's content."""
    from annulus.audit.selectors import author, differences, new_value, recorded

    trail: dict[tuple[str, str], dict] = {}
    for e in recorded(["dsmb_alert", "dsmb_recommendation", "dsmb_report"]):
        mine = trail.setdefault((e.object_type, e.object_id), {})
        mine.update({name: new_value(change) for name, change in e.changes.items()})
        mine.update(recorded_by=e.actor, generated_by=e.actor)  # the author of a recommendation, a report
    out = []

    def compare(otype, pk, where, pairs):
        audited = trail.pop((otype, str(pk)), None)
        if audited is None:
            out.append(f"{where}: in the database but never in the audit trail")
            return
        out.extend(differences(where, [(name, stored, audited.get(name)) for name, stored in pairs]))

    for pk, threshold, count, arm in DsmbAlert.objects.order_by("pk").values_list("pk", "threshold_id", "count", "arm"):
        compare("dsmb_alert", pk, f"DSMB alert {pk}", [
            ("threshold", threshold), ("count", count), ("scope", "one arm" if arm else "all participants")])
    for pk, meeting_on, decision, summary, notes, by in DsmbRecommendation.objects.order_by("pk").values_list(
            "pk", "meeting_on", "decision", "summary", "closed_notes", "recorded_by__username"):
        compare("dsmb_recommendation", pk, f"DSMB recommendation {pk}", [
            ("meeting_on", meeting_on), ("decision", decision), ("summary", summary),
            ("closed_notes", "(recorded)" if notes else ""), ("recorded_by", by)])
    for pk, kind, as_of, scheduled, by in DsmbReport.objects.order_by("pk").values_list(
            "pk", "kind", "as_of", "scheduled", "generated_by__username"):
        compare("dsmb_report", pk, f"DSMB report {pk}", [
            ("kind", kind), ("as_of", as_of), ("scheduled", scheduled), ("generated_by", author(by))])
    names = {"dsmb_alert": "DSMB alert", "dsmb_recommendation": "DSMB recommendation", "dsmb_report": "DSMB report"}
    out += [f"{names[otype]} {pk}: in the audit trail but no longer in the database" for otype, pk in trail]
    return out


def causality_rows(ae, protocol=None) -> list[dict]:
    """The causalities of an event to the procedures the protocol names, for a page: the
    procedure's name (the protocol's ``Text``; the id of one the protocol no longer names) and
    the code held, in words."""
    from . import causality
    from .models import CAUSALITY

    if protocol is None:
        from annulus.trial.selectors import active_protocol

        protocol = active_protocol()
    names = {c.field: c.name for c in causality.items(protocol)}
    words = dict(CAUSALITY)
    out = []
    for field, code in causality.flat(ae, protocol).items():
        if field == causality.PRODUCT_CAUSALITY:
            continue
        out.append({"field": field, "name": names.get(field, field[len(causality.PREFIX):]),
                    "code": code, "value": words.get(code, code)})
    return out

