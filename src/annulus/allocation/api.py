"""Allocation API: the list, randomisation, pharmacy, transplantation and unblinding.

Every route checks the capability before looking anything up, so a blinded caller gets the same
403 whether an id exists or not; what a response may contain is decided by ``selectors``.
"""

from __future__ import annotations

from datetime import date, datetime

from django.http import Http404
from ninja import Field, Router, Schema, Status

from annulus.accounts.permissions import require
from annulus.dates import PlausibleDate, PlausibleDateTime
from annulus.errors import NotPermitted
from annulus.participants.selectors import get_participant
from annulus.trial.selectors import active_protocol, trial_state

from . import selectors, services

PREFIX = "/allocation"
router = Router(tags=["allocation"])


def _participant(request, pk: int):
    p = get_participant(pk, user=request.user)
    if p is None:
        raise Http404
    return p


class ListGenerateIn(Schema):
    seed: int | None = Field(None, description="at least 12 digits; empty: drawn from the OS random source")


class ListOut(Schema):
    id: int
    protocol_version: str
    method: str
    seed: int
    n: int
    opened: int
    block_sizes: list[int]
    table_sha256: str
    level1_sha256: str
    seal_problems: list[str]
    generated_at: datetime


class DocumentOut(Schema):
    filename: str
    sha256: str
    content: str


class AllocationOut(Schema):
    """Identical keys for every arm; group_label/arm only for a role allowed to see them."""

    participant_id: int
    randomised: bool
    random_number: str | None
    drug_code: str | None
    randomised_at: datetime | None
    released: bool
    dispensed_at: datetime | None
    transplanted_at: datetime | None
    emergency_unblindings: int
    group_label: str | None = None
    arm: str | None = None


class RecipeOut(Schema):
    envelope_id: int
    random_number: str
    drug_code: str
    arm: str
    cell_suspension_ml: float
    saline_ml: float
    ha_hydrogel_ml: float
    release_passed: bool | None
    dispensed_at: datetime | None


class ReleaseIn(Schema):
    lot_number: str = Field(..., max_length=40)
    tested_on: PlausibleDate
    results: dict[str, str | float | int]
    # a failed (quarantined) lot recorded again: a reason and a second pharmacist's (QA) signature
    reason: str = Field("", max_length=2000)
    qa_username: str = Field("", max_length=150)
    qa_password: str = Field("", max_length=200)


class ReleaseOut(Schema):
    id: int
    lot_number: str
    passed: bool
    failing: list[str]
    results: dict


class DispenseOut(Schema):
    id: int
    drug_code: str
    dispensed_at: datetime


class TransplantIn(Schema):
    transplanted_at: PlausibleDateTime
    drug_code: str = Field(..., max_length=40)
    disc_level: str | None = Field(None, max_length=10)
    needle_gauge: int | None = None
    approach: str | None = Field(None, max_length=40)
    imaging: str | None = Field(None, max_length=40)
    volume_ml: float | None = None
    activity_restriction_explained: bool = False
    notes: str = Field("", max_length=2000)


class TransplantOut(Schema):
    id: int
    transplanted_at: datetime
    disc_level: str
    needle_gauge: int
    approach: str
    imaging: str
    volume_ml: float
    activity_restriction_until: date


class PasswordReasonIn(Schema):
    password: str = Field("", max_length=200)
    reason: str = Field("", max_length=2000)


class EmergencyIn(PasswordReasonIn):
    """A second emergency unblinding by the same person within 24 hours also needs a principal
    investigator's co-signature: their user name and password."""

    cosigner_username: str = Field("", max_length=150)
    cosigner_password: str = Field("", max_length=200)


class EmergencyOut(Schema):
    number: str
    participant_id: int
    case_number: str | None
    requested_by: str
    at: datetime
    reason: str
    scope: str
    cosigned_by: str | None = None


class EmergencyRevealOut(EmergencyOut):
    arm: str
    arm_name: str


class SignIn(Schema):
    password: str = Field("", max_length=200)
    statement: str = Field("", max_length=2000)


class StepOut(Schema):
    kind: str
    user: str
    at: datetime
    statement: str


class StateOut(Schema):
    state: str
    steps: list[StepOut]


class WaiverIn(Schema):
    item: str = Field("", max_length=200)
    reason: str = Field("", max_length=4000)


class WaiverOut(Schema):
    item: str
    group: str
    label: str
    reason: str
    waived_by: str
    waived_at: datetime


class ChecklistItemOut(Schema):
    key: str
    label: str
    link: str
    waiver: WaiverOut | None = None


class ChecklistGroupOut(Schema):
    group: str
    title: str
    open: int
    items: list[ChecklistItemOut]


class ChecklistOut(Schema):
    state: str
    blocking: int
    first_blocking: str | None = None
    groups: list[ChecklistGroupOut]


class LabelRowOut(Schema):
    random_number: str
    group_label: str
    arm: str | None = None


def _list_out(user):
    summary = selectors.list_summary(user)
    if summary is None:
        raise Http404
    lst = summary["list"]
    return {"id": lst.pk, "protocol_version": lst.protocol_version.version, "method": lst.method,
            "seed": lst.seed, "n": lst.n,
            "opened": summary["opened"], "block_sizes": lst.block_sizes, "table_sha256": lst.table_sha256,
            "level1_sha256": lst.level1_sha256, "seal_problems": services.seal_problems(lst),
            "generated_at": lst.generated_at}


@router.post("/list", response={201: ListOut}, summary="Generate and seal the allocation list (level-1 key holder)")
def generate(request, payload: ListGenerateIn):
    require(request.user, "allocation.generate")
    services.generate_list(actor=request.user, seed=payload.seed)
    return Status(201, _list_out(request.user))


@router.get("/list", response=ListOut, summary="The sealed list's metadata (level-1 key holder)")
def get_list(request):
    require(request.user, "allocation.level1")
    return _list_out(request.user)


@router.get("/list/documents/{holder}", response=DocumentOut, summary="A holder's allocation table with its checksum")
def document(request, holder: str):
    require(request.user, "allocation.level1")
    lst = selectors.current_list()
    from annulus.randomisation.documents import HOLDERS, allocation_table_name, sha256_hex

    if lst is None or holder not in HOLDERS:
        raise Http404
    data = services.document_bytes(lst)["table"]
    name = allocation_table_name(holder)
    services.record_export(actor=request.user, lst=lst, document=name)
    return {"filename": name, "sha256": sha256_hex(data), "content": data.decode()}


@router.get("/level1", response=list[LabelRowOut], summary="Random number → group label, opened envelopes only")
def level1(request):
    require(request.user, "unblinding.view")
    return [{"random_number": r["random_number"], "group_label": r["group_label"]}
            for r in selectors.level1_rows(request.user)]


@router.get("/level2", response=dict[str, str], summary="Group label → arm (level-2 key holder)")
def level2(request):
    require(request.user, "allocation.level2")
    return selectors.level2_key(request.user)


def _allocation_out(user, p):
    a = selectors.participant_allocation(user, p)
    return {"participant_id": p.pk, "randomised": a["randomised"], "random_number": a["random_number"],
            "drug_code": a["drug_code"], "randomised_at": a["randomised_at"], "released": a["released"],
            "dispensed_at": a["dispensed_at"],
            "transplanted_at": a["treatment_record"].transplanted_at if a["treatment_record"] else None,
            "emergency_unblindings": len(a["emergency_unblindings"]),
            "group_label": a.get("group_label"), "arm": a.get("arm")}


@router.get("/participants/{int:pk}", response=AllocationOut, summary="A participant's allocation, as your role may see it")
def participant_allocation(request, pk: int):
    require(request.user, "allocation.view")
    return _allocation_out(request.user, _participant(request, pk))


@router.post("/participants/{int:pk}/randomise", response={201: AllocationOut},
             summary="Open the participant's envelope (enrolled participants only)")
def randomise(request, pk: int):
    require(request.user, "allocation.randomise")
    p = _participant(request, pk)
    services.randomise(actor=request.user, participant_id=p.pk)
    return Status(201, _allocation_out(request.user, _participant(request, pk)))


@router.post("/participants/{int:pk}/transplant", response={201: TransplantOut}, summary="Record the transplantation")
def transplant(request, pk: int, payload: TransplantIn):
    require(request.user, "allocation.transplant")
    _participant(request, pk)
    t = services.record_transplant(actor=request.user, participant_id=pk, **payload.dict())
    return Status(201, t)


def _emergency_out(rec):
    return {"number": rec.label, "participant_id": rec.participant_id, "case_number": rec.participant.case_number,
            "requested_by": rec.requested_by.username, "at": rec.at, "reason": rec.reason, "scope": rec.scope,
            "cosigned_by": rec.cosigned_by.username if rec.cosigned_by_id else None}


@router.post("/participants/{int:pk}/emergency-unblinding", response={201: EmergencyRevealOut},
             summary="Emergency unblinding of one participant (investigator; password and reason required)")
def emergency(request, pk: int, payload: EmergencyIn):
    require(request.user, "unblinding.emergency")
    _participant(request, pk)
    rec, arm = services.emergency_unblind(actor=request.user, participant_id=pk, password=payload.password,
                                          reason=payload.reason, cosigner_username=payload.cosigner_username,
                                          cosigner_password=payload.cosigner_password)
    return Status(201, {**_emergency_out(rec), "arm": arm, "arm_name": active_protocol().arm(arm).name.en})


@router.get("/emergency-unblindings", response=list[EmergencyOut], summary="All emergency unblindings")
def emergency_list(request):
    require(request.user, "unblinding.emergency_list")
    return [_emergency_out(r) for r in selectors.emergency_list(request.user)]


def _recipe_out(d):
    e, r = d["envelope"], d["recipe"]
    release = d.get("release")
    disp = d.get("dispensing")
    return {"envelope_id": e.pk, "random_number": e.random_number, "drug_code": e.drug_code, "arm": d["arm"].id,
            "cell_suspension_ml": r.cell_suspension_ml, "saline_ml": r.saline_ml, "ha_hydrogel_ml": r.ha_hydrogel_ml,
            "release_passed": release.passed if release else None,
            "dispensed_at": disp.dispensed_at if disp else None}


class KitOut(Schema):
    """The kit to dispense at one visit: its number only, the same keys for every arm."""

    participant_id: int
    visit: str
    kit_number: str | None
    first_kit: bool = Field(description="the drug code given at randomisation (the treatment's visit)")
    allocated_at: datetime | None


class KitRowOut(Schema):
    serial_number: int
    kit_number: str
    group_label: str
    arm: str
    allocated: bool


class KitListOut(Schema):
    sha256: str
    kits: list[KitRowOut]


def _kit_out(request, p, key: str):
    k = selectors.kit_for_visit(request.user, p, key)
    if k is None:
        raise Http404
    return {"participant_id": p.pk, "visit": key, "kit_number": k["kit_number"], "first_kit": k["first"],
            "allocated_at": k["allocated_at"]}


def _may_allocate(request, key: str) -> None:
    if not selectors.may_allocate_kit(request.user, key):
        raise NotPermitted("allocation.kit")


@router.get("/participants/{int:pk}/visits/{key}/kit", response=KitOut,
            summary="The kit to dispense at a dispensing visit (roles that record the dispensing)")
def visit_kit(request, pk: int, key: str):
    require(request.user, "visits.view")  # the roles that record a dispensing read visits
    _may_allocate(request, key)
    return _kit_out(request, _participant(request, pk), key)


@router.post("/participants/{int:pk}/visits/{key}/kit", response={201: KitOut},
             summary="Allocate the kit to dispense at a dispensing visit (the same kit when asked again)")
def allocate_kit(request, pk: int, key: str):
    require(request.user, "visits.view")  # the roles that record a dispensing read visits
    _may_allocate(request, key)
    p = _participant(request, pk)
    services.assign_kit(actor=request.user, participant_id=p.pk, visit_key=key)
    return Status(201, _kit_out(request, p, key))


@router.get("/pharmacy/kits", response=KitListOut, summary="The kit list for labelling (level-2 key holder)")
def kit_list(request):
    require(request.user, "allocation.kit_list")
    data = selectors.kit_list(request.user)
    if data is None:
        raise Http404
    return {"sha256": data["sha256"],
            "kits": [{"serial_number": r["serial"], "kit_number": r["kit_number"], "group_label": r["group_label"],
                      "arm": r["arm"], "allocated": r["allocated"]} for r in data["rows"]]}


@router.get("/pharmacy/envelopes", response=list[RecipeOut], summary="Opened drug codes with recipes (pharmacist)")
def pharmacy_list(request):
    require(request.user, "allocation.recipe")
    return [_recipe_out(r) for r in selectors.pharmacy_rows(request.user)]


def _envelope(request, envelope_id: int, capability: str):
    require(request.user, capability)
    d = selectors.envelope_for_pharmacy(request.user, envelope_id)
    if d is None:
        raise Http404
    return d


@router.get("/pharmacy/envelopes/{int:envelope_id}", response=RecipeOut, summary="The recipe for one drug code")
def recipe(request, envelope_id: int):
    return _recipe_out(_envelope(request, envelope_id, "allocation.recipe"))


@router.post("/pharmacy/envelopes/{int:envelope_id}/release", response={201: ReleaseOut},
             summary="Record ADMSC product release checks")
def release(request, envelope_id: int, payload: ReleaseIn):
    _envelope(request, envelope_id, "allocation.release")
    return Status(201, services.record_release(actor=request.user, envelope_id=envelope_id, lot_number=payload.lot_number,
                                               tested_on=payload.tested_on, results=payload.results,
                                               reason=payload.reason, qa_username=payload.qa_username,
                                               qa_password=payload.qa_password))


@router.post("/pharmacy/envelopes/{int:envelope_id}/dispense", response={201: DispenseOut},
             summary="Dispense a released product")
def dispense(request, envelope_id: int):
    d = _envelope(request, envelope_id, "allocation.dispense")
    disp = services.dispense(actor=request.user, envelope_id=envelope_id)
    return Status(201, {"id": disp.pk, "drug_code": d["envelope"].drug_code, "dispensed_at": disp.dispensed_at})


@router.get("/unblinding", response=StateOut, summary="Trial state and the signed lock/unblinding steps")
def unblinding_state(request):
    require(request.user, "unblinding.view")
    return {"state": trial_state(),
            "steps": [{"kind": s.kind, "user": s.user.username, "at": s.at, "statement": s.statement}
                      for s in selectors.unblinding_steps().values()]}


def _waiver_out(w):
    return {"item": w.item, "group": w.group, "label": w.label, "reason": w.reason,
            "waived_by": w.waived_by.username, "waived_at": w.waived_at}


@router.get("/unblinding/checklist", response=ChecklistOut,
            summary="The pre-lock checklist: open work per group, each item with its waiver if waived")
def lock_checklist(request):
    require(request.user, "unblinding.view")
    c = selectors.lock_checklist(request.user)
    return {"state": trial_state(), "blocking": len(c["blocking"]),
            "first_blocking": str(c["blocking"][0]["label"]) if c["blocking"] else None,
            "groups": [{"group": g["group"], "title": str(g["title"]), "open": g["open"],
                        "items": [{"key": i["key"], "label": str(i["label"]), "link": i["link"],
                                   "waiver": _waiver_out(i["waiver"]) if i["waiver"] else None}
                                  for i in g["items"]]}
                       for g in c["groups"]]}


@router.post("/unblinding/waivers", response={201: WaiverOut},
             summary="Waive one open item of the pre-lock checklist (principal investigator; reason required)")
def waive(request, payload: WaiverIn):
    require(request.user, "unblinding.lock")
    return Status(201, _waiver_out(services.waive_lock_item(actor=request.user, item=payload.item,
                                                            reason=payload.reason)))


def _step_out(s):
    return {"kind": s.kind, "user": s.user.username, "at": s.at, "statement": s.statement}


@router.post("/unblinding/lock", response={201: StepOut}, summary="Sign the database lock (PI, statistician)")
def sign_lock(request, payload: SignIn):
    require(request.user, "unblinding.lock")
    return Status(201, _step_out(services.sign_lock(actor=request.user, **payload.dict())))


@router.post("/unblinding/level1", response={201: StepOut}, summary="Release group labels (level-1 key holder)")
def level1_release(request, payload: SignIn):
    require(request.user, "unblinding.level1_release")
    return Status(201, _step_out(services.release_level1(actor=request.user, **payload.dict())))


@router.post("/unblinding/analysis-signoff", response={201: StepOut}, summary="Sign off the analysis (statistician)")
def signoff(request, payload: SignIn):
    require(request.user, "unblinding.signoff")
    return Status(201, _step_out(services.sign_off_analysis(actor=request.user, **payload.dict())))


@router.post("/unblinding/level2", response={201: StepOut}, summary="Release label → treatment (level-2 key holder)")
def level2_release(request, payload: SignIn):
    require(request.user, "unblinding.level2_release")
    return Status(201, _step_out(services.release_level2(actor=request.user, **payload.dict())))


@router.get("/unblinded", response=list[LabelRowOut], summary="Labels (after level 1) and arms (after level 2)")
def unblinded(request):
    require(request.user, "unblinding.view")
    user = request.user
    if selectors.can_see_arms(user) and selectors.can_see_labels(user):
        return [{"random_number": r["random_number"], "group_label": r["group_label"], "arm": r["arm"]}
                for r in selectors.unblinded_rows(user)]
    return [{"random_number": r["random_number"], "group_label": r["group_label"]}
            for r in selectors.level1_rows(user)]
