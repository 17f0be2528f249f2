"""The protocol in force, parsed once per version."""

from __future__ import annotations

from functools import lru_cache

from annulus.protocol import Protocol, parse_protocol

from .models import ProtocolVersion, TrialState


@lru_cache(maxsize=8)
def _parsed(digest: str, text: str) -> Protocol:
    return parse_protocol(text)


def active_version() -> ProtocolVersion:
    pv = ProtocolVersion.objects.filter(active=True).first()
    if pv is None:
        from .services import load_default_protocol

        pv = load_default_protocol()
    return pv


def active_protocol() -> Protocol:
    pv = active_version()
    return _parsed(pv.digest, pv.text)


def protocol_for(pv: ProtocolVersion) -> Protocol:
    return _parsed(pv.digest, pv.text)


def trial_state() -> str:
    ts = TrialState.objects.filter(id=1).first()
    return ts.state if ts else "setup"
