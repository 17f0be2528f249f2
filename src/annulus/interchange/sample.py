"""Synthetic participants for the format writers' tests and the export benchmark (no Django).

``subjects(protocol, n, seed)`` yields ``n`` realistic ``Subject``s lazily: every scheduled visit
attended with every form filled with a value of the item's type within its range or codelist,
one adverse event in three participants, a few missed visits and withdrawals. The same seed
gives the same participants.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone

from .subject import Change, ExportContext, QueryNote, Record, SignatureInfo, Subject, VisitInfo

START = date(2022, 5, 9)


def _value(entry, rng: random.Random, on: date):
    if entry.codelist:
        codes = [c[0] for c in entry.codelist]
        return [rng.choice(codes)] if entry.type == "choice" and entry.item == "serious_criteria" else rng.choice(codes)
    low = entry.min if entry.min is not None else 0
    high = entry.max if entry.max is not None else max(low + 100, 100)
    if entry.type == "integer":
        return rng.randint(int(low), int(high))
    if entry.type == "number":
        return round(rng.uniform(low, high), 1)
    if entry.type == "bool":
        return rng.random() < 0.5
    if entry.type == "date":
        return on.isoformat()
    if entry.type == "datetime":
        return datetime(on.year, on.month, on.day, 2, 30, tzinfo=timezone.utc).isoformat()
    if entry.item.endswith("__unit"):
        return entry.unit or "g/L"
    return f"{entry.label_en} text"


def _record(form, visit: str, on: date, rng: random.Random, **kw) -> Record:
    values = {e.item: _value(e, rng, on) for e in form.items}
    at = datetime(on.year, on.month, on.day, 3, 0, tzinfo=timezone.utc).isoformat()
    first = Change(revision=1, at=at, by="coordinator", by_name="Research Coordinator", reason="", values=dict(values))
    changes = (first,)
    if rng.random() < 0.1 and form.items:
        e = form.items[0]
        corrected = dict(values)
        corrected[e.item] = _value(e, rng, on)
        later = (datetime.fromisoformat(at) + timedelta(days=2)).isoformat()
        changes += (Change(revision=2, at=later, by="coordinator", by_name="Research Coordinator",
                           reason="transcription error corrected", values=corrected),)
        values = corrected
    computed = {"vas_mm": values.get("vas_mm")} if form.id == "vas" else {}
    return Record(visit=visit, form=form.id, values=values, computed=computed, state="complete",
                  collected_at=at, changes=changes, verified=tuple(e.item for e in form.items if e.sdv_critical),
                  **kw)


def subject(protocol, dictionary, index: int, seed: int = 1, *, labels: bool = False) -> Subject:
    rng = random.Random(seed * 1_000_003 + index)
    number = f"{index + 1:03d}"
    consent_on = START + timedelta(days=index % 500)
    lipo_on = consent_on + timedelta(days=7)
    transplant_on = lipo_on + timedelta(days=21)
    records, visits = [], []
    for name in ("prescreening", "consent", "screening", "eligibility"):
        form = dictionary.form(name)
        visit = "" if form.scope == "participant" else "screening"
        records.append(_record(form, visit, consent_on, rng))
    withdrawn = rng.random() < 0.08
    end_at = None
    for v in protocol.schedule.visits:
        anchor = lipo_on if v.anchor == "liposuction" else transplant_on
        target = anchor + timedelta(days=v.offset_days)
        if withdrawn and v.offset_days > 91 and v.anchor == "transplant":
            end_at = end_at or target
            continue
        missed = bool(getattr(v, "follow_up", False)) and rng.random() < 0.04
        shift = 0 if missed else rng.randint(-2, 2)
        on = target + timedelta(days=shift)
        visits.append(VisitInfo(visit=v.id, outcome="missed" if missed else "attended",
                                date=None if missed else on.isoformat(), reason="could not travel" if missed else "",
                                day=None if missed else (on - transplant_on).days, target=target.isoformat(),
                                window="" if missed else "in"))
        if missed:
            continue
        for form_id in v.forms:
            form = dictionary.form(form_id)
            if form is not None:
                records.append(_record(form, v.id, on, rng))
    if rng.random() < 0.33:
        records.append(_record(dictionary.form("adverse_event"), "", transplant_on + timedelta(days=3), rng, record=1))
    end = dictionary.form("end_of_study")
    end_values = None
    if withdrawn:
        end_values = {"status": "withdrawn", "withdrawn_on": end_at.isoformat(), "category": "participant_request",
                      "details": "moved away"}
        records.append(Record(visit="", form=end.id, values=end_values, state="", collected_at=None))
    queries = ()
    if rng.random() < 0.2:
        queries = (QueryNote(id=index + 1, visit="baseline", form="vas", record=1, item="vas_mm", status="open",
                             text="Please confirm the value against the source.", raised_by="monitor",
                             raised_at=datetime(2023, 1, 5, tzinfo=timezone.utc).isoformat()),)
    signature = SignatureInfo(signed_by="investigator", signed_by_name="Principal Investigator",
                              signed_at=datetime(2025, 1, 5, tzinfo=timezone.utc).isoformat(),
                              meaning="I approve the data in this casebook as complete and accurate",
                              content_hash=f"{index:064x}", state="signed") if rng.random() < 0.5 else None
    label = "ABCD"[index % 4] if labels else None
    return Subject(
        subject=f"{protocol.trial.id}-{number}", screening_number=f"S{index + 1:04d}", case_number=number,
        sex=rng.choice("FM"), status="withdrawn" if withdrawn else "in_follow_up", age=rng.randint(18, 60),
        prescreened_on=(consent_on - timedelta(days=3)).isoformat(),
        consented_at=datetime(consent_on.year, consent_on.month, consent_on.day, 1, tzinfo=timezone.utc).isoformat(),
        randomised_at=datetime(lipo_on.year, lipo_on.month, lipo_on.day, 1, tzinfo=timezone.utc).isoformat(),
        liposuction_on=lipo_on.isoformat(),
        transplanted_at=datetime(transplant_on.year, transplant_on.month, transplant_on.day, 2,
                                 tzinfo=timezone.utc).isoformat(),
        eligible=True, end_status="withdrawn" if withdrawn else "", end_date=end_at.isoformat() if end_at else None,
        end_reason="participant_request" if withdrawn else "", group_label=label, visits=tuple(visits),
        records=tuple(records), queries=queries, signature=signature)


def subjects(protocol, dictionary, n: int, seed: int = 1, *, labels: bool = False):
    for i in range(n):
        yield subject(protocol, dictionary, i, seed, labels=labels)


def context(protocol, dictionary, fmt: str, **kw) -> ExportContext:
    """An ``ExportContext`` for tests of a writer."""
    base = dict(format=fmt, study_id=protocol.trial.id, registry_number=protocol.trial.registry_number,
                title_en=protocol.trial.title.en, title_zh=protocol.trial.title.zh, protocol=protocol,
                protocol_version=protocol.version, dictionary=dictionary, as_of="2026-11-30T00:00:00+00:00",
                created_at="2026-11-30T00:00:01+00:00", created_by="statistician", role="statistician",
                blinding="blinded", chain_count=1234, chain_hash="ab" * 32)
    base.update(kw)
    return ExportContext(**base)
