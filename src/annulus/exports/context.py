"""What an export is made of besides its rows: the trial read for it (``source``) and its
context (``build_context``: study, protocol, dictionary, blind, audit-chain head), shared by the
export service and the processes that write a large export in parts (``annulus.exports.parts``)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from datetime import timezone as dt_timezone

from annulus.accounts.permissions import role_of

DRUG_CODE_ITEM = ("transplant", "drug_code_entered")


def source():
    from . import source as module

    return module


def _dictionary_for(user):
    """The data dictionary of the protocol in force, without the drug code entered at the
    transplant unless the user may see drug codes."""
    from annulus.trial.selectors import data_dictionary

    d = data_dictionary()
    if source().may_see_drug_codes(user):
        return d
    form_id, item_id = DRUG_CODE_ITEM
    forms = tuple(dataclasses.replace(f, items=tuple(e for e in f.items if e.item != item_id))
                  if f.id == form_id else f for f in d.forms)
    return type(d)(forms=forms, protocol_version=d.protocol_version)


def _iso(value: datetime) -> str:
    return value.astimezone(dt_timezone.utc).isoformat(timespec="seconds")


def build_context(*, actor, fmt: str, as_of: datetime, created_at: datetime, identifiable: bool, excel_bom: bool,
                  language: str, at_most: str = "arms", transport: bool = True):
    from annulus.interchange.subject import ExportContext
    from annulus.trial.selectors import active_protocol

    src = source()
    protocol = active_protocol()
    count, head = src.chain_at(as_of)
    return ExportContext(
        format=fmt, study_id=protocol.trial.id, registry_number=protocol.trial.registry_number,
        title_en=protocol.trial.title.en, title_zh=protocol.trial.title.zh, protocol=protocol,
        protocol_version=protocol.version, dictionary=_dictionary_for(actor), as_of=_iso(as_of),
        created_at=_iso(created_at), created_by=actor.username, role=role_of(actor) or "",
        blinding=src.blinding_for(actor, at_most), chain_count=count, chain_hash=head, identifiable=identifiable,
        excel_bom=excel_bom, language=language, transport=transport)
