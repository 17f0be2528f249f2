"""Safety API: adverse events and their history, SAE reports, DSMB reports and schedule."""

from __future__ import annotations

import json
from datetime import date, datetime

from django.http import Http404, HttpResponse
from ninja import Field, Router, Schema, Status
from pydantic import ConfigDict, model_serializer
from pydantic.json_schema import SkipJsonSchema

from annulus.accounts.permissions import require
from annulus.dates import PlausibleDate, PlausibleDateTime
from annulus.errors import RuleViolation
from annulus.participants.selectors import refuse_unseen
from annulus.trial.selectors import active_protocol

from . import causality, reports, selectors, services

PREFIX = "/safety"
router = Router(tags=["safety"])

# the causality to each procedure the protocol names (safety.causality_of) is a field of its
# own, causality_<id>, besides causality_product: the schemas take and give them as further
# fields (read from the request body; given out from procedure_causality, not shown itself)
CAUSALITY_FIELDS = ConfigDict(json_schema_extra={
    "additionalProperties": {"type": "string"},
    "description": "Besides the fields listed: causality_<id> for each procedure whose causality the protocol "
                   "assesses (safety.causality_of), a code of not_applicable, not_related, unlikely, possible, "
                   "probable, definite.",
})


def _causalities_sent(request, schema) -> dict:
    """The ``causality_<id>`` keys of the request's JSON body that are not fields of ``schema``
    (any other unknown key is ignored, as before); the service checks each against the protocol."""
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:  # the body was parsed already: ninja answered a body that is not JSON
        return {}
    if not isinstance(body, dict):
        return {}
    return {k: v for k, v in body.items() if causality.is_causality_field(k) and k not in schema.model_fields}


class EventIn(Schema):
    model_config = CAUSALITY_FIELDS

    term: str = Field(..., max_length=200)
    meddra_pt_code: str = Field("", max_length=8)
    meddra_version: str = Field("", max_length=10)
    description: str = Field("", max_length=2000)
    onset_at: PlausibleDateTime
    end_at: PlausibleDateTime | None = None
    serious: bool  # a clinical answer: stated, never assumed
    serious_criteria: list[str] = []
    first_knowledge_at: PlausibleDateTime | None = None
    grade: int
    causality_product: str
    expectedness: str
    action_taken: str
    outcome: str


class EventCreateIn(EventIn):
    participant_id: int
    # an open adverse-event task of this participant that this event answers (it is closed)
    task_id: int | None = None


class TaskOut(Schema):
    id: int
    participant_id: int
    source: str
    description: str
    term: str
    opened_at: datetime
    state: str
    adverse_event_id: int | None
    dismissed_reason: str
    closed_at: datetime | None


class TaskDismissIn(Schema):
    reason: str = Field(..., max_length=2000)


class TaskLinkIn(Schema):
    adverse_event_id: int


class EventPatchIn(Schema):
    model_config = CAUSALITY_FIELDS

    reason: str = Field(..., max_length=2000)
    term: str | None = Field(None, max_length=200)
    meddra_pt_code: str | None = Field(None, max_length=8)
    meddra_version: str | None = Field(None, max_length=10)
    description: str | None = Field(None, max_length=2000)
    onset_at: PlausibleDateTime | None = None
    end_at: PlausibleDateTime | None = None
    serious: bool | None = None
    serious_criteria: list[str] | None = None
    first_knowledge_at: PlausibleDateTime | None = None
    grade: int | None = None
    causality_product: str | None = None
    expectedness: str | None = None
    action_taken: str | None = None
    outcome: str | None = None


class EventOut(Schema):
    model_config = ConfigDict(json_schema_extra=CAUSALITY_FIELDS["json_schema_extra"])

    id: int
    label: str
    participant_id: int
    term: str
    meddra_pt_code: str
    meddra_version: str
    onset_at: datetime
    end_at: datetime | None
    serious: bool
    serious_criteria: list[str]
    first_knowledge_at: datetime | None
    grade: int
    causality_product: str
    expectedness: str
    action_taken: str
    outcome: str
    revision: int
    # given flat, as causality_<id> (see _flat)
    procedure_causality: SkipJsonSchema[dict[str, str]] = Field(default_factory=dict, exclude=True)

    @staticmethod
    def resolve_procedure_causality(obj):
        flat = causality.flat(obj, active_protocol())
        flat.pop(causality.PRODUCT_CAUSALITY)
        return flat

    @model_serializer(mode="wrap")
    def _flat(self, handler):
        out = handler(self)
        at = list(out).index("causality_product")
        items = list(out.items())
        return dict(items[:at] + list(self.procedure_causality.items()) + items[at:])


class RevisionOut(Schema):
    revision: int
    saved_at: datetime
    saved_by: str
    reason: str
    changes: dict

    @staticmethod
    def resolve_saved_by(obj):
        return obj.saved_by.username


class ReportOut(Schema):
    id: int
    adverse_event_id: int
    recipient: str
    recipient_name: str
    due_at: datetime
    rule: str
    calendar_warning: str
    sent_at: datetime | None
    sent_to: str
    acknowledged_at: datetime | None
    acknowledged_by: str
    state: str
    time_left_seconds: float | None

    @staticmethod
    def resolve_state(obj):
        return selectors.clock(obj)["state"]

    @staticmethod
    def resolve_time_left_seconds(obj):
        return selectors.clock(obj).get("seconds_left")


class SentIn(Schema):
    sent_at: PlausibleDateTime
    sent_to: str = Field(..., max_length=120)
    method: str = Field("", max_length=40)


class AckIn(Schema):
    acknowledged_at: PlausibleDateTime
    acknowledged_by: str = Field(..., max_length=120)


class EventWithdrawIn(Schema):
    withdrawn_on: PlausibleDate
    details: str = Field(..., max_length=2000)


class DsmbReportOut(Schema):
    id: int
    kind: str
    as_of: date
    scheduled: bool
    generated_at: datetime
    summary: dict


class DsmbReportIn(Schema):
    as_of: PlausibleDate
    kind: str = "open"


class ScheduleOut(Schema):
    first_enrolment: date | None
    months: int
    due: list[date]


def _event(request, pk: int):
    ae = selectors.get_event(pk, user=request.user)
    if ae is None:
        raise Http404
    return ae


@router.get("/adverse-events", response=list[EventOut], summary="Adverse events (listing: all, serious, deaths)")
def list_events(request, listing: str = "all", participant_id: int | None = None, q: str = "", limit: int = 500):
    require(request.user, "safety.view")
    if listing not in selectors.LISTINGS:
        raise RuleViolation("listing", f"must be one of {', '.join(selectors.LISTINGS)}")
    return list(selectors.events(listing=listing, participant_id=participant_id, q=q, user=request.user)[:max(1, min(limit, 5000))])


@router.post("/adverse-events", response={201: EventOut}, summary="Record an adverse event")
def create_event(request, payload: EventCreateIn):
    require(request.user, "safety.edit")
    data = {**payload.dict(), **_causalities_sent(request, EventCreateIn)}
    refuse_unseen(request.user, [data["participant_id"]])
    return Status(201, services.record_adverse_event(actor=request.user, participant_id=data.pop("participant_id"), **data))


@router.get("/adverse-events/{int:pk}", response=EventOut)
def get_event(request, pk: int):
    require(request.user, "safety.view")
    return _event(request, pk)


@router.patch("/adverse-events/{int:pk}", response=EventOut, summary="Follow-up or correction (a new revision)")
def update_event(request, pk: int, payload: EventPatchIn):
    require(request.user, "safety.edit")
    _event(request, pk)
    data = {**payload.dict(exclude_unset=True), **_causalities_sent(request, EventPatchIn)}
    reason = data.pop("reason")
    return services.update_adverse_event(actor=request.user, adverse_event_id=pk, reason=reason, **data)


@router.get("/adverse-events/{int:pk}/revisions", response=list[RevisionOut])
def revisions(request, pk: int):
    require(request.user, "safety.view")
    return list(_event(request, pk).revisions.select_related("saved_by").order_by("revision"))


@router.post("/adverse-events/{int:pk}/withdraw", response={201: dict}, summary="Withdraw the participant for this event")
def withdraw(request, pk: int, payload: EventWithdrawIn):
    require(request.user, "participant.withdraw")
    _event(request, pk)
    w = services.withdraw_for_event(actor=request.user, adverse_event_id=pk, **payload.dict())
    return Status(201, {"withdrawal_id": w.pk, "participant_id": w.participant_id, "adverse_event_id": w.adverse_event_id})


@router.get("/sae-reports", response=list[ReportOut], summary="SAE reports and their clocks")
def list_reports(request, open_only: bool = False):
    require(request.user, "safety.view")
    return list(selectors.sae_reports(only_open=open_only, user=request.user))


def _sae_report(request, pk):
    r = selectors.sae_reports(user=request.user).filter(pk=pk).first()
    if r is None:
        raise Http404
    return r


@router.post("/sae-reports/{int:pk}/sent", response=ReportOut, summary="Record that the report was sent")
def report_sent(request, pk: int, payload: SentIn):
    require(request.user, "safety.report")
    _sae_report(request, pk)
    services.record_report_sent(actor=request.user, report_id=pk, **payload.dict())
    return _sae_report(request, pk)


@router.post("/sae-reports/{int:pk}/ack", response=ReportOut, summary="Record the recipient's acknowledgement")
def report_ack(request, pk: int, payload: AckIn):
    require(request.user, "safety.report")
    _sae_report(request, pk)
    services.record_report_acknowledged(actor=request.user, report_id=pk, **payload.dict())
    return _sae_report(request, pk)


@router.get("/ae-tasks", response=list[TaskOut], summary="Adverse-event tasks (open ones unless state=all)")
def list_tasks(request, participant_id: int | None = None, state: str = "open"):
    require(request.user, "safety.view")
    if state not in ("open", "all"):
        raise RuleViolation("state", "must be open or all")
    if state == "open":
        return list(selectors.open_tasks(participant_id, user=request.user))
    if participant_id is None:
        raise RuleViolation("participant_id", "is needed with state=all")
    return list(selectors.tasks(participant_id, user=request.user))


def _task(request, pk):
    task = selectors.get_task(pk, user=request.user)
    if task is None:
        raise Http404
    return task


@router.post("/ae-tasks/{int:pk}/dismiss", response=TaskOut, summary="Dismiss an adverse-event task with a reason")
def task_dismiss(request, pk: int, payload: TaskDismissIn):
    require(request.user, "safety.edit")
    _task(request, pk)
    return services.dismiss_ae_task(actor=request.user, task_id=pk, reason=payload.reason)


@router.post("/ae-tasks/{int:pk}/link", response=TaskOut, summary="Close a task with an adverse event already recorded")
def task_link(request, pk: int, payload: TaskLinkIn):
    require(request.user, "safety.edit")
    _task(request, pk)
    return services.link_ae_task(actor=request.user, task_id=pk, adverse_event_id=payload.adverse_event_id)


@router.get("/dsmb/schedule", response=ScheduleOut)
def dsmb_schedule(request):
    require(request.user, "dsmb.open")
    months = active_protocol().safety.dsmb_interim_months
    return {"first_enrolment": reports.first_enrolment(), "months": months, "due": reports.schedule(months=months)}


@router.get("/dsmb/reports", response=list[DsmbReportOut])
def dsmb_reports(request):
    require(request.user, "dsmb.open")
    return list(selectors.reports_for(request.user))


@router.post("/dsmb/reports", response={201: DsmbReportOut}, summary="Generate an interim report now")
def dsmb_generate(request, payload: DsmbReportIn):
    require(request.user, "dsmb.generate")
    if payload.kind == "closed":
        require(request.user, "dsmb.closed")
    return Status(201, services.generate_report(actor=request.user, as_of=payload.as_of, kind=payload.kind))


def _dsmb_report(request, pk):
    rep = selectors.report_for(request.user, pk)
    if rep is None:  # missing and not-yours look the same
        raise Http404
    return rep


@router.get("/dsmb/reports/{int:pk}", response=DsmbReportOut)
def dsmb_report(request, pk: int):
    return _dsmb_report(request, pk)


@router.get("/dsmb/reports/{int:pk}/html", summary="The report as HTML")
def dsmb_report_html(request, pk: int):
    from annulus.site.csp import stored_document

    return stored_document(HttpResponse(_dsmb_report(request, pk).html, content_type="text/html; charset=utf-8"))
