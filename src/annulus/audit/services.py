"""Writing audit events. Call ``record`` inside the transaction that changes the data."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timezone
from decimal import Decimal

from django.db import transaction

from . import checkpoints, keys
from .models import AuditEvent, AuditHead

GENESIS = "0" * 64


def _default(value):
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def canonical(data: dict) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default)


def chain_hash(prev_hash: str, payload: str) -> str:
    return hashlib.sha256((prev_hash + "\n" + payload).encode("utf-8")).hexdigest()


def diff(old: dict, new: dict) -> dict:
    """Field -> [old, new] for the fields whose value differs."""
    keys = sorted(set(old) | set(new))
    return {k: [old.get(k), new.get(k)] for k in keys if old.get(k) != new.get(k)}


# Checks every write passes before its events are appended, inside the write's transaction, as
# ``guard(actor, participant_ids)`` raising to refuse (the participants app adds one: a user
# scoped to sites writes nothing for a participant of another site). Apps above this one add
# theirs in ``AppConfig.ready`` so that this app imports none of them.
_GUARDS: list = []


def add_guard(guard) -> None:
    if guard not in _GUARDS:
        _GUARDS.append(guard)


def record(
    *,
    actor,
    action: str,
    obj_type: str,
    obj_id,
    changes: dict | None = None,
    reason: str = "",
    participant_id: int | None = None,
    protocol_version: str = "",
    when: datetime | None = None,
) -> AuditEvent:
    """Append one event to the chain. Must run inside the caller's transaction."""
    return record_many(actor=actor, events=[dict(
        action=action, obj_type=obj_type, obj_id=obj_id, changes=changes, reason=reason,
        participant_id=participant_id, protocol_version=protocol_version, when=when)])[0]


def record_many(*, actor, events: list[dict]) -> list[AuditEvent]:
    """Append several events of one actor to the chain in the order given, with one lock of the
    chain head and one insert: a visit saved as a whole costs three statements of audit, not
    three per form. Each event is a dict of ``record``'s keyword arguments (without ``actor``).
    Must run inside the caller's transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit.record must be called inside transaction.atomic()")
    if not events:
        return []
    for guard in _GUARDS:
        guard(actor, {e.get("participant_id") for e in events})
    username = getattr(actor, "username", None) or "system"
    actor_row = actor if getattr(actor, "pk", None) else None
    head, _ = AuditHead.objects.select_for_update().get_or_create(id=1, defaults={"last_hash": GENESIS})
    key = keys.current()
    rows = []
    last, count = head.last_hash, head.count
    first = count
    for e in events:
        now = (e.get("when") or datetime.now(timezone.utc)).astimezone(timezone.utc)
        reason = e.get("reason") or ""
        version = e.get("protocol_version") or ""
        count += 1
        body = {
            "seq": count,
            "timestamp": now.isoformat(),
            "actor": username,
            "action": e["action"],
            "object_type": e["obj_type"],
            "object_id": str(e["obj_id"]),
            "participant_id": e.get("participant_id"),
            "changes": e.get("changes") or {},
            "reason": reason,
            "protocol_version": version,
        }
        payload = canonical(body)
        digest = chain_hash(last, payload)
        rows.append(AuditEvent(
            timestamp=now, actor=actor_row, actor_username=username, action=e["action"],
            object_type=e["obj_type"], object_id=str(e["obj_id"]), participant_id=e.get("participant_id"),
            reason=reason, protocol_version=version, payload=payload, prev_hash=last, hash=digest,
            mac=keys.mac(key, digest) if key is not None else ""))
        last = digest
    created = AuditEvent.objects.bulk_create(rows)
    head.last_hash = last
    head.count = count
    if key is not None and head.keyed_from is None:
        head.keyed_from = first + 1
    head.save(update_fields=["last_hash", "count", "keyed_from"])
    if key is not None and checkpoints.due(first, count):
        when, keyed_from = rows[-1].timestamp.isoformat(), head.keyed_from
        transaction.on_commit(lambda: checkpoints.write_automatic(seq=count, hash=last, event_time=when,
                                                                  keyed_from=keyed_from))
    return created
