"""Reads of participants for pages, the API and reports (no allocation data here: arms are
served only by the allocation selectors, which apply the blind)."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.utils.translation import gettext as _
from django.db.models import Count, Q

from annulus.errors import RuleViolation

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


def user_sites(user) -> list[str] | None:
    """The site ids whose participants ``user`` may see; None for every site (an account whose
    membership lists no site)."""
    membership = getattr(user, "membership", None)  # none for an account without a role
    sites = list(getattr(membership, "sites", None) or [])
    return sites or None


def visible(user, qs=None):
    """``qs`` (default: every participant) narrowed to the participants ``user`` may see: the one
    place where a user's sites are enforced for pages, the API, dashboards and exports (records of
    participants go through ``scoped``; writes through ``refuse_unseen``). Service-internal reads
    (audit, allocation sequence, numbering) use ``Participant.objects``."""
    qs = Participant.objects.all() if qs is None else qs
    if user is None or not getattr(user, "is_authenticated", False):
        return qs.none()
    sites = user_sites(user)
    return qs if sites is None else qs.filter(site__in=sites)


def of_visible(user, qs, field: str = "participant"):
    """Records of another model (``qs``, whose ``field`` is the participant) narrowed to the
    participants ``user`` may see, as ``visible`` does."""
    if user is None or not getattr(user, "is_authenticated", False):
        return qs.none()
    sites = user_sites(user)
    return qs if sites is None else qs.filter(**{f"{field}__site__in": sites})


def scoped(user, qs, field: str = "participant"):
    """``qs`` narrowed to ``user``'s sites as ``of_visible`` does (``field`` the path to the
    participant; ``""`` when ``qs`` holds participants); ``user`` None leaves it whole (reads of
    services, commands and reports that are not shown to one user). Lists and look-ups of
    records of participants take the user through here, so their scoping stays in this module."""
    if user is None:
        return qs
    return visible(user, qs) if not field else of_visible(user, qs, field)


NO_SUCH_PARTICIPANT = "no such participant"


class UnknownParticipant(RuleViolation):
    """The answer for a participant that does not exist, and the same for one of a site the user
    is not scoped to, so that the two cannot be told apart."""

    def __init__(self, field: str = "participant"):
        super().__init__(field, NO_SUCH_PARTICIPANT)


def may_see(user, participant_id) -> bool:
    """Whether ``user`` may see (and so write for) the participant ``participant_id``; true for an
    unscoped user without a query."""
    sites = user_sites(user)
    if sites is None:
        return True
    try:
        pk = int(participant_id)
    except (TypeError, ValueError, OverflowError):
        return False
    return Participant.objects.filter(pk=pk, site__in=sites).exists()


def refuse_unseen(actor, participant_ids, field: str = "participant") -> None:
    """Raise ``UnknownParticipant`` when ``actor`` is scoped to sites and one of
    ``participant_ids`` is at another site. Every write naming a participant passes here: the
    audit trail calls it for the participants of the events it appends (inside the write's
    transaction, so a refused write leaves nothing behind), and views and the API call it
    before a service for a participant named in a form or a body."""
    sites = user_sites(actor)
    if sites is None:
        return
    ids = {int(i) for i in participant_ids if i is not None}
    if ids and Participant.objects.filter(pk__in=ids).exclude(site__in=sites).exists():
        raise UnknownParticipant(field)


def participant_list(*, user, q: str = "", status: str = "", sort: str = "number", site: str = ""):
    qs = visible(user)
    if site:
        qs = qs.filter(site=site)
    if q:
        q = q.strip()[:60]
        qs = qs.filter(Q(screening_number__icontains=q) | Q(case_number__icontains=q) | Q(initials__icontains=q))
    if status:
        qs = qs.filter(status=status)
    return qs.order_by(*SORTS.get(sort, SORTS["number"]))


def paginate(qs, page, per_page: int = 25):
    paginator = Paginator(qs, per_page)
    return paginator.get_page(page)


def status_counts(user) -> dict[str, int]:
    rows = dict(visible(user).values_list("status").annotate(n=Count("id")).order_by())
    return {s: rows.get(s, 0) for s in states.ORDER}


def site_counts(user, *, enrolled: bool = False) -> dict[str, int]:
    """Site id -> how many participants the user sees there: pre-screened or later, or (``enrolled``)
    those given a case number."""
    qs = visible(user)
    if enrolled:
        qs = qs.filter(case_number__isnull=False)
    return dict(qs.values_list("site").annotate(n=Count("id")).order_by())


def funnel(user) -> list[tuple[str, int]]:
    """How many people reached each step of the screening funnel (ever, from status history)."""
    reached = dict(
        of_visible(user, StatusChange.objects).values_list("to_status").annotate(n=Count("participant", distinct=True)).order_by()
    )
    total = visible(user).count()
    steps = [
        (str(states.LABELS[states.PRE_SCREENED]), total),
        (str(states.LABELS[states.CONSENTED]), reached.get(states.CONSENTED, 0)),
        (str(states.LABELS[states.SCREENING]), reached.get(states.SCREENING, 0)),
        (str(states.LABELS[states.ELIGIBLE]), reached.get(states.ELIGIBLE, 0)),
        (str(states.LABELS[states.ENROLLED]), reached.get(states.ENROLLED, 0)),
    ]
    return steps


def screen_failure_reasons(user) -> list[tuple[str, int]]:
    """Criterion id -> how many screen failures it caused (CONSORT 'excluded' box)."""
    from .models import EligibilityDecision

    counts: dict[str, int] = {}
    decisions = of_visible(user, EligibilityDecision.objects.filter(outcome="ineligible", superseded=False))
    for failing in decisions.values_list("failing", flat=True):
        for cid in failing:
            counts[cid] = counts.get(cid, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def get_participant(pk: int, *, user) -> Participant | None:
    """The participant ``pk`` if ``user`` may see it (their sites), else None."""
    return visible(user).select_related("protocol_version", "created_by").filter(pk=pk).first()


def participant_or_404(pk: int, *, user) -> Participant:
    from django.http import Http404

    p = get_participant(pk, user=user)
    if p is None:
        raise Http404
    return p


def _rows_once(name: str, participant_id: int, queryset):
    from annulus.trial.selectors import read_once

    return read_once((name, int(participant_id)), lambda: list(queryset))


def consents_of(participant_id: int) -> list:
    """The participant's consents, oldest first (who took and who recorded them); read once per page."""
    from .models import Consent

    return _rows_once("consents", participant_id, Consent.objects.filter(participant_id=participant_id)
                      .select_related("taken_by", "recorded_by").order_by("consented_at", "id"))


def evidence_of(participant_id: int) -> list:
    """All the participant's screening evidence, superseded values included, in the order entered."""
    from .models import Evidence

    return _rows_once("evidence", participant_id, Evidence.objects.filter(participant_id=participant_id)
                      .select_related("entered_by").order_by("id"))


def decisions_of(participant_id: int) -> list:
    """The participant's eligibility decisions, superseded ones included, in the order made."""
    from .models import EligibilityDecision

    return _rows_once("decisions", participant_id, EligibilityDecision.objects.filter(participant_id=participant_id)
                      .select_related("decided_by").order_by("id"))


def status_changes_of(participant_id: int) -> list:
    from .models import StatusChange

    return _rows_once("status_changes", participant_id, StatusChange.objects.filter(participant_id=participant_id)
                      .select_related("by").order_by("id"))


def withdrawal_of(participant_id: int):
    """The participant's withdrawal (with who recorded it), or None."""
    from annulus.trial.selectors import read_once

    from .models import Withdrawal

    return read_once(("withdrawal", int(participant_id)), lambda: Withdrawal.objects.filter(
        participant_id=participant_id).select_related("recorded_by").first())


def timeline(p: Participant) -> list[dict]:
    """The journey as dated clinical events, oldest first. ``at`` is when it happened in the
    clinic; ``recorded`` is when it was entered (they differ for data entered after the fact)."""
    from datetime import datetime, time

    from django.utils import timezone

    def day(d):
        return timezone.make_aware(datetime.combine(d, time(0, 0)))

    items = [{"at": day(p.prescreened_on), "title": states.LABELS[states.PRE_SCREENED], "status": states.PRE_SCREENED,
              "detail": _("source: %(s)s") % {"s": p.recruitment_source_label}, "by": p.created_by.username, "recorded": p.created_at}]
    for c in consents_of(p.pk):
        items.append({"at": c.consented_at, "title": _("Consent %(v)s") % {"v": c.consent_version}, "status": states.CONSENTED,
                      "detail": _("taken by %(u)s") % {"u": c.taken_by.username}, "by": c.recorded_by.username, "recorded": c.recorded_at})
    batches: dict = {}
    for e in evidence_of(p.pk):
        key = (e.collected_on, e.entered_by.username, e.entered_at.replace(microsecond=0))
        batches.setdefault(key, []).append(e)
    for (collected, who, when), rows in batches.items():
        corrected = [e.field for e in rows if e.change_reason]
        detail = _("%(n)s values") % {"n": len(rows)} + (
            "; " + _("corrected: %(f)s (%(why)s)") % {"f": ", ".join(corrected), "why": rows[0].change_reason}
            if corrected else "")
        items.append({"at": day(collected), "title": _("Screening evidence"), "status": states.SCREENING,
                      "detail": detail, "by": who, "recorded": when})
    for d in decisions_of(p.pk):
        title = _("Eligible") if d.outcome == "eligible" else _("Screen failure")
        detail = (_("all criteria met") if d.outcome == "eligible" else _("failing: %(ids)s") % {"ids": ", ".join(d.failing)}) + (
            " (" + _("superseded") + ")" if d.superseded else "")
        items.append({"at": d.decided_at, "title": title, "status": states.ELIGIBLE if d.outcome == "eligible" else states.SCREEN_FAILED,
                      "detail": detail, "by": d.decided_by.username, "recorded": d.decided_at})
    if p.enrolled_at:
        # who enrolled: the status change that gave the case number (entered then, dated at enrolment)
        change = next((c for c in reversed(status_changes_of(p.pk)) if c.to_status == states.ENROLLED), None)
        items.append({"at": p.enrolled_at, "title": _("Enrolled as case %(n)s") % {"n": p.case_number}, "status": states.ENROLLED,
                      "detail": "", "by": change.by.username if change else "",
                      "recorded": change.at if change else p.enrolled_at})
    w = withdrawal_of(p.pk)
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
    for sc in [c for c in status_changes_of(p.pk) if c.to_status in later - covered]:
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


# ---- the data against the audit trail (``annulus audit verify --data``) -------------------------

# the participant row's fields the trail records: pre-screening, enrolment and the status (the
# name and the phone number are kept out of the trail, so they cannot be compared)
AUDITED_FIELDS = ("screening_number", "initials", "sex", "recruitment_source", "prescreened_on", "status",
                  "case_number", "enrolled_at")
OBJECT_TYPES = ("participant", "consent", "screening_evidence", "eligibility_decision", "withdrawal", "record_lock")


def audit_mismatches(participant_ids) -> list[str]:
    """Each place where the screening data of ``participant_ids`` differ from what the audit trail
    records for them, one line each (``annulus audit verify --data``):

    - the participant row: the pre-screening fields, the case number, the enrolment time and the
      status, as the trail's ``participant`` events leave them;
    - the status history (``StatusChange``): one row per status event of the trail, in its order,
      with the same from, to and reason;
    - consents (version, time, who took it), withdrawals (category, details, date, adverse event);
    - screening evidence: for each field, the rows in order hold the values and collection dates
      the trail's entries gave it, every row but the last superseded;
    - eligibility decisions: outcome and failing criteria; a decision is superseded exactly when
      screening evidence was entered after it (the trail's order tells);
    - record locks: level (visit, form), whether still locked, and the reason of the unlock.

    Not compared, because the trail does not record them: the participant's name and phone number,
    a decision's criteria and evidence snapshot and its decision time (the event's time is when it
    was entered), a withdrawal's previous status (its status event holds it), the times of status
    changes. A fixed number of queries for any number of participants."""
    from annulus.audit.selectors import against_trail, differences, new_value, screening_numbers, trail

    from .models import Consent, EligibilityDecision, Evidence, RecordLock, Withdrawal

    ids = list(participant_ids)
    numbers = screening_numbers(ids)
    ordered = trail(OBJECT_TYPES, ids)
    events: dict[str, list] = {t: [] for t in OBJECT_TYPES}
    for otype, object_id, pid, changes, reason in ordered:
        events[otype].append((object_id, pid, changes, reason))
    out: list[str] = []

    def name(pid) -> str:
        return f"participant {numbers.get(pid, pid)}"

    # the participant row and its status history
    rows: dict[str, dict] = {}
    history: dict[int, list] = {}
    for object_id, pid, changes, reason in events["participant"]:
        mine = rows.setdefault(object_id, {})
        for field, change in changes.items():
            mine[field] = new_value(change)
        if "status" in changes:
            old = changes["status"][0] if isinstance(changes["status"], list) else None
            history.setdefault(pid, []).append((old, new_value(changes["status"]), reason))
    for values in Participant.objects.filter(pk__in=ids).order_by("pk").values("pk", *AUDITED_FIELDS):
        audited = rows.get(str(values["pk"]))
        if audited is None:
            out.append(f"{name(values['pk'])}: in the database but never in the audit trail")
            continue
        out += differences(name(values["pk"]), [(f, values[f], audited.get(f)) for f in AUDITED_FIELDS])
    changes_of: dict[int, list] = {}
    for pid, old, new, reason in StatusChange.objects.filter(participant_id__in=ids).order_by("pk").values_list(
            "participant_id", "from_status", "to_status", "reason"):
        changes_of.setdefault(pid, []).append((old, new, reason))
    for pid in sorted(set(changes_of) | set(history)):
        stored, audited = changes_of.get(pid, []), history.get(pid, [])
        for n, (s, a) in enumerate(zip(stored, audited), 1):
            out += differences(f"{name(pid)}, status change {n}", [
                ("from_status", s[0], a[0]), ("to_status", s[1], a[1]), ("reason", s[2], a[2])])
        for n in range(len(audited), len(stored)):
            out.append(f"{name(pid)}, status change {n + 1} (to {stored[n][1]!r}): in the database but never in "
                       "the audit trail")
        for n in range(len(stored), len(audited)):
            out.append(f"{name(pid)}, status change {n + 1} (to {audited[n][1]!r}): in the audit trail but no "
                       "longer in the database")

    # consents and withdrawals: one event each, keyed by the row's id
    def by_object(kind: str) -> dict[str, dict]:
        state: dict[str, dict] = {}
        for object_id, _pid, changes, _reason in events[kind]:
            mine = state.setdefault(object_id, {})
            for field, change in changes.items():
                mine[field] = new_value(change)
        return state

    def numbered(label):
        """``where`` of a participant's n-th row of a kind, rows read in order."""
        counted: dict[int, int] = {}

        def where(pid):
            counted[pid] = counted.get(pid, 0) + 1
            return f"{name(pid)}, {label} {counted[pid]}"
        return where

    consent_at = numbered("consent")
    out += against_trail(
        Consent.objects.filter(participant_id__in=ids).order_by("pk").values_list(
            "pk", "participant_id", "consent_version", "consented_at", "taken_by__username"),
        by_object("consent"), what="consent", where=lambda r: consent_at(r[1]),
        pairs=lambda r, a: [("consent_version", r[2], a.get("consent_version")),
                            ("consented_at", r[3], a.get("consented_at")), ("taken_by", r[4], a.get("taken_by"))])
    out += against_trail(
        Withdrawal.objects.filter(participant_id__in=ids).order_by("pk").values_list(
            "pk", "participant_id", "category", "details", "withdrawn_on", "adverse_event_id"),
        by_object("withdrawal"), what="withdrawal", where=lambda r: f"{name(r[1])}, withdrawal",
        pairs=lambda r, a: [(f, value, a.get(f)) for f, value in
                            zip(("category", "details", "withdrawn_on", "adverse_event_id"), r[2:])])

    # screening evidence: each field's values in the order they were entered
    entered: dict[tuple[int, str], list] = {}
    for _object_id, pid, changes, _reason in events["screening_evidence"]:
        collected_on = new_value(changes.get("collected_on"))
        for field, change in changes.items():
            if field != "collected_on":
                entered.setdefault((pid, field), []).append((new_value(change), collected_on))
    kept: dict[tuple[int, str], list] = {}
    for pid, field, value, collected_on, superseded in Evidence.objects.filter(participant_id__in=ids).order_by(
            "pk").values_list("participant_id", "field", "value", "collected_on", "superseded"):
        kept.setdefault((pid, field), []).append((value, collected_on, superseded))
    for key in sorted(set(kept) | set(entered)):
        pid, field = key
        stored, audited = kept.get(key, []), entered.get(key, [])
        for n, (s, a) in enumerate(zip(stored, audited), 1):
            where = f"{name(pid)}, screening evidence {field}" + (f" (entry {n})" if len(audited) > 1 else "")
            out += differences(where, [("value", s[0], a[0]), ("collected_on", s[1], a[1]),
                                       ("superseded", s[2], n < len(audited))])
        for n in range(len(audited), len(stored)):
            out.append(f"{name(pid)}, screening evidence {field} (entry {n + 1}): in the database but never in the "
                       "audit trail")
        for n in range(len(stored), len(audited)):
            out.append(f"{name(pid)}, screening evidence {field} (entry {n + 1}): in the audit trail but no longer "
                       "in the database")

    # eligibility decisions: superseded by any screening evidence entered after them
    decisions: dict[str, dict] = {}
    open_decisions: dict[int, list] = {}
    for otype, object_id, pid, changes, _reason in ordered:
        if otype not in ("eligibility_decision", "screening_evidence"):
            continue
        if otype == "screening_evidence":
            for d in open_decisions.pop(pid, []):
                d["superseded"] = True
            continue
        mine = decisions.setdefault(object_id, {"superseded": False})
        for field, change in changes.items():
            mine[field] = new_value(change)
        open_decisions.setdefault(pid, []).append(mine)
    decision_at = numbered("eligibility decision")
    out += against_trail(
        EligibilityDecision.objects.filter(participant_id__in=ids).order_by("pk").values_list(
            "pk", "participant_id", "outcome", "failing", "superseded"),
        decisions, what="eligibility decision", where=lambda r: decision_at(r[1]),
        pairs=lambda r, a: [("outcome", r[2], a.get("outcome")), ("failing", r[3], a.get("failing")),
                            ("superseded", r[4], a["superseded"])])

    # record locks: locked and unlocked in place, the unlock's reason is the event's
    locks: dict[str, dict] = {}
    for object_id, _pid, changes, reason in events["record_lock"]:
        mine = locks.setdefault(object_id, {})
        for field, change in changes.items():
            mine[field] = new_value(change)
        if mine.get("locked") is False:
            mine["unlock_reason"] = reason
    for pk, pid, visit, form, unlocked_at, unlock_reason in RecordLock.objects.filter(
            participant_id__in=ids).order_by("pk").values_list("pk", "participant_id", "visit", "form", "unlocked_at",
                                                               "unlock_reason"):
        audited = locks.pop(str(pk), None)
        level = "casebook" if not visit and not form else (f"visit {visit}" if not form else f"form {visit}/{form}")
        where = f"{name(pid)}, record lock {pk} ({level})"
        if audited is None:
            out.append(f"{where}: in the database but never in the audit trail")
            continue
        out += differences(where, [("visit", visit, audited.get("visit")), ("form", form, audited.get("form")),
                                   ("locked", unlocked_at is None, audited.get("locked")),
                                   ("unlock_reason", unlock_reason, audited.get("unlock_reason"))])
    out += [f"record lock {pk}: in the audit trail but no longer in the database" for pk in locks]
    return out


def missing_participants(present_ids) -> list[str]:
    """Participants the audit trail saw created that the database no longer holds (one query)."""
    import json

    from annulus.audit.models import AuditEvent
    from annulus.audit.selectors import new_value

    present = set(present_ids)
    created = (AuditEvent.objects.filter(object_type="participant", action="create").order_by("id")
               .values_list("object_id", "payload"))
    out = []
    for object_id, payload in created.iterator(chunk_size=2000):
        if object_id.isdigit() and int(object_id) not in present:
            number = new_value(json.loads(payload).get("changes", {}).get("screening_number"))
            out.append(f"participant {number or object_id}: in the audit trail but no longer in the database")
    return out
