"""Monitoring API: SDV status and marks, the status grid, review findings."""

from __future__ import annotations

from datetime import datetime

from django.http import Http404
from ninja import Field, Router, Schema, Status

from annulus.accounts.permissions import require
from annulus.participants.models import Participant
from annulus.participants.selectors import get_participant, visible

from . import selectors, services

PREFIX = "/monitoring"
router = Router(tags=["monitoring"])


class PointOut(Schema):
    visit: str
    form: str
    record: int
    item: str
    revision: str
    required: bool
    critical: bool
    state: str  # verified | cleared | pending | not_required
    verified_by: str | None = None
    verified_at: datetime | None = None
    cleared_at: datetime | None = None
    cleared_by: str | None = None


class VerifyIn(Schema):
    visit: str = Field(..., max_length=20)
    form: str = Field(..., min_length=1, max_length=40)
    record: int = Field(0, ge=0, le=2**63 - 1)  # the adverse event's id in the adverse-event log
    item: str = Field("", max_length=60)  # empty: every item of the form's record


class MarkOut(Schema):
    visit: str
    form: str
    record: int
    item: str
    revision: str
    value_hash: str
    verified_at: datetime


class ProgressOut(Schema):
    participant_id: int
    visit: str
    form: str
    required: int
    verified: int
    cleared: int


class CellOut(Schema):
    visit: str
    status: str
    forms_total: int
    forms_entered: int
    open_queries: int
    sdv_required: int
    sdv_verified: int
    sdv_cleared: int
    locked: bool


class GridRowOut(Schema):
    participant_id: int
    screening_number: str
    case_number: str | None
    signature: str | None
    cells: list[CellOut]


class FindingIn(Schema):
    participant_id: int = Field(..., ge=1, le=2**63 - 1)  # a database id, never larger than bigint
    visit: str = Field("", max_length=20)
    form: str = Field("", max_length=40)
    record: int = Field(0, ge=0, le=2**63 - 1)
    item: str = Field("", max_length=60)
    category: str = Field(..., max_length=30)
    text: str = Field(..., max_length=4000)


class ResolveIn(Schema):
    resolution: str = Field(..., max_length=4000)


class FindingOut(Schema):
    id: int
    participant_id: int
    visit: str
    form: str
    record: int
    item: str
    category: str
    text: str
    status: str
    raised_by: str
    raised_at: datetime
    resolved_by: str | None
    resolved_at: datetime | None
    resolution: str


def _participant(request, pk: int) -> Participant:
    p = get_participant(pk, user=request.user)
    if p is None:
        raise Http404
    return p


def _point(p) -> dict:
    return {"visit": p.visit, "form": p.form, "record": p.record, "item": p.item, "revision": p.revision,
            "required": p.required, "critical": p.critical, "state": p.state,
            "verified_by": p.mark.verified_by.username if p.mark else None,
            "verified_at": p.mark.verified_at if p.mark else None,
            "cleared_at": p.cleared_at, "cleared_by": p.cleared_by or None}


def _finding(f) -> dict:
    return {"id": f.pk, "participant_id": f.participant_id, "visit": f.visit, "form": f.form, "record": f.record,
            "item": f.item, "category": f.category, "text": f.text, "status": f.status,
            "raised_by": f.raised_by.username, "raised_at": f.raised_at,
            "resolved_by": f.resolved_by.username if f.resolved_by else None, "resolved_at": f.resolved_at,
            "resolution": f.resolution}


@router.get("/sdv", response=list[ProgressOut])
def sdv_progress(request, participant_id: int | None = None):
    """The plan's progress per participant, visit and form (items required, verified, cleared)."""
    require(request.user, "monitoring.view")
    ids = [participant_id] if participant_id is not None else None
    return [{"participant_id": pid, "visit": v, "form": f, **s}
            for (pid, v, f), s in sorted(selectors.sdv_status(ids, user=request.user).items())]


@router.get("/participants/{pk}/sdv", response=list[PointOut])
def sdv_items(request, pk: int, state: str = ""):
    """Every data point of a casebook with what the plan asks and its verification state; a
    cleared one names who changed it and when."""
    require(request.user, "monitoring.view")
    p = _participant(request, pk)
    points = selectors.evaluate([p.pk])[p.pk]
    selectors.explain_cleared(p.pk, points)
    return [_point(pt) for pt in points if not state or pt.state == state]


@router.post("/participants/{pk}/sdv", response={201: list[MarkOut]})
def sdv_verify(request, pk: int, payload: VerifyIn):
    """Mark an item (or with ``item`` empty the whole form) verified against source (the monitor)."""
    require(request.user, "sdv.verify")
    p = _participant(request, pk)
    marks = services.verify(actor=request.user, participant_id=p.pk, visit=payload.visit, form=payload.form,
                            record=payload.record, item=payload.item)
    return Status(201, [{"visit": m.visit, "form": m.form, "record": m.record, "item": m.item, "revision": m.revision,
                  "value_hash": m.value_hash, "verified_at": m.verified_at} for m in marks])


@router.get("/grid", response=list[GridRowOut])
def status_grid(request, status: str = ""):
    """Participants x visits: forms entered, open queries, SDV progress, locks; signature per row."""
    require(request.user, "monitoring.view")
    rows = selectors.status_grid(visible(request.user).exclude(status="pre_screened").order_by("screening_number"))
    return [{"participant_id": r.participant.pk, "screening_number": r.participant.screening_number,
             "case_number": r.participant.case_number, "signature": r.signature,
             "cells": [{"visit": c.visit, "status": c.status, "forms_total": c.forms_total,
                        "forms_entered": c.forms_entered, "open_queries": c.queries, "sdv_required": c.sdv_required,
                        "sdv_verified": c.sdv_verified, "sdv_cleared": c.sdv_cleared, "locked": c.locked}
                       for c in r.cells]}
            for r in rows if r.matches(status)]


@router.get("/findings", response=list[FindingOut])
def list_findings(request, participant_id: int | None = None, status: str = ""):
    require(request.user, "review.view")
    return [_finding(f) for f in selectors.findings(participant_id=participant_id, status=status, user=request.user)]


@router.post("/findings", response={201: FindingOut})
def create_finding(request, payload: FindingIn):
    """Record a review finding on a participant, visit, form or item (the auditor)."""
    require(request.user, "review.record")
    f = services.record_finding(actor=request.user, participant_id=payload.participant_id, visit=payload.visit,
                                form=payload.form, record=payload.record, item=payload.item,
                                category=payload.category, text=payload.text)
    return Status(201, _finding(selectors.get_finding(f.pk, user=request.user)))


@router.post("/findings/{pk}/resolve", response=FindingOut)
def resolve_finding(request, pk: int, payload: ResolveIn):
    require(request.user, "review.record")
    if selectors.get_finding(pk, user=request.user) is None:
        raise Http404
    services.resolve_finding(actor=request.user, finding_id=pk, resolution=payload.resolution)
    return _finding(selectors.get_finding(pk, user=request.user))
