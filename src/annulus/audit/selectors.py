"""Reading and verifying the audit trail."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation

from .models import AuditEvent, AuditHead
from .services import GENESIS, chain_hash


@dataclass
class VerifyResult:
    checked: int
    bad_event: int | None = None  # the id of the first bad event; 0 when the problem is not one event's
    problem: str = ""
    last_id: int = 0  # the id of the last event checked

    @property
    def ok(self) -> bool:
        return self.bad_event is None and not self.problem

    @property
    def where(self) -> str:
        return f" at event #{self.bad_event}" if self.bad_event else ""


def verify_chain(batch: int = 2000, *, key: bytes | None = None, checkpoints=()) -> VerifyResult:
    """Recompute every hash in order; report the first event that does not match. With the audit
    key, every event's MAC is checked too (from the first keyed event on, every event must carry
    one); with ``checkpoints`` (``annulus.audit.checkpoints.read``, their signatures checked with
    the key), the trail must reach each checkpoint and hold the hash it recorded there."""
    from . import checkpoints as cps
    from . import keys

    marks = list(checkpoints)
    if marks and key is None:
        raise ValueError("checkpoints are checked with the audit key")
    for cp in marks:
        if not cps.signed(key, cp):
            return VerifyResult(0, 0, f"checkpoint {cp.name} has a wrong signature (altered, or written "
                                      "without the audit key)")
    wanted = {cp.seq: cp for cp in marks}
    keyed_from = min((cp.keyed_from for cp in marks if cp.keyed_from), default=None)
    seen: dict[int, tuple[str, int]] = {}  # seq -> (hash, event id) at each checkpoint
    prev = GENESIS
    checked = 0
    last_id = 0
    keyed = False
    while True:
        rows = list(
            AuditEvent.objects.filter(id__gt=last_id)
            .order_by("id")
            .values_list(
                "id", "payload", "prev_hash", "hash", "action", "object_type", "object_id",
                "participant_id", "reason", "actor_username", "timestamp", "mac",
            )[:batch]
        )
        if not rows:
            break
        for (pk, payload, prev_hash, digest, action, otype, oid, pid, reason, actor, ts, mac) in rows:
            checked += 1
            if prev_hash != prev:
                return VerifyResult(checked, pk, "previous-hash link broken (an event was removed or reordered)")
            if chain_hash(prev, payload) != digest:
                return VerifyResult(checked, pk, "payload does not match its hash")
            try:
                body = json.loads(payload)
            except ValueError:
                return VerifyResult(checked, pk, "payload is not JSON")
            columns = {
                "action": action, "object_type": otype, "object_id": oid, "participant_id": pid,
                "reason": reason, "actor": actor,
                "timestamp": ts.astimezone(timezone.utc).isoformat() if isinstance(ts, datetime) else str(ts),
            }
            for column, value in columns.items():
                if body.get(column) != value:
                    return VerifyResult(checked, pk, f"column '{column}' differs from the hashed record")
            if body.get("seq") != checked:
                return VerifyResult(checked, pk, "sequence number out of order")
            if key is not None:
                if mac:
                    if not keys.same(keys.mac(key, digest), mac):
                        return VerifyResult(checked, pk, "its MAC does not match (written or re-hashed without the "
                                                         "audit key)")
                    keyed = True
                elif keyed or (keyed_from is not None and checked >= keyed_from):
                    return VerifyResult(checked, pk, "it has no MAC where the trail is keyed (appended without the "
                                                     "audit key)")
            if checked in wanted:
                seen[checked] = (digest, pk)
            prev = digest
            last_id = pk
    head = AuditHead.objects.filter(id=1).first()
    if head and (head.last_hash != prev or head.count != checked):
        return VerifyResult(checked, last_id or 0, "the chain is shorter than recorded (events removed at the end)")
    for cp in marks:
        if cp.seq > checked:
            return VerifyResult(checked, 0, f"the trail has {checked} events but checkpoint {cp.name} "
                                                       f"recorded {cp.seq} at {cp.event_time}: events were removed "
                                                       "at the end, or an older backup was restored (rollback)")
        digest, pk = seen.get(cp.seq, ("", 0))
        if not keys.same(digest, cp.hash):
            return VerifyResult(checked, pk, f"event {cp.seq} differs from checkpoint {cp.name}: the chain was "
                                                 "rewritten and re-hashed")
    return VerifyResult(checked, last_id=last_id)


def events_for_participant(participant_id: int, *, action: str = "", object_type: str = "", actor: str = ""):
    qs = AuditEvent.objects.filter(participant_id=participant_id)
    if action:
        qs = qs.filter(action=action)
    if object_type:
        qs = qs.filter(object_type=object_type)
    if actor:
        qs = qs.filter(actor_username=actor)
    return qs.order_by("-id")


def decoded(event: AuditEvent) -> dict:
    return json.loads(event.payload)


def replayed(object_type: str, participant_ids) -> dict[str, dict]:
    """The state of every object of ``object_type`` belonging to ``participant_ids`` as the audit
    trail tells it: each event's changes applied in order (a change ``[old, new]`` sets ``new``;
    any other value, such as a form's visit or revision number, is taken as it is). Keyed by the
    object id as the trail holds it (text)."""
    state: dict[str, dict] = {}
    rows = (AuditEvent.objects.filter(object_type=object_type, participant_id__in=list(participant_ids))
            .order_by("id").values_list("object_id", "payload"))
    for object_id, payload in rows.iterator(chunk_size=2000):
        changes = json.loads(payload).get("changes") or {}
        mine = state.setdefault(object_id, {})
        for name, change in changes.items():
            mine[name] = change[1] if isinstance(change, list) and len(change) == 2 else change
    return state


def trail(object_types, participant_ids) -> list[tuple[str, str, int, dict, str]]:
    """Every event of ``object_types`` belonging to ``participant_ids`` in the order of the chain,
    as (object type, object id, participant id, changes, reason): for a replay that needs more
    than ``replayed`` gives (the order of several objects of a participant, or the reasons)."""
    rows = (AuditEvent.objects.filter(object_type__in=list(object_types), participant_id__in=list(participant_ids))
            .order_by("id").values_list("object_type", "object_id", "participant_id", "payload"))
    out = []
    for otype, object_id, pid, payload in rows.iterator(chunk_size=2000):
        body = json.loads(payload)
        out.append((otype, object_id, pid, body.get("changes") or {}, body.get("reason") or ""))
    return out


@dataclass
class Recorded:
    """One event of the trail as a replay reads it."""

    object_type: str
    object_id: str
    participant_id: int | None
    changes: dict
    reason: str
    actor: str
    timestamp: str  # UTC ISO text, as hashed


def recorded(object_types, participant_ids=None) -> list[Recorded]:
    """Every event of ``object_types`` in the order of the chain with its actor and time: those
    of ``participant_ids``, or, when it is None, all of them (records of the trial as a whole, such
    as the lock waivers or the DSMB's records). One query."""
    qs = AuditEvent.objects.filter(object_type__in=list(object_types))
    if participant_ids is not None:
        qs = qs.filter(participant_id__in=list(participant_ids))
    out = []
    for otype, object_id, pid, payload in qs.order_by("id").values_list(
            "object_type", "object_id", "participant_id", "payload").iterator(chunk_size=2000):
        body = json.loads(payload)
        out.append(Recorded(otype, object_id, pid, body.get("changes") or {}, body.get("reason") or "",
                            body.get("actor") or "", body.get("timestamp") or ""))
    return out


def values_by_object(object_types, participant_ids=None) -> dict[str, dict]:
    """object id -> the values its events set, the later over the earlier, with the participant,
    the actor, the reason and the time of its last event (``recorded``; one query)."""
    trail: dict[str, dict] = {}
    for e in recorded(object_types, participant_ids):
        mine = trail.setdefault(e.object_id, {})
        mine.update({name: new_value(change) for name, change in e.changes.items()})
        mine.update(participant=e.participant_id, actor=e.actor, reason=e.reason, timestamp=e.timestamp)
    return trail


def against_trail(rows, trail: dict[str, dict], *, what: str, where, pairs, participant=None) -> list[str]:
    """Each row of a table (its primary key first) against the values the trail gives its record
    (``trail``, as ``values_by_object`` reads it; emptied as rows are matched): a row the trail
    never saw (or saw for another participant: ``participant(row)``), the fields that differ
    (``pairs(row, audited)``: (field, stored, audited) triples, named at ``where(row)``), then every
    record of the trail no longer in the database ("``what`` ``pk``: ...")."""
    out = []
    for row in rows:
        here = where(row)
        audited = trail.pop(str(row[0]), None)
        if audited is None or (participant is not None and audited.get("participant") != participant(row)):
            out.append(f"{here}: in the database but never in the audit trail")
            continue
        out += differences(here, pairs(row, audited))
    out += [f"{what} {pk}: in the audit trail but no longer in the database" for pk in trail]
    return out


def author(user_name) -> str:
    """A row's author as the trail names the actor ("system" for none)."""
    return user_name or "system"


def new_value(change):
    """The value a change sets: ``new`` of ``[old, new]``, any other value as it is."""
    return change[1] if isinstance(change, list) and len(change) == 2 else change


def same_value(stored, audited) -> bool:
    """A stored value equals the one the trail gives it: empty is empty ("", None, [] and {} alike),
    a time compares as its UTC ISO text and a date as its ISO text (the trail's forms), and a
    decimal by its value ("2.0" in the trail is 2.00 in the database)."""
    def plain(v):
        if isinstance(v, datetime):
            return v.astimezone(timezone.utc).isoformat()
        if isinstance(v, date):
            return v.isoformat()
        if v in ("", None) or v == [] or v == {}:
            return None
        return v

    if isinstance(stored, Decimal) and audited not in (None, ""):
        try:
            return stored == Decimal(str(audited))
        except (InvalidOperation, ValueError):
            return False
    return plain(stored) == plain(audited)


def differences(where: str, pairs) -> list[str]:
    """One line for each (name, stored, audited) whose values differ (``same_value``)."""
    return [f"{where}: {name} is {shown(stored)} in the database but {shown(audited)} in the audit trail"
            for name, stored, audited in pairs if not same_value(stored, audited)]


def shown(value) -> str:
    """A value in a mismatch line: as the trail writes it (times and dates as ISO text)."""
    if isinstance(value, datetime):
        value = value.astimezone(timezone.utc).isoformat()
    elif isinstance(value, date):
        value = value.isoformat()
    elif isinstance(value, Decimal):
        value = str(value)
    return repr(value)


def screening_numbers(participant_ids) -> dict[int, str]:
    """Participant id -> screening number, as the mismatch lines name participants."""
    from annulus.participants.models import Participant

    return dict(Participant.objects.filter(pk__in=list(participant_ids)).values_list("pk", "screening_number"))
