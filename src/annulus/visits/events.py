"""Reads: the events a participant's schedule counts from (the protocol's ``anchors``).

The consent is an event; so is each procedure done at one visit of the schedule. A procedure of
an autologous cell product (``Protocol.page_procedures``) is dated by its own record: the harvest
by the liposuction record of this app, the treatment by the allocation app's record. Any other
procedure is dated by its visit: the day of the visit at which it is done, once that visit is
recorded as attended and the procedure's record form there is complete. Until a procedure is
recorded its date is planned from its timing (``offset_days`` after the event it follows), and
the visits counting from it move with that plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db.models import Min
from django.utils import timezone

from annulus.protocol.schema import CONSENT_ANCHOR
from annulus.trial.selectors import active_protocol

from .models import FormRecord, Liposuction, Visit

DONE = ("complete", "changed")


@dataclass(frozen=True)
class Events:
    """One participant's event dates: ``dates`` (event id -> date, recorded or planned) and
    ``planned`` (the procedures not recorded yet, whether or not a date can be planned)."""

    dates: dict = field(default_factory=dict)
    planned: frozenset = frozenset()

    def get(self, event: str) -> date | None:
        return self.dates.get(event)

    def recorded(self, event: str) -> date | None:
        """The event's date once it has happened (None while it is only planned)."""
        return None if event in self.planned else self.dates.get(event)


def _treatment_dates(participant_ids: list[int]) -> dict[int, date]:
    """The cell product's treatment dates, recorded by the allocation app (read through
    ``selectors``, where the allocation app's reader is looked up)."""
    from . import selectors

    return selectors._transplant_dates(participant_ids)


def _treatment_date(participant_id: int) -> date | None:
    from . import selectors

    return selectors._transplant_date(participant_id)


def _record_visits(protocol) -> set[str]:
    """The visits whose record dates a procedure (not one of the cell product's pages)."""
    return {pv.id for p in protocol.procedure_list
            if p.id not in protocol.page_procedures and (pv := protocol.procedure_visit(p.id)) is not None}


def _complete(protocol, recorded: dict[str, tuple[date, set]]) -> dict[str, date]:
    """Of the procedure visits recorded as attended (visit id -> (date, complete forms)), the
    procedures done: procedure id -> date."""
    out = {}
    for proc in protocol.procedure_list:
        if proc.id in protocol.page_procedures:
            continue
        pv = protocol.procedure_visit(proc.id)
        if pv is None or pv.id not in recorded:
            continue
        day, done = recorded[pv.id]
        form = protocol.procedure_form(proc.id)
        if form is None or form.id not in pv.forms or form.id in done:
            out[proc.id] = day
    return out


def _assemble(protocol, known: dict[str, date]) -> Events:
    """The recorded events plus the planned dates of the procedures not recorded yet."""
    dates = dict(known)
    procedures = [p for p in protocol.procedure_list if protocol.procedure_visit(p.id) is not None
                  or p.id in protocol.page_procedures]
    planned = frozenset(p.id for p in procedures if p.id not in known)
    for _ in range(len(procedures)):  # timings form no cycle: this many rounds reach every one
        for p in procedures:
            if p.id in dates or p.timing is None or dates.get(p.timing.after) is None:
                continue
            dates[p.id] = dates[p.timing.after] + timedelta(days=p.timing.offset_days)
    return Events(dates=dates, planned=planned)


def events_of(participant_id: int, protocol=None) -> Events:
    """The participant's events, from the records a participant's page reads once anyway."""
    from annulus.participants.selectors import consents_of

    from . import selectors
    from .selectors import forms_of, visits_of

    protocol = protocol or active_protocol()
    known: dict[str, date] = {}
    consents = consents_of(participant_id)
    if consents:
        known[CONSENT_ANCHOR] = timezone.localdate(consents[0].consented_at)
    for proc_id, part in protocol.page_procedures.items():
        if part == "harvest":
            day = selectors.liposuction_date(participant_id)
        else:
            day = _treatment_date(participant_id)
        if day is not None:
            known[proc_id] = day
    visit_ids = _record_visits(protocol)
    if visit_ids:
        visits = {v.pk: v for v in visits_of(participant_id)
                  if v.visit_id in visit_ids and v.number == 0 and v.outcome == "attended"}
        recorded = {v.visit_id: (v.visit_date, set()) for v in visits.values()}
        for f in forms_of(participant_id):
            if f.visit_id in visits and f.state in DONE:
                recorded[visits[f.visit_id].visit_id][1].add(f.form_id)
        known.update(_complete(protocol, recorded))
    return _assemble(protocol, known)


def events_of_many(participant_ids: list[int], protocol=None) -> dict[int, Events]:
    """``events_of`` of many participants in a fixed number of queries."""
    protocol = protocol or active_protocol()
    known: dict[int, dict[str, date]] = {pid: {} for pid in participant_ids}
    from annulus.participants.models import Consent

    for pid, first in (Consent.objects.filter(participant_id__in=participant_ids).values("participant_id")
                       .annotate(first=Min("consented_at")).values_list("participant_id", "first")):
        known[pid][CONSENT_ANCHOR] = timezone.localdate(first)
    for proc_id, part in protocol.page_procedures.items():
        if part == "harvest":
            for pid, day in (Liposuction.objects.filter(participant_id__in=participant_ids, superseded=False)
                             .order_by("id").values_list("participant_id", "performed_on")):
                known[pid][proc_id] = day  # the latest record counts
        else:
            for pid, day in _treatment_dates(participant_ids).items():
                known[pid][proc_id] = day
    visit_ids = _record_visits(protocol)
    if visit_ids:
        recorded: dict[int, dict] = {}
        rows = Visit.objects.filter(participant_id__in=participant_ids, visit_id__in=visit_ids, number=0,
                                    outcome="attended").values_list("pk", "participant_id", "visit_id", "visit_date")
        by_pk = {}
        for pk, pid, visit_id, day in rows:
            recorded.setdefault(pid, {})[visit_id] = (day, set())
            by_pk[pk] = (pid, visit_id)
        for visit_pk, form_id in (FormRecord.objects.filter(visit_id__in=list(by_pk), state__in=DONE)
                                  .values_list("visit_id", "form_id")):
            pid, visit_id = by_pk[visit_pk]
            recorded[pid][visit_id][1].add(form_id)
        for pid, rec in recorded.items():
            known[pid].update(_complete(protocol, rec))
    return {pid: _assemble(protocol, known[pid]) for pid in participant_ids}


def window_of(protocol_visit, events: Events) -> tuple[date | None, date | None, date | None]:
    """(target, first day, last day) of the visit from the date of the event it counts from."""
    base = events.get(protocol_visit.anchor)
    if base is None:
        return None, None, None
    target = base + timedelta(days=protocol_visit.offset_days)
    return (target, target - timedelta(days=protocol_visit.window.before_days),
            target + timedelta(days=protocol_visit.window.after_days))


def chain_root(protocol, event: str) -> str:
    """The first event of the chain of timings the event counts from (the consent, or a
    procedure without timing: the schedule's day 0)."""
    seen = set()
    while event not in seen:
        seen.add(event)
        proc = protocol.procedure(event)
        if proc is None or proc.timing is None:
            return event
        event = proc.timing.after
    return event
