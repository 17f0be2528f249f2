"""Writing audit events. Call ``record`` inside the transaction that changes the data."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timezone
from decimal import Decimal

from django.db import transaction

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
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit.record must be called inside transaction.atomic()")
    now = (when or datetime.now(timezone.utc)).astimezone(timezone.utc)
    username = getattr(actor, "username", None) or "system"
    head, _ = AuditHead.objects.select_for_update().get_or_create(id=1, defaults={"last_hash": GENESIS})
    body = {
        "seq": head.count + 1,
        "timestamp": now.isoformat(),
        "actor": username,
        "action": action,
        "object_type": obj_type,
        "object_id": str(obj_id),
        "participant_id": participant_id,
        "changes": changes or {},
        "reason": reason or "",
        "protocol_version": protocol_version or "",
    }
    payload = canonical(body)
    digest = chain_hash(head.last_hash, payload)
    event = AuditEvent.objects.create(
        timestamp=now,
        actor=actor if getattr(actor, "pk", None) else None,
        actor_username=username,
        action=action,
        object_type=obj_type,
        object_id=str(obj_id),
        participant_id=participant_id,
        reason=reason or "",
        protocol_version=protocol_version or "",
        payload=payload,
        prev_hash=head.last_hash,
        hash=digest,
    )
    head.last_hash = digest
    head.count += 1
    head.save(update_fields=["last_hash", "count"])
    return event
