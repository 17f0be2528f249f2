"""Participants API: pre-screening, consent, screening evidence, eligibility, enrolment, withdrawal."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from django.contrib.auth import get_user_model
from django.http import Http404
from ninja import Field, Router, Schema, Status

from annulus.accounts.permissions import require
from annulus.dates import PlausibleDate, PlausibleDateTime
from annulus.errors import RuleViolation

from . import selectors, services, states

PREFIX = "/participants"
router = Router(tags=["participants"])


class ParticipantOut(Schema):
    id: int
    screening_number: str
    case_number: str | None
    initials: str
    sex: str
    recruitment_source: str
    site: str
    prescreened_on: date
    status: str
    enrolled_at: datetime | None
    protocol_version: str

    @staticmethod
    def resolve_protocol_version(obj):
        return obj.protocol_version.version


class PageOut(Schema):
    count: int
    page: int
    pages: int
    results: list[ParticipantOut]


class PrescreenIn(Schema):
    initials: str = Field(..., max_length=10)
    sex: Literal["F", "M"]
    recruitment_source: str = Field(..., max_length=40)
    site: str = Field("", max_length=12, description="the site's id; required when the protocol declares several "
                                                     "sites, else the one site")
    prescreened_on: PlausibleDate
    full_name: str = Field("", max_length=120)
    phone: str = Field("", max_length=40)


class ConsentIn(Schema):
    consent_version: str = Field(..., max_length=40)
    consented_at: PlausibleDateTime
    taken_by: str | None = Field(None, description="username of the person who took consent (default: you)")


class ConsentOut(Schema):
    id: int
    consent_version: str
    consented_at: datetime
    taken_by: str

    @staticmethod
    def resolve_taken_by(obj):
        return obj.taken_by.username


class EvidenceIn(Schema):
    values: dict[str, Any]
    collected_on: PlausibleDate
    reason: str = Field("", max_length=2000)


class CriterionOut(Schema):
    id: str
    box: str
    holds: bool | None
    passed: bool | None


class EligibilityOut(Schema):
    outcome: str
    criteria: list[CriterionOut]
    values: dict[str, Any]


class DecisionOut(Schema):
    id: int
    outcome: str
    failing: list[str]
    criteria: list[dict]


class WithdrawIn(Schema):
    withdrawn_on: PlausibleDate
    category: str = Field(..., max_length=30)
    details: str = Field(..., max_length=2000)
    adverse_event_id: int | None = Field(None, ge=1, le=2**63 - 1)  # a database id, never larger than bigint


class AuditChangeOut(Schema):
    field: str
    label: str
    old: str
    new: str


class AuditOut(Schema):
    number: int = Field(..., description="place of the event in this participant's trail (1 = first)")
    id: int | None = Field(None, description="global sequence number of the audit chain; null for a blinded reader")
    timestamp: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    record: str = Field("", description="the record, by name")
    changes: dict
    readable: list[AuditChangeOut] = Field(default_factory=list,
                                           description="each change with the item's label, values as shown")
    reason: str
    hash: str


def _get(request, pk: int):
    p = selectors.get_participant(pk, user=request.user)
    if p is None:
        raise Http404
    return p


@router.get("", response=PageOut, summary="List participants")
def list_participants(request, q: str = "", status: str = "", sort: str = "number", site: str = "", page: int = 1):
    require(request.user, "participant.view")
    if status and status not in states.LABELS:
        raise RuleViolation("status", f"unknown status '{status}'")
    if sort not in selectors.SORTS:
        raise RuleViolation("sort", f"must be one of {', '.join(selectors.SORTS)}")
    if page < 1:
        raise RuleViolation("page", "must be at least 1")
    pg = selectors.paginate(selectors.participant_list(user=request.user, q=q, status=status, sort=sort, site=site).select_related("protocol_version"), page, per_page=50)
    return {"count": pg.paginator.count, "page": pg.number, "pages": pg.paginator.num_pages, "results": list(pg.object_list)}


@router.post("", response={201: ParticipantOut}, summary="Pre-screen a candidate")
def create_participant(request, payload: PrescreenIn):
    require(request.user, "participant.edit")
    return Status(201, services.prescreen(actor=request.user, **payload.dict()))


@router.get("/{int:pk}", response=ParticipantOut)
def get_participant(request, pk: int):
    require(request.user, "participant.view")
    return _get(request, pk)


@router.post("/{int:pk}/consent", response={201: ConsentOut}, summary="Record informed consent")
def consent(request, pk: int, payload: ConsentIn):
    require(request.user, "participant.edit")
    _get(request, pk)
    taken_by = request.user
    if payload.taken_by:
        taken_by = get_user_model().objects.filter(username=payload.taken_by, is_active=True,
                                                   membership__role__in=["investigator", "coordinator"]).first()
        if taken_by is None:
            raise RuleViolation("taken_by", "must be an active investigator or coordinator")
    return Status(201, services.record_consent(actor=request.user, participant_id=pk, consent_version=payload.consent_version,
                                               consented_at=payload.consented_at, taken_by=taken_by))


@router.post("/{int:pk}/evidence", response={201: EligibilityOut}, summary="Enter screening evidence")
def evidence(request, pk: int, payload: EvidenceIn):
    require(request.user, "participant.edit")
    _get(request, pk)
    services.enter_evidence(actor=request.user, participant_id=pk, values=payload.values,
                            collected_on=payload.collected_on, reason=payload.reason)
    return Status(201, _eligibility(_get(request, pk)))


def _eligibility(p):
    result, values = services.evaluate_participant(p)
    return {"outcome": result.outcome,
            "criteria": [{"id": r.criterion.id, "box": r.box, "holds": r.holds, "passed": r.passed} for r in result.results],
            "values": {k: (v.isoformat() if isinstance(v, date) else v) for k, v in values.items()}}


@router.get("/{int:pk}/eligibility", response=EligibilityOut, summary="Criteria evaluated from the evidence so far")
def eligibility(request, pk: int):
    require(request.user, "participant.view")
    return _eligibility(_get(request, pk))


class DecideIn(Schema):
    password: str = Field(..., max_length=200, description="the investigator's password: the decision is signed")


@router.post("/{int:pk}/eligibility/decide", response={201: DecisionOut},
             summary="Sign the decision eligible or screen failure (investigator, password re-entered)")
def decide(request, pk: int, payload: DecideIn):
    require(request.user, "participant.decide")
    _get(request, pk)
    return Status(201, services.decide_eligibility(actor=request.user, participant_id=pk, password=payload.password))


@router.post("/{int:pk}/enrol", response=ParticipantOut, summary="Enrol an eligible participant (next case number)")
def enrol(request, pk: int):
    require(request.user, "participant.enrol")
    _get(request, pk)
    return services.enrol(actor=request.user, participant_id=pk)


@router.post("/{int:pk}/withdraw", response={201: ParticipantOut}, summary="Withdraw (no replacement)")
def withdraw(request, pk: int, payload: WithdrawIn):
    require(request.user, "participant.withdraw")
    _get(request, pk)
    services.withdraw(actor=request.user, participant_id=pk, **payload.dict())
    return Status(201, _get(request, pk))


@router.get("/{int:pk}/audit", response=list[AuditOut], summary="Audit events of one participant")
def audit_events(request, pk: int, action: str = "", object_type: str = "", limit: int = 200):
    # the same rule as the audit page: the trail shows clinical values, so audit roles need
    # sight of trial data too
    require(request.user, "audit.view")
    require(request.user, "participant.view")
    _get(request, pk)
    from annulus.accounts.permissions import is_blinded
    from annulus.audit.present import present_trail
    from annulus.audit.selectors import events_for_participant

    limit = max(1, min(limit, 1000))
    rows = events_for_participant(pk, action=action[:20], object_type=object_type[:60])[:limit]
    # a blinded reader gets each event's place in this trail, never the chain's global number
    return [{"number": e.number, "id": e.id, "timestamp": e.timestamp, "actor": e.actor, "action": e.action,
             "object_type": e.object_type, "object_id": e.object_id, "record": e.record, "changes": e.raw_changes,
             "readable": [{"field": c.key, "label": c.label, "old": c.old, "new": c.new} for c in e.changes],
             "reason": e.reason, "hash": e.hash}
            for e in present_trail(rows, pk, blinded=is_blinded(request.user))]


# ---- record locks (X-7.5) ----------------------------------------------------------------------

class RecordLockOut(Schema):
    id: int
    level: str = Field(..., description="casebook, visit or form")
    visit: str = Field(..., description='visit key ("" for the casebook and its log forms)')
    form: str = Field(..., description='form id ("" for a casebook or visit lock)')
    locked: bool = Field(..., description="true while the lock is in force")
    locked_by: str
    locked_at: datetime
    unlocked_by: str | None = None
    unlocked_at: datetime | None = None
    unlock_reason: str = ""

    @staticmethod
    def resolve_locked(obj):
        return obj.unlocked_at is None

    @staticmethod
    def resolve_locked_by(obj):
        return obj.locked_by.username

    @staticmethod
    def resolve_unlocked_by(obj):
        return obj.unlocked_by.username if obj.unlocked_by_id else None


class UnlockIn(Schema):
    reason: str = Field(..., max_length=2000, description="why the record is unlocked (at least 5 characters)")


@router.get("/{int:pk}/locks", response=list[RecordLockOut],
            summary="Every lock of the participant's casebook, visits and forms, newest first")
def record_locks(request, pk: int):
    require(request.user, "participant.view")
    _get(request, pk)
    return selectors.lock_history(pk)


def _lock(request, pk: int, visit: str, form: str):
    require(request.user, "record.lock")
    _get(request, pk)
    return Status(201, services.lock_record(actor=request.user, participant_id=pk, visit=visit, form=form))


def _unlock(request, pk: int, visit: str, form: str, payload: UnlockIn):
    require(request.user, "record.lock")
    _get(request, pk)
    return services.unlock_record(actor=request.user, participant_id=pk, visit=visit, form=form, reason=payload.reason)


@router.post("/{int:pk}/lock", response={201: RecordLockOut}, summary="Lock the casebook (data manager)")
def lock_casebook(request, pk: int):
    return _lock(request, pk, "", "")


@router.post("/{int:pk}/unlock", response=RecordLockOut, summary="Unlock the casebook with a reason (data manager)")
def unlock_casebook(request, pk: int, payload: UnlockIn):
    return _unlock(request, pk, "", "", payload)


@router.post("/{int:pk}/visits/{key}/lock", response={201: RecordLockOut}, summary="Lock one visit (data manager)")
def lock_visit(request, pk: int, key: str):
    return _lock(request, pk, key, "")


@router.post("/{int:pk}/visits/{key}/unlock", response=RecordLockOut,
             summary="Unlock one visit with a reason (data manager)")
def unlock_visit(request, pk: int, key: str, payload: UnlockIn):
    return _unlock(request, pk, key, "", payload)


@router.post("/{int:pk}/visits/{key}/forms/{form_id}/lock", response={201: RecordLockOut},
             summary="Lock one form of a visit (data manager)")
def lock_form(request, pk: int, key: str, form_id: str):
    return _lock(request, pk, key, form_id)


@router.post("/{int:pk}/visits/{key}/forms/{form_id}/unlock", response=RecordLockOut,
             summary="Unlock one form of a visit with a reason (data manager)")
def unlock_form(request, pk: int, key: str, form_id: str, payload: UnlockIn):
    return _unlock(request, pk, key, form_id, payload)


@router.post("/{int:pk}/forms/{form_id}/lock", response={201: RecordLockOut},
             summary="Lock a log form of the casebook, such as the adverse-event log (data manager)")
def lock_log_form(request, pk: int, form_id: str):
    return _lock(request, pk, "", form_id)


@router.post("/{int:pk}/forms/{form_id}/unlock", response=RecordLockOut,
             summary="Unlock a log form of the casebook with a reason (data manager)")
def unlock_log_form(request, pk: int, form_id: str, payload: UnlockIn):
    return _unlock(request, pk, "", form_id, payload)
