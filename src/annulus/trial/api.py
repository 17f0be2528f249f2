"""Protocol API: the protocol in force, with dose recipes only for roles that may see them."""

from __future__ import annotations

from datetime import date, datetime

from ninja import Field, Router, Schema, Status

from annulus.accounts.permissions import has, require

from . import dictionary_api
from .selectors import active_protocol, active_version

PREFIX = "/protocol"
router = Router(tags=["protocol"])
# GET /api/v1/dictionary, mounted beside this router (annulus.site.api)
EXTRA_ROUTERS = [(dictionary_api.PREFIX, dictionary_api.router)]


@router.get("", summary="The protocol version in force")
def protocol(request):
    require(request.user, "protocol.view")
    p = active_protocol()
    data = p.model_dump(mode="json")
    if not has(request.user, "allocation.recipe"):
        # arm names stay (they are public in the registry); what tells doses apart per sachet does not
        for arm in data["arms"]:
            arm.pop("recipe", None)
    pv = active_version()
    return {"version": pv.version, "digest": pv.digest, "protocol": data}


class AmendmentIn(Schema):
    text: str = Field(..., description="the protocol file (YAML, UTF-8)", max_length=1_048_576)
    activate: bool = Field(True, description="put this version in force now")
    cosigner_username: str = Field("", max_length=150, description="a principal investigator other than you: "
                                   "needed when the version changes which roles are blinded or a key holder")
    cosigner_password: str = Field("", max_length=200)


class VersionOut(Schema):
    version: str
    digest: str
    effective_date: date
    loaded_at: datetime
    active: bool


@router.post("/versions", response={201: VersionOut},
             summary="Load a protocol amendment (administrator; a change of the blind needs a PI's co-signature)")
def load_amendment(request, payload: AmendmentIn):
    from annulus.errors import RuleViolation, RuleViolations
    from annulus.protocol import MAX_BYTES, ProtocolError, parse_protocol

    from .services import load_protocol_version

    require(request.user, "protocol.manage")
    raw = payload.text.encode("utf-8")
    if len(raw) > MAX_BYTES:
        raise RuleViolation("text", f"the file is {len(raw)} bytes; the limit is {MAX_BYTES} bytes")
    try:
        parse_protocol(raw)
    except ProtocolError as exc:
        # each problem on the path of its field ("randomisation.level1_key_holder", "arms[0].ratio")
        raise RuleViolations([RuleViolation(*line.split(": ", 1)) if ": " in line else RuleViolation("text", line)
                              for line in exc.errors]) from None
    pv = load_protocol_version(actor=request.user, text=raw, activate=payload.activate,
                               cosigner_username=payload.cosigner_username,
                               cosigner_password=payload.cosigner_password)
    pv.refresh_from_db()
    return Status(201, pv)
