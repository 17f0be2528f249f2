"""The audit key: a secret kept outside the database (a file named by ``ANNULUS_AUDIT_KEY_FILE``),
with which every audit event gets a MAC beside its hash and every checkpoint is signed.

The hash chain alone proves the order and content of the events to anyone who recomputes it, but
someone with write access to the database can recompute it too (re-hash the chain after changing
a value, append a made-up event). A MAC needs the key: without it such an event or checkpoint does
not verify. The application reads the key file; the database administrator has no access to it.

The file holds 64 hexadecimal characters (32 random bytes) on one line; ``annulus audit keygen``
writes one (readable by its owner only).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_BYTES = 32


class AuditKeyError(Exception):
    """The key file is missing, unreadable or not a key (the message names the file)."""


def configured_path() -> Path | None:
    """The key file the settings name (``AUDIT_KEY_FILE``), or None."""
    from django.conf import settings

    path = getattr(settings, "AUDIT_KEY_FILE", "") or ""
    return Path(path) if path else None


def load(path: str | Path) -> bytes:
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditKeyError(f"audit key file {path} cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise AuditKeyError(f"audit key file {path} does not hold a key ({2 * KEY_BYTES} hexadecimal characters)")
    return key


_cache: dict[str, bytes] = {}


def current() -> bytes | None:
    """The configured key (read once per process), or None when no key file is configured."""
    path = configured_path()
    if path is None:
        return None
    name = str(path)
    if name not in _cache:
        _cache[name] = load(path)
    return _cache[name]


def mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("ascii", "replace"), b.encode("ascii", "replace"))


def generate(out: str | Path) -> Path:
    """Write a new key to ``out`` (which must not exist), readable by its owner only."""
    out = Path(out)
    if out.exists():
        raise AuditKeyError(f"{out} exists: a key is never overwritten (the trail's MACs depend on it)")
    if not out.parent.is_dir():
        raise AuditKeyError(f"folder {out.parent} does not exist")
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secrets.token_hex(KEY_BYTES) + "\n")
    return out
