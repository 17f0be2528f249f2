"""Checkpoints of the audit trail, kept outside the database.

A checkpoint is a small JSON file ``checkpoint-<seq>.json`` holding the chain head at one moment:
the number of events (``seq``), the hash of the last one, its time, the first event carrying a
MAC (``keyed_from``) and the time the file was written, signed with the audit key (HMAC-SHA256
over the canonical JSON of those fields). ``annulus audit checkpoint --out DIR`` writes one; the
application also writes one after every ``AUDIT_CHECKPOINT_EVERY`` events or
``AUDIT_CHECKPOINT_MINUTES`` minutes into ``AUDIT_CHECKPOINT_DIR`` (after the transaction that
appended the events commits). Copy the folder off the database server.

``verify(folder, key)`` checks the trail against every checkpoint: a checkpoint whose signature
is wrong (altered, or made without the key); a trail shorter than a checkpoint (events deleted at
the end, or an older backup restored: a rollback); an event whose hash differs from the one a
checkpoint recorded (the chain rewritten and re-hashed). Events after the newest checkpoint are
protected by their MACs only against forgery, not against deletion: checkpoints bound that window.
"""

from __future__ import annotations

import json
import logging
import os
import time as clock
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import keys

log = logging.getLogger("annulus.audit")
PREFIX = "checkpoint-"
FIELDS = ("seq", "hash", "event_time", "keyed_from", "written_at")


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    event_time: str
    keyed_from: int | None
    written_at: str
    mac: str
    path: Path | None = None

    def body(self) -> dict:
        return {f: getattr(self, f) for f in FIELDS}

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else f"{PREFIX}{self.seq:012d}.json"


def _signed_text(body: dict) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def make(key: bytes, *, seq: int, hash: str, event_time: str, keyed_from: int | None,  # noqa: A002
         written_at: datetime | None = None) -> Checkpoint:
    written = (written_at or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat(timespec="seconds")
    body = {"seq": seq, "hash": hash, "event_time": event_time, "keyed_from": keyed_from, "written_at": written}
    return Checkpoint(**body, mac=keys.mac(key, _signed_text(body)))


def write(folder: str | Path, checkpoint: Checkpoint) -> Path:
    """Write the checkpoint into ``folder`` (created when missing; a file of the same sequence
    number is kept, never replaced). Returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / checkpoint.name
    if target.exists():
        return target
    partial = folder / f".{checkpoint.name}.part"
    partial.write_text(json.dumps({**checkpoint.body(), "mac": checkpoint.mac}, indent=1) + "\n", encoding="utf-8")
    os.replace(partial, target)
    return target


class CheckpointError(Exception):
    """A checkpoint file that cannot be read (names the file)."""


def read(folder: str | Path) -> list[Checkpoint]:
    """Every checkpoint in ``folder``, in sequence order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint folder {folder} does not exist")
    out = []
    for path in sorted(folder.glob(f"{PREFIX}*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            out.append(Checkpoint(seq=int(data["seq"]), hash=str(data["hash"]), event_time=str(data["event_time"]),
                                  keyed_from=None if data.get("keyed_from") is None else int(data["keyed_from"]),
                                  written_at=str(data["written_at"]), mac=str(data["mac"]), path=path))
        except (OSError, ValueError, KeyError, TypeError):
            raise CheckpointError(f"checkpoint {path.name} cannot be read (not a checkpoint file)") from None
    return sorted(out, key=lambda c: c.seq)


def signed(key: bytes, checkpoint: Checkpoint) -> bool:
    return keys.same(keys.mac(key, _signed_text(checkpoint.body())), checkpoint.mac)


# --- written by the application -------------------------------------------------------------------

_last_written = {"at": 0.0}


def due(old_count: int, new_count: int) -> bool:
    """Whether appending events from ``old_count`` to ``new_count`` calls for an automatic checkpoint."""
    from django.conf import settings

    if not getattr(settings, "AUDIT_CHECKPOINT_DIR", ""):
        return False
    every = int(getattr(settings, "AUDIT_CHECKPOINT_EVERY", 1000) or 0)
    minutes = float(getattr(settings, "AUDIT_CHECKPOINT_MINUTES", 60) or 0)
    if every and new_count // every > old_count // every:
        return True
    return bool(minutes) and clock.monotonic() - _last_written["at"] >= minutes * 60


def write_automatic(*, seq: int, hash: str, event_time: str, keyed_from: int | None) -> None:  # noqa: A002
    """After the commit: the checkpoint of the head just committed, into ``AUDIT_CHECKPOINT_DIR``.
    A failure is logged and never undoes the committed change."""
    from django.conf import settings

    try:
        key = keys.current()
        if key is None:
            return
        write(settings.AUDIT_CHECKPOINT_DIR, make(key, seq=seq, hash=hash, event_time=event_time,
                                                   keyed_from=keyed_from))
        _last_written["at"] = clock.monotonic()
    except Exception:  # noqa: BLE001 - the data are committed; a missed checkpoint is logged
        log.exception("audit checkpoint %s could not be written", seq)
