"""Every write of the visit schedule and the eCRFs. Each function checks the rules, writes the
records and their audit events in one transaction, or raises ``RuleViolation`` naming the field
having written nothing. Nothing is overwritten: a corrected liposuction record supersedes the
old row, and every save of a form adds a revision.

``at`` (where accepted) is the time of the action when records are loaded after the fact; it
defaults to now and may never lie in the future.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from annulus.audit import services as audit
from annulus.checks import clean_moment, clean_text
from annulus.accounts.permissions import role_of
from annulus.errors import NotPermitted, Problems, RuleViolation, RuleViolations
from annulus.participants import services as participant_services
from annulus.participants import states as pstates
from annulus.participants.models import Participant, Withdrawal
from annulus.participants.locks import assert_record_writable
from annulus.protocol.schema import CONSENT_ANCHOR
from annulus.trial.lock import assert_writable
from annulus.trial.selectors import active_protocol, active_version, protocol_for

from . import crf, procedures, selectors, signals
from .events import chain_root, events_of, window_of
from .signals import adverse_event_prompt
from .models import (HARVEST_RECORD, UNSCHEDULED, Appointment, FormRecord, FormRevision, Liposuction, ReminderCall,
                     Visit, parse_visit_key)

# Plausibility limits of the liposuction record (the protocol's values are 150 mL and 4 h).
FAT_VOLUME_ML = (10, 500)
OBSERVATION_HOURS = (0, 72)
# How far the collection time of a form may lie from its visit date (labs drawn a few days
# earlier or later belong to the visit; anything further is a typing error).
COLLECTION_SLACK_DAYS = 7
# The audit reason of a save whose answers came from someone other than the person saving them.
SOURCE_REASONS = {"participant": "entered by participant"}
# A visit has at most eleven forms; a save naming more is not a visit.
MAX_FORMS_PER_SAVE = 30


def _now(at: datetime | None) -> datetime:
    return timezone.now() if at is None else clean_moment("at", at)


def _text(field: str, value, *, required: bool = False) -> str:
    # optional by default here: most visit texts (complications, reasons on a first save) may be empty
    return clean_text(field, value, required=required)


def _date(field: str, value, *, today: date) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        if isinstance(value, str):
            try:
                value = date.fromisoformat(value)
            except ValueError:
                raise RuleViolation(field, f"must be a date (YYYY-MM-DD), got {value!r}") from None
        else:
            raise RuleViolation(field, "must be a date")
    if value > today:
        raise RuleViolation(field, "cannot be in the future")
    return value


def _decimal(field: str, value, low, high, unit: str) -> Decimal:
    try:
        d = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise RuleViolation(field, f"must be a number, got {value!r}") from None
    if not d.is_finite() or not low <= d <= high:
        raise RuleViolation(field, f"must be {low}–{high} {unit}, got {value!r}")
    return d.quantize(Decimal("0.1"))


def _participant(participant_id: int, *, lock: bool = True) -> Participant:
    qs = Participant.objects.select_related("protocol_version")
    if lock:
        qs = qs.select_for_update()
    p = qs.filter(pk=participant_id).first()
    if p is None:
        raise RuleViolation("participant", "no such participant")
    return p


def _withdrawn_on(p: Participant) -> date | None:
    if p.status not in (pstates.WITHDRAWN, pstates.LOST):
        return None
    w = Withdrawal.objects.filter(participant=p).first()
    return w.withdrawn_on if w else timezone.localdate(p.updated_at)


# ---- liposuction (P-4.1) ----------------------------------------------------------------------


def record_liposuction(*, actor, participant_id: int, performed_on, fat_volume_ml, observation_hours,
                       anaesthesia: str = "local", complications: str = "", reason: str = "",
                       at: datetime | None = None) -> Liposuction:
    """Day 0. Needs a randomised participant; the date lies between enrolment and today. A second
    call corrects the record and needs a reason; the first row is kept, marked superseded."""
    now = _now(at)
    problems = Problems()  # every problem at once, each on its field
    with problems.check():
        performed_on = _date("performed_on", performed_on, today=timezone.localdate(now))
    with problems.check():
        volume = _decimal("fat_volume_ml", fat_volume_ml, *FAT_VOLUME_ML, "mL")
    with problems.check():
        hours = _decimal("observation_hours", observation_hours, *OBSERVATION_HOURS, "hours")
    if anaesthesia not in dict(Liposuction.ANAESTHESIA):
        problems.add("anaesthesia", f"must be one of {', '.join(dict(Liposuction.ANAESTHESIA))}")
    with problems.check():
        complications = _text("complications", complications)
    with problems.check():
        reason = _text("reason", reason)
    problems.raise_any()
    with transaction.atomic():
        assert_writable("visit data")
        # the harvest's page record is locked under its visit and form
        visit_id, form_id = selectors.page_record(active_protocol(), "harvest") or ("", "")
        assert_record_writable(participant_id, visit_id, form_id)
        p = _participant(participant_id)
        old = selectors.current_liposuction(p.pk)
        if old is None and p.status != pstates.RANDOMISED:
            if p.status in (pstates.ENROLLED,):
                raise RuleViolation("status", "liposuction comes after randomisation; this participant is not randomised yet")
            raise RuleViolation("status", f"liposuction cannot be recorded for a participant who is {p.status_label}")
        if p.enrolled_at and performed_on < timezone.localdate(p.enrolled_at):
            raise RuleViolation("performed_on", f"is before enrolment on {timezone.localdate(p.enrolled_at)}")
        tx = selectors._transplant_date(p.pk)
        if tx is not None and performed_on >= tx:
            raise RuleViolation("performed_on", f"must be before the transplantation on {tx}")
        values = {"performed_on": performed_on, "fat_volume_ml": str(volume), "anaesthesia": anaesthesia,
                  "observation_hours": str(hours), "complications": complications}
        if old is not None:
            previous = {"performed_on": old.performed_on, "fat_volume_ml": str(old.fat_volume_ml),
                        "anaesthesia": old.anaesthesia, "observation_hours": str(old.observation_hours),
                        "complications": old.complications}
            changes = audit.diff(previous, values)
            if not changes:
                return old
            if not reason:
                raise RuleViolation("reason", "correcting the liposuction record needs a reason")
            old.superseded = True
            old.save(update_fields=["superseded"])
        else:
            changes = {k: [None, v] for k, v in values.items()}
        pv = active_version()
        rec = Liposuction.objects.create(
            participant=p, performed_on=performed_on, fat_volume_ml=volume, anaesthesia=anaesthesia,
            observation_hours=hours, complications=complications, recorded_by=actor, recorded_at=now,
            protocol_version=pv, change_reason=reason if old else "")
        audit.record(actor=actor, action="change" if old else "create", obj_type=HARVEST_RECORD, obj_id=rec.pk,
                     participant_id=p.pk, changes=changes, reason=reason if old else "",
                     protocol_version=pv.version, when=now)
        if complications:
            # a complication may be an adverse event: the safety app opens a task (once per text)
            digest = hashlib.sha256(complications.encode()).hexdigest()[:16]
            adverse_event_prompt.send(sender=Liposuction, actor=actor, participant_id=p.pk,
                                      key=f"{HARVEST_RECORD}:{p.pk}:{digest}", source=HARVEST_RECORD,
                                      description=f"Liposuction on {performed_on.isoformat()}: {complications}"[:300],
                                      term=complications.splitlines()[0][:200])
    return rec


# ---- visits (P-4.4, X-4.8) --------------------------------------------------------------------


def _check_visit_date(p: Participant, pv_visit, visit_date: date, protocol) -> None:
    """The visit's day against the events its schedule counts from: not before the schedule's
    first event, after the recorded event it follows, before the treatment for the baseline,
    and in the visit's window (never in the next visit's)."""
    ev = events_of(p.pk, protocol)
    name = pv_visit.name.en
    root = chain_root(protocol, pv_visit.anchor)
    start_day = ev.recorded(root)
    if start_day is None:
        raise RuleViolation("visit", f"no {_event_name(protocol, root)} is recorded; the schedule starts "
                                     f"{'at day 0' if root != CONSENT_ANCHOR else 'at the consent'}")
    if visit_date < start_day:
        raise RuleViolation("visit_date", f"is before the {_event_name(protocol, root)} on {start_day}")
    anchor = ev.get(pv_visit.anchor)
    if pv_visit.anchor != root and pv_visit.offset_days > 0:
        what = _event_name(protocol, pv_visit.anchor)
        if ev.recorded(pv_visit.anchor) is None:
            raise RuleViolation("visit", f"the {name} visit follows {what}, which is not recorded yet")
        if visit_date <= anchor:
            raise RuleViolation("visit_date", f"{visit_date} is not after the {what} on {anchor}; "
                                              f"the {name} visit follows {what}")
    treatment = protocol.treatment_procedure
    treated_on = ev.recorded(treatment.id) if treatment else None
    if pv_visit.baseline and pv_visit.procedure is None and treated_on is not None and visit_date > treated_on:
        raise RuleViolation("visit_date", f"baseline must be before {_event_name(protocol, treatment.id)} "
                                          f"(on {treated_on})")
    target, start, end = window_of(pv_visit, ev)
    if visit_date < start:
        days = (visit_date - treated_on).days if treated_on else None
        when = f" ({days} days after {_event_name(protocol, treatment.id)})" if days is not None and days > 0 else ""
        raise RuleViolation("visit_date", f"{visit_date}{when} is before the {name} window, which opens on "
                                          f"{start} (target {target})")
    visits = protocol.schedule.visits
    later = visits[visits.index(pv_visit) + 1:]
    for nxt in later:
        _t, n_start, _e = window_of(nxt, ev)
        if n_start is not None and n_start > end and visit_date >= n_start:
            raise RuleViolation("visit_date", f"{visit_date} lies in the window of the {nxt.name.en} visit "
                                              f"(from {n_start}); record it as that visit or as unscheduled")
        if n_start is not None and n_start > end:
            break


def _event_name(protocol, event: str) -> str:
    """How messages name an event: "the consent", a procedure by its name in lower case."""
    if event == CONSENT_ANCHOR:
        return "consent"
    proc = protocol.procedure(event)
    return proc.name.en.split(" (")[0].lower() if proc else event


def _schedule_start(protocol, participant_id: int) -> tuple[str, date | None]:
    """The schedule's first event (the treatment's chain back to day 0 or the consent) and its
    recorded date: no visit, unscheduled ones included, is before it."""
    treatment = protocol.treatment_procedure
    root = chain_root(protocol, treatment.id) if treatment else CONSENT_ANCHOR
    return root, events_of(participant_id, protocol).recorded(root)


def _check_can_visit(p: Participant, visit_date: date) -> None:
    if p.status in (pstates.RANDOMISED, pstates.TREATED, pstates.IN_FOLLOW_UP, pstates.COMPLETED):
        return
    ended = _withdrawn_on(p)
    if ended is not None:
        if visit_date > ended:
            raise RuleViolation("visit_date", f"is after the participant left the trial on {ended}")
        return
    raise RuleViolation("status", f"visits cannot be recorded for a participant who is {p.status_label}")


def open_visit(*, actor, participant_id: int, visit_id: str, visit_date, at: datetime | None = None,
               source: str = "") -> Visit:
    """Record that a scheduled visit took place on ``visit_date``; its forms can then be entered.
    ``source`` as for ``save_form`` ("participant": recorded when the participant sent the answers
    of a link issued before the visit)."""
    now = _now(at)
    protocol = active_protocol()
    pv_visit = next((v for v in protocol.schedule.visits if v.id == visit_id), None)
    if pv_visit is None:
        raise RuleViolation("visit", f"unknown visit '{visit_id}'")
    if pv_visit.procedure in protocol.page_procedures:
        raise RuleViolation("visit", f"the {pv_visit.name.en} is recorded with its procedure record")
    visit_date = _date("visit_date", visit_date, today=timezone.localdate(now))
    with transaction.atomic():
        assert_writable("visit data")
        assert_record_writable(participant_id, visit_id)
        p = _participant(participant_id)
        existing = Visit.objects.filter(participant=p, visit_id=visit_id, number=0).first()
        if existing is not None:
            if existing.outcome == "missed":
                raise RuleViolation("visit", f"the {pv_visit.name.en} visit is recorded as missed")
            raise RuleViolation("visit", f"the {pv_visit.name.en} visit is already recorded ({existing.visit_date})")
        _check_can_visit(p, visit_date)
        _check_visit_date(p, pv_visit, visit_date, protocol)
        pv = active_version()
        v = Visit.objects.create(participant=p, visit_id=visit_id, visit_date=visit_date, forms=list(pv_visit.forms),
                                 protocol_version=pv, created_by=actor, created_at=now)
        changes = {"visit": [None, visit_id], "visit_date": [None, visit_date], "outcome": [None, "attended"]}
        if source:
            changes["source"] = source
        audit.record(actor=actor, action="create", obj_type="visit", obj_id=v.pk, participant_id=p.pk,
                     changes=changes, reason=SOURCE_REASONS.get(source, "") if source else "",
                     protocol_version=pv.version, when=now)
    return v


def add_unscheduled_visit(*, actor, participant_id: int, visit_date, reason: str, forms: list[str],
                          at: datetime | None = None) -> Visit:
    """An extra visit (e.g. for an adverse event) with the forms the investigator chooses."""
    now = _now(at)
    protocol = active_protocol()
    visit_date = _date("visit_date", visit_date, today=timezone.localdate(now))
    reason = _text("reason", reason, required=True)
    forms = list(dict.fromkeys(forms or []))
    if not forms:
        raise RuleViolation("forms", "choose at least one form")
    for f in forms:
        try:
            crf.spec_for(protocol, f)
        except RuleViolation:
            raise RuleViolation("forms", f"'{f}' is not an eCRF form") from None
    with transaction.atomic():
        assert_writable("visit data")
        assert_record_writable(participant_id)
        p = _participant(participant_id)
        _check_can_visit(p, visit_date)
        root, first = _schedule_start(protocol, p.pk)
        if first is None or visit_date < first:
            raise RuleViolation("visit_date", f"unscheduled visits start after the {_event_name(protocol, root)}"
                                              f"{' (day 0)' if root != CONSENT_ANCHOR else ''}")
        number = Visit.objects.filter(participant=p, visit_id=UNSCHEDULED).count() + 1
        pv = active_version()
        v = Visit.objects.create(participant=p, visit_id=UNSCHEDULED, number=number, visit_date=visit_date,
                                 reason=reason, forms=forms, protocol_version=pv, created_by=actor, created_at=now)
        audit.record(actor=actor, action="create", obj_type="visit", obj_id=v.pk, participant_id=p.pk,
                     changes={"visit": [None, v.key], "visit_date": [None, visit_date], "forms": [None, forms]},
                     reason=reason, protocol_version=pv.version, when=now)
    return v


def correct_visit_date(*, actor, participant_id: int, visit_key: str, visit_date, reason: str,
                       at: datetime | None = None) -> Visit:
    """Correct the date of a recorded visit (a typing error): the new date passes the same checks
    as when the visit was opened, every form's collection time must stay within
    ``COLLECTION_SLACK_DAYS`` of it, and the audit trail keeps the old date with the reason."""
    now = _now(at)
    reason = _text("reason", reason, required=True)
    visit_date = _date("visit_date", visit_date, today=timezone.localdate(now))
    with transaction.atomic():
        assert_writable("visit data")
        assert_record_writable(participant_id, visit_key)
        visit = _locked_visit(participant_id, visit_key)
        p = _participant(participant_id)  # locked after the visit, as a form save does: a withdrawal waits
        old = visit.visit_date
        if visit_date == old:
            raise RuleViolation("visit_date", f"is already {old}")
        # the schedule of the protocol version under which the visit was opened
        protocol = protocol_for(visit.protocol_version)
        _check_can_visit(p, visit_date)
        pv_visit = next((v for v in protocol.schedule.visits if v.id == visit.visit_id), None)
        if visit.visit_id == UNSCHEDULED or pv_visit is None:
            root, first = _schedule_start(protocol, p.pk)
            if first is None or visit_date < first:
                raise RuleViolation("visit_date", f"visits start after the {_event_name(protocol, root)}"
                                                  f"{' (day 0)' if root != CONSENT_ANCHOR else ''}")
        else:
            _check_visit_date(p, pv_visit, visit_date, protocol)
        for rec in FormRecord.objects.filter(visit=visit).order_by("id"):
            day = timezone.localdate(rec.collected_at)
            if abs((day - visit_date).days) > COLLECTION_SLACK_DAYS:
                raise RuleViolation("visit_date", f"{crf_name(protocol, rec.form_id)} was collected on {day}, more "
                                                  f"than {COLLECTION_SLACK_DAYS} days from {visit_date}; correct "
                                                  f"its collection time first")
        visit.visit_date = visit_date
        visit.save(update_fields=["visit_date"])
        audit.record(actor=actor, action="change", obj_type="visit", obj_id=visit.pk, participant_id=p.pk,
                     changes={"visit": visit.key, "visit_date": [old, visit_date]}, reason=reason,
                     protocol_version=p.protocol_version.version, when=now)
    return visit


def record_missed(*, actor, participant_id: int, visit_id: str, reason: str, at: datetime | None = None) -> Visit:
    """The participant did not attend (and will not): the visit shows as missed, with the reason."""
    now = _now(at)
    protocol = active_protocol()
    pv_visit = next((v for v in protocol.schedule.visits
                     if v.id == visit_id and v.procedure not in protocol.page_procedures), None)
    if pv_visit is None:
        raise RuleViolation("visit", f"unknown visit '{visit_id}'")
    reason = _text("reason", reason, required=True)
    with transaction.atomic():
        assert_writable("visit data")
        assert_record_writable(participant_id, visit_id)
        p = _participant(participant_id)
        if Visit.objects.filter(participant=p, visit_id=visit_id, number=0).exists():
            raise RuleViolation("visit", f"the {pv_visit.name.en} visit is already recorded")
        _t, start, _e = window_of(pv_visit, events_of(p.pk, protocol))
        if start is None or timezone.localdate(now) < start:
            raise RuleViolation("visit", f"the {pv_visit.name.en} window has not opened yet")
        pv = active_version()
        v = Visit.objects.create(participant=p, visit_id=visit_id, outcome="missed", reason=reason, forms=[],
                                 protocol_version=pv, created_by=actor, created_at=now)
        audit.record(actor=actor, action="create", obj_type="visit", obj_id=v.pk, participant_id=p.pk,
                     changes={"visit": [None, visit_id], "outcome": [None, "missed"]}, reason=reason,
                     protocol_version=pv.version, when=now)
    return v


# ---- eCRF forms (P-4.5, X-5.7) ----------------------------------------------------------------


def _collected_at(value, visit: Visit, now: datetime) -> datetime:
    if value in (None, ""):
        noon = timezone.make_aware(datetime.combine(visit.visit_date, time(10, 0)))
        return min(noon, now)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise RuleViolation("collected_at", f"must be a date and time, got {value!r}") from None
    if not isinstance(value, datetime):
        raise RuleViolation("collected_at", "must be a date and time")
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    if value > now + timedelta(minutes=5):
        raise RuleViolation("collected_at", "cannot be in the future")
    day = timezone.localdate(value)
    if abs((day - visit.visit_date).days) > COLLECTION_SLACK_DAYS:
        raise RuleViolation("collected_at", f"{day} is more than {COLLECTION_SLACK_DAYS} days from the visit date "
                                            f"{visit.visit_date}")
    return value


def _visit_name(protocol, visit: Visit) -> str:
    if visit.visit_id == UNSCHEDULED:
        return f"unscheduled {visit.number}"
    return protocol.schedule.visit(visit.visit_id).name.en


def save_form(*, actor, participant_id: int, visit_key: str, form_id: str, items: dict, complete: bool = False,
              collected_at=None, reason: str = "", at: datetime | None = None, source: str = "") -> FormRecord:
    """Save one form of one visit: as a draft, or complete (all checks pass and the scores can be
    computed). A change to a completed form needs a reason and leaves it 'changed after
    completion'. Each save that changes anything adds a revision; an identical save adds nothing.
    ``source`` names who gave the answers when it is not the person saving them ("participant":
    entered by the participant through a one-time link); the audit event carries it."""
    return _save_forms(actor, participant_id, visit_key, {form_id: items}, complete=complete,
                       collected_at=collected_at, reason=reason, at=at, prefix=False, source=source)[0]


def save_visit_forms(*, actor, participant_id: int, visit_key: str, forms: dict[str, dict], complete: bool = False,
                     collected_at=None, reason: str = "", at: datetime | None = None,
                     source: str = "") -> list[FormRecord]:
    """Save several forms of one visit at once (the visit entry page, the API's batch route), with
    the same rules as ``save_form`` for each, in one transaction: all are saved or none. Every
    form is checked; the broken rules come together as ``RuleViolations``, each naming the form
    and its field, ``"odi.s3"``."""
    if not isinstance(forms, dict) or not forms:
        raise RuleViolation("forms", "give at least one form: form -> items")
    if len(forms) > MAX_FORMS_PER_SAVE:
        raise RuleViolation("forms", f"at most {MAX_FORMS_PER_SAVE} forms in one save")
    long = next((f for f in forms if not isinstance(f, str) or len(f) > 30), None)
    if long is not None:
        raise RuleViolation("forms", f"'{str(long)[:30]}…' is not an eCRF form")
    return _save_forms(actor, participant_id, visit_key, forms, complete=complete, collected_at=collected_at,
                       reason=reason, at=at, prefix=True, source=source)


def _locked_visit(participant_id: int, visit_key: str) -> Visit:
    # of="self": lock the visit row only, not the participant and protocol rows joined in
    qs = Visit.objects.select_for_update(of=("self",)).select_related("participant__protocol_version",
                                                                      "protocol_version")
    visit_id, number = parse_visit_key(visit_key)
    visit = qs.filter(participant_id=participant_id, visit_id=visit_id, number=number).first()
    if visit is None:
        protocol = active_protocol()
        known = any(v.id == visit_key for v in protocol.schedule.visits)
        raise RuleViolation("visit", "record the visit date first" if known else f"unknown visit '{visit_key}'")
    if visit.outcome != "attended":
        raise RuleViolation("visit", "this visit is recorded as missed")
    return visit


def _save_forms(actor, participant_id, visit_key, forms: dict, *, complete, collected_at, reason, at, prefix,
                source=""):
    now = _now(at)
    reason = _text("reason", reason)
    with transaction.atomic():
        assert_writable("visit data")
        for form_id in forms:
            assert_record_writable(participant_id, visit_key, form_id)
        visit = _locked_visit(participant_id, visit_key)
        # the forms and checks of the protocol version under which the visit was opened
        protocol = protocol_for(visit.protocol_version)
        p = visit.participant
        version = p.protocol_version.version
        for form_id in forms:
            proc = procedures.record_procedure(protocol, form_id)
            if proc is not None and role_of(actor) not in proc.recorded_by:
                raise NotPermitted(f"{proc.name.en} is recorded by: {', '.join(proc.recorded_by)}")
        records = selectors.form_records(visit)
        new_rows, changed_rows, revisions, events, broken = [], [], [], [], []
        for form_id, items in forms.items():
            try:
                plan = _plan_form(protocol, visit, records.get(form_id), form_id, items, complete=complete,
                                  collected_at=collected_at, reason=reason, now=now)
            except RuleViolation as exc:
                if not prefix:
                    raise
                # every form is checked, so that the page can show each one's problem at once
                broken.extend(RuleViolation(f"{form_id}.{v.field}", v.message)
                              for v in getattr(exc, "violations", [exc]))
                continue
            if plan is None:
                continue  # nothing changed
            record, old = plan
            (new_rows if record.pk is None else changed_rows).append(record)
            records[form_id] = record
            revisions.append((record, old))
        if broken:
            raise RuleViolations(broken)
        if not revisions:
            return [records[f] for f in forms]
        if new_rows:
            FormRecord.objects.bulk_create(new_rows)
        for record in changed_rows:
            record.save()
        saved = []
        for r, old in revisions:
            # a change to a completed form carries the reason; a first completion does not
            why = reason if old["state"] in (FormRecord.COMPLETE, FormRecord.CHANGED) else ""
            saved.append(FormRevision(form=r, number=r.revision, state=r.state, items=r.items, computed=r.computed,
                                      collected_at=r.collected_at, saved_by=actor, saved_at=now, reason=why))
            changes = audit.diff(old["items"], r.items)
            if old["state"] != r.state:
                changes["state"] = [old["state"], r.state]
            if old["collected_at"] != r.collected_at:
                changes["collected_at"] = [old["collected_at"], r.collected_at]
            if source:
                changes["source"] = source
            events.append(dict(action="change" if old["state"] else "create", obj_type="crf_form", obj_id=r.pk,
                               participant_id=p.pk, protocol_version=version, when=now,
                               reason=why or (SOURCE_REASONS.get(source, "") if source else ""),
                               changes={"visit": visit.key, "form": r.form_id, "revision": r.revision, **changes}))
        FormRevision.objects.bulk_create(saved)
        if visit.completed_at is None and all(
                f in records and records[f].is_complete for f in visit.forms):
            visit.completed_at = now
            visit.save(update_fields=["completed_at"])
            events.append(dict(action="change", obj_type="visit", obj_id=visit.pk, participant_id=p.pk,
                               changes={"visit": visit.key, "completed_at": [None, now]},
                               protocol_version=version, when=now))
        audit.record_many(actor=actor, events=events)
        signals.forms_saved.send(sender=FormRecord, participant_id=p.pk, visit=visit.key,
                                 forms=[r.form_id for r, _ in revisions])
        _treat_participant(actor, protocol, visit, p, [r for r, _ in revisions])
        _move_participant(actor, protocol, visit, p)
        _prompt_adverse_events(actor, protocol, visit, p, [r for r, _ in revisions])
    return [records[f] for f in forms]


def _prompt_adverse_events(actor, protocol, visit: Visit, p: Participant, records) -> None:
    """Findings of the saved forms that may be adverse events ("AE review = yes", a laboratory value
    judged clinically significant): each opens an adverse-event task in the safety app."""
    for r in records:
        computed = r.computed or {}
        spec = crf.spec_for(protocol, r.form_id)
        if spec is crf.AE_REVIEW:
            if computed.get("new_events") == "yes":
                adverse_event_prompt.send(
                    sender=FormRecord, actor=actor, participant_id=p.pk, key=f"ae_review:{r.pk}", source="ae_review",
                    description=f"Adverse-event review at visit {visit.key}: a new or worsening adverse event",
                    term="")
            continue
        panel = spec.extra.get("panel")
        for analyte in crf.significant_analytes(computed):
            a = next((a for a in panel.analytes if a.id == analyte), None) if panel else None
            name = a.name.en if a else analyte
            flag = ((computed.get("parts") or {}).get(analyte) or {}).get("flag")
            adverse_event_prompt.send(
                sender=FormRecord, actor=actor, participant_id=p.pk, key=f"lab:{r.pk}:{analyte}", source="lab",
                description=f"{name} judged clinically significant at visit {visit.key}"[:300],
                term=f"{name} {dict(high='increased', low='decreased').get(flag, 'abnormal')}"[:200])


def _plan_form(protocol, visit: Visit, record: FormRecord | None, form_id: str, items, *, complete, collected_at,
               reason, now):
    """The checked new state of one form: ``(record, old values)`` to write, or None when the save
    changes nothing. Writes nothing itself."""
    if form_id not in visit.forms:
        raise RuleViolation("form", f"{crf_name(protocol, form_id)} is not collected at the "
                                    f"{_visit_name(protocol, visit)} visit (protocol table 1)")
    spec = crf.spec_for(protocol, form_id)
    try:
        cleaned = crf.clean(spec, items)
    except RuleViolation as exc:
        # show the items still missing for completion together with the wrong ones
        broken = getattr(exc, "violations", [exc])
        missing = crf.missing_items(spec, items) if complete and isinstance(items, dict) else []
        raise RuleViolations(broken + [m for m in missing if m.field not in {b.field for b in broken}]) from None
    # a score compared with the baseline visit's (VAS, NRS): that score, read once the answers are good
    baseline = selectors.baseline_score(protocol, visit.participant_id, visit.visit_id, form_id)
    computed = crf.compute(protocol, form_id, cleaned, baseline=baseline)
    was_complete = record is not None and record.is_complete
    if was_complete and not complete:
        raise RuleViolation("complete", "a completed form stays complete; save the change with a reason")
    if "procedure" in spec.extra:
        computed = {**computed, **procedures.check(protocol, spec, visit, cleaned, complete=complete, record=record)}
    if complete:
        problem = crf.completion_problem(protocol, form_id, cleaned, computed)
        if problem is not None:
            raise problem
    when = _collected_at(collected_at, visit, now) if (collected_at not in (None, "") or record is None) \
        else record.collected_at
    if record is not None and record.items == cleaned and record.collected_at == when \
            and (record.is_complete or not complete):
        return None
    if was_complete and not reason:
        raise RuleViolation("reason", "this form is complete; a change needs a reason")
    state = FormRecord.CHANGED if was_complete else (FormRecord.COMPLETE if complete else FormRecord.DRAFT)
    if record is None:
        record = FormRecord(visit=visit, participant=visit.participant, form_id=form_id, state=state, items=cleaned,
                            computed=computed, revision=1, collected_at=when,
                            submitted_at=now if complete else None, created_at=now, updated_at=now)
        return record, {"items": {}, "state": None, "collected_at": None}
    old = {"items": record.items, "state": record.state, "collected_at": record.collected_at}
    record.state = state
    record.items = cleaned
    record.computed = computed
    record.revision += 1
    record.collected_at = when
    if complete and record.submitted_at is None:
        record.submitted_at = now
    record.updated_at = now
    return record, old


def crf_name(protocol, form_id: str) -> str:
    f = next((f for f in protocol.schedule.forms if f.id == form_id), None)
    return f.name.en if f else form_id


def _treat_participant(actor, protocol, visit: Visit, p: Participant, records) -> None:
    """A randomised participant is treated once the treatment procedure's record is complete."""
    if not procedures.treated_by(protocol, visit, records):
        return
    status = Participant.objects.select_for_update().values_list("status", flat=True).get(pk=p.pk)
    if status == pstates.RANDOMISED:
        participant_services.advance(actor=actor, participant_id=p.pk, target=pstates.TREATED,
                                     reason=f"{protocol.treatment_procedure.name.en} recorded")


def _move_participant(actor, protocol, visit: Visit, p: Participant) -> None:
    """The participant status that follow-up data moves: in follow-up from the first follow-up
    form saved (a draft too), completed when the last visit is complete."""
    if visit.visit_id == UNSCHEDULED:
        return
    pv_visit = protocol.schedule.visit(visit.visit_id)
    last = [v for v in protocol.schedule.visits if v.follow_up][-1]
    if not pv_visit.follow_up and visit.visit_id != last.id:
        return
    # Read the status under the participant's own lock (after the visit's, the order every
    # save takes): the row joined to the visit was read before a concurrent save committed.
    status = Participant.objects.select_for_update().values_list("status", flat=True).get(pk=p.pk)
    if pv_visit.follow_up and status == pstates.TREATED:
        participant_services.advance(actor=actor, participant_id=p.pk, target=pstates.IN_FOLLOW_UP,
                                     reason=f"first follow-up data saved ({pv_visit.name.en} visit)")
        status = pstates.IN_FOLLOW_UP
    if visit.visit_id == last.id and visit.completed_at is not None and status == pstates.IN_FOLLOW_UP:
        participant_services.advance(actor=actor, participant_id=p.pk, target=pstates.COMPLETED,
                                     reason=f"{last.name.en} visit complete")


# ---- appointments ----------------------------------------------------------------------------


def book_visit(*, actor, participant_id: int, visit_id: str, on, at: datetime | None = None) -> Appointment:
    """Book the day of a visit still to come: inside its window, or while it is overdue. A new
    booking supersedes the earlier one (kept)."""
    now = _now(at)
    protocol = active_protocol()
    pv_visit = next((v for v in protocol.schedule.visits
                     if v.id == visit_id and protocol.page_procedures.get(v.procedure) != "harvest"), None)
    if pv_visit is None:
        raise RuleViolation("visit", f"unknown visit '{visit_id}'")
    if isinstance(on, str):
        try:
            on = date.fromisoformat(on)
        except ValueError:
            raise RuleViolation("on", f"must be a date (YYYY-MM-DD), got {on!r}") from None
    if not isinstance(on, date):
        raise RuleViolation("on", "must be a date")
    if on < timezone.localdate(now):
        raise RuleViolation("on", "cannot be in the past")
    with transaction.atomic():
        assert_writable("visit data")
        assert_record_writable(participant_id, visit_id)
        p = _participant(participant_id)
        if p.status not in selectors.ACTIVE:
            raise RuleViolation("status", f"no visits can be booked for a participant who is {p.status_label}")
        slot = next((s for s in selectors.schedule(p, today=timezone.localdate(now)) if s.visit_id == visit_id), None)
        if slot is None or slot.window_start is None:
            raise RuleViolation("visit", f"the {pv_visit.name.en} visit has no date yet (no liposuction recorded)")
        if slot.state not in ("upcoming", "due", "open", "overdue"):
            raise RuleViolation("visit", f"the {pv_visit.name.en} visit is {slot.state_label}")
        last = slot.missed_after or slot.window_end
        if not slot.window_start <= on <= last:
            raise RuleViolation("on", f"must be within the {pv_visit.name.en} window, {slot.window_start} to "
                                      f"{slot.window_end}" + (f" (late until {last})" if last != slot.window_end else ""))
        old = Appointment.objects.filter(participant=p, visit_id=visit_id, superseded=False).first()
        if old is not None:
            if old.on == on:
                return old
            old.superseded = True
            old.save(update_fields=["superseded"])
        a = Appointment.objects.create(participant=p, visit_id=visit_id, on=on, booked_by=actor, booked_at=now)
        audit.record(actor=actor, action="change" if old else "create", obj_type="appointment", obj_id=a.pk,
                     participant_id=p.pk, changes={"visit": visit_id, "on": [old.on if old else None, on]},
                     protocol_version=p.protocol_version.version, when=now)
    return a


# ---- reminders (P-4.6) ------------------------------------------------------------------------


def record_reminder(*, actor, participant_id: int, visit_id: str, visit_on, outcome: str = "reached",
                    note: str = "", at: datetime | None = None) -> ReminderCall:
    """Record the reminder phone call about a visit on ``visit_on``."""
    now = _now(at)
    protocol = active_protocol()
    if visit_id != UNSCHEDULED and not any(v.id == visit_id for v in protocol.schedule.visits):
        raise RuleViolation("visit", f"unknown visit '{visit_id}'")
    if outcome not in dict(ReminderCall.OUTCOMES):
        raise RuleViolation("outcome", f"must be one of {', '.join(dict(ReminderCall.OUTCOMES))}")
    if isinstance(visit_on, str):
        try:
            visit_on = date.fromisoformat(visit_on)
        except ValueError:
            raise RuleViolation("visit_on", f"must be a date (YYYY-MM-DD), got {visit_on!r}") from None
    if not isinstance(visit_on, date):
        raise RuleViolation("visit_on", "must be a date")
    if visit_on < timezone.localdate(now):
        raise RuleViolation("visit_on", "a reminder is for a visit still to come")
    note = _text("note", note)
    with transaction.atomic():
        assert_writable("visit data")
        assert_record_writable(participant_id, "" if visit_id == UNSCHEDULED else visit_id)
        p = _participant(participant_id)
        if p.status not in selectors.ACTIVE:
            raise RuleViolation("status", f"no visits to remind a participant who is {p.status_label} of")
        call = ReminderCall.objects.create(participant=p, visit_id=visit_id, visit_on=visit_on, outcome=outcome,
                                           note=note, called_by=actor, called_at=now)
        audit.record(actor=actor, action="create", obj_type="reminder_call", obj_id=call.pk, participant_id=p.pk,
                     changes={"visit": [None, visit_id], "visit_on": [None, visit_on], "outcome": [None, outcome],
                              "note": [None, note]},
                     protocol_version=p.protocol_version.version, when=now)
    return call
