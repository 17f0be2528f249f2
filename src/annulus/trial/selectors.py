"""The protocol in force, parsed once per version."""

from __future__ import annotations

import threading
from functools import lru_cache

from annulus.protocol import Protocol, parse_protocol_once

from .models import ProtocolVersion, TrialState


@lru_cache(maxsize=8)
def _parsed(digest: str, text: str) -> Protocol:
    return parse_protocol_once(text)


# The protocol version in force, read once per request: a page asks for it (or for the protocol,
# its dictionary, its roles) many times. ``per_request`` (``annulus.trial.middleware``) opens the
# memo for a request and closes it after; outside a request (commands, background jobs) every call
# reads the database. Activating a version forgets it (``forget_active_version``).
#
# A page also reads some of one participant's records several times (its locks, its day 0, its
# transplantation, its withdrawal: the timeline, the panels and the padlocks each ask). In a GET or
# HEAD request, which writes no trial data, ``read_once`` keeps such a read for the rest of the
# request; in any other request, and outside requests, it reads every time, so that a write is
# always followed by a fresh read.
_request = threading.local()


class per_request:
    def __init__(self, reads: bool = False):
        self.reads = reads

    def __enter__(self):
        _request.memo = {}
        _request.reads = {} if self.reads else None

    def __exit__(self, *exc):
        _request.memo = None
        _request.reads = None
        return False


def read_once(key: tuple, compute):
    """``compute()``, made once per GET or HEAD request for ``key`` (see above); every time
    elsewhere."""
    reads = getattr(_request, "reads", None)
    if reads is None:
        return compute()
    if key not in reads:
        reads[key] = compute()
    return reads[key]


def forget_active_version() -> None:
    memo = getattr(_request, "memo", None)
    if memo:
        memo.pop("pv", None)


def active_version() -> ProtocolVersion:
    memo = getattr(_request, "memo", None)
    if memo is not None and "pv" in memo:
        return memo["pv"]
    pv = ProtocolVersion.objects.filter(active=True).first()
    if pv is None:
        from .services import load_default_protocol

        pv = load_default_protocol()
    if memo is not None:
        memo["pv"] = pv
    return pv


def active_protocol() -> Protocol:
    pv = active_version()
    return _parsed(pv.digest, pv.text)


@lru_cache(maxsize=8)
def _unblinded_roles(digest: str, text: str) -> frozenset[str]:
    return frozenset(r.id for r in _parsed(digest, text).roles if not r.blinded)


def unblinded_roles() -> frozenset[str]:
    """The roles the protocol in force declares ``blinded: false``, once per protocol version."""
    pv = active_version()
    return _unblinded_roles(pv.digest, pv.text)


@lru_cache(maxsize=8)
def _key_holders(digest: str, text: str) -> tuple[str, str, bool]:
    protocol = _parsed(digest, text)
    r = protocol.randomisation
    return r.level1_key_holder, r.level2_key_holder, getattr(protocol.product, "kind", "") == "cell_suspension"


def key_holders() -> tuple[str, str, bool]:
    """(level-1 key holder, level-2 key holder, whether the product is a cell product prepared per
    participant) of the protocol in force, once per protocol version."""
    pv = active_version()
    return _key_holders(pv.digest, pv.text)


@lru_cache(maxsize=8)
def _recording_roles(digest: str, text: str) -> frozenset[str]:
    protocol = _parsed(digest, text)
    pages = protocol.page_procedures
    return frozenset(r for p in protocol.procedure_list if p.id not in pages for r in p.recorded_by)


def recording_roles() -> frozenset[str]:
    """The roles that record a procedure kept as an eCRF form (``recorded_by``), once per
    protocol version: they see the participants and visits whose records they enter."""
    pv = active_version()
    return _recording_roles(pv.digest, pv.text)


@lru_cache(maxsize=8)
def _dictionary(digest: str, text: str):
    from annulus.dictionary import build

    return build(_parsed(digest, text))


def data_dictionary():
    """The data dictionary (``annulus.dictionary.Dictionary``) of the protocol in force, built once
    per protocol version."""
    pv = active_version()
    return _dictionary(pv.digest, pv.text)


def protocol_for(pv: ProtocolVersion) -> Protocol:
    return _parsed(pv.digest, pv.text)


def trial_state() -> str:
    ts = TrialState.objects.filter(id=1).first()
    return ts.state if ts else "setup"


def blind_changes(old: Protocol, new: Protocol) -> list[str]:
    """What a protocol version changes in the blind: which roles are unblinded and who holds
    each key (one readable line each; empty when the blind stays as it is)."""
    out = []
    old_flags = {r.id: r.blinded for r in old.roles}
    new_flags = {r.id: r.blinded for r in new.roles}
    for role in sorted(set(old_flags) | set(new_flags)):
        before, after = old_flags.get(role, True), new_flags.get(role, True)  # an absent role sees nothing
        if before != after:
            out.append(f"role '{role}' becomes {'blinded' if after else 'unblinded'}")
    for key in ("level1_key_holder", "level2_key_holder"):
        before, after = getattr(old.randomisation, key), getattr(new.randomisation, key)
        if before != after:
            out.append(f"randomisation.{key}: '{before}' -> '{after}'")
    return out


def blind_changes_from_force(new: Protocol) -> list[str]:
    """``blind_changes`` from the version in force to ``new`` (nothing when none is in force)."""
    current = ProtocolVersion.objects.filter(active=True).first()
    return blind_changes(protocol_for(current), new) if current is not None else []
