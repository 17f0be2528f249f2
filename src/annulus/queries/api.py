"""Queries API: list (with filters), get, raise, answer, close, re-open. Errors are 4xx JSON naming
the field; bearer-token clients need no CSRF token."""

from __future__ import annotations

from datetime import datetime

from django.http import Http404
from ninja import Field, Router, Schema, Status

from annulus.accounts.permissions import require
from annulus.errors import RuleViolation

from . import selectors, services
from .models import ASSIGNEES, ORIGINS, STATUSES

PREFIX = "/queries"
router = Router(tags=["queries"])


class MessageOut(Schema):
    kind: str
    text: str
    author: str | None
    author_role: str
    at: datetime

    @staticmethod
    def resolve_author(obj):
        return obj.author.username if obj.author_id else None


class QueryOut(Schema):
    id: int
    label: str
    participant_id: int
    visit: str
    form: str
    record: int
    item: str
    origin: str
    check_id: str
    status: str
    assigned_to: str
    raised_by: str | None
    raised_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    target: str
    messages: list[MessageOut]

    @staticmethod
    def resolve_raised_by(obj):
        return obj.raised_by.username if obj.raised_by_id else None

    @staticmethod
    def resolve_target(obj):
        return selectors.target_text(obj, "en")

    @staticmethod
    def resolve_messages(obj):
        return list(obj.messages.select_related("author").order_by("at", "id"))


class QueryIn(Schema):
    participant_id: int
    visit: str = Field("", max_length=20)
    form: str = Field("", max_length=40)
    record: int = Field(0, ge=0)
    item: str = Field("", max_length=60)
    text: str = Field(..., max_length=services.MAX_TEXT)
    assigned_to: str = Field(..., max_length=20)


class StepIn(Schema):
    text: str = Field(..., max_length=services.MAX_TEXT)


def _query(request, pk: int):
    q = selectors.get_query(pk, user=request.user)
    if q is None:
        raise Http404
    return q


@router.get("", response=list[QueryOut], summary="Queries (filters: status open/answered/closed/active, participant, "
                                                 "form, assigned_to, origin)")
def list_queries(request, status: str = "", participant_id: int | None = None, form: str = "", assigned_to: str = "",
                 origin: str = "", limit: int = 500):
    require(request.user, "queries.view")
    if status and status not in {"active"} | {s for s, _l in STATUSES}:
        raise RuleViolation("status", "must be one of active, open, answered, closed")
    if assigned_to and assigned_to not in dict(ASSIGNEES):
        raise RuleViolation("assigned_to", f"must be one of {', '.join(dict(ASSIGNEES))}")
    if origin and origin not in dict(ORIGINS):
        raise RuleViolation("origin", f"must be one of {', '.join(dict(ORIGINS))}")
    qs = selectors.query_list(status=status, form=form[:40], assigned_to=assigned_to, origin=origin,
                              participant=participant_id, user=request.user)
    return list(qs.select_related("raised_by")[:max(1, min(limit, 5000))])


@router.get("/{int:pk}", response=QueryOut)
def get_query(request, pk: int):
    require(request.user, "queries.view")
    return _query(request, pk)


@router.post("", response={201: QueryOut}, summary="Raise a query on an item, a form, a visit or a participant")
def create_query(request, payload: QueryIn):
    d = payload.dict()
    q = services.raise_query(actor=request.user, participant_id=d["participant_id"], visit=d["visit"], form=d["form"],
                             record=d["record"], item=d["item"], text=d["text"], assigned_to=d["assigned_to"])
    return Status(201, _query(request, q.pk))


@router.post("/{int:pk}/answer", response=QueryOut, summary="Answer a query (the site)")
def answer(request, pk: int, payload: StepIn):
    services.answer_query(actor=request.user, query_id=pk, text=payload.text)
    return _query(request, pk)


@router.post("/{int:pk}/close", response=QueryOut, summary="Close a query (monitor, data manager, or its raiser)")
def close(request, pk: int, payload: StepIn):
    services.close_query(actor=request.user, query_id=pk, text=payload.text)
    return _query(request, pk)


@router.post("/{int:pk}/reopen", response=QueryOut, summary="Re-open an answered or closed query")
def reopen(request, pk: int, payload: StepIn):
    services.reopen_query(actor=request.user, query_id=pk, text=payload.text)
    return _query(request, pk)
