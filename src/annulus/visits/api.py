"""Visits API: the derived schedule, liposuction, visits, eCRF forms, the call list, reminders."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.http import Http404
from ninja import Field, Router, Schema, Status

from annulus.accounts.permissions import require
from annulus.errors import NotPermitted
from annulus.dates import PlausibleDate, PlausibleDateTime
from annulus.participants.selectors import get_participant

from annulus.trial.selectors import active_protocol

from . import procedures, selectors, services

PREFIX = "/visits"
router = Router(tags=["visits"])


class SlotOut(Schema):
    visit: str
    name: str
    target: date | None
    window_start: date | None
    window_end: date | None
    planned: bool
    state: str
    done_on: date | None
    forms: dict[str, str]


class LiposuctionIn(Schema):
    performed_on: PlausibleDate
    fat_volume_ml: float
    observation_hours: float
    anaesthesia: str = Field(..., max_length=20)  # a clinical answer: stated, never assumed
    complications: str = Field("", max_length=2000)
    reason: str = Field("", max_length=2000)


class LiposuctionOut(Schema):
    id: int
    performed_on: date
    fat_volume_ml: float
    anaesthesia: str
    observation_hours: float
    complications: str


class VisitIn(Schema):
    visit: str = Field(..., max_length=20)
    visit_date: PlausibleDate


class UnscheduledIn(Schema):
    visit_date: PlausibleDate
    reason: str = Field(..., max_length=2000)
    forms: list[str]


class VisitDateIn(Schema):
    visit_date: PlausibleDate
    reason: str = Field(..., max_length=2000)


class MissedIn(Schema):
    visit: str = Field(..., max_length=20)
    reason: str = Field(..., max_length=2000)


class VisitOut(Schema):
    id: int
    key: str
    visit_id: str
    outcome: str
    visit_date: date | None
    forms: list[str]


class FormIn(Schema):
    items: dict[str, Any]
    complete: bool = False
    collected_at: PlausibleDateTime | None = None
    reason: str = Field("", max_length=2000)


class VisitFormsIn(Schema):
    forms: dict[str, dict[str, Any]] = Field(..., description="form id -> items, e.g. {\"vas\": {\"vas_mm\": 42}}")
    complete: bool = False
    collected_at: PlausibleDateTime | None = None
    reason: str = Field("", max_length=2000)


class FormOut(Schema):
    id: int
    form_id: str
    state: str
    revision: int
    items: dict
    computed: dict
    collected_at: datetime
    submitted_at: datetime | None


class CallOut(Schema):
    participant_id: int
    case_number: str | None
    name: str
    phone: str
    visit: str
    visit_on: date
    window_start: date | None
    window_end: date | None
    reminded: bool


class BookIn(Schema):
    visit: str = Field(..., max_length=20)
    on: PlausibleDate


class ReminderIn(Schema):
    participant_id: int
    visit: str = Field(..., max_length=20)
    visit_on: PlausibleDate
    outcome: str = Field(..., max_length=12)  # what the call achieved: stated, never assumed
    note: str = Field("", max_length=2000)


def _get(request, pk: int):
    p = get_participant(pk, user=request.user)
    if p is None:
        raise Http404
    return p


@router.get("/participants/{int:pk}/schedule", response=list[SlotOut], summary="The derived visit schedule")
def schedule(request, pk: int):
    require(request.user, "visits.view")
    return [{"visit": s.key, "name": s.name, "target": s.target, "window_start": s.window_start,
             "window_end": s.window_end, "planned": s.planned, "state": s.state, "done_on": s.done_on,
             "forms": s.form_states} for s in selectors.schedule(_get(request, pk))]


@router.post("/participants/{int:pk}/liposuction", response={201: LiposuctionOut}, summary="Record day 0 liposuction")
def liposuction(request, pk: int, payload: LiposuctionIn):
    require(request.user, "visits.edit")
    _get(request, pk)
    return Status(201, services.record_liposuction(actor=request.user, participant_id=pk, **payload.dict()))


@router.post("/participants/{int:pk}/visits", response={201: VisitOut}, summary="Record that a visit took place")
def open_visit(request, pk: int, payload: VisitIn):
    require(request.user, "visits.edit")
    _get(request, pk)
    v = services.open_visit(actor=request.user, participant_id=pk, visit_id=payload.visit, visit_date=payload.visit_date)
    return Status(201, {**v.__dict__, "key": v.key})


@router.post("/participants/{int:pk}/visits/unscheduled", response={201: VisitOut}, summary="Add an unscheduled visit")
def unscheduled(request, pk: int, payload: UnscheduledIn):
    require(request.user, "visits.edit")
    _get(request, pk)
    v = services.add_unscheduled_visit(actor=request.user, participant_id=pk, **payload.dict())
    return Status(201, {**v.__dict__, "key": v.key})


@router.post("/participants/{int:pk}/visits/missed", response={201: VisitOut}, summary="Record a missed visit")
def missed(request, pk: int, payload: MissedIn):
    require(request.user, "visits.edit")
    _get(request, pk)
    v = services.record_missed(actor=request.user, participant_id=pk, visit_id=payload.visit, reason=payload.reason)
    return Status(201, {**v.__dict__, "key": v.key})


@router.post("/participants/{int:pk}/appointments", response={201: dict}, summary="Book the day of a visit")
def book(request, pk: int, payload: BookIn):
    require(request.user, "visits.edit")
    _get(request, pk)
    a = services.book_visit(actor=request.user, participant_id=pk, visit_id=payload.visit, on=payload.on)
    return Status(201, {"id": a.pk, "visit": a.visit_id, "on": a.on.isoformat()})


@router.put("/participants/{int:pk}/visits/{key}/forms/{form_id}", response=FormOut,
            summary="Save an eCRF form (draft or complete); scores are computed")
def save_form(request, pk: int, key: str, form_id: str, payload: FormIn):
    require(request.user, "visits.view")  # editors, and the roles that record a procedure
    if not procedures.may_save(request.user, active_protocol(), form_id[:30]):
        raise NotPermitted("visits.edit")
    _get(request, pk)
    return services.save_form(actor=request.user, participant_id=pk, visit_key=key[:20], form_id=form_id[:30],
                              **payload.dict())


@router.put("/participants/{int:pk}/visits/{key}/forms", response=list[FormOut],
            summary="Save several eCRF forms of one visit at once: all or none")
def save_visit_forms(request, pk: int, key: str, payload: VisitFormsIn):
    require(request.user, "visits.edit")
    _get(request, pk)
    return services.save_visit_forms(actor=request.user, participant_id=pk, visit_key=key[:20], **payload.dict())


@router.get("/participants/{int:pk}/visits/{key}/forms/{form_id}", response=FormOut)
def get_form(request, pk: int, key: str, form_id: str):
    require(request.user, "visits.view")
    visit = selectors.get_visit(_get(request, pk).pk, key[:20])
    rec = selectors.form_records(visit).get(form_id) if visit else None
    if rec is None:
        raise Http404
    return rec


@router.patch("/participants/{int:pk}/visits/{key}", response=VisitOut, summary="Correct a recorded visit date (reason required)")
# after the literal routes (visits/missed, visits/unscheduled), which its {key} would otherwise shadow
def correct_visit_date(request, pk: int, key: str, payload: VisitDateIn):
    require(request.user, "visits.edit")
    _get(request, pk)
    v = services.correct_visit_date(actor=request.user, participant_id=pk, visit_key=key[:20], **payload.dict())
    return {**v.__dict__, "key": v.key}


@router.get("/calls", response=list[CallOut], summary="Reminder call list for a day (visits the next day)")
def calls(request, day: PlausibleDate | None = None):
    require(request.user, "visits.remind")
    from django.utils import timezone

    rows = selectors.call_list(day or timezone.localdate(), user=request.user)
    return [{"participant_id": r["participant"].pk, "case_number": r["participant"].case_number,
             "name": r["participant"].full_name or r["participant"].initials, "phone": r["participant"].phone,
             "visit": r["slot"].visit_id, "visit_on": r["visit_on"], "window_start": r["slot"].window_start,
             "window_end": r["slot"].window_end, "reminded": r["call"] is not None} for r in rows]


@router.post("/reminders", response={201: dict}, summary="Record a reminder phone call")
def reminder(request, payload: ReminderIn):
    require(request.user, "visits.remind")
    _get(request, payload.participant_id)
    c = services.record_reminder(actor=request.user, participant_id=payload.participant_id, visit_id=payload.visit,
                                 visit_on=payload.visit_on, outcome=payload.outcome, note=payload.note)
    return Status(201, {"id": c.pk, "called_at": c.called_at.isoformat()})
