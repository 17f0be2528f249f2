"""Casebook API: the casebook of a participant (content, hash, signature state) and its signature."""

from __future__ import annotations

from datetime import datetime

from django.http import Http404
from ninja import Field, Router, Schema, Status

from annulus.accounts.permissions import require
from annulus.participants.selectors import get_participant

from . import selectors, services

PREFIX = "/casebooks"
router = Router(tags=["casebooks"])


class SignatureOut(Schema):
    id: int
    signer: str
    signer_name: str
    signed_at: datetime
    meaning: str
    content_hash: str


class ChangeOut(Schema):
    path: list[str]
    old: object | None = None
    new: object | None = None


class CasebookOut(Schema):
    participant_id: int
    content: dict
    content_hash: str
    state: str = Field(..., description="signed | invalidated | unsigned")
    meaning: str
    signature: SignatureOut | None
    changes: list[ChangeOut]


class CasebookSignIn(Schema):
    username: str = Field(..., max_length=150)
    password: str = Field(..., max_length=512)
    content_hash: str = Field("", max_length=64, description="the hash of the casebook read (optional)")


def _signature(s) -> dict | None:
    if s is None:
        return None
    return {"id": s.pk, "signer": s.signed_by.username, "signer_name": s.signer_name, "signed_at": s.signed_at,
            "meaning": s.meaning, "content_hash": s.content_hash}


def _participant(request, pk: int):
    require(request.user, "casebook.view")
    p = get_participant(pk, user=request.user)
    if p is None:
        raise Http404
    return p


@router.get("/participants/{pk}", response=CasebookOut)
def casebook(request, pk: int):
    p = _participant(request, pk)
    st = selectors.status_of(p)
    return {"participant_id": p.pk, "content": st["content"], "content_hash": st["content_hash"], "state": st["state"],
            "meaning": selectors.MEANING, "signature": _signature(st["signature"]),
            "changes": [{"path": [str(x) for x in path], "old": old, "new": new} for path, old, new in st["changes"]]}


@router.post("/participants/{pk}/sign", response={201: SignatureOut})
def sign(request, pk: int, payload: CasebookSignIn):
    """Sign the casebook as the caller (user name and password re-entered; principal investigator)."""
    require(request.user, "casebook.sign")
    p = _participant(request, pk)
    s = services.sign_casebook(actor=request.user, participant_id=p.pk, username=payload.username,
                               password=payload.password, content_hash=payload.content_hash)
    return Status(201, _signature(s))
