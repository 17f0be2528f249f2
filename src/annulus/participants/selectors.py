"""Reads of participants for pages, the API and reports (no allocation data here: arms are
served only by the allocation selectors, which apply the blind)."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.utils.translation import gettext as _
from django.db.models import Count, Q

from . import states
from .models import Participant, StatusChange

SORTS = {
    "number": ("screening_number",),
    "-number": ("-screening_number",),
    "case": ("case_number", "screening_number"),
    "-case": ("-case_number", "-screening_number"),
    "status": ("status", "screening_number"),
    "-status": ("-status", "screening_number"),
    "updated": ("updated_at", "id"),
    "-updated": ("-updated_at", "-id"),
    "source": ("recruitment_source", "id"),
    "-source": ("-recruitment_source", "id"),
}


def participant_list(*, q: str = "", status: str = "", sort: str = "number"):
    qs = Participant.objects.all()
    if q:
        q = q.strip()[:60]
        qs = qs.filter(Q(screening_number__icontains=q) | Q(case_number__icontains=q) | Q(initials__icontains=q))
    if status:
        qs = qs.filter(status=status)
    return qs.order_by(*SORTS.get(sort, SORTS["number"]))


def paginate(qs, page, per_page: int = 25):
    paginator = Paginator(qs, per_page)
    return paginator.get_page(page)


def status_counts() -> dict[str, int]:
    rows = dict(Participant.objects.values_list("status").annotate(n=Count("id")).order_by())
    return {s: rows.get(s, 0) for s in states.ORDER}


def funnel() -> list[tuple[str, int]]:
    """How many people reached each step of the screening funnel (ever, from status history)."""
    reached = dict(
        StatusChange.objects.values_list("to_status").annotate(n=Count("participant", distinct=True)).order_by()
    )
    total = Participant.objects.count()
    steps = [
        (str(states.LABELS[states.PRE_SCREENED]), total),
        (str(states.LABELS[states.CONSENTED]), reached.get(states.CONSENTED, 0)),
        (str(states.LABELS[states.SCREENING]), reached.get(states.SCREENING, 0)),
        (str(states.LABELS[states.ELIGIBLE]), reached.get(states.ELIGIBLE, 0)),
        (str(states.LABELS[states.ENROLLED]), reached.get(states.ENROLLED, 0)),
    ]
    return steps


def screen_failure_reasons() -> list[tuple[str, int]]:
    """Criterion id -> how many screen failures it caused (CONSORT 'excluded' box)."""
    from .models import EligibilityDecision

    counts: dict[str, int] = {}
    for failing in EligibilityDecision.objects.filter(outcome="ineligible", superseded=False).values_list("failing", flat=True):
        for cid in failing:
            counts[cid] = counts.get(cid, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def get_participant(pk: int) -> Participant | None:
    return Participant.objects.select_related("protocol_version", "created_by").filter(pk=pk).first()


def participant_or_404(pk: int) -> Participant:
    from django.http import Http404

    p = get_participant(pk)
    if p is None:
        raise Http404
    return p


def timeline(p: Participant) -> list[dict]:
    """The journey as dated clinical events, oldest first. ``at`` is when it happened in the
    clinic; ``recorded`` is when it was entered (they differ for data entered after the fact)."""
    from datetime import datetime, time

    from django.utils import timezone

    def day(d):
        return timezone.make_aware(datetime.combine(d, time(0, 0)))

    items = [{"at": day(p.prescreened_on), "title": states.LABELS[states.PRE_SCREENED], "status": states.PRE_SCREENED,
              "detail": _("source: %(s)s") % {"s": p.recruitment_source_label}, "by": p.created_by.username, "recorded": p.created_at}]
    for c in p.consents.select_related("taken_by", "recorded_by"):
        items.append({"at": c.consented_at, "title": _("Consent %(v)s") % {"v": c.consent_version}, "status": states.CONSENTED,
                      "detail": _("taken by %(u)s") % {"u": c.taken_by.username}, "by": c.recorded_by.username, "recorded": c.recorded_at})
    batches: dict = {}
    for e in p.evidence.select_related("entered_by").order_by("id"):
        key = (e.collected_on, e.entered_by.username, e.entered_at.replace(microsecond=0))
        batches.setdefault(key, []).append(e)
    for (collected, who, when), rows in batches.items():
        corrected = [e.field for e in rows if e.change_reason]
        detail = _("%(n)s values") % {"n": len(rows)} + (
            "; " + _("corrected: %(f)s (%(why)s)") % {"f": ", ".join(corrected), "why": rows[0].change_reason}
            if corrected else "")
        items.append({"at": day(collected), "title": _("Screening evidence"), "status": states.SCREENING,
                      "detail": detail, "by": who, "recorded": when})
    for d in p.decisions.select_related("decided_by"):
        title = _("Eligible") if d.outcome == "eligible" else _("Screen failure")
        detail = (_("all criteria met") if d.outcome == "eligible" else _("failing: %(ids)s") % {"ids": ", ".join(d.failing)}) + (
            " (" + _("superseded") + ")" if d.superseded else "")
        items.append({"at": d.decided_at, "title": title, "status": states.ELIGIBLE if d.outcome == "eligible" else states.SCREEN_FAILED,
                      "detail": detail, "by": d.decided_by.username, "recorded": d.decided_at})
    if p.enrolled_at:
        # who enrolled: the status change that gave the case number (entered then, dated at enrolment)
        change = p.status_changes.filter(to_status=states.ENROLLED).select_related("by").order_by("-id").first()
        items.append({"at": p.enrolled_at, "title": _("Enrolled as case %(n)s") % {"n": p.case_number}, "status": states.ENROLLED,
                      "detail": "", "by": change.by.username if change else "",
                      "recorded": change.at if change else p.enrolled_at})
    from .models import Withdrawal

    w = Withdrawal.objects.filter(participant=p).select_related("recorded_by").first()
    if w:
        items.append({"at": day(w.withdrawn_on), "title": _("Withdrawn"), "status": states.WITHDRAWN,
                      "detail": f"{w.get_category_display()}: {w.details}", "by": w.recorded_by.username,
                      "recorded": w.recorded_at})
    # later milestones come from the apps that record them (allocation, visits), dated in the
    # clinic; a status change only stands in where no app gave its own record
    from annulus.trial.extensions import timeline_events

    app_items = timeline_events(p)
    items.extend(app_items)
    covered = {i["milestone"] for i in app_items if i.get("milestone")}
    later = {states.RANDOMISED, states.TREATED, states.IN_FOLLOW_UP, states.COMPLETED, states.LOST}
    for sc in p.status_changes.select_related("by").filter(to_status__in=later - covered):
        items.append({"at": sc.at, "title": states.LABELS[sc.to_status], "status": sc.to_status,
                      "detail": sc.reason, "by": sc.by.username, "recorded": sc.at})
    # events of one clinic day keep the order of the journey (evidence of a day is dated at
    # midnight, yet it follows that day's consent)
    rank = {s: i for i, s in enumerate(states.ORDER)}
    items.sort(key=lambda i: (timezone.localtime(i["at"]).date(), rank.get(i["status"], len(rank)), i["at"]))
    return items


def locked_records(participant_ids=None) -> dict:
    """The record locks in force: ``{(participant_id, visit, form): RecordLock}``, with
    ``("", "")`` for the casebook level and ``(visit, "")`` for a visit lock (X-7.5)."""
    from .models import RecordLock

    qs = RecordLock.objects.filter(unlocked_at__isnull=True).select_related("locked_by")
    if participant_ids is not None:
        qs = qs.filter(participant_id__in=list(participant_ids))
    return {(r.participant_id, r.visit, r.form): r for r in qs.order_by("id")}


def lock_history(participant_id: int, visit: str | None = None, form: str | None = None) -> list:
    """Every lock of a participant's records (closed ones too), newest first; only those of one
    record when ``visit``/``form`` are given."""
    from .models import RecordLock

    qs = RecordLock.objects.filter(participant_id=participant_id).select_related("locked_by", "unlocked_by")
    if visit is not None:
        qs = qs.filter(visit=visit)
    if form is not None:
        qs = qs.filter(form=form)
    return list(qs.order_by("-id"))
