"""Reads: the schedule derived from the protocol and the anchor dates, visit and form states,
the overdue lists and the reminder call list. No allocation data is read here except the
transplant date, which is not blinded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

from django.db.models import F
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from annulus.errors import RuleViolation
from annulus.participants import states as pstates
from annulus.participants.models import Participant
from annulus.participants.selectors import scoped
from annulus.protocol.schema import CONSENT_ANCHOR
from annulus.trial.selectors import active_protocol, active_version, read_once

from . import crf
from .events import Events, events_of, events_of_many
from .events import window_of as event_window
from .models import (HARVEST_RECORD, UNSCHEDULED, Appointment, FormRecord, Liposuction, ReminderCall, Visit,
                     parse_visit_key)

# A visit is "due" when its window opens within this many days.
DUE_DAYS = 7
# After the window closes a visit stays "overdue" (it can still be done, out of window) for this
# many days, but never beyond the opening of the next visit's window; then it is "missed".
GRACE_DAYS = 14
# The planned transplantation before it happens: the protocol's target for the transplant visit.
PLANNED_TRANSPLANT_DAYS = 21

# Forms submitted late stay on the overdue list this long (for follow-up with the site staff).
LATE_HISTORY_DAYS = 90

STATE_LABELS = {
    "not_scheduled": _("not yet scheduled"),
    "upcoming": _("upcoming"),
    "due": _("due"),
    "open": _("open (in window)"),
    "overdue": _("overdue"),
    "missed": _("missed"),
    "in_progress": _("data entry"),
    "completed": _("completed"),
    "completed_out_of_window": _("completed out of window"),
    "cancelled": _("not applicable"),
}
# CSS class per state (the stylesheet colours due/open/overdue/missed/completed...)
STATE_CSS = {"in_progress": "draft", "not_scheduled": "", "upcoming": "", "cancelled": ""}
FORM_STATE_LABELS = {
    "not_started": _("not started"),
    "draft": _("draft"),
    "complete": _("complete"),
    "changed": _("changed after completion"),
}


def page_record(protocol, part: str) -> tuple[str, str] | None:
    """(visit, form) of the page procedure ``part``'s record: the visit at which the schedule does
    the procedure and the schedule's form that records it (the procedure's id for either when the
    schedule has none: a file written before ``procedures:`` names the form after it), or None."""
    pid = protocol.page_procedure(part)
    if pid is None:
        return None
    visit, form = protocol.procedure_visit(pid), protocol.procedure_form(pid)
    return (visit.id if visit is not None else pid, form.id if form is not None else pid)


def liposuction_date(participant_id: int) -> date | None:
    """Day 0: the date of the participant's liposuction, or None before it is recorded."""
    lipo = current_liposuction(participant_id)
    return lipo.performed_on if lipo is not None else None


def visits_of(participant_id: int) -> list[Visit]:
    """The participant's recorded visits (with who created them) in the order entered; read
    once per page."""
    return read_once(("visits", int(participant_id)), lambda: list(
        Visit.objects.filter(participant_id=participant_id).select_related("created_by").order_by("id")))


def forms_of(participant_id: int) -> list[FormRecord]:
    """The participant's eCRF forms in the order created; read once per page."""
    return read_once(("forms", int(participant_id)), lambda: list(
        FormRecord.objects.filter(participant_id=participant_id).order_by("id")))


def current_liposuction(participant_id: int) -> Liposuction | None:
    return read_once(("Liposuction", int(participant_id)), lambda: Liposuction.objects.filter(
        participant_id=participant_id, superseded=False).select_related("recorded_by").order_by("-id").first())


def _transplant_date(participant_id: int) -> date | None:
    """The transplantation date recorded by the allocation app (None until it is recorded, or
    while that app does not provide it)."""
    try:
        from annulus.allocation.selectors import transplant_date
    except (ImportError, AttributeError):
        return None
    return transplant_date(participant_id)


def transplant_date(participant_id: int) -> date | None:
    return _transplant_date(participant_id)


def _transplant_dates(participant_ids: list[int]) -> dict[int, date]:
    """The recorded transplantation dates of many participants in one query."""
    try:
        from annulus.allocation.selectors import transplant_dates
    except (ImportError, AttributeError):
        return {}
    return transplant_dates(participant_ids)


@dataclass
class Slot:
    """One visit of one participant's schedule."""

    visit_id: str
    key: str
    name: str
    follow_up: bool
    procedure: str | None
    forms: list[str]
    target: date | None
    window_start: date | None
    window_end: date | None
    planned: bool  # dates rest on the planned, not the recorded, transplantation
    state: str = "upcoming"
    record: Visit | None = None
    form_states: dict = field(default_factory=dict)
    done_on: date | None = None
    missed_after: date | None = None
    appointment: date | None = None  # the booked date, while the visit is still to come

    @property
    def planned_on(self) -> date | None:
        """The day the participant is expected: the booked date, else the target."""
        return self.appointment or self.target

    @property
    def state_label(self):
        return STATE_LABELS.get(self.state, self.state)

    @property
    def css(self) -> str:
        return STATE_CSS.get(self.state, self.state)

    @property
    def in_window(self) -> bool | None:
        if self.done_on is None or self.window_start is None:
            return None
        return self.window_start <= self.done_on <= self.window_end


def visit_state(*, today: date, window_start: date | None, window_end: date | None, next_start: date | None,
                done_on: date | None, complete: bool, started: bool, missed: bool) -> tuple[str, date | None]:
    """The state of one visit on ``today`` and the day after which it counts as missed."""
    missed_after = None
    if window_end is not None:
        missed_after = window_end + timedelta(days=GRACE_DAYS)
        if next_start is not None and next_start - timedelta(days=1) < missed_after:
            missed_after = max(window_end, next_start - timedelta(days=1))
    if missed:
        return "missed", missed_after
    if started:
        if not complete:
            return "in_progress", missed_after
        in_window = window_start is not None and window_start <= done_on <= window_end
        return ("completed" if in_window else "completed_out_of_window"), missed_after
    if window_start is None:
        return "not_scheduled", None
    if today < window_start - timedelta(days=DUE_DAYS):
        return "upcoming", missed_after
    if today < window_start:
        return "due", missed_after
    if today <= window_end:
        return "open", missed_after
    if today <= missed_after:
        return "overdue", missed_after
    return "missed", missed_after


def anchors(participant_id: int) -> tuple[date | None, date | None, bool]:
    """(liposuction date, transplant date, planned?) - the transplant date is the recorded one,
    or liposuction + 21 days while it is only planned."""
    lipo = liposuction_date(participant_id)
    tx = _transplant_date(participant_id)
    if tx is not None:
        return lipo, tx, False
    if lipo is not None:
        return lipo, lipo + timedelta(days=PLANNED_TRANSPLANT_DAYS), True
    return None, None, True


def window_of(protocol_visit, lipo: date | None, tx: date | None, protocol=None) -> tuple[date | None, date | None, date | None]:
    """``events.window_of`` from the cell product's two dates, the harvest (day 0) and the
    treatment (recorded or planned), of ``protocol`` (else the one in force)."""
    parts = {part: proc for proc, part in (protocol or active_protocol()).page_procedures.items()}
    dates = {parts[k]: d for k, d in (("harvest", lipo), ("treatment", tx)) if k in parts and d is not None}
    return event_window(protocol_visit, Events(dates=dates))


def events_from(protocol, known: dict, attended: dict) -> Events:
    """``events_of``'s rule on records a caller read itself (an export, as they stood at its as-of
    time): ``known`` the event dates it has (the consent, the cell product's pages: event id ->
    date), ``attended`` the procedure visits recorded as attended (visit id -> (visit date, the ids
    of its complete forms)). The procedures done are dated by their visits, the others planned."""
    from .events import _assemble, _complete

    dates = dict(known)
    dates.update(_complete(protocol, attended))
    return _assemble(protocol, dates)


def schedule(participant: Participant, *, today: date | None = None, visits=None, forms=None,
             appointments=None, events: Events | None = None, protocol=None) -> list[Slot]:
    """Every protocol visit with its target, window and state, then the unscheduled visits.
    Lists across participants pass what they read in bulk (visits, forms, appointments, the
    ``events`` and the protocol), so that a schedule then costs no query."""
    today = today or timezone.localdate()
    protocol = protocol or active_protocol()
    ev = events if events is not None else events_of(participant.pk, protocol)
    pages = protocol.page_procedures
    treatment = protocol.treatment_procedure.id if protocol.treatment_procedure else None
    treated_on = ev.recorded(treatment) if treatment else None
    if visits is None:
        visits = visits_of(participant.pk)
    if forms is None:
        forms = forms_of(participant.pk)
    by_visit: dict[int, dict[str, str]] = {}
    for f in forms:
        by_visit.setdefault(f.visit_id, {})[f.form_id] = f.state
    records = {(v.visit_id, v.number): v for v in visits}
    if appointments is None:
        appointments = list(Appointment.objects.filter(participant=participant, superseded=False))
    booked = {a.visit_id: a.on for a in appointments}
    ended = participant.status in (pstates.WITHDRAWN, pstates.LOST, pstates.SCREEN_FAILED)
    slots: list[Slot] = []
    pvisits = protocol.schedule.visits
    windows = [event_window(pv, ev) for pv in pvisits]
    lang = get_language()
    for i, pv in enumerate(pvisits):
        target, start, end = windows[i]
        next_start = next((w[1] for w in windows[i + 1:] if w[1] is not None and (w[1] > (end or w[1]))), None)
        slot = Slot(visit_id=pv.id, key=pv.id, name=pv.name.get(lang), follow_up=pv.follow_up,
                    procedure=pv.procedure, forms=list(pv.forms), target=target, window_start=start,
                    window_end=end, planned=_planned(pv, ev))
        if pv.procedure in pages:
            # recorded on the cell product's own pages: done when its record exists
            done = ev.recorded(pv.procedure)
            slot.done_on = done
            if pages[pv.procedure] == "harvest":
                slot.state, slot.missed_after = ("completed", None) if done else (
                    "not_scheduled" if not ended else "cancelled", None)
            else:
                slot.state, slot.missed_after = visit_state(
                    today=today, window_start=start, window_end=end, next_start=None, done_on=done,
                    complete=done is not None, started=done is not None, missed=False)
                if slot.state == "missed":
                    slot.state = "overdue"  # a late treatment is still the treatment
            slot.form_states = {f: "complete" if done else "not_started" for f in pv.forms}
        else:
            rec = records.get((pv.id, 0))
            slot.record = rec
            fstates = by_visit.get(rec.pk, {}) if rec else {}
            expected = rec.forms if rec else pv.forms
            slot.form_states = {f: fstates.get(f, "not_started") for f in expected}
            complete = bool(rec) and all(s in ("complete", "changed") for s in slot.form_states.values())
            slot.done_on = rec.visit_date if rec else None
            if pv.baseline and pv.procedure is None and treated_on is not None and not rec:
                # baseline is by definition before the treatment: once that is past it cannot be done
                slot.state, slot.missed_after = "missed", treated_on
            else:
                slot.state, slot.missed_after = visit_state(
                    today=today, window_start=start, window_end=end, next_start=next_start,
                    done_on=slot.done_on, complete=complete, started=bool(rec and rec.outcome == "attended"),
                    missed=bool(rec and rec.outcome == "missed"))
        if ended and slot.state in ("upcoming", "due", "open", "overdue", "not_scheduled"):
            slot.state = "cancelled"
        if slot.state in ("upcoming", "due", "open", "overdue"):
            slot.appointment = booked.get(pv.id)
        slots.append(slot)
    for v in sorted((v for v in visits if v.visit_id == UNSCHEDULED), key=lambda v: v.number):
        fstates = by_visit.get(v.pk, {})
        fs = {f: fstates.get(f, "not_started") for f in v.forms}
        complete = all(s in ("complete", "changed") for s in fs.values())
        slots.append(Slot(visit_id=UNSCHEDULED, key=v.key, name=_("Unscheduled") + f" {v.number}", follow_up=True,
                          procedure=None, forms=list(v.forms), target=v.visit_date, window_start=v.visit_date,
                          window_end=v.visit_date, planned=False, record=v, form_states=fs, done_on=v.visit_date,
                          state="completed" if complete else "in_progress"))
    return slots


def slot_for(participant: Participant, key: str, *, today: date | None = None) -> Slot | None:
    return next((s for s in schedule(participant, today=today) if s.key == key), None)


def get_visit(participant_id: int, key: str) -> Visit | None:
    visit_id, number = parse_visit_key(key)
    return Visit.objects.filter(participant_id=participant_id, visit_id=visit_id, number=number).first()


def form_records(visit: Visit) -> dict[str, FormRecord]:
    return {f.form_id: f for f in FormRecord.objects.filter(visit=visit)}


def baseline_score(protocol, participant_id: int, visit_id: str, form_id: str) -> float | None:
    """The score a form's score at ``visit_id`` is compared with: the same form completed at the
    protocol's baseline visit (``baseline: true``). None at the baseline visit itself, for a form
    whose instrument reports no change from baseline, or while the baseline form is not complete."""
    from . import crf

    base = protocol.schedule.baseline_visit
    if base is None or visit_id == base.id or not crf.has_change_from_baseline(protocol, form_id):
        return None
    row = (FormRecord.objects.filter(participant_id=participant_id, form_id=form_id, visit__visit_id=base.id,
                                     state__in=["complete", "changed"]).values_list("computed", flat=True).first())
    return row.get("score") if row else None


# ---- lists across participants ----------------------------------------------------------------

ACTIVE = (pstates.RANDOMISED, pstates.TREATED, pstates.IN_FOLLOW_UP)


class _FormState(NamedTuple):
    """What a schedule reads of a form record (read in bulk without building model objects)."""

    visit_id: int
    form_id: str
    state: str


def active_schedules(*, today: date | None = None, people=None) -> list[tuple[Participant, list[Slot]]]:
    """Schedules of every participant who still has visits to come (or of those in ``people``, a
    query of participants), in a fixed number of queries whatever the number of participants
    (the schedule itself is derived, not read)."""
    today = today or timezone.localdate()
    protocol = active_protocol()
    if people is None:
        people = Participant.objects.filter(status__in=ACTIVE)
    people = list(people.order_by("case_number"))
    ids = [p.pk for p in people]
    dated = events_of_many(ids, protocol)
    visits: dict[int, list] = {}
    for v in Visit.objects.filter(participant_id__in=ids):
        visits.setdefault(v.participant_id, []).append(v)
    forms: dict[int, list] = {}
    for pid, *form in (FormRecord.objects.filter(participant_id__in=ids)
                       .values_list("participant_id", "visit_id", "form_id", "state")):
        forms.setdefault(pid, []).append(_FormState(*form))
    booked: dict[int, list] = {}
    for a in Appointment.objects.filter(participant_id__in=ids, superseded=False):
        booked.setdefault(a.participant_id, []).append(a)
    return [(p, schedule(p, today=today, visits=visits.get(p.pk, []), forms=forms.get(p.pk, []),
                         appointments=booked.get(p.pk, []), events=dated[p.pk], protocol=protocol))
            for p in people]


def reminder_day(day: date, protocol=None) -> date:
    """The day of the visits whose reminder calls are made on ``day``."""
    protocol = protocol or active_protocol()
    return day + timedelta(days=protocol.schedule.reminder_days_before)


def _anchor_days(protocol, today: date, visit_on: date | None) -> list[tuple[str, str, list[tuple[date, date]]]]:
    """(visit id, anchor, ranges of anchor dates) for each visit of the schedule that can be on
    today's lists: the anchor dates for which the visit's target is ``visit_on`` or its window
    closed at most GRACE_DAYS before ``today`` (``visit_state`` never says "overdue" later)."""
    out = []
    for pv in protocol.schedule.visits:
        if not _dated(pv, protocol):
            continue  # the cell product's procedures: see panel_schedules
        offset = timedelta(days=pv.offset_days)
        after = offset + timedelta(days=pv.window.after_days)
        ranges = [(today - timedelta(days=GRACE_DAYS) - after, today - timedelta(days=1) - after)]
        if visit_on is not None:
            ranges.append((visit_on - offset, visit_on - offset))
        out.append((pv.id, pv.anchor, ranges))
    return out


def panel_schedules(today: date, *, calls: bool = True, user=None) -> list[tuple[Participant, list[Slot]]]:
    """The schedules that can put a visit on today's call list (when ``calls``) or on the overdue
    list, chosen in SQL: ``active_schedules`` of only the participants with a visit not yet
    recorded (attended or missed) whose target is the reminder day or whose window closed within
    GRACE_DAYS, by their anchor dates; with an appointment on the reminder day; or whose
    transplantation is not recorded yet (their planned dates move, and a late transplantation
    stays overdue; the liposuction is never on either list). A visit with a record is on neither
    list, so the lists built from these equal those built from every active participant's
    schedule, and the number of schedules derived follows the lists, not the trial. With
    ``user``, only the participants of the sites that user may see."""
    from django.db.models.expressions import RawSQL

    try:
        from annulus.allocation.selectors import transplanted_ids  # noqa: F401
    except (ImportError, AttributeError):
        return active_schedules(today=today, people=scoped(user, Participant.objects.filter(status__in=ACTIVE), ""))
    protocol = active_protocol()
    visit_on = reminder_day(today, protocol) if calls else None
    # the choice is one fixed query for the day: it is put together once (building it costs more
    # than running it) and run as it is on every page of that day
    sql, params = _panel_people_sql(active_version().digest, today, visit_on)
    return active_schedules(today=today, people=scoped(user, Participant.objects.filter(pk__in=RawSQL(sql, params)), ""))


def _planned(pv, ev: Events) -> bool:
    """Whether the protocol visit's dates rest on a procedure only planned (not recorded yet)."""
    return pv.anchor in ev.planned or pv.procedure in ev.planned


def open_window_slots(today: date, *, people=None) -> list[tuple[Participant, Slot]]:
    """The scheduled visits (not procedures) whose window holds ``today``, of the participants of
    ``open_window_people``, in case-number order: each a ``Slot`` with the windows of
    ``schedule`` and its record (None when not recorded), without the form states and the state
    (left empty), which would need every form of those participants. Three queries."""
    protocol = active_protocol()
    chosen = list(open_window_people(today, people=people).order_by("case_number"))
    ids = [p.pk for p in chosen]
    dated = events_of_many(ids, protocol)
    records = {(v.participant_id, v.visit_id): v for v in Visit.objects.filter(participant_id__in=ids, number=0)}
    lang = get_language()
    out = []
    for p in chosen:
        ev = dated[p.pk]
        for pv in protocol.schedule.visits:
            if pv.procedure in protocol.page_procedures:
                continue
            target, start, end = event_window(pv, ev)
            if start is None or not start <= today <= end:
                continue
            out.append((p, Slot(visit_id=pv.id, key=pv.id, name=pv.name.get(lang), follow_up=pv.follow_up,
                                procedure=None, forms=list(pv.forms), target=target, window_start=start,
                                window_end=end, planned=_planned(pv, ev), state="",
                                record=records.get((p.pk, pv.id)))))
    return out


def open_window_people(today: date, *, people=None):
    """The participants (of ``people``, a query of participants) who may
    have a scheduled visit whose window is open on ``today``, chosen in SQL: their day 0 or
    transplantation date puts ``today`` inside a visit's window, or their transplantation is not
    recorded yet (its date is only planned, so their windows move). The others have no window
    open today, so a list of open windows built from these equals one built from every schedule,
    and its cost follows the list, not the trial."""
    from django.db.models.expressions import RawSQL

    try:
        from annulus.allocation.selectors import transplanted_ids  # noqa: F401
    except (ImportError, AttributeError):
        return Participant.objects.filter(status__in=ACTIVE) if people is None else people
    sql, params = _open_window_sql(active_version().digest, today)
    chosen = Participant.objects.filter(pk__in=RawSQL(sql, params))
    return chosen if people is None else people.filter(pk__in=chosen)


@lru_cache(maxsize=16)
def _open_window_sql(digest: str, today: date) -> tuple[str, tuple]:
    protocol = active_protocol()
    wanted = _not_yet_done(protocol)
    for pv in protocol.schedule.visits:
        if _dated(pv, protocol):
            # the window [anchor + offset - before, anchor + offset + after] holds today
            wanted |= _anchored(protocol, pv.anchor, [(today - timedelta(days=pv.offset_days + pv.window.after_days),
                                                       today - timedelta(days=pv.offset_days - pv.window.before_days))])
    sql, params = Participant.objects.filter(wanted, status__in=ACTIVE).values("pk").query.sql_with_params()
    return sql, tuple(params)


def _dated(pv, protocol) -> bool:
    """Whether the protocol visit is a visit (not one of the cell product's procedures, which
    are on their own pages) dated from an event of the schedule."""
    return pv.procedure not in protocol.page_procedures and pv.anchor in protocol.anchors


def _recorded_ids(protocol, event: str, ranges=None):
    """A subquery of the ids of participants whose event (the consent or a procedure) is
    recorded, on a day of one of ``ranges`` ((first, last) local dates) when given. It may hold
    a few more (a procedure visit attended whose record is not complete yet): the lists it
    chooses for derive each schedule afterwards."""
    from django.db.models import Q

    from annulus.participants.models import Consent

    def on(name):
        q = Q(pk__in=[])
        for first, last in ranges:
            q |= Q(**{f"{name}__gte": first, f"{name}__lte": last})
        return q

    part = protocol.page_procedures.get(event)
    if event == CONSENT_ANCHOR:
        rows = Consent.objects.all()
        return (rows.filter(on("consented_at__date")) if ranges is not None else rows).values("participant_id")
    if part == "treatment":
        from annulus.allocation.selectors import transplanted_ids

        return transplanted_ids(ranges)
    if part == "harvest":
        rows = Liposuction.objects.filter(superseded=False)
        return (rows.filter(on("performed_on")) if ranges is not None else rows).values("participant_id")
    pv = protocol.procedure_visit(event)
    rows = Visit.objects.filter(visit_id=pv.id if pv else "", number=0, outcome="attended")
    return (rows.filter(on("visit_date")) if ranges is not None else rows).values("participant_id")


def _not_yet_done(protocol):
    """The participants (a condition on them) with a timed procedure not recorded yet: their
    planned dates move, so every list considers them."""
    from django.db.models import Q

    wanted = Q(pk__in=[])
    for proc in protocol.procedure_list:
        if proc.timing is not None and proc.id in protocol.anchors:
            wanted |= ~Q(pk__in=_recorded_ids(protocol, proc.id))
    return wanted


def _anchored(protocol, anchor: str, ranges):
    """The participants (a condition on them) whose anchor date falls in one of ``ranges``
    ((first, last) local dates)."""
    from django.db.models import Q

    return Q(pk__in=_recorded_ids(protocol, anchor, ranges))


@lru_cache(maxsize=16)
def _panel_people_sql(digest: str, today: date, visit_on: date | None) -> tuple[str, tuple]:
    """The SQL of ``panel_schedules``' choice of participants (their ids), for the protocol
    version ``digest`` on ``today``."""
    from django.db.models import Q

    protocol = active_protocol()
    wanted = _not_yet_done(protocol)
    for visit_id, anchor, ranges in _anchor_days(protocol, today, visit_on):
        on_day = _anchored(protocol, anchor, ranges)
        recorded = Visit.objects.filter(visit_id=visit_id, number=0).values("participant_id")
        wanted |= on_day & ~Q(pk__in=recorded)
    if visit_on is not None:
        wanted |= Q(pk__in=Appointment.objects.filter(on=visit_on, superseded=False).values("participant_id"))
    sql, params = Participant.objects.filter(wanted, status__in=ACTIVE).values("pk").query.sql_with_params()
    return sql, tuple(params)


def call_list(day: date, *, schedules=None, user=None) -> list[dict]:
    """Participants to phone on ``day``: those expected ``reminder_days_before`` days later (on
    the booked date, or on the target date when none is booked) whose visit is not yet done (P-4.6)."""
    visit_on = reminder_day(day)
    # the harvest's day is set by the site when it is done: no reminder call
    harvest = active_protocol().page_procedure("harvest")
    calls = {}
    for c in ReminderCall.objects.filter(visit_on=visit_on).select_related("called_by").order_by("id"):
        calls[(c.participant_id, c.visit_id)] = c
    rows = []
    for p, slots in (panel_schedules(day, user=user) if schedules is None else schedules):
        for s in slots:
            if s.planned_on != visit_on or (harvest is not None and s.procedure == harvest) or s.record is not None:
                continue
            if s.state in ("completed", "completed_out_of_window", "missed", "cancelled"):
                continue
            rows.append({"participant": p, "slot": s, "visit_on": visit_on, "call": calls.get((p.pk, s.visit_id))})
    return _with_questionnaires(rows)


def _patient_reported(protocol, form_id: str) -> bool:
    """Whether the participant answers the form (its instrument says so)."""
    try:
        return crf.spec_for(protocol, form_id).patient_reported
    except RuleViolation:
        return False


def _with_questionnaires(rows: list[dict]) -> list[dict]:
    """Each call-list row with its visit's questionnaire status (``questionnaire``: completed by
    the participant, link issued not completed, no link) when participant self-entry is installed."""
    from django.apps import apps

    if not rows or not apps.is_installed("annulus.selfentry"):
        return rows
    from annulus.selfentry.selectors import questionnaire_statuses

    protocol = active_protocol()
    statuses = questionnaire_statuses([(r["participant"].pk, r["slot"].key) for r in rows])
    for r in rows:
        if any(_patient_reported(protocol, f) for f in r["slot"].forms):
            r["questionnaire"] = statuses[(r["participant"].pk, r["slot"].key)]
    return rows


def overdue(*, now: datetime | None = None, schedules=None, user=None) -> dict:
    """Everything late (P-4.7, X-4.8): visits past their window, forms not submitted within
    ``submission_days`` of collection, visits not complete within ``completion_days``, and the
    forms that were submitted late. ``schedules``: those of ``panel_schedules`` for the same day,
    when the caller has them already."""
    protocol = active_protocol()
    now = now or timezone.now()
    today = timezone.localdate(now)
    sub = timedelta(days=protocol.schedule.submission_days)
    comp = timedelta(days=protocol.schedule.completion_days)
    late_visits = overdue_visits(today, schedules=schedules, user=user)
    lists = _late_records(protocol, now, user)
    unsubmitted = [
        {"form": f, "participant": f.participant, "due": f.collected_at + sub,
         "days": (now - f.collected_at - sub).days}
        for f in lists["unsubmitted"].select_related("participant", "visit").order_by("collected_at")
    ]
    incomplete = []
    for v in lists["incomplete"].select_related("participant").order_by("visit_date"):
        incomplete.append({"visit": v, "participant": v.participant, "due": v.visit_date + comp,
                           "days": (today - v.visit_date - comp).days})
    late_submitted = [
        {"form": f, "participant": f.participant, "late_by": f.submitted_at - f.collected_at - sub}
        for f in lists["late_submitted"].select_related("participant", "visit").order_by("-submitted_at")
    ]
    return {"visits": late_visits, "unsubmitted": unsubmitted, "incomplete": incomplete,
            "late_submitted": late_submitted, "submission_days": protocol.schedule.submission_days,
            "completion_days": protocol.schedule.completion_days, "late_history_days": LATE_HISTORY_DAYS}


def overdue_visits(today: date, *, schedules=None, user=None) -> list[dict]:
    """The visits past their window on ``today`` (``schedules``: those of ``panel_schedules``)."""
    rows = []
    for p, slots in (panel_schedules(today, calls=False, user=user) if schedules is None else schedules):
        for s in slots:
            if s.state == "overdue":
                rows.append({"participant": p, "slot": s, "days": (today - s.window_end).days})
    return rows


def _late_records(protocol, now: datetime, user=None) -> dict:
    """The queries of ``overdue``'s lists of records: forms not submitted in time, visits not
    complete in time, forms submitted late within LATE_HISTORY_DAYS (of ``user``'s sites)."""
    today = timezone.localdate(now)
    sub = timedelta(days=protocol.schedule.submission_days)
    comp = timedelta(days=protocol.schedule.completion_days)
    return {
        "unsubmitted": scoped(user, FormRecord.objects).filter(submitted_at__isnull=True, collected_at__lt=now - sub),
        "incomplete": scoped(user, Visit.objects).filter(outcome="attended", completed_at__isnull=True,
                                                         visit_date__lt=today - comp),
        "late_submitted": scoped(user, FormRecord.objects).filter(submitted_at__gt=F("collected_at") + sub,
                                                    submitted_at__gte=now - timedelta(days=LATE_HISTORY_DAYS)),
    }


def late_record_counts(*, now: datetime | None = None, user=None) -> dict[str, int]:
    """The lengths of ``overdue``'s lists of records, counted in SQL (for the dashboard)."""
    now = now or timezone.now()
    return {name: rows.count() for name, rows in _late_records(active_protocol(), now, user).items()}


def form_name(protocol, form_id: str) -> str:
    f = next((f for f in protocol.schedule.forms if f.id == form_id), None)
    return f.name.get(get_language()) if f else form_id


# the keys of a form's audit events that are not items
FORM_EVENT_KEYS = ("visit", "form", "revision", "state", "collected_at", "source")


def audit_mismatches(participant_ids) -> list[str]:
    """Each liposuction record, visit and eCRF form of ``participant_ids`` whose values in the
    database differ from the last values the audit trail records for it, or which the trail does
    not know, or which the trail knows and the database no longer holds: one line each (``annulus
    audit verify --data``); and the appointments and reminder calls."""
    return (liposuction_mismatches(participant_ids) + visit_mismatches(participant_ids)
            + form_mismatches(participant_ids) + planning_mismatches(participant_ids))


LIPOSUCTION_FIELDS = ("performed_on", "fat_volume_ml", "anaesthesia", "observation_hours", "complications")


def liposuction_mismatches(participant_ids) -> list[str]:
    """The liposuction records against the trail. A correction adds a row and its event records
    only the fields that changed, so the trail is replayed per participant: each row holds the
    values as they stood after its own event, with the event's reason as its change reason, and
    every row but the one of the participant's last event is superseded."""
    from annulus.audit.selectors import differences, new_value, screening_numbers, trail

    ids = list(participant_ids)
    numbers = screening_numbers(ids)
    state: dict[int, dict] = {}
    after: dict[str, dict] = {}  # row id -> the values after its event
    last: dict[int, str] = {}
    for _otype, object_id, pid, changes, reason in trail([HARVEST_RECORD], ids):
        mine = state.setdefault(pid, {})
        for name, change in changes.items():
            mine[name] = new_value(change)
        after[object_id] = {**mine, "change_reason": reason, "participant": pid}
        last[pid] = object_id
    out = []
    rows = Liposuction.objects.filter(participant_id__in=ids).order_by("pk").values(
        "pk", "participant_id", "superseded", "change_reason", *LIPOSUCTION_FIELDS)
    for row in rows:
        pid = row["participant_id"]
        where = f"participant {numbers.get(pid, pid)}, liposuction record {row['pk']}"
        audited = after.pop(str(row["pk"]), None)
        if audited is None or audited["participant"] != pid:
            out.append(f"{where}: in the database but never in the audit trail")
            continue
        out += differences(where, [(n, row[n], audited.get(n)) for n in LIPOSUCTION_FIELDS] + [
            ("change_reason", row["change_reason"], audited["change_reason"]),
            ("superseded", row["superseded"], last.get(pid) != str(row["pk"]))])
    out += [f"liposuction record {pk}: in the audit trail but no longer in the database" for pk in after]
    return out


def visit_mismatches(participant_ids) -> list[str]:
    """The visits against the trail: the visit (its key), its date (with corrections), attended or
    missed, the forms of an unscheduled visit, and when it was complete."""
    from annulus.audit.selectors import differences, replayed, screening_numbers

    ids = list(participant_ids)
    trail = replayed("visit", ids)
    numbers = screening_numbers(ids)
    out = []
    rows = Visit.objects.filter(participant_id__in=ids).order_by("pk").values_list(
        "pk", "participant_id", "visit_id", "number", "visit_date", "outcome", "forms", "completed_at")
    for pk, pid, visit_id, number, visit_date, outcome, forms, completed_at in rows:
        key = f"u{number}" if visit_id == UNSCHEDULED else visit_id  # as ``Visit.key``
        where = f"participant {numbers.get(pid, pid)}, visit {key}"
        audited = trail.pop(str(pk), None)
        if audited is None:
            out.append(f"{where}: in the database but never in the audit trail")
            continue
        pairs = [("visit", key, audited.get("visit")), ("visit_date", visit_date, audited.get("visit_date")),
                 # an unscheduled visit is always attended: its event does not say so
                 ("outcome", outcome, audited.get("outcome", "attended" if visit_id == UNSCHEDULED else None)),
                 ("completed_at", completed_at, audited.get("completed_at"))]
        if visit_id == UNSCHEDULED or "forms" in audited:  # a scheduled visit's forms are the protocol's
            pairs.append(("forms", forms, audited.get("forms")))
        out += differences(where, pairs)
    out += [f"visit {pk}: in the audit trail but no longer in the database" for pk in trail]
    return out


def form_mismatches(participant_ids) -> list[str]:
    """The eCRF forms against the trail (their items, state, revision and collection time)."""
    from annulus.audit.selectors import replayed, same_value

    trail = replayed("crf_form", participant_ids)
    numbers = dict(Participant.objects.filter(pk__in=list(participant_ids)).values_list("pk", "screening_number"))
    out = []
    rows = (FormRecord.objects.filter(participant_id__in=list(participant_ids)).order_by("pk")
            .values_list("pk", "participant_id", "visit__visit_id", "visit__number", "form_id", "items", "state",
                         "revision", "collected_at"))
    for pk, pid, visit_id, number, form_id, items, state, revision, collected_at in rows:
        key = f"u{number}" if visit_id == UNSCHEDULED else visit_id  # as ``Visit.key``
        where = f"participant {numbers.get(pid, pid)}, visit {key}, form {form_id}"
        audited = trail.pop(str(pk), None)
        if audited is None:
            out.append(f"{where}: in the database but never in the audit trail")
            continue
        names = sorted((set(items) | set(audited)) - set(FORM_EVENT_KEYS))
        differ = [n for n in names if not same_value(items.get(n), audited.get(n))]
        for n, stored in (("state", state), ("revision", revision), ("collected_at", collected_at)):
            if n in audited and not same_value(stored, audited[n]):
                differ.append(n)
        for n in differ[:3]:
            stored = items.get(n) if n not in FORM_EVENT_KEYS else {"state": state, "revision": revision,
                                                                   "collected_at": collected_at}[n]
            out.append(f"{where}: {n} is {stored!r} in the database but {audited.get(n)!r} in the audit trail")
    for pk in trail:
        out.append(f"form record {pk}: in the audit trail but no longer in the database")
    return out


def planning_mismatches(participant_ids) -> list[str]:
    """The appointments and reminder calls of ``participant_ids`` against the trail. An appointment:
    the visit, the day booked, who booked it and when (its event carries the booking's own time),
    and superseded unless it is the participant's last booking of that visit. A reminder call: the
    visit, its day, the outcome, the note, who called and when (the event's time)."""
    from annulus.audit.selectors import against_trail, new_value, recorded, screening_numbers

    from .models import Appointment, ReminderCall

    ids = list(participant_ids)
    numbers = screening_numbers(ids)
    booked: dict[str, dict] = {}
    last: dict[tuple[int, str], str] = {}
    calls: dict[str, dict] = {}
    for e in recorded(["appointment", "reminder_call"], ids):
        mine = {name: new_value(change) for name, change in e.changes.items()}
        mine.update(participant=e.participant_id, actor=e.actor, at=e.timestamp)
        if e.object_type == "appointment":
            booked[e.object_id] = mine
            last[(e.participant_id, str(mine.get("visit")))] = e.object_id
        else:
            calls[e.object_id] = mine
    rows = Appointment.objects.filter(participant_id__in=ids).order_by("pk").values_list(
        "pk", "participant_id", "visit_id", "on", "superseded", "booked_by__username", "booked_at")
    out = against_trail(rows, booked, what="appointment", participant=lambda r: r[1],
                        where=lambda r: f"participant {numbers.get(r[1], r[1])}, appointment {r[0]}",
                        pairs=lambda r, a: [("visit", r[2], a.get("visit")), ("on", r[3], a.get("on")),
                                            ("superseded", r[4], last.get((r[1], str(a.get("visit")))) != str(r[0])),
                                            ("booked_by", r[5], a["actor"]), ("booked_at", r[6], a["at"])])
    rows = ReminderCall.objects.filter(participant_id__in=ids).order_by("pk").values_list(
        "pk", "participant_id", "visit_id", "visit_on", "outcome", "note", "called_by__username", "called_at")
    out += against_trail(rows, calls, what="reminder call", participant=lambda r: r[1],
                         where=lambda r: f"participant {numbers.get(r[1], r[1])}, reminder call {r[0]}",
                         pairs=lambda r, a: [("visit", r[2], a.get("visit")), ("visit_on", r[3], a.get("visit_on")),
                                             ("outcome", r[4], a.get("outcome")), ("note", r[5], a.get("note")),
                                             ("called_by", r[6], a["actor"]), ("called_at", r[7], a["at"])])
    return out
