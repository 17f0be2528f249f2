"""Reads of participants for pages, the API and reports (no allocation data here: arms are
served only by the allocation selectors, which apply the blind)."""

from __future__ import annotations

from django.core.paginator import Paginator
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


def timeline(p: Participant) -> list[dict]:
    """The journey as dated events, oldest first."""
    items = []
    for sc in p.status_changes.select_related("by").all():
        items.append({"at": sc.at, "kind": "status", "title": states.LABELS.get(sc.to_status, sc.to_status),
                      "detail": sc.reason, "by": sc.by.username, "status": sc.to_status})
    for c in p.consents.select_related("taken_by").all():
        items.append({"at": c.consented_at, "kind": "consent", "title": f"Consent {c.consent_version}",
                      "detail": f"taken by {c.taken_by.username}", "by": c.taken_by.username, "status": "consented"})
    items.sort(key=lambda i: i["at"])
    return items
