"""Every write of allocation, pharmacy, transplantation and unblinding. Each function checks the
rules, writes its records and their audit events in one transaction, or raises
``RuleViolation`` having written nothing.

Audit events never carry a group label, an arm, a recipe, the seed or a checksum of the list:
the audit trail is read by blinded roles, and a checksum or drug code derived from a guessable
seed would let anyone search for the seed.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import get_language, gettext

from annulus.accounts.permissions import role_of
from annulus.accounts.services import sign
from annulus.audit import services as audit
from annulus.checks import clean_moment
from annulus.checks import clean_text as _text
from annulus.errors import NotPermitted, Problems, RuleViolation
from annulus.participants import services as ps
from annulus.participants import states
from annulus.participants.locks import assert_record_writable
from annulus.participants.models import Participant
from annulus.randomisation import RandomisationError, generate_sequence, generate_stratified, stratum_key
from annulus.randomisation.documents import allocation_table_bytes, level1_key_bytes, level2_key_bytes, sha256_hex
from annulus.randomisation.kits import KIT_SPARE_FRACTION, generate_kits, kit_counts, kit_table_bytes
from annulus.randomisation.minimisation import MinimisationPlan, plan_minimisation
from annulus.randomisation.sequence import Sequence
from annulus.randomisation.stratified import StratifiedSequence
from annulus.trial.lock import OPEN_STATES, assert_writable
from annulus.trial.models import TrialState
from annulus.trial.selectors import active_protocol, active_version

from . import selectors
from .models import (
    AllocationList,
    Dispensing,
    EmergencyUnblinding,
    Envelope,
    Kit,
    LockWaiver,
    ProductRelease,
    Transplant,
    UnblindingStep,
)

MAX_SEED = 2**63 - 1
# A seed of fewer digits could be found by trying every value against a visible drug code.
MIN_SEED_DIGITS = 12


# ---- small checks ------------------------------------------------------------------------

def _when(field: str, value: datetime | None) -> datetime:
    """A clinical time: defaults to now; a past time entered afterwards is accepted, a future one is not."""
    return timezone.now() if value is None else clean_moment(field, value)


def _reauthenticate(user, password, meaning: str) -> None:
    """The signature of a blind-breaking step: the user types their password again (a wrong one
    counts towards the lockout, as at every signature)."""
    sign(user=user, password=password, meaning=meaning)


def current_list() -> AllocationList | None:
    """The list in use: the latest generated (none can be generated once randomisation starts)."""
    return AllocationList.objects.order_by("-id").first()


def drug_code_normalised(code) -> str:
    return re.sub(r"\s+", "", str(code or "")).upper()


# ---- the list ----------------------------------------------------------------------------

def _sequence_from_rows(lst: AllocationList):
    """The list as the pure core's object, rebuilt from the stored rows: a ``Sequence``, a
    ``StratifiedSequence`` or, for minimisation, the ``MinimisationPlan`` (seed, settings, label
    permutation and drug-code pool)."""
    if lst.method == "minimisation":
        return minimisation_plan(lst)
    rows = Envelope.objects.filter(allocation_list=lst)
    if lst.method == "stratified_blocks":
        s = lst.method_settings
        entries = sorted(({"stratum": int(e.stratum), "serial": e.serial, "random_number": e.random_number,
                           "group_label": e.group_label, "drug_code": e.drug_code} for e in rows),
                         key=lambda e: (e["stratum"], e["serial"]))
        return StratifiedSequence(entries=entries, strata=[dict(st) for st in s["strata"]],
                                  label_to_arm=dict(lst.level2_key), seed=lst.seed, arms=[tuple(a) for a in lst.arms],
                                  factors=[(f["id"], tuple(f["levels"])) for f in s["factors"]],
                                  per_stratum=int(s["per_stratum"]), block_multipliers=tuple(lst.block_multipliers),
                                  algorithm=lst.algorithm, generator=lst.generator)
    entries = [{"serial": e.serial, "random_number": e.random_number, "group_label": e.group_label,
                "drug_code": e.drug_code}
               for e in rows.order_by("serial")]
    return Sequence(entries=entries, label_to_arm=dict(lst.level2_key), seed=lst.seed,
                    arms=[tuple(a) for a in lst.arms], n=lst.n, block_multipliers=tuple(lst.block_multipliers),
                    block_sizes=list(lst.block_sizes))


def minimisation_plan(lst: AllocationList) -> MinimisationPlan:
    """The sealed minimisation of a list: seed, settings, label permutation and drug-code pool."""
    s = lst.method_settings
    return MinimisationPlan(seed=lst.seed, arms=[tuple(a) for a in lst.arms],
                            factors=[(f["id"], tuple(f["levels"])) for f in s["factors"]],
                            weights=[float(f["weight"]) for f in s["factors"]], p=float(s["p"]), measure=s["measure"],
                            pool=[dict(e) for e in lst.pool], label_to_arm=dict(lst.level2_key),
                            generator=lst.generator)


def document_bytes(lst: AllocationList) -> dict[str, bytes]:
    """The holder documents rebuilt from the stored rows (so a changed row fails the seal)."""
    seq = _sequence_from_rows(lst)
    return {"table": allocation_table_bytes(seq), "level1": level1_key_bytes(seq), "level2": level2_key_bytes(seq)}


def seal_problems(lst: AllocationList) -> list[str]:
    """What no longer matches the list as sealed at generation. For stratified blocks also an
    opened envelope whose recorded levels are not its stratum's; for minimisation also every
    allocation that the replay from the seed and the recorded levels does not give. The lines
    name random numbers and positions only, never a group label or an arm."""
    docs = document_bytes(lst)
    problems = []
    for part, sealed in (("table", lst.table_sha256), ("level1", lst.level1_sha256), ("level2", lst.level2_sha256)):
        if sha256_hex(docs[part]) != sealed:
            problems.append(f"{part}: stored rows no longer match the checksum sealed at generation")
    if lst.method == "stratified_blocks":
        problems += _stratum_problems(lst)
    if lst.method == "minimisation":
        problems += replay_problems(lst)
    problems += kit_seal_problems(lst)
    return problems


def kit_rows(lst: AllocationList) -> list[dict]:
    return [{"serial": k.serial, "kit_number": k.kit_number, "group_label": k.group_label}
            for k in Kit.objects.filter(allocation_list=lst).order_by("serial")]


def kit_seal_problems(lst: AllocationList) -> list[str]:
    """The kit list of a kit product against its seal: the stored rows (serial, kit number, group
    label) against the SHA-256 fixed at generation, and against the list the seed gives. The
    lines name no group label or arm."""
    if not lst.kits_sha256 and not lst.kit_settings:
        return ["kit list: a kit product's list has no sealed kit list"] if _is_kit_list(lst) else []
    rows = kit_rows(lst)
    out = []
    if sha256_hex(kit_table_bytes(rows)) != lst.kits_sha256:
        out.append("kit list: stored rows no longer match the checksum sealed at generation")
    s = lst.kit_settings
    try:
        expected = generate_kits(dict((a, int(n)) for a, n in s["counts"]), {a: lbl for lbl, a in lst.level2_key.items()}, lst.seed, s["prefix"],
                                 exclude=_list_drug_codes(lst))
    except (KeyError, TypeError, RandomisationError):
        return out + ["kit list: its settings are not those it was generated with"]
    if expected != rows:
        out.append("kit list: the stored kits are not those the seed gives")
    return out


def _is_kit_list(lst: AllocationList) -> bool:
    from annulus.trial.selectors import protocol_for

    return is_kit_product(protocol_for(lst.protocol_version))


def is_kit_product(protocol) -> bool:
    return getattr(protocol.product, "kind", "") == "kit"


def dispensing_visit_ids(protocol) -> list[str]:
    """The schedule's visits whose forms include the record form of a procedure that dispenses
    (``checks: [dispensing]``), in schedule order."""
    dispensing = {f.id for f in protocol.schedule.forms
                  if (pr := protocol.form_procedure(f.id)) is not None and "dispensing" in pr.checks}
    return [v.id for v in protocol.schedule.visits if dispensing & set(v.forms)]


def treatment_visit_id(protocol) -> str | None:
    """The visit of the treatment procedure, at which the first kit (the drug code) is dispensed."""
    treatment = protocol.treatment_procedure
    pv = protocol.procedure_visit(treatment.id) if treatment is not None else None
    return pv.id if pv is not None else None


def kit_prefix(protocol) -> str:
    """What every kit number starts with: the protocol's drug-code prefix (``drug_code_prefix``
    when the protocol names one, else the trial id up to its first hyphen in capitals)."""
    declared = getattr(protocol, "drug_code_prefix", None)
    if isinstance(declared, str) and declared:
        return declared
    return protocol.trial.id.split("-", 1)[0][:8].upper() + "-"


def _list_drug_codes(lst: AllocationList) -> set[str]:
    if lst.method == "minimisation":
        return {e["drug_code"] for e in lst.pool}
    return set(Envelope.objects.filter(allocation_list=lst).values_list("drug_code", flat=True))


def _stratum_problems(lst: AllocationList) -> list[str]:
    s = lst.method_settings
    ids = [f["id"] for f in s["factors"]]
    keys = {str(st["number"]): st["key"] for st in s["strata"]}
    out = []
    for e in Envelope.objects.filter(allocation_list=lst, participant__isnull=False).order_by("pk"):
        try:
            key = stratum_key(e.levels, ids)
        except (KeyError, TypeError):
            key = None
        if key != keys.get(e.stratum):
            out.append(f"envelope {e.random_number}: the levels recorded at randomisation are not those of "
                       f"stratum {e.stratum}")
    return out


def replay_problems(lst: AllocationList) -> list[str]:
    """Minimisation re-verified: every allocation replayed from the sealed seed and settings and
    the levels recorded with each envelope, given the allocations before it; positions must run
    1, 2, ... with the pool's random number and drug code."""
    plan = minimisation_plan(lst)
    envelopes = list(Envelope.objects.filter(allocation_list=lst).order_by("serial"))
    out = []
    history = []
    for position, e in enumerate(envelopes):
        slot = plan.pool[position] if position < len(plan.pool) else None
        if slot is None or e.serial != slot["serial"]:
            out.append(f"envelope {e.random_number}: position {e.serial} is not the next position ({position + 1})")
        elif (e.random_number, e.drug_code) != (slot["random_number"], slot["drug_code"]):
            out.append(f"envelope {e.random_number}: random number or drug code is not the sealed pool's "
                       f"at position {e.serial}")
        if e.participant_id is None:
            out.append(f"envelope {e.random_number}: made but not opened for a participant")
        history.append((e.levels, lst.level2_key.get(e.group_label)))
    try:
        expected = plan.minimiser().replay(history)
    except RandomisationError as exc:
        return out + [f"replay: {exc}"]
    out += [f"envelope {e.random_number}: position {e.serial} was not allocated as the replay from the seed and "
            "the recorded levels allocates it"
            for e, (_levels, arm), want in zip(envelopes, history, expected) if arm != want]
    return out


def new_seed() -> int:
    return secrets.randbelow(MAX_SEED - 10**MIN_SEED_DIGITS) + 10**MIN_SEED_DIGITS


def _factor_settings(factors, *, weights: bool = False) -> list[dict]:
    out = []
    for f in factors:
        row = {"id": f.id, "from": f.source, "levels": list(f.levels), "cuts": f.cuts}
        if weights:
            row["weight"] = f.weight
        out.append(row)
    return out


def _generate_for(protocol, seed: int):
    """The protocol's list for this seed (one list, one per stratum, or the minimisation plan)
    and the settings stored with it. Drug codes take the protocol's prefix
    (``Protocol.drug_code_prefix``)."""
    rand = protocol.randomisation
    prefix = protocol.drug_code_prefix
    arms = [(a.id, a.ratio) for a in protocol.arms]
    total = protocol.sample_size.total
    try:
        if rand.method == "minimisation":
            plan = plan_minimisation(arms, [(f.id, tuple(f.levels)) for f in rand.factors], total, seed,
                                     weights=[f.weight for f in rand.factors], p=rand.p, measure=rand.measure,
                                     number_width=rand.case_number_width, drug_code_prefix=prefix)
            return plan, {"factors": _factor_settings(rand.factors, weights=True), "p": rand.p,
                          "measure": rand.measure}
        unit = sum(a.ratio for a in protocol.arms)
        if any(s % unit for s in rand.block_sizes):
            raise RuleViolation("block_sizes", f"every block size must be a multiple of the ratio sum {unit}")
        multipliers = tuple(s // unit for s in rand.block_sizes)
        if rand.method == "stratified_blocks":
            per_stratum = rand.stratum_list_length or total
            seq = generate_stratified(arms, [(f.id, tuple(f.levels)) for f in rand.strata], per_stratum, seed,
                                      block_multipliers=multipliers, number_width=rand.case_number_width,
                                      drug_code_prefix=prefix)
            return seq, {"factors": _factor_settings(rand.strata), "per_stratum": per_stratum,
                         "strata": [dict(st) for st in seq.strata]}
        return generate_sequence(arms, total, seed, block_multipliers=multipliers,
                                 number_width=rand.case_number_width, drug_code_prefix=prefix), {}
    except RandomisationError as exc:
        field, _, message = str(exc).partition(": ")
        raise RuleViolation(field, message or str(exc)) from None


def _make_kit_list(protocol, lst: AllocationList, seq) -> int:
    """The kit list of a kit product, made with the allocation list from its seed: for each arm
    enough kits for its share of the sample size at every dispensing visit, and a spare fraction;
    sealed like the list (``kits_sha256``). Returns the number of kits."""
    visits = dispensing_visit_ids(protocol)
    if not visits:
        raise RuleViolation("schedule", "a kit product needs a visit with the record form of a procedure that "
                                        "dispenses (checks: [dispensing]); no kit list can be made")
    try:
        counts = kit_counts([(a.id, a.ratio) for a in protocol.arms], protocol.sample_size.per_arm, len(visits))
        prefix = kit_prefix(protocol)
        codes = {e["drug_code"] for e in (seq.pool if lst.method == "minimisation" else seq.entries)}
        rows = generate_kits(counts, {a: lbl for lbl, a in lst.level2_key.items()}, lst.seed, prefix, exclude=codes)
    except RandomisationError as exc:
        field, _, message = str(exc).partition(": ")
        raise RuleViolation(field, message or str(exc)) from None
    Kit.objects.bulk_create([Kit(allocation_list=lst, **row) for row in rows], batch_size=2000)
    lst.kits_sha256 = sha256_hex(kit_table_bytes(rows))
    # [[arm, kits], ...] in protocol order (a JSON object's keys may come back in another order)
    lst.kit_settings = {"counts": [[a, n] for a, n in counts.items()], "dispensing_visits": visits, "spare": KIT_SPARE_FRACTION,
                        "prefix": prefix}
    return len(rows)


def generate_list(*, actor, seed: int | None = None) -> AllocationList:
    """Generate and seal the allocation list for the active protocol version (P-3.1, P-3.3).

    Only the level-1 key holder may do it, only before the first randomisation and only once per
    protocol version. Without a seed, one is drawn from the operating system's random source.
    """
    protocol = active_protocol()
    if role_of(actor) != protocol.randomisation.level1_key_holder:
        raise NotPermitted("allocation.generate")
    if seed is None or seed == "":
        seed = new_seed()
    try:
        seed = int(str(seed).strip())
    except ValueError:
        raise RuleViolation("seed", "must be a whole number") from None
    if seed < 10 ** (MIN_SEED_DIGITS - 1) or seed > MAX_SEED:
        raise RuleViolation("seed", f"must have at least {MIN_SEED_DIGITS} digits and be at most {MAX_SEED} "
                                    "(a short seed could be guessed from a drug code); leave it empty to draw one")
    seq, settings = _generate_for(protocol, seed)
    pv = active_version()
    try:
        with transaction.atomic():
            assert_writable("allocation list", exclusive=True)
            if Envelope.objects.filter(participant__isnull=False).exists():
                raise RuleViolation("seed", "randomisation has started; the list can no longer be generated or replaced")
            if AllocationList.objects.filter(protocol_version=pv).exists():
                raise RuleViolation("seed", f"a list was already generated for protocol version {pv.version}; "
                                            "replacing it is refused")
            method = protocol.randomisation.method
            lst = AllocationList.objects.create(
                protocol_version=pv, seed=seed, n=seq.n, method=method, method_settings=settings,
                block_multipliers=list(getattr(seq, "block_multipliers", ())),
                block_sizes=list(seq.block_sizes) if method == "permuted_blocks" else [],
                arms=[list(a) for a in seq.arms], level2_key=seq.level2_key(),
                pool=[dict(e) for e in seq.pool] if method == "minimisation" else [],
                algorithm=seq.algorithm, generator=seq.generator, table_sha256="", level1_sha256="",
                level2_sha256="", generated_by=actor,
            )
            if method != "minimisation":  # minimisation makes each envelope when it allocates
                Envelope.objects.bulk_create([
                    Envelope(allocation_list=lst, stratum=str(e.get("stratum", "")), serial=e["serial"],
                             random_number=e["random_number"], group_label=e["group_label"], drug_code=e["drug_code"])
                    for e in seq.entries
                ], batch_size=2000)
            lst.table_sha256 = sha256_hex(allocation_table_bytes(seq))
            lst.level1_sha256 = sha256_hex(level1_key_bytes(seq))
            lst.level2_sha256 = sha256_hex(level2_key_bytes(seq))
            fields = ["table_sha256", "level1_sha256", "level2_sha256"]
            kits = _make_kit_list(protocol, lst, seq) if is_kit_product(protocol) else 0
            if kits:
                fields += ["kits_sha256", "kit_settings"]
            lst.save(update_fields=fields)
            changes = {"method": [None, method], "envelopes": [None, seq.n], "protocol_version": [None, pv.version]}
            if method == "stratified_blocks":
                changes["strata"] = [None, len(settings["strata"])]
            if kits:
                changes["kits"] = [None, kits]  # the total only: kits per arm are the kit list's
            audit.record(actor=actor, action="create", obj_type="allocation_list", obj_id=lst.pk,
                         changes=changes, reason="allocation list generated and sealed", protocol_version=pv.version)
    except IntegrityError:
        raise RuleViolation("seed", "a list was generated for this protocol version at the same moment") from None
    return lst


def record_export(*, actor, lst: AllocationList, document: str) -> None:
    with transaction.atomic():
        audit.record(actor=actor, action="export", obj_type="allocation_list", obj_id=lst.pk,
                     changes={"document": [None, document]}, reason="holder document downloaded",
                     protocol_version=lst.protocol_version.version)


# ---- randomisation -----------------------------------------------------------------------

_REFUSED = {
    states.SCREEN_FAILED: "a screen failure cannot be randomised",
    states.WITHDRAWN: "this participant has withdrawn and cannot be randomised",
    states.LOST: "this participant is lost to follow-up and cannot be randomised",
}


def participant_levels(p: Participant, factors: list[dict]) -> dict[str, str]:
    """The participant's level of each factor (stored with the list: id, from, levels, cuts): from
    the site, or from the current value of an eligibility evidence field. A missing value or one
    that is none of the levels is refused naming the factor."""
    from annulus.participants.models import Evidence
    from annulus.protocol.schema import StratumFactor

    evidence = None
    levels = {}
    for row in factors:
        factor = StratumFactor.model_validate({k: v for k, v in row.items() if k != "weight"})
        if factor.source == "site":
            value, where = p.site, "the participant's site"
        else:
            if evidence is None:
                evidence = {e.field: e.value for e in Evidence.objects.filter(participant=p, superseded=False)}
            value, where = evidence.get(factor.source), f"eligibility field {factor.source}"
            if value is None or (isinstance(value, str) and not value.strip()):
                raise RuleViolation(factor.id, f"{where} has no value for this participant, so the level of "
                                               f"factor {factor.id} cannot be chosen; enter it first")
        try:
            levels[factor.id] = factor.level_for(value)
        except (ValueError, TypeError):
            raise RuleViolation(factor.id, f"{where} is {value!r}, which is none of the levels of factor "
                                           f"{factor.id} ({', '.join(factor.levels)})") from None
    return levels


def _stratified_envelope(lst: AllocationList, p: Participant) -> tuple[Envelope, dict]:
    """The next unopened envelope, in serial order, of the participant's stratum (locked)."""
    s = lst.method_settings
    levels = participant_levels(p, s["factors"])
    key = stratum_key(levels, [f["id"] for f in s["factors"]])
    stratum = next(st for st in s["strata"] if st["key"] == key)
    env = (Envelope.objects.select_for_update()
           .filter(allocation_list=lst, stratum=str(stratum["number"]), participant__isnull=True)
           .order_by("serial").first())
    if env is None:
        raise RuleViolation("stratum", f"the list of stratum {stratum['number']} ({stratum['label']}) has no "
                                       "envelope left")
    env.levels = levels
    return env, {"stratum": [None, stratum["number"]], "levels": [None, levels]}


def _minimised_envelope(lst: AllocationList, p: Participant) -> tuple[Envelope, dict]:
    """A new envelope at the next position: the arm minimisation gives this participant's levels
    after every earlier allocation (read under the list lock), with the random element of this
    position drawn from the sealed seed, so the replay gives it again."""
    plan = minimisation_plan(lst)
    levels = participant_levels(p, lst.method_settings["factors"])
    history = [(levels_, lst.level2_key[label]) for levels_, label in
               Envelope.objects.filter(allocation_list=lst).order_by("serial").values_list("levels", "group_label")]
    position = len(history)
    if position >= len(plan.pool):
        raise RuleViolation("allocation_list", f"all {len(plan.pool)} positions of the sealed drug-code pool are "
                                               "allocated")
    try:
        arm = plan.minimiser().assign(levels, history)
    except RandomisationError as exc:
        field, _, message = str(exc).partition(": ")
        raise RuleViolation(field, message or str(exc)) from None
    label = {a: lbl for lbl, a in lst.level2_key.items()}[arm]
    slot = plan.pool[position]
    env = Envelope(allocation_list=lst, serial=slot["serial"], random_number=slot["random_number"],
                   drug_code=slot["drug_code"], group_label=label, levels=levels)
    return env, {"position": [None, slot["serial"]], "levels": [None, levels]}


def _locked_list_and_participant(participant_id: int) -> tuple[AllocationList, Participant]:
    """The current allocation list and the participant, both locked (in this order, the order
    every allocation takes), or the rule that is broken."""
    lst = AllocationList.objects.select_for_update().order_by("-id").first()
    if lst is None:
        raise RuleViolation("allocation_list", "no allocation list has been generated yet")
    p = Participant.objects.select_for_update().filter(pk=participant_id).first()
    if p is None:
        raise RuleViolation("participant", "no such participant")
    return lst, p


def randomise(*, actor, participant_id: int, when: datetime | None = None) -> Envelope:
    """Open the participant's envelope (P-3.2, X-3.9). Permuted blocks: random number = case
    number, given in enrolment order. Stratified blocks: the next envelope of the participant's
    stratum (its levels from the site or the eligibility evidence). Minimisation: a new envelope
    with the arm minimisation gives and the pool's next drug code. The list row lock serialises
    openings and the one-to-one column makes a second opening of one envelope, or a second
    envelope for one participant, impossible."""
    when = _when("randomised_at", when)
    try:
        with transaction.atomic():
            assert_writable("randomisation")
            # the envelope opened and the status "randomised" are entries of the casebook
            assert_record_writable(participant_id)
            lst, p = _locked_list_and_participant(participant_id)
            done = Envelope.objects.filter(participant=p).first()
            if done is not None:
                raise RuleViolation("participant", f"already randomised (random number {done.random_number})")
            if p.status != states.ENROLLED:
                raise RuleViolation("status", _REFUSED.get(
                    p.status, f"only an enrolled participant can be randomised; this one is {p.status_label}"))
            if p.enrolled_at and when < p.enrolled_at:
                raise RuleViolation("randomised_at", "is before enrolment")
            extra = {}
            if lst.method == "stratified_blocks":
                env, extra = _stratified_envelope(lst, p)
            elif lst.method == "minimisation":
                env, extra = _minimised_envelope(lst, p)
            else:
                env = (Envelope.objects.select_for_update()
                       .filter(allocation_list=lst, random_number=p.case_number).first())
                if env is None:
                    raise RuleViolation("random_number", f"the list has no envelope {p.case_number}")
                if env.participant_id is not None:
                    raise RuleViolation("random_number", f"envelope {env.random_number} was already opened")
            env.participant = p
            env.opened_at = when
            env.opened_by = actor
            if env.pk is None:
                env.save()
            else:
                env.save(update_fields=["participant", "opened_at", "opened_by", "levels"])
            audit.record(actor=actor, action="create", obj_type="randomisation", obj_id=env.pk, participant_id=p.pk,
                         changes={"random_number": [None, env.random_number], "drug_code": [None, env.drug_code],
                                  **extra},
                         reason="envelope opened", protocol_version=p.protocol_version.version)
            ps.advance(actor=actor, participant_id=p.pk, target=states.RANDOMISED,
                       reason=f"envelope {env.random_number} opened, drug code {env.drug_code}")
    except IntegrityError:
        raise RuleViolation("participant", "randomised by someone else at the same moment; reload the page") from None
    return env


# ---- kits of a kit product ---------------------------------------------------------------

_NO_KITS = {
    states.WITHDRAWN: "this participant has withdrawn; no kit is allocated",
    states.LOST: "this participant is lost to follow-up; no kit is allocated",
}


def assign_kit(*, actor, participant_id: int, visit_key: str, at: datetime | None = None) -> Kit:
    """Allocate the kit to dispense to a randomised participant at a dispensing visit other than
    the treatment's (whose kit is the drug code given at randomisation): the next unused kit, in
    the kit list's order, holding the participant's group label. Asked again for the same visit,
    it answers the kit already allocated and writes nothing. The list row lock serialises
    allocations, so two pharmacists at once never get the same kit; the audit event names the
    kit and the visit, never a label or an arm. ``at``: when it was allocated (entered after the
    fact; not in the future)."""
    protocol = active_protocol()
    at = _when("assigned_at", at)
    visit_key = str(visit_key or "").strip()
    if not is_kit_product(protocol):
        raise RuleViolation("visit", "the product of this trial is not supplied in numbered kits")
    if visit_key not in dispensing_visit_ids(protocol):
        raise RuleViolation("visit", f"{visit_key or '(none)'} is not a visit at which a kit is dispensed")
    if visit_key == treatment_visit_id(protocol):
        raise RuleViolation("visit", "the kit of this visit is the drug code given at randomisation; dispense that "
                                     "kit")
    try:
        with transaction.atomic():
            assert_writable("kit allocation")
            assert_record_writable(participant_id, visit_key)
            lst, p = _locked_list_and_participant(participant_id)
            done = Kit.objects.filter(participant=p, visit_key=visit_key).first()
            if done is not None:
                return done
            if not Kit.objects.filter(allocation_list=lst).exists():
                raise RuleViolation("kit_list", "the allocation list has no kit list")
            env = Envelope.objects.filter(participant=p).first()
            if env is None:
                raise RuleViolation("participant", "is not randomised; a kit is allocated after randomisation")
            if p.status in _NO_KITS:
                raise RuleViolation("status", _NO_KITS[p.status])
            kit = (Kit.objects.select_for_update()
                   .filter(allocation_list=env.allocation_list_id, group_label=env.group_label,
                           participant__isnull=True).order_by("serial").first())
            if kit is None:
                raise RuleViolation("kit_list", "no unused kit for this participant is left on the kit list; "
                                                "the supply manager must add kits before one can be allocated")
            kit.participant = p
            kit.visit_key = visit_key
            kit.assigned_at = at
            kit.assigned_by = actor
            kit.save(update_fields=["participant", "visit_key", "assigned_at", "assigned_by"])
            audit.record(actor=actor, action="create", obj_type="kit_allocation", obj_id=kit.pk, participant_id=p.pk,
                         changes={"kit_number": [None, kit.kit_number], "visit": [None, visit_key]},
                         reason=f"kit {kit.kit_number} allocated for visit {visit_key}",
                         protocol_version=p.protocol_version.version, when=at)
    except IntegrityError:
        raise RuleViolation("visit", "a kit was allocated for this visit by someone else at the same moment; "
                                     "reload the page") from None
    return kit


# ---- pharmacy ----------------------------------------------------------------------------

def _opened(envelope_id: int, *, lock: bool = False) -> Envelope:
    qs = Envelope.objects.select_related("participant", "allocation_list")
    if lock:
        qs = qs.select_for_update()
    env = qs.filter(pk=envelope_id, participant__isnull=False).first()
    if env is None:
        # unopened envelopes are not reachable at all, so their existence is not revealed either
        raise RuleViolation("envelope", "no opened envelope with this id")
    return env


def _number(field: str, raw) -> Decimal:
    try:
        value = Decimal(str(raw).strip().replace(",", "."))
    except (InvalidOperation, ValueError):
        raise RuleViolation(field, "must be a number") from None
    if not value.is_finite():
        raise RuleViolation(field, "must be a number")
    return value


def check_release(results: dict) -> tuple[dict, list[str]]:
    """Evaluate release results against the protocol's criteria (P-4.2)."""
    if not isinstance(results, dict):
        raise RuleViolation("results", "must map each criterion to its result")
    criteria = active_protocol().product.release_criteria
    known = {c.id for c in criteria}
    unknown = sorted(set(results) - known)
    if unknown:
        raise RuleViolation(f"results.{unknown[0]}", "is not a release criterion of the protocol")
    out, failing = {}, []
    for c in criteria:
        field = f"results.{c.id}"
        raw = results.get(c.id)
        if raw is None or str(raw).strip() == "":
            raise RuleViolation(field, "is required")
        if c.kind in ("negative", "normal"):
            allowed = ("negative", "positive") if c.kind == "negative" else ("normal", "abnormal")
            value = str(raw).strip().lower()
            if value not in allowed:
                raise RuleViolation(field, f"must be {allowed[0]} or {allowed[1]}")
            passed = value == allowed[0]
            stored = value
        else:
            value = _number(field, raw)
            if c.unit == "%" and not (0 <= value <= 100):
                raise RuleViolation(field, "must be a percentage between 0 and 100")
            if c.kind == "equals":
                passed = value == _number(field, c.value)
            elif c.kind == "min":
                passed = value >= Decimal(str(c.min))
            elif c.kind == "max":
                passed = value <= Decimal(str(c.max))
            else:
                passed = Decimal(str(c.min)) <= value <= Decimal(str(c.max))
            stored = str(value)
        out[c.id] = {"value": stored, "passed": passed}
        if not passed:
            failing.append(c.id)
    return out, failing


def _liposuction_day(participant_id: int) -> date | None:
    from annulus.visits import selectors as visits

    return visits.liposuction_date(participant_id)


def quarantined_lot(envelope_id: int, lot_number: str) -> ProductRelease | None:
    """The failed release of this lot for this drug code, if the lot failed: it is quarantined."""
    lot = str(lot_number or "").strip()
    if not lot:
        return None
    return (ProductRelease.objects.filter(envelope_id=envelope_id, passed=False, lot_number__iexact=lot)
            .order_by("-id").first())


def _qa_signer(actor, username: str, password: str):
    """The second person who signs a quarantined lot's new release record (QA): another active
    account of the pharmacy role (the level-2 key holder's role), with their password
    (``accounts.services.second_signer``: a wrong password counts towards that account's lockout)."""
    from annulus.accounts.services import second_signer

    if not username:
        raise RuleViolation("qa_username", "the lot failed release and is quarantined: a second pharmacist (QA) "
                                           "signs its new release record with their user name and password, "
                                           "or record a new lot")
    protocol = active_protocol()
    role = protocol.randomisation.level2_key_holder
    role_name = next((r.name.get(get_language()) for r in protocol.roles if r.id == role), role)
    return second_signer(actor, username, password,
                         candidates=get_user_model().objects.filter(membership__role=role),
                         field="qa_username",
                         refused=gettext("is not an active %(role)s account with that password") % {"role": role_name},
                         same_person=gettext("must be a second person, not the pharmacist recording the release"),
                         what="release QA signature")


def record_release(*, actor, envelope_id: int, lot_number: str, tested_on: date, results: dict,
                   checked_at: datetime | None = None, reason: str = "", qa_username: str = "",
                   qa_password: str = "") -> ProductRelease:
    """Release checks of the lot made for one drug code (P-4.2). The lot is tested after the
    liposuction it was grown from. A lot that failed is quarantined: a new record for the same lot
    needs a reason and a second pharmacist's (QA) signature; a new lot number needs neither."""
    lot_number = _text("lot_number", lot_number, max_len=40)
    if not isinstance(tested_on, date):
        raise RuleViolation("tested_on", "must be a date")
    if tested_on > timezone.localdate():
        raise RuleViolation("tested_on", "cannot be in the future")
    checked_at = _when("checked_at", checked_at)
    evaluated, failing = check_release(results)
    reason = _text("reason", reason, required=False)
    signer = None
    failed = quarantined_lot(envelope_id, lot_number)
    if failed is not None:
        problems = Problems()  # both missing pieces at once
        if len(reason) < 10:
            problems.add("reason", f"lot {failed.lot_number} failed release ({', '.join(failed.failing)}) and is "
                                   "quarantined: say why it may be tested again (at least 10 characters), "
                                   "or record a new lot")
        with problems.check():
            signer = _qa_signer(actor, str(qa_username or "").strip(), qa_password)
        problems.raise_any()
    with transaction.atomic():
        assert_writable("product release")
        env = _opened(envelope_id, lock=True)
        if Dispensing.objects.filter(envelope=env).exists():
            raise RuleViolation("envelope", f"drug code {env.drug_code} was already dispensed; release cannot change")
        lipo = _liposuction_day(env.participant_id)
        if lipo is None:
            raise RuleViolation("tested_on", "no liposuction is recorded for this participant; the lot is grown "
                                             "from the harvested fat and tested after it")
        if tested_on <= lipo:
            raise RuleViolation("tested_on", f"must be after the liposuction on {lipo.isoformat()} (day 0); the lot "
                                             "is grown from the harvested fat")
        if signer is None and quarantined_lot(env.pk, lot_number) is not None:
            raise RuleViolation("qa_username", "the lot failed release meanwhile and is quarantined; a second "
                                               "pharmacist (QA) signs its new release record")
        previous = list(ProductRelease.objects.filter(envelope=env, superseded=False))
        ProductRelease.objects.filter(pk__in=[r.pk for r in previous]).update(superseded=True)
        rel = ProductRelease.objects.create(envelope=env, lot_number=lot_number, tested_on=tested_on,
                                            results=evaluated, failing=failing, passed=not failing,
                                            checked_by=actor, checked_at=checked_at, reason=reason,
                                            qa_signed_by=signer)
        changes = {"drug_code": [None, env.drug_code], "lot_number": [None, lot_number],
                   "passed": [previous[-1].passed if previous else None, rel.passed], "failing": [None, failing]}
        if signer is not None:
            changes["qa_signed_by"] = [None, signer.username]
        why = "release checks recorded"
        if signer is not None:
            why = f"quarantined lot re-tested, signed by {signer.username} (QA): {reason}"
        elif previous:
            why = f"release re-tested{': ' + reason if reason else ''}"
        audit.record(actor=actor, action="change" if previous else "create", obj_type="product_release",
                     obj_id=rel.pk, participant_id=env.participant_id, changes=changes, reason=why)
    return rel


def _envelope_owner(envelope_id) -> int | None:
    try:
        return Envelope.objects.filter(pk=int(envelope_id)).values_list("participant_id", flat=True).first()
    except (TypeError, ValueError, OverflowError):
        return None


def dispense(*, actor, envelope_id: int, dispensed_at: datetime | None = None) -> Dispensing:
    dispensed_at = _when("dispensed_at", dispensed_at)
    with transaction.atomic():
        assert_writable("dispensing")
        # a kit dispensed must be followed by the transplantation record, which a locked casebook
        # refuses; the dispensing date is shown on the participant's record
        assert_record_writable(_envelope_owner(envelope_id))
        env = _opened(envelope_id, lock=True)
        if Dispensing.objects.filter(envelope=env).exists():
            raise RuleViolation("envelope", f"drug code {env.drug_code} was already dispensed")
        if env.participant.status in (states.WITHDRAWN, states.LOST):
            raise RuleViolation("participant", f"is {env.participant.status_label}; nothing is dispensed")
        rel = ProductRelease.objects.filter(envelope=env, superseded=False).order_by("-id").first()
        if rel is None:
            raise RuleViolation("release", "no release checks are recorded; an unreleased product cannot be dispensed")
        if not rel.passed:
            raise RuleViolation("release", f"the product failed release ({', '.join(rel.failing)}); "
                                           "a failed product cannot be dispensed")
        if dispensed_at < rel.checked_at:
            raise RuleViolation("dispensed_at", "is before the release checks")
        lipo = _liposuction_day(env.participant_id)
        if lipo is None:
            raise RuleViolation("dispensed_at", "no liposuction is recorded; the product is dispensed in the "
                                                "transplantation window after it")
        first, last = transplant_window(lipo)
        day = timezone.localtime(dispensed_at).date()
        if not first <= day <= last:
            raise RuleViolation("dispensed_at", f"{day.isoformat()} is day {(day - lipo).days} after the liposuction on "
                                                f"{lipo.isoformat()}; the product is dispensed in the transplantation "
                                                f"window, {first.isoformat()} to {last.isoformat()} (days "
                                                f"{(first - lipo).days}–{(last - lipo).days})")
        if day < rel.tested_on:
            raise RuleViolation("dispensed_at", f"is before the lot was tested on {rel.tested_on.isoformat()}")
        d = Dispensing.objects.create(envelope=env, release=rel, dispensed_at=dispensed_at, dispensed_by=actor)
        audit.record(actor=actor, action="create", obj_type="dispensing", obj_id=d.pk, participant_id=env.participant_id,
                     changes={"drug_code": [None, env.drug_code], "lot_number": [None, rel.lot_number]},
                     reason="sachet dispensed")
    return d


# ---- transplantation ---------------------------------------------------------------------

def transplant_window(lipo: date) -> tuple[date, date]:
    protocol = active_protocol()
    visit = protocol.procedure_visit(selectors.treatment_record_procedure().id)
    target = lipo + timedelta(days=visit.offset_days)
    return target - timedelta(days=visit.window.before_days), target + timedelta(days=visit.window.after_days)


def record_transplant(*, actor, participant_id: int, transplanted_at: datetime, drug_code: str,
                      disc_level: str | None = None, needle_gauge: int | None = None, approach: str | None = None,
                      imaging: str | None = None, volume_ml=None, activity_restriction_explained: bool = False,
                      notes: str = "") -> Transplant:
    """The transplantation record (P-4.3). The code scanned or typed from the sachet must be the
    participant's own; a wrong kit is refused without saying whose kit it is."""
    from annulus.visits.selectors import liposuction_date

    product = active_protocol().product
    if product.kind != "cell_suspension":
        raise RuleViolation("product", "the protocol's product is not transplanted: its treatment is recorded "
                                       "on the visit's form")
    transplanted_at = _when("transplanted_at", transplanted_at)
    disc_level = _text("disc_level", disc_level or product.target_level, max_len=10)
    if disc_level.upper().replace(" ", "") != product.target_level.upper():
        raise RuleViolation("disc_level", f"the protocol treats {product.target_level} only")
    gauge = needle_gauge if needle_gauge not in (None, "") else product.needle_gauge
    try:
        gauge = int(gauge)
    except (TypeError, ValueError):
        raise RuleViolation("needle_gauge", "must be a whole number") from None
    if gauge != product.needle_gauge:
        raise RuleViolation("needle_gauge", f"the protocol requires a {product.needle_gauge} G spinal needle")
    approach = _text("approach", approach or product.approach, max_len=40)
    if approach.lower() != product.approach.lower():
        raise RuleViolation("approach", f"the protocol requires the {product.approach} approach")
    imaging = _text("imaging", imaging or product.imaging_guidance, max_len=40)
    if imaging.lower() != product.imaging_guidance.lower():
        raise RuleViolation("imaging", f"the protocol requires {product.imaging_guidance} guidance")
    volume = _number("volume_ml", volume_ml if volume_ml not in (None, "") else product.injection_volume_ml)
    if volume != Decimal(str(product.injection_volume_ml)):
        raise RuleViolation("volume_ml", f"every injection is {product.injection_volume_ml:g} mL")
    if activity_restriction_explained is not True:
        raise RuleViolation("activity_restriction_explained",
                            f"confirm that activity is restricted for {product.activity_restriction_days // 7} weeks")
    notes = _text("notes", notes, required=False)
    code = drug_code_normalised(drug_code)
    if not code:
        raise RuleViolation("drug_code", "is required: scan or type the code on the sachet")
    with transaction.atomic():
        assert_writable("transplantation")
        procedure = selectors.treatment_record_procedure()
        assert_record_writable(participant_id, active_protocol().procedure_visit(procedure.id).id,
                               active_protocol().procedure_form(procedure.id).id)
        p = Participant.objects.select_for_update().filter(pk=participant_id).first()
        if p is None:
            raise RuleViolation("participant", "no such participant")
        if Transplant.objects.filter(participant=p).exists():
            raise RuleViolation("participant", "the transplantation is already recorded")
        env = Envelope.objects.select_for_update().filter(participant=p).first()
        if env is None or p.status != states.RANDOMISED:
            raise RuleViolation("status", "only a randomised participant can be transplanted; this one is "
                                          f"{p.status_label}")
        if code != env.drug_code:
            raise RuleViolation("drug_code", "does not match this participant's allocation; do not use this kit")
        if not Dispensing.objects.filter(envelope=env).exists():
            raise RuleViolation("drug_code", "this kit has not been dispensed by the pharmacy")
        lipo = liposuction_date(p.pk)
        if lipo is None:
            raise RuleViolation("transplanted_at", "no liposuction recorded")
        first, last = transplant_window(lipo)
        day = timezone.localtime(transplanted_at).date()
        if not (first <= day <= last):
            raise RuleViolation("transplanted_at", f"must be between {first.isoformat()} and {last.isoformat()} "
                                                   f"(liposuction on {lipo.isoformat()})")
        if transplanted_at < env.dispensing.dispensed_at:
            raise RuleViolation("transplanted_at", "is before the sachet was dispensed")
        t = Transplant.objects.create(
            participant=p, envelope=env, transplanted_at=transplanted_at, disc_level=product.target_level,
            needle_gauge=gauge, approach=product.approach, imaging=product.imaging_guidance, volume_ml=volume,
            drug_code_entered=code, notes=notes, recorded_by=actor,
            activity_restriction_until=day + timedelta(days=product.activity_restriction_days),
        )
        recorded = {**{name: getattr(t, column) for name, column in selectors.treatment_trail_fields().items()},
                    "volume_ml": str(volume), "drug_code": code}
        audit.record(actor=actor, action="create", obj_type=procedure.id, obj_id=t.pk, participant_id=p.pk,
                     changes={name: [None, value] for name, value in recorded.items()},
                     protocol_version=p.protocol_version.version)
        ps.advance(actor=actor, participant_id=p.pk, target=states.TREATED,
                   reason=f"transplanted at {t.disc_level}, drug code {code}")
    return t


# ---- emergency unblinding ----------------------------------------------------------------

def principal_investigators():
    return get_user_model().objects.filter(membership__is_principal_investigator=True, is_active=True).order_by("id")


def _emergency_password(user, password) -> None:
    """The investigator's password, re-entered to unblind (``accounts.services.sign``: a wrong one
    counts towards the lockout and is audited; a locked account cannot unblind). Called outside any
    transaction so that the failed attempt is kept."""
    sign(user=user, password=password, meaning="emergency unblinding", what="emergency unblinding")


def _unblindable(participant_id: int, *, lock: bool = False) -> tuple[Participant, Envelope]:
    """The participant and their envelope, if there is a treatment to reveal: before the
    product was dispensed nothing was given, so there is nothing to unblind."""
    qs = Participant.objects.select_for_update() if lock else Participant.objects
    p = qs.filter(pk=participant_id).first()
    if p is None:
        raise RuleViolation("participant", "no such participant")
    env = Envelope.objects.select_related("allocation_list").filter(participant=p).first()
    if env is None:
        raise RuleViolation("participant", "is not randomised; there is no treatment to reveal")
    from .selectors import product_given

    if not product_given(p.pk):
        how = "dispensed" if "treatment" in active_protocol().page_procedures.values() else "given"
        raise RuleViolation("participant", f"the product of case {p.case_number} has not been {how} yet; "
                                           "nothing has been given, so there is nothing to unblind")
    return p, env


def emergency_unblind(*, actor, participant_id: int, password: str, reason: str, cosigner_username: str = "",
                      cosigner_password: str = "") -> tuple[EmergencyUnblinding, str]:
    """Unblind one participant in an emergency (P-3.5, P-3.7). Returns the record form and the arm
    id, which the caller shows once to this investigator and nowhere else.

    Only after the product was dispensed; a second unblinding by the same person within
    ``EMERGENCY_COSIGN_HOURS`` hours needs a principal investigator's co-signature (user name and
    password of a PI other than the actor). A refusal writes nothing but the failed-password
    event of a wrong password (the actor's or the co-signer's)."""
    from annulus.accounts.services import _cosigner

    from .selectors import EMERGENCY_COSIGN_HOURS, recent_emergency_unblindings

    if role_of(actor) != "investigator":
        raise NotPermitted("unblinding.emergency")
    problems = Problems()  # every problem of the request at once, each on its field
    with problems.check():
        reason = _text("reason", reason, min_len=10)
    with problems.check():
        _unblindable(participant_id)
    with problems.check():
        _emergency_password(actor, password)
    cosigner = None
    recent = recent_emergency_unblindings(actor)
    if recent and not problems.broken("password"):  # a PI's password is tried only for a signed request
        with problems.check():
            cosigner = _cosigner(
                actor, str(cosigner_username or "").strip(), cosigner_password,
                needed=f"you already unblinded {recent[-1].label} within {EMERGENCY_COSIGN_HOURS} hours; another "
                       "emergency unblinding needs a principal investigator's co-signature (their user name and "
                       "password)",
                other_than="the investigator who unblinds")
    problems.raise_any()
    with transaction.atomic():
        # the actor's row lock serialises one person's unblindings, so two at once cannot both
        # pass as the first of the day
        get_user_model().objects.select_for_update().filter(pk=actor.pk).first()
        p, env = _unblindable(participant_id, lock=True)
        if cosigner is None and recent_emergency_unblindings(actor):
            raise RuleViolation("cosigner_username", f"you unblinded another participant within "
                                                     f"{EMERGENCY_COSIGN_HOURS} hours; another emergency "
                                                     "unblinding needs a principal investigator's co-signature")
        number = (EmergencyUnblinding.objects.select_for_update().aggregate(m=Max("number"))["m"] or 0) + 1
        rec = EmergencyUnblinding.objects.create(
            number=number, participant=p, requested_by=actor, at=timezone.now(), reason=reason,
            scope=f"participant {p.case_number} only", cosigned_by=cosigner)
        changes = {"number": [None, rec.label], "scope": [None, rec.scope]}
        if cosigner is not None:
            changes["cosigned_by"] = [None, cosigner.username]
        audit.record(actor=actor, action="unblind", obj_type="emergency_unblinding", obj_id=rec.pk, participant_id=p.pk,
                     changes=changes, reason=reason, protocol_version=p.protocol_version.version)
        from annulus.trial.services import notify

        cosigned = f" Co-signed by {cosigner.username}." if cosigner is not None else ""
        notify(users=list(principal_investigators()), kind="emergency_unblinding", actor=actor, participant_id=p.pk,
               subject=f"Emergency unblinding {rec.label}: case {p.case_number}",
               body=f"{actor.get_full_name() or actor.username} unblinded case {p.case_number} at "
                    f"{timezone.localtime(rec.at):%Y-%m-%d %H:%M}. Reason: {reason}. Scope: {rec.scope}.{cosigned}",
               link=f"/unblinding/emergency/{rec.pk}/")
        arm = env.allocation_list.level2_key[env.group_label]
    return rec, arm


# ---- database lock and the two levels of unblinding --------------------------------------

def _state() -> str:
    return TrialState.objects.select_for_update().get_or_create(id=1)[0].state


def _step(actor, kind: str, statement: str) -> UnblindingStep:
    if UnblindingStep.objects.filter(kind=kind).exists():
        raise RuleViolation("step", f"{dict(UnblindingStep.KINDS)[kind]}: already done")
    step = UnblindingStep.objects.create(kind=kind, user=actor, statement=statement)
    from django.utils.translation import override

    with override("en"):  # the audit trail keeps the step's name in English, whatever the page's language
        reason = str(dict(UnblindingStep.KINDS)[kind])
    audit.record(actor=actor, action="sign", obj_type="unblinding_step", obj_id=step.pk,
                 changes={"kind": [None, kind], "statement": [None, statement]}, reason=reason)
    return step


def _is_pi(user) -> bool:
    membership = getattr(user, "membership", None)
    return role_of(user) == "investigator" and membership is not None and membership.is_principal_investigator


def waive_lock_item(*, actor, item: str, reason: str) -> LockWaiver:
    """The principal investigator lets the lock go ahead with one open item of the pre-lock
    checklist, giving the reason. The waiver is kept for ever and audited."""
    return waive_lock_items(actor=actor, items=[item], reason=reason)[0]


# the participant a checklist line belongs to, from the record its key names: keys that name the
# participant ("participant:N", "casebook:N", "sdv:N:visit:form", "visit:N:visit") and keys that
# name one of the participant's records (model, field path to the participant's id)
_PARTICIPANT_KEYS = ("participant", "casebook", "sdv", "visit")
_RECORD_KEYS = {
    "crf_form": ("visits.FormRecord", "participant_id"),
    "query": ("queries.Query", "participant_id"),
    "sae_report": ("safety.SaeReport", "adverse_event__participant_id"),
    "sae_report_ack": ("safety.SaeReport", "adverse_event__participant_id"),
    "ae_outcome": ("safety.AdverseEvent", "participant_id"),
    "ae_task": ("safety.AeTask", "participant_id"),
}


def waived_participant(item: dict) -> int | None:
    """The participant whose line of the pre-lock checklist is waived (so the waiver is on that
    participant's audit trail), or None for a line of the trial as a whole. Read from the record
    the line's key names (a line may also say ``participant_id`` itself), never from its label."""
    from django.apps import apps

    if item.get("participant_id"):
        return int(item["participant_id"])
    kind, _sep, rest = str(item.get("key") or "").partition(":")
    first = rest.split(":", 1)[0]
    if not first.isdigit():
        return None
    if kind in _PARTICIPANT_KEYS:
        return Participant.objects.filter(pk=int(first)).values_list("pk", flat=True).first()
    if kind in _RECORD_KEYS:
        model, path = _RECORD_KEYS[kind]
        return apps.get_model(model).objects.filter(pk=int(first)).values_list(path, flat=True).first()
    return None


# lines one waiver may cover at most (the lines the lock page shows for a group)
MAX_WAIVED_AT_ONCE = 100


def waive_lock_items(*, actor, items, reason: str) -> list[LockWaiver]:
    """The principal investigator waives several open items of the pre-lock checklist (the lines
    of a group as the lock page shows them) with one reason: one waiver and one audit record per
    item, all or none."""
    from .selectors import lock_checklist

    if not _is_pi(actor):
        raise NotPermitted("unblinding.waive")
    if isinstance(items, str) or not items:
        raise RuleViolation("item", "is required")
    if len(items) > MAX_WAIVED_AT_ONCE:
        raise RuleViolation("item", f"at most {MAX_WAIVED_AT_ONCE} items are waived at once")
    keys = list(dict.fromkeys(_text("item", item, max_len=60) for item in items))
    reason = _text("reason", reason, min_len=10)
    out = []
    with transaction.atomic():
        state = _state()  # the trial-state row, for update: a waiver and a lock signature do not interleave
        checklist = lock_checklist(actor)  # a line of another site's participant is not one the actor has
        groups = {i["key"]: g["group"] for g in checklist["groups"] for i in g["items"]}
        for item in keys:
            found = checklist["items"].get(item)
            if not (state == "locked" and found is not None and found["waiver"] is None):
                # after the lock only an item that appeared since (a visit window that closed) may be
                # waived: first-level unblinding waits for it, and the waiver changes no collected data
                # (ALLOWED_AFTER_LOCK["lock_waivers"]); anything else is refused like every other write
                assert_writable("pre-lock waiver")
            prefix = f"{item}: " if len(keys) > 1 else ""
            if found is None:
                raise RuleViolation("item", f"{prefix}is not an open item of the pre-lock checklist")
            if found["waiver"] is not None:
                raise RuleViolation("item", f"{prefix}is already waived")
            w = LockWaiver.objects.create(item=item, group=groups[item], label=str(found["label"])[:300],
                                          reason=reason, waived_by=actor)
            audit.record(actor=actor, action="create", obj_type="lock_waiver", obj_id=w.pk,
                         participant_id=waived_participant(found),
                         changes={"item": [None, item], "label": [None, w.label]}, reason=reason)
            out.append(w)
    return out


def sign_lock(*, actor, password: str, statement: str) -> UnblindingStep:
    """The principal investigator and the statistician each sign the database lock; with both
    signatures the trial state becomes 'locked'. Each signature is refused while the pre-lock
    checklist has an open item that is not waived."""
    from annulus.trial.services import set_trial_state

    from .selectors import lock_checklist

    role = role_of(actor)
    membership = getattr(actor, "membership", None)
    if role == "statistician":
        kind = "lock_statistician"
    elif role == "investigator" and membership is not None and membership.is_principal_investigator:
        kind = "lock_pi"
    else:
        raise NotPermitted("unblinding.lock")
    statement = _text("statement", statement, min_len=10)
    _reauthenticate(actor, password, "database lock signed")
    with transaction.atomic():
        if _state() not in OPEN_STATES:
            raise RuleViolation("state", "the database is already locked")
        blocking = lock_checklist()["blocking"]
        if blocking:
            raise RuleViolation("checklist", gettext(
                "%(n)s open item(s) of the pre-lock checklist are neither closed nor waived (first: %(first)s); "
                "close each one or have the principal investigator waive it with a reason")
                % {"n": len(blocking), "first": blocking[0]["label"]})
        step = _step(actor, kind, statement)
        if UnblindingStep.objects.filter(kind__in=["lock_pi", "lock_statistician"]).count() == 2:
            set_trial_state(actor=actor, state="locked", reason="database locked: signed by the principal "
                                                                "investigator and the statistician")
    return step


def release_level1(*, actor, password: str, statement: str) -> UnblindingStep:
    """The level-1 key holder releases random number -> group label for the analysis: only with the
    database locked and every item of the pre-lock checklist closed or waived (P-3.7, "CRFs
    checked and signed"), read again now - an item may have appeared since the lock (a visit
    window that closed)."""
    from annulus.trial.services import set_trial_state

    from .selectors import lock_checklist

    if role_of(actor) != active_protocol().randomisation.level1_key_holder:
        raise NotPermitted("unblinding.level1_release")
    statement = _text("statement", statement, min_len=10)
    _reauthenticate(actor, password, "first-level unblinding released")
    with transaction.atomic():
        if _state() != "locked":
            raise RuleViolation("state", "first-level unblinding needs a locked database")
        blocking = lock_checklist()["blocking"]
        if blocking:
            raise RuleViolation("checklist", gettext(
                "first-level unblinding needs every item of the pre-lock checklist closed or waived: %(n)s open "
                "(first: %(first)s); close it or have the principal investigator waive it with a reason")
                % {"n": len(blocking), "first": blocking[0]["label"]})
        step = _step(actor, "level1", statement)
        set_trial_state(actor=actor, state="unblinded_1", reason="first-level unblinding: group labels released")
    return step


def sign_off_analysis(*, actor, password: str, statement: str) -> UnblindingStep:
    if role_of(actor) != "statistician":
        raise NotPermitted("unblinding.signoff")
    statement = _text("statement", statement, min_len=10)
    _reauthenticate(actor, password, "analysis signed off")
    with transaction.atomic():
        if _state() != "unblinded_1":
            raise RuleViolation("state", "the analysis is signed off after first-level unblinding")
        return _step(actor, "analysis_signoff", statement)


def release_level2(*, actor, password: str, statement: str) -> UnblindingStep:
    """The level-2 key holder releases group label -> treatment after the analysis sign-off."""
    from annulus.trial.services import set_trial_state

    if role_of(actor) != active_protocol().randomisation.level2_key_holder:
        raise NotPermitted("unblinding.level2_release")
    statement = _text("statement", statement, min_len=10)
    _reauthenticate(actor, password, "second-level unblinding released")
    with transaction.atomic():
        if _state() != "unblinded_1":
            raise RuleViolation("state", "second-level unblinding needs first-level unblinding first")
        if not UnblindingStep.objects.filter(kind="analysis_signoff").exists():
            raise RuleViolation("state", "second-level unblinding needs the analysis sign-off first")
        step = _step(actor, "level2", statement)
        set_trial_state(actor=actor, state="unblinded_2", reason="second-level unblinding: treatments released")
    return step


def demo_seed(seed: int) -> int:
    """A reproducible list seed for the demo, long enough to pass the seed rule."""
    digest = int.from_bytes(hashlib.sha256(f"annulus-demo-list-{seed}".encode()).digest()[:8], "big")
    return digest % (MAX_SEED - 10**MIN_SEED_DIGITS) + 10**MIN_SEED_DIGITS
