"""Reading and verifying the audit trail."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from .models import AuditEvent, AuditHead
from .services import GENESIS, chain_hash


@dataclass
class VerifyResult:
    checked: int
    bad_event: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.bad_event is None


def verify_chain(batch: int = 2000) -> VerifyResult:
    """Recompute every hash in order; report the first event that does not match."""
    prev = GENESIS
    checked = 0
    last_id = 0
    while True:
        rows = list(
            AuditEvent.objects.filter(id__gt=last_id)
            .order_by("id")
            .values_list(
                "id", "payload", "prev_hash", "hash", "action", "object_type", "object_id",
                "participant_id", "reason", "actor_username", "timestamp",
            )[:batch]
        )
        if not rows:
            break
        for (pk, payload, prev_hash, digest, action, otype, oid, pid, reason, actor, ts) in rows:
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
            for key, value in columns.items():
                if body.get(key) != value:
                    return VerifyResult(checked, pk, f"column '{key}' differs from the hashed record")
            if body.get("seq") != checked:
                return VerifyResult(checked, pk, "sequence number out of order")
            prev = digest
            last_id = pk
    head = AuditHead.objects.filter(id=1).first()
    if head and (head.last_hash != prev or head.count != checked):
        return VerifyResult(checked, last_id or 0, "the chain is shorter than recorded (events removed at the end)")
    return VerifyResult(checked)


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
