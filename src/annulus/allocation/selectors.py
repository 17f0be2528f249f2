"""The blind, in one place (X-3.8). Every read of allocation data for a page, an export or the
API goes through a function here that takes the user and returns only what that role may see:

- blinded roles (site staff, statistician before unblinding, monitor, auditor, ethics, admin)
  see whether a participant is randomised, the random number (= case number), the drug code and
  dates; never a group label, an arm, a dose or a recipe. Nothing they see differs by arm.
- the level-1 key holder (designer) sees random number -> group label for opened envelopes;
- the level-2 key holder (pharmacist) sees the recipe and arm behind each opened drug code;
- the statistician sees labels after first-level unblinding, and arms after the second.

``arm_of_for_system`` bypasses the blind for the simulator, the demo and code that has already
checked an unblinded permission; views and API routes must never call it.
"""

from __future__ import annotations

from datetime import date, timedelta

from django.utils import timezone

from annulus.accounts.permissions import has, is_blinded, role_of
from annulus.errors import NotPermitted
from annulus.participants.selectors import scoped
from annulus.trial.selectors import active_protocol, trial_state

from .models import (
    AllocationList,
    Dispensing,
    EmergencyUnblinding,
    Envelope,
    Kit,
    ProductRelease,
    Transplant,
    UnblindingStep,
)


# ---- who may see what --------------------------------------------------------------------

def holds_key(user, level: int) -> bool:
    """Whether the user's role holds the level-1 or level-2 key. The protocol names the holders
    (``randomisation.level1_key_holder``/``level2_key_holder``) and which roles are blinded; a
    holder must also be declared unblinded (the schema refuses anything else, and this check
    keeps it so whatever was loaded)."""
    role = role_of(user)
    holder = getattr(active_protocol().randomisation, f"level{level}_key_holder")
    return role is not None and role == holder and not is_blinded(user)


def can_see_labels(user) -> bool:
    if holds_key(user, 1):
        return True
    return role_of(user) == "statistician" and trial_state() in ("unblinded_1", "unblinded_2")


def can_see_arms(user) -> bool:
    role = role_of(user)
    if holds_key(user, 2):
        return True
    return role in ("statistician", "investigator") and trial_state() == "unblinded_2"



# ---- exports ----------------------------------------------------------------------------------

EXPORT_BLINDINGS = ("blinded", "labels", "arms")  # narrowest first


def export_blinding(user, at_most: str = "arms") -> str:
    """What a data export made by ``user`` may carry: "arms" (treatments and group labels),
    "labels" (group labels A-D) or "blinded". Narrower than the pages: before first-level
    unblinding nobody's export carries a label or an arm, a key holder's included (a file travels
    further than a page); after it, the statistician's export follows ``can_see_labels`` and
    ``can_see_arms``. ``at_most`` narrows it further (a blinded report asked for by someone who
    may see more): the result is never wider than either."""
    if at_most not in EXPORT_BLINDINGS:
        raise ValueError(f"at_most must be one of {EXPORT_BLINDINGS}, not {at_most!r}")
    if trial_state() not in ("unblinded_1", "unblinded_2"):
        level = "blinded"
    elif can_see_arms(user) and (can_see_labels(user) or holds_key(user, 2)):
        level = "arms"
    elif can_see_labels(user):
        level = "labels"
    else:
        level = "blinded"
    return min(level, at_most, key=EXPORT_BLINDINGS.index)


def export_drug_codes(user, at_most: str = "arms") -> bool:
    """Whether a data export made by ``user`` carries drug codes: the level-2 key holder only, and
    only in an export not narrowed below "arms"."""
    return at_most == "arms" and holds_key(user, 2)


def export_allocations(user, participant_ids, *, as_of=None, at_most: str = "arms") -> dict[int, dict]:
    """Each randomised participant's allocation as an export made by ``user`` may show it, in one
    query (``as_of``: envelopes opened by then): ``randomised_at``, ``random_number``, ``levels``
    (the stratification or minimisation factor levels recorded when the envelope was opened, the
    same for every arm), and ``group_label``/``arm``/``drug_code``, each None unless
    ``export_blinding`` / ``export_drug_codes`` allow it. The same keys for every participant and
    every arm."""
    blinding = export_blinding(user, at_most)
    codes = export_drug_codes(user, at_most)
    rows = Envelope.objects.filter(participant_id__in=list(participant_ids)).select_related("allocation_list")
    if as_of is not None:
        rows = rows.filter(opened_at__lte=as_of)
    out = {}
    for e in rows:
        out[e.participant_id] = {
            "randomised_at": e.opened_at, "random_number": e.random_number, "levels": dict(e.levels or {}),
            "group_label": e.group_label if blinding in ("labels", "arms") else None,
            "arm": e.allocation_list.level2_key[e.group_label] if blinding == "arms" else None,
            "drug_code": e.drug_code if codes else None,
        }
    return out


# ---- for other apps (names are an interface) -----------------------------------------------

def arm_of_for_system(participant_id: int) -> str | None:
    """The arm id of a participant. ONLY for the simulator, the demo and code that has already
    checked an unblinded permission: views and API routes must never call this."""
    env = Envelope.objects.select_related("allocation_list").filter(participant_id=participant_id).first()
    if env is None:
        return None
    return env.allocation_list.level2_key[env.group_label]


def may_read_closed_report(user) -> bool:
    """The closed (by-arm) DSMB material is for the DSMB only. A key holder never reads it: the
    level-1 key holder's random number -> label list next to a case's arm would give label ->
    treatment, whatever the capability table says."""
    return (has(user, "allocation.closed_report") and not is_blinded(user)
            and not holds_key(user, 1) and not holds_key(user, 2))


def arms_for_closed_report(user) -> dict[int, str]:
    """Participant id -> arm id for the DSMB closed report."""
    if not may_read_closed_report(user):
        raise NotPermitted("allocation.closed_report")
    out = {}
    for env in Envelope.objects.select_related("allocation_list").filter(participant__isnull=False):
        out[env.participant_id] = env.allocation_list.level2_key[env.group_label]
    return out


def randomised_participant_ids() -> list[int]:
    return list(Envelope.objects.filter(participant__isnull=False).order_by("random_number")
                .values_list("participant_id", flat=True))


def emergency_unblinded_participant_ids() -> list[int]:
    """Participants whose treatment was revealed in an emergency (the same for every arm)."""
    return sorted(set(EmergencyUnblinding.objects.values_list("participant_id", flat=True)))


def emergency_unblindings_of(participant_id: int) -> list[EmergencyUnblinding]:
    """The record forms (number, who, when, why, scope) of one participant's emergency
    unblindings, for noting on the CRF (P-3.7). They hold no treatment, so every role may see them."""
    from annulus.trial.selectors import read_once

    return read_once(("emergency_unblindings", int(participant_id)), lambda: list(
        EmergencyUnblinding.objects.filter(participant_id=participant_id).select_related("requested_by")))


# A second emergency unblinding by the same person within this many hours needs a principal
# investigator's co-signature: one unblinding is an emergency, a run of them is not.
EMERGENCY_COSIGN_HOURS = 24


def recent_emergency_unblindings(user, now=None) -> list[EmergencyUnblinding]:
    """The user's own emergency unblindings in the last ``EMERGENCY_COSIGN_HOURS`` hours."""
    since = (now or timezone.now()) - timedelta(hours=EMERGENCY_COSIGN_HOURS)
    return list(EmergencyUnblinding.objects.filter(requested_by=user, at__gt=since).order_by("at"))


def transplant_date(participant_id: int) -> date | None:
    from django.utils import timezone

    t = transplant_of(participant_id)
    return timezone.localtime(t.transplanted_at).date() if t else None


def transplant_of(participant_id: int):
    """The participant's transplantation record (blind-safe), or None; read once per page."""
    from annulus.trial.selectors import read_once

    return read_once(("Transplant", int(participant_id)), lambda: Transplant.objects.filter(
        participant_id=participant_id).select_related("recorded_by").first())


def envelope_of(participant_id: int):
    """The participant's opened envelope, or None; read once per page. Its group label stays
    behind the selectors of the blind: callers show only number, code and dates."""
    from annulus.trial.selectors import read_once

    return read_once(("envelope", int(participant_id)), lambda: Envelope.objects.filter(
        participant_id=participant_id).select_related("opened_by", "allocation_list").first())


def transplant_dates(participant_ids) -> dict[int, date]:
    """``transplant_date`` of many participants in one query (those without one are left out)."""
    from django.utils import timezone

    rows = Transplant.objects.filter(participant_id__in=list(participant_ids)).values_list(
        "participant_id", "transplanted_at")
    return {pid: timezone.localtime(at).date() for pid, at in rows}


def transplant_records(participant_ids) -> dict[int, dict]:
    """The transplantation records of many participants (one query) as the casebook shows them:
    when, disc level, needle, approach, imaging, volume, the drug code entered, activity
    restriction, notes and who recorded it. The same keys for every arm; never the envelope's
    label, arm or recipe, so a blinded role may read them."""
    rows = Transplant.objects.filter(participant_id__in=list(participant_ids)).select_related("recorded_by")
    return {t.participant_id: _transplant_record(t) for t in rows}


def transplant_records_of_one(participant_id: int) -> dict[int, dict]:
    """``transplant_records([participant_id])`` from the page's own read of the record."""
    t = transplant_of(participant_id)
    return {} if t is None else {t.participant_id: _transplant_record(t)}


def treatment_record_procedure():
    """The procedure the cell product's treatment record holds: the treatment recorded on the
    product's own page (``Protocol.page_procedures``), or None (a kit trial records its
    treatment on the visit's form)."""
    protocol = active_protocol()
    pid = protocol.page_procedure("treatment")
    return protocol.procedure(pid) if pid is not None else None


def treatment_record_columns() -> list[str]:
    """The treatment record's columns that hold the procedure's own fields (those of the
    protocol's ``treatment_record_procedure`` stored as they are entered), in the record's order;
    the drug code entered, the activity restriction and who recorded it are the record's own."""
    procedure = treatment_record_procedure()
    declared = {f.id for f in procedure.fields} if procedure is not None else set()
    return [f.name for f in Transplant._meta.concrete_fields if f.name in declared]


def treatment_trail_fields() -> dict[str, str]:
    """The treatment record's fields the audit trail records, by their name in the trail -> the
    record's column: the procedure's fields (not its free-text notes), the drug code entered and
    the activity restriction."""
    return {**{c: c for c in treatment_record_columns() if c != "notes"},
            "drug_code": "drug_code_entered", "activity_restriction_until": "activity_restriction_until"}


def _transplant_record(t) -> dict:
    columns = [c for c in treatment_record_columns() if c != "notes"]
    return {**{c: getattr(t, c) for c in columns},
            "drug_code_entered": t.drug_code_entered, "activity_restriction_until": t.activity_restriction_until,
            "notes": t.notes, "recorded_by": t.recorded_by.username}


def transplanted_ids(days=None):
    """A subquery of the ids of participants transplanted on one of ``days`` (local dates, given
    as (first, last) ranges), or of everyone transplanted when ``days`` is None."""
    from datetime import datetime, time

    from django.db.models import Q

    rows = Transplant.objects.all()
    if days is not None:
        def midnight(d: date):
            return timezone.make_aware(datetime.combine(d, time.min))

        q = Q(pk__in=[])
        for first, last in days:
            q |= Q(transplanted_at__gte=midnight(first), transplanted_at__lt=midnight(last + timedelta(days=1)))
        rows = rows.filter(q)
    return rows.values("participant_id")


# ---- pages and the API -------------------------------------------------------------------

def current_list() -> AllocationList | None:
    return AllocationList.objects.order_by("-id").first()


def list_summary(user) -> dict | None:
    """The list's metadata for the level-1 key holder (seed and checksums included)."""
    if not has(user, "allocation.level1"):
        raise NotPermitted("allocation.level1")
    lst = current_list()
    if lst is None:
        return None
    opened = Envelope.objects.filter(allocation_list=lst, participant__isnull=False).count()
    strata = []
    if lst.method == "stratified_blocks":
        # envelopes and opened envelopes per stratum: counts over all arms, never by arm or label
        from django.db.models import Count, Q

        counts = {row["stratum"]: row for row in Envelope.objects.filter(allocation_list=lst).values("stratum")
                  .annotate(envelopes=Count("pk"), opened=Count("pk", filter=Q(participant__isnull=False)))}
        for st in lst.method_settings.get("strata", []):
            row = counts.get(str(st["number"]), {})
            strata.append({"number": st["number"], "label": st["label"], "envelopes": row.get("envelopes", 0),
                           "opened": row.get("opened", 0)})
    return {"list": lst, "opened": opened, "unopened": lst.n - opened,
            "randomisation_started": opened > 0, "strata": strata}


def level1_rows(user) -> list[dict]:
    """Random number -> group label, opened envelopes only: a future envelope is shown to nobody."""
    if not can_see_labels(user):
        raise NotPermitted("allocation.level1")
    return [{"random_number": e.random_number, "group_label": e.group_label, "participant_id": e.participant_id,
             "opened_at": e.opened_at}
            for e in scoped(user, Envelope.objects.filter(participant__isnull=False)).order_by("random_number")]


def unblinded_rows(user) -> list[dict]:
    """After second-level unblinding: random number, label and arm for the analysis."""
    if not (can_see_labels(user) and can_see_arms(user)):
        raise NotPermitted("allocation.level2")
    protocol = active_protocol()
    rows = []
    for e in scoped(user, Envelope.objects.select_related("allocation_list").filter(participant__isnull=False)).order_by(
            "random_number"):
        arm = e.allocation_list.level2_key[e.group_label]
        rows.append({"random_number": e.random_number, "group_label": e.group_label, "arm": arm,
                     "arm_name": protocol.arm(arm).name.en})
    return rows


def _level2_holder(user, capability: str) -> None:
    """The role's capability and the level-2 key: a role that the protocol in force declares
    blinded, or that is not the key holder, sees no recipe or arm even where its role id holds
    the capability (the kit trial's pharmacist is blinded and holds no key)."""
    if not (has(user, capability) and holds_key(user, 2)):
        raise NotPermitted(capability)


def level2_key(user) -> dict[str, str]:
    _level2_holder(user, "allocation.level2")
    lst = current_list()
    return dict(sorted(lst.level2_key.items())) if lst else {}


def product_given(participant_id: int) -> bool:
    """Whether the participant has been given the product (so there is a treatment to reveal): a
    cell product once its sachet is dispensed, any other product once the treatment procedure's
    record is complete."""
    protocol = active_protocol()
    if "treatment" in protocol.page_procedures.values():
        return Dispensing.objects.filter(envelope__participant_id=participant_id).exists()
    from annulus.visits.events import events_of

    treatment = protocol.treatment_procedure
    return treatment is not None and events_of(participant_id, protocol).recorded(treatment.id) is not None


def participant_allocation(user, participant) -> dict:
    """What the participant page and API show about allocation. The keys and their formats are
    the same for every arm; a label or arm is added only for a role allowed to see it."""
    env = envelope_of(participant.pk)
    release = dispensing = transplant = None
    if env is not None:
        release = ProductRelease.objects.filter(envelope=env, superseded=False).order_by("-id").first()
        dispensing = getattr(env, "dispensing", None) if hasattr(env, "dispensing") else None
        transplant = transplant_of(participant.pk)
    unblindings = list(emergency_unblindings_of(participant.pk))
    out = {
        "randomised": env is not None,
        "random_number": env.random_number if env else None,
        "drug_code": env.drug_code if env else None,
        "randomised_at": env.opened_at if env else None,
        "released": bool(release and release.passed),
        "dispensed_at": dispensing.dispensed_at if dispensing else None,
        "given": env is not None and product_given(participant.pk),
        "treatment_record": transplant,
        "emergency_unblindings": unblindings,
    }
    if env is not None and can_see_labels(user):
        out["group_label"] = env.group_label
    if env is not None and can_see_arms(user):
        out["arm"] = env.allocation_list.level2_key[env.group_label]
    return out


def pharmacy_rows(user) -> list[dict]:
    """Opened envelopes with their recipe, for the level-2 key holder, in random-number order."""
    _level2_holder(user, "allocation.recipe")
    protocol = active_protocol()
    rows = []
    qs = scoped(user, Envelope.objects.select_related("allocation_list", "dispensing").filter(participant__isnull=False))
    releases = {r.envelope_id: r for r in ProductRelease.objects.filter(superseded=False)}
    transplanted = set(Transplant.objects.values_list("envelope_id", flat=True))
    for e in qs.order_by("random_number"):
        arm = protocol.arm(e.allocation_list.level2_key[e.group_label])
        rows.append({"envelope": e, "arm": arm, "recipe": arm.recipe, "release": releases.get(e.pk),
                     "dispensing": getattr(e, "dispensing", None) if hasattr(e, "dispensing") else None,
                     "transplanted": e.pk in transplanted})
    return rows


def envelope_for_pharmacy(user, envelope_id: int) -> dict | None:
    """One opened envelope with its recipe. Callers check the capability first, so a blinded
    user gets the same refusal whether or not the id exists."""
    _level2_holder(user, "allocation.recipe")
    e = scoped(user, Envelope.objects.select_related("allocation_list", "participant")).filter(
        pk=envelope_id, participant__isnull=False).first()
    if e is None:
        return None
    arm = active_protocol().arm(e.allocation_list.level2_key[e.group_label])
    releases = list(ProductRelease.objects.filter(envelope=e).select_related("checked_by", "qa_signed_by").order_by("-id"))
    return {"envelope": e, "arm": arm, "recipe": arm.recipe, "releases": releases,
            "release": next((r for r in releases if not r.superseded), None),
            "dispensing": getattr(e, "dispensing", None) if hasattr(e, "dispensing") else None}


# ---- kits of a kit product --------------------------------------------------------------------

def kits_allocated_for_system(participant_id: int, visit_key: str) -> set[str]:
    """The kit numbers the system allocated to the participant for the visit (the kit source of
    ``visits.procedures``): at the treatment's visit the envelope's drug code, at another
    dispensing visit the kit ``services.assign_kit`` gave. Numbers only, never what they hold."""
    from .services import is_kit_product, treatment_visit_id

    protocol = active_protocol()
    if not is_kit_product(protocol):
        return set()
    out = set(Kit.objects.filter(participant_id=participant_id, visit_key=visit_key)
              .values_list("kit_number", flat=True))
    if visit_key == treatment_visit_id(protocol):
        code = Envelope.objects.filter(participant_id=participant_id).values_list("drug_code", flat=True).first()
        if code:
            out.add(code)
    return out


def may_allocate_kit(user, visit_id: str) -> bool:
    """Whether ``user`` is one of the roles that record a dispensing procedure at the visit
    (the procedure's ``recorded_by``) in a kit trial: they ask for, and see, the kit to dispense."""
    from .services import is_kit_product

    protocol = active_protocol()
    role = role_of(user)
    if role is None or not is_kit_product(protocol):
        return False
    visit = next((v for v in protocol.schedule.visits if v.id == visit_id), None)
    if visit is None:
        return False
    for form_id in visit.forms:
        proc = protocol.form_procedure(form_id)
        if proc is not None and "dispensing" in proc.checks and role in proc.recorded_by:
            return True
    return False


def kit_for_visit(user, participant, visit_id: str) -> dict | None:
    """The kit to dispense to the participant at a dispensing visit, for a role that records it:
    ``{"kit_number", "first": bool (the drug code of randomisation), "allocated_at"}``, the
    kit number None until one is allocated; None when it is not such a visit or not such a role.
    The same keys for every arm, and never a label or an arm."""
    from .services import dispensing_visit_ids, treatment_visit_id

    if not may_allocate_kit(user, visit_id):
        return None
    protocol = active_protocol()
    if visit_id not in dispensing_visit_ids(protocol):
        return None
    if visit_id == treatment_visit_id(protocol):
        env = envelope_of(participant.pk)
        return {"kit_number": env.drug_code if env else None, "first": True,
                "allocated_at": env.opened_at if env else None, "randomised": env is not None}
    kit = Kit.objects.filter(participant_id=participant.pk, visit_key=visit_id).first()
    return {"kit_number": kit.kit_number if kit else None, "first": False,
            "allocated_at": kit.assigned_at if kit else None,
            "randomised": Envelope.objects.filter(participant_id=participant.pk).exists()}


def kit_list(user) -> dict | None:
    """The kit list for labelling, for the level-2 key holder only (a blinded role gets
    ``NotPermitted`` whatever it asks): each kit's serial, number, group label, the arm and what
    its kit holds in both languages, and whether it has been allocated; kits per arm. None before
    a list is generated."""
    from .services import is_kit_product

    protocol = active_protocol()
    if not (holds_key(user, 2) and is_kit_product(protocol)):
        raise NotPermitted("allocation.kit_list")
    lst = current_list()
    if lst is None or not lst.kits_sha256:
        return None
    arms = {a.id: a for a in protocol.arms}
    rows, per_arm = [], {}
    for k in Kit.objects.filter(allocation_list=lst).order_by("serial"):
        arm_id = lst.level2_key[k.group_label]
        arm = arms.get(arm_id)
        rows.append({"serial": k.serial, "kit_number": k.kit_number, "group_label": k.group_label, "arm": arm_id,
                     "arm_name": arm.name if arm else None, "contents": getattr(arm, "kit", None) if arm else None,
                     "allocated": k.participant_id is not None})
        count = per_arm.setdefault(arm_id, {"arm": arm_id, "arm_name": arm.name if arm else None, "kits": 0,
                                            "allocated": 0})
        count["kits"] += 1
        count["allocated"] += k.participant_id is not None
    return {"list": lst, "rows": rows, "per_arm": [per_arm[a] for a in arms if a in per_arm],
            "sha256": lst.kits_sha256}


def emergency_list(user) -> list[EmergencyUnblinding]:
    """Number, reason, scope and time of every emergency unblinding (never the treatment)."""
    if not has(user, "unblinding.emergency_list"):
        raise NotPermitted("unblinding.emergency_list")
    return list(scoped(user, EmergencyUnblinding.objects).select_related("participant", "requested_by", "cosigned_by")
                .order_by("number"))


def unblinding_steps() -> dict[str, UnblindingStep]:
    return {s.kind: s for s in UnblindingStep.objects.select_related("user")}


# ---- the pre-lock checklist ------------------------------------------------------------------

def lock_checklist(user=None) -> dict:
    """The open work every app lists before the database lock (draft forms, SAE reports not
    sent, participants without an end-of-study status, ...), each item with its waiver if the
    principal investigator waived it. ``blocking`` lists the items neither closed nor waived: the
    lock is refused while it is not empty. With ``user`` limited to sites, the lines of other
    sites' participants are left out (the lock itself always checks the whole list)."""
    from annulus.participants.selectors import user_sites
    from annulus.trial.extensions import lock_checklist_groups

    from .models import LockWaiver

    groups = lock_checklist_groups()
    if user is not None and user_sites(user) is not None:
        from annulus.participants.selectors import may_see

        from .services import waived_participant

        for g in groups:
            g["items"] = [i for i in g["items"]
                          if (pid := waived_participant(i)) is None or may_see(user, pid)]
    waivers = {w.item: w for w in LockWaiver.objects.select_related("waived_by")}
    blocking = []
    for g in groups:
        for item in g["items"]:
            item["waiver"] = waivers.get(item["key"])
            if item["waiver"] is None:
                blocking.append(item)
        g["open"] = sum(1 for item in g["items"] if item["waiver"] is None)
    return {"groups": groups, "blocking": blocking, "items": {i["key"]: i for g in groups for i in g["items"]}}


# ---- the data against the audit trail (``annulus audit verify --data``) -------------------------

def audit_mismatches(participant_ids) -> list[str]:
    """Each randomisation and transplantation record of ``participant_ids`` that differs from what
    the audit trail records for it, one line each (``annulus audit verify --data``): the envelope
    opened for each participant (its random number and drug code: an envelope moved to another
    participant, or swapped), and the transplantation's fields. Not compared, because the trail
    does not record them: the transplantation's free-text notes, and an envelope's group label
    (kept out of the trail by the blind; ``annulus randomisation verify`` checks the list). The
    product's release checks, dispensing and emergency unblindings are compared by
    ``pharmacy_mismatches`` and ``emergency_unblinding_mismatches``."""
    from annulus.audit.selectors import differences, new_value, screening_numbers, trail

    ids = list(participant_ids)
    numbers = screening_numbers(ids)
    opened: dict[int, dict] = {}
    done: dict[str, dict] = {}
    procedure = treatment_record_procedure()
    fields = treatment_trail_fields()
    types = ["randomisation"] + ([procedure.id] if procedure is not None else [])
    for otype, object_id, pid, changes, _reason in trail(types, ids):
        mine = {name: new_value(change) for name, change in changes.items()}
        if otype == "randomisation":
            opened[pid] = {**opened.get(pid, {}), **mine, "envelope": object_id}
        else:
            done.setdefault(object_id, {}).update(mine)
    out = []
    held = Envelope.objects.filter(participant_id__in=ids).order_by("pk").values_list(
        "pk", "participant_id", "random_number", "drug_code")
    for pk, pid, random_number, drug_code in held:
        where = f"participant {numbers.get(pid, pid)}, randomisation"
        audited = opened.pop(pid, None)
        if audited is None:
            out.append(f"{where}: envelope {random_number} is theirs in the database but never opened for them "
                       "in the audit trail")
            continue
        out += differences(where, [("envelope", str(pk), audited["envelope"]),
                                   ("random_number", random_number, audited.get("random_number")),
                                   ("drug_code", drug_code, audited.get("drug_code"))])
    for pid, audited in opened.items():
        out.append(f"participant {numbers.get(pid, pid)}, randomisation: envelope {audited.get('random_number')} "
                   "opened for them in the audit trail but not theirs in the database")
    rows = Transplant.objects.filter(participant_id__in=ids).order_by("pk").values(
        "pk", "participant_id", *fields.values())
    for row in rows:
        pid = row["participant_id"]
        where = f"participant {numbers.get(pid, pid)}, transplantation"
        audited = done.pop(str(row["pk"]), None)
        if audited is None:
            out.append(f"{where}: in the database but never in the audit trail")
            continue
        out += differences(where, [(name, row[column], audited.get(name))
                                   for name, column in fields.items()])
    out += [f"transplantation {pk}: in the audit trail but no longer in the database" for pk in done]
    return out + pharmacy_mismatches(ids) + emergency_unblinding_mismatches(ids)


def _release_reason(event_reason: str, signer) -> str | None:
    """A release record's own reason as its event's reason holds it, or None where the event does
    not carry it (a first release: "release checks recorded")."""
    if signer:
        prefix = f"quarantined lot re-tested, signed by {signer} (QA): "
        return event_reason[len(prefix):] if event_reason.startswith(prefix) else event_reason
    if event_reason.startswith("release re-tested"):
        return event_reason[len("release re-tested"):].removeprefix(": ")
    return None


def pharmacy_mismatches(participant_ids) -> list[str]:
    """The product's release checks and dispensing of ``participant_ids`` against the trail. A
    release record is compared with the values its own event sets (drug code of its envelope, lot,
    passed, failing criteria, QA signer, who checked it, the reason of a re-test) and is superseded
    unless it is the participant's last; a dispensing with its drug code, the lot of its release and
    who dispensed it. Not recorded by the trail: the test date, each criterion's result and the
    times of checking and dispensing."""
    from annulus.audit.selectors import against_trail, differences, new_value, recorded, screening_numbers

    ids = list(participant_ids)
    numbers = screening_numbers(ids)
    releases: dict[str, dict] = {}
    last: dict[int, str] = {}
    dispensed: dict[str, dict] = {}
    for e in recorded(["product_release", "dispensing"], ids):
        mine = {name: new_value(change) for name, change in e.changes.items()}
        mine.update(participant=e.participant_id, actor=e.actor, reason=e.reason)
        if e.object_type == "product_release":
            releases[e.object_id] = mine
            last[e.participant_id] = e.object_id
        else:
            dispensed[e.object_id] = mine
    out = []
    rows = ProductRelease.objects.filter(envelope__participant_id__in=ids).order_by("pk").values_list(
        "pk", "envelope__participant_id", "envelope__drug_code", "lot_number", "passed", "failing",
        "qa_signed_by__username", "checked_by__username", "superseded", "reason")
    for pk, pid, drug_code, lot, passed, failing, signer, checker, superseded, reason in rows:
        where = f"participant {numbers.get(pid, pid)}, product release {pk}"
        audited = releases.pop(str(pk), None)
        if audited is None or audited["participant"] != pid:
            out.append(f"{where}: in the database but never in the audit trail")
            continue
        pairs = [("drug_code", drug_code, audited.get("drug_code")), ("lot_number", lot, audited.get("lot_number")),
                 ("passed", passed, audited.get("passed")), ("failing", failing, audited.get("failing")),
                 ("qa_signed_by", signer, audited.get("qa_signed_by")), ("checked_by", checker, audited["actor"]),
                 ("superseded", superseded, last.get(pid) != str(pk))]
        told = _release_reason(audited["reason"], audited.get("qa_signed_by"))
        if told is not None:
            pairs.append(("reason", reason, told))
        out += differences(where, pairs)
    out += [f"product release {pk}: in the audit trail but no longer in the database" for pk in releases]
    rows = Dispensing.objects.filter(envelope__participant_id__in=ids).order_by("pk").values_list(
        "pk", "envelope__participant_id", "envelope__drug_code", "release__lot_number", "dispensed_by__username")
    out += against_trail(rows, dispensed, what="dispensing", participant=lambda r: r[1],
                         where=lambda r: f"participant {numbers.get(r[1], r[1])}, dispensing",
                         pairs=lambda r, a: [("drug_code", r[2], a.get("drug_code")),
                                             ("lot_number", r[3], a.get("lot_number")),
                                             ("dispensed_by", r[4], a["actor"])])
    return out


def emergency_unblinding_mismatches(participant_ids) -> list[str]:
    """The emergency unblinding record forms of ``participant_ids`` against the trail: number,
    scope, reason, who unblinded and who co-signed. The form holds no treatment, and neither does
    its event (the arm is shown once and kept nowhere); its time is not compared (the event's own
    is a moment later)."""
    from annulus.audit.selectors import against_trail, screening_numbers, values_by_object

    ids = list(participant_ids)
    numbers = screening_numbers(ids)
    rows = EmergencyUnblinding.objects.filter(participant_id__in=ids).order_by("pk").values_list(
        "pk", "participant_id", "number", "scope", "reason", "requested_by__username", "cosigned_by__username")
    return against_trail(
        rows, values_by_object(["emergency_unblinding"], ids), what="emergency unblinding",
        participant=lambda r: r[1], where=lambda r: f"participant {numbers.get(r[1], r[1])}, emergency unblinding {r[0]}",
        pairs=lambda r, a: [("number", f"EU-{r[2]:03d}", a.get("number")), ("scope", r[3], a.get("scope")),
                            ("reason", r[4], a["reason"]), ("requested_by", r[5], a["actor"]),
                            ("cosigned_by", r[6], a.get("cosigned_by"))])


def trial_audit_mismatches() -> list[str]:
    """The allocation app's records of the trial as a whole against the trail (once, not per
    participant): the pre-lock waivers (item, its label when waived, reason, who waived it) and
    the signed unblinding steps (kind, statement, who signed). Not recorded by the trail: a
    waiver's checklist group, and the times (the events' own)."""
    from annulus.audit.selectors import differences, new_value, recorded

    from .models import LockWaiver

    trail: dict[tuple[str, str], dict] = {}
    for e in recorded(["lock_waiver", "unblinding_step"]):
        mine = trail.setdefault((e.object_type, e.object_id), {})
        mine.update({name: new_value(change) for name, change in e.changes.items()})
        mine.update(actor=e.actor, reason=e.reason)
    out = []
    for pk, item, label, reason, by in LockWaiver.objects.order_by("pk").values_list(
            "pk", "item", "label", "reason", "waived_by__username"):
        where = f"lock waiver {pk} ({item})"
        audited = trail.pop(("lock_waiver", str(pk)), None)
        if audited is None:
            out.append(f"{where}: in the database but never in the audit trail")
            continue
        out += differences(where, [("item", item, audited.get("item")), ("label", label, audited.get("label")),
                                   ("reason", reason, audited["reason"]), ("waived_by", by, audited["actor"])])
    for pk, kind, statement, by in UnblindingStep.objects.order_by("pk").values_list(
            "pk", "kind", "statement", "user__username"):
        where = f"unblinding step {pk} ({kind})"
        audited = trail.pop(("unblinding_step", str(pk)), None)
        if audited is None:
            out.append(f"{where}: in the database but never in the audit trail")
            continue
        out += differences(where, [("kind", kind, audited.get("kind")),
                                   ("statement", statement, audited.get("statement")),
                                   ("user", by, audited["actor"])])
    names = {"lock_waiver": "lock waiver", "unblinding_step": "unblinding step"}
    out += [f"{names[otype]} {pk}: in the audit trail but no longer in the database" for otype, pk in trail]
    return out
