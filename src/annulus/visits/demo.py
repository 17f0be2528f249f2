"""The demo trial's visits: liposuction a few days after enrolment (step 20), then, once the
allocation app has recorded the transplantations (step 30), every visit whose date has passed
with the simulator's answers entered through the services (step 40). Some visits are left due,
overdue or missed, some forms in draft or submitted late, so that every state can be seen."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import numpy as np
from django.db import transaction
from django.utils import timezone

from annulus.errors import RuleViolation
from annulus.participants import services as ps
from annulus.participants import states as pstates
from annulus.participants.models import Participant
from annulus.simulator import simulate_participant_for, uses_builtin_models
from annulus.simulator.trajectories import simulate_participant
from annulus.trial.selectors import active_protocol

from . import crf, selectors, services

COMPLICATIONS = ["small haematoma at the harvest site, resolved without treatment",
                 "transient dizziness during observation"]


def _at(day, hour, minute=0):
    """A clinic time on ``day``, never later than a few minutes ago."""
    when = timezone.make_aware(datetime.combine(day, time(hour, minute)))
    return min(when, timezone.now() - timedelta(minutes=5))


def liposuction_all(ctx):
    """Day 0 for every randomised participant, 2-8 days after enrolment; the latest two wait
    (a trial whose product is harvested: ``page_procedures``)."""
    if "harvest" not in active_protocol().page_procedures.values():
        return
    rng = np.random.default_rng([ctx.seed, 20])
    inv = ctx.users["investigator"]
    today = timezone.localdate()
    waiting = set(ctx.enrolled[-2:])
    for pid in ctx.enrolled:
        p = Participant.objects.get(pk=pid)
        if p.status != pstates.RANDOMISED or pid in waiting:
            continue
        day = timezone.localdate(p.enrolled_at) + timedelta(days=int(rng.integers(2, 9)))
        if day > today - timedelta(days=1):
            continue  # not yet: stays waiting for liposuction
        complications = COMPLICATIONS[int(rng.integers(0, 2))] if rng.random() < 0.08 else ""
        services.record_liposuction(actor=inv, participant_id=pid, performed_on=day,
                                    fat_volume_ml=round(float(rng.normal(150, 6))),
                                    observation_hours=4 if rng.random() > 0.1 else 4.5,
                                    complications=complications, at=_at(day, 14))


def _arm(pid):
    try:
        from annulus.allocation.selectors import arm_of_for_system
    except (ImportError, AttributeError):
        return None
    return arm_of_for_system(pid)


def follow_up_all(ctx):
    protocol = active_protocol()
    if not uses_builtin_models(protocol):
        return protocol_visits_all(ctx)
    coord, inv = ctx.users["coordinator"], ctx.users["investigator"]
    now = timezone.now()
    today = timezone.localdate()
    rng = np.random.default_rng([ctx.seed, 40])
    pvisits = [v for v in protocol.schedule.visits if not v.procedure]
    baseline = protocol.schedule.baseline_visit
    for n, pid in enumerate(ctx.enrolled):
        p = Participant.objects.get(pk=pid)
        if p.status not in selectors.ACTIVE:
            continue
        lipo, tx, planned = selectors.anchors(pid)
        if lipo is None:
            continue
        arm = _arm(pid) or "control"
        traj = simulate_participant(arm, seed=ctx.seed, index=pid)
        if n % 10 == 0:
            ctx.progress(f"follow-up visits {n}/{len(ctx.enrolled)}")
        # one commit per participant: each service call is still its own (nested) transaction,
        # but SQLite syncs the file once instead of once per form
        with transaction.atomic():
            _follow_up(ctx, p, pvisits, baseline, lipo, tx, planned, traj, coord, inv, now, today, rng)


def _follow_up(ctx, p, pvisits, baseline, lipo, tx, planned, traj, coord, inv, now, today, rng):
    """``baseline``: the schedule's baseline visit, a few days before the transplantation."""
    pid = p.pk
    last_day = None
    for pv in pvisits:
        is_baseline = baseline is not None and pv.id == baseline.id
        if planned and not is_baseline:
            break  # follow-up starts after the transplantation
        target, start, end = selectors.window_of(pv, lipo, tx)
        if is_baseline:
            day = tx - timedelta(days=int(rng.integers(1, 6)))
        else:
            jitter = int(rng.integers(-pv.window.before_days // 2, pv.window.after_days // 2 + 1))
            day = target + timedelta(days=jitter)
            if rng.random() < 0.05:  # out of window, a few days late
                day = end + timedelta(days=int(rng.integers(1, 6)))
        if traj.dropout_after is not None and pv.id not in traj.visits and pv.id not in traj.missed:
            _drop_out(p, traj, last_day or lipo, today, coord, rng)
            break
        if day > today:
            break
        if pv.id in traj.missed:
            missed_after = end + timedelta(days=selectors.GRACE_DAYS)
            if missed_after < today and rng.random() < 0.5:
                services.record_missed(actor=coord, participant_id=pid, visit_id=pv.id,
                                       reason="could not be reached for the visit",
                                       at=_at(missed_after, 16))
            continue
        age = (today - day).days
        # the most recent visits of some participants are still to be done: open, or overdue
        # when the window has just closed
        if end < today <= end + timedelta(days=selectors.GRACE_DAYS) and rng.random() < 0.5:
            break
        if age <= 14 and rng.random() < 0.3:
            break
        try:
            _enter_visit(pid, pv, day, traj.visits[pv.id], coord, inv, now, today, age, rng)
        except RuleViolation as exc:
            ctx.progress(f"visit {pv.id} of participant {pid} not entered: {exc}")
            break
        last_day = day


def book_upcoming(ctx):
    """Appointments for the visits coming up in the next fortnight, within their windows; the
    coordinator books about half of those whose window includes tomorrow for tomorrow."""
    coord = ctx.users["coordinator"]
    today = timezone.localdate()
    tomorrow = today + timedelta(days=1)
    rng = np.random.default_rng([ctx.seed, 45])
    for p, slots in selectors.active_schedules(today=today):
        for s in slots:
            if s.state not in ("due", "open", "overdue") or s.procedure or s.window_start is None:
                continue
            first = max(s.window_start, tomorrow)
            last = s.window_end if s.state != "overdue" else s.missed_after
            if first > last or first > today + timedelta(days=14):
                continue
            if first == tomorrow and rng.random() < 0.5:
                on = tomorrow
            else:
                on = first + timedelta(days=int(rng.integers(0, (last - first).days + 1)))
            services.book_visit(actor=coord, participant_id=p.pk, visit_id=s.visit_id, on=on)
            if on == tomorrow and rng.random() < 0.35:  # some of today's calls are already made
                services.record_reminder(actor=coord, participant_id=p.pk, visit_id=s.visit_id, visit_on=on,
                                         outcome="reached", note="confirmed the appointment")
            break  # one booking per participant: the next visit


def _library_specs(protocol) -> dict:
    """form id -> its form of the instruments library (an instrument's, the adverse-event
    review), for the schedule's forms that are neither a panel nor a procedure's record."""
    out = {}
    for f in protocol.schedule.forms:
        spec = None if f.panel or f.procedure else crf.STATIC_SPECS.get(f.instrument or f.id)
        if spec is not None:
            out[f.id] = spec
    return out


def _clinician_assessed(spec) -> bool:
    """Whether the investigator enters a form of the library: one the participant does not answer
    in full (an imaging reading, a score with an examination, the adverse-event review); the
    coordinator enters the questionnaires, vital signs and laboratory panels."""
    return spec is not None and not spec.patient_answers_all


def _enter_visit(pid, pv, day, answers, coord, inv, now, today, age, rng, actors=None):
    """``actors``: who saves which form (a procedure's record: a role that records it), when
    not the coordinator or, for the forms a clinician assesses, the investigator."""
    if pv.follow_up and age <= 120:
        # the reminder call the day before (P-4.6)
        services.record_reminder(actor=coord, participant_id=pid, visit_id=pv.id, visit_on=day,
                                 outcome="reached" if rng.random() < 0.8 else "family",
                                 at=_at(day - timedelta(days=1), 16, int(rng.integers(0, 59))))
    services.open_visit(actor=coord, participant_id=pid, visit_id=pv.id, visit_date=day, at=_at(day, 9))
    library = _library_specs(active_protocol())
    recent = age <= 12
    for form_id in pv.forms:
        collected = _at(day, 9, int(rng.integers(0, 59)))
        if recent and rng.random() < 0.15:
            continue  # not entered yet
        items = answers.get(form_id)
        if items is None:
            continue  # entered elsewhere (a kit's record) or nothing to enter
        if recent and rng.random() < 0.25:
            services.save_form(actor=coord, participant_id=pid, visit_key=pv.id, form_id=form_id, items=items,
                               collected_at=collected, at=min(collected + timedelta(hours=2), now))
            continue  # a draft, waiting for submission
        late = rng.random() < 0.04
        delay = timedelta(days=float(rng.uniform(3.5, 8))) if late else timedelta(hours=float(rng.uniform(1, 40)))
        saved = collected + delay
        if saved > now:
            saved = now - timedelta(minutes=1)
        actor = (actors or {}).get(form_id) or (inv if _clinician_assessed(library.get(form_id)) else coord)
        services.save_form(actor=actor, participant_id=pid, visit_key=pv.id, form_id=form_id, items=items,
                           complete=True, collected_at=collected, at=saved)
        if library.get(form_id) is crf.VAS and age > 20 and rng.random() < 0.04:
            # the mark on the pain line is measured and typed in: now and then source data
            # verification finds a transcription error, corrected with a reason
            line = crf.VAS.items[0].id
            fixed = {line: int(min(100, max(0, items[line] + rng.choice([-2, -1, 1, 2]))))}
            services.save_form(actor=inv, participant_id=pid, visit_key=pv.id, form_id=form_id, items=fixed,
                               complete=True, reason="Transcription error: corrected against the source document",
                               at=min(saved + timedelta(days=int(rng.integers(5, 15))), now))


def _drop_out(p, traj, last_day, today, coord, rng):
    """The participant stops coming: recorded as lost to follow-up, or as a withdrawal."""
    day = min(last_day + timedelta(days=int(rng.integers(20, 60))), today)
    if (today - last_day).days < 45:
        return  # not yet noticed
    p.refresh_from_db()
    if p.status not in (pstates.TREATED, pstates.IN_FOLLOW_UP):
        return
    if rng.random() < 0.5:
        ps.withdraw(actor=coord, participant_id=p.pk, withdrawn_on=day, category="participant_request",
                    details="Does not wish to attend further follow-up visits; moved away")
    else:
        ps.advance(actor=coord, participant_id=p.pk, target=pstates.LOST,
                   reason="No answer to phone calls or letters after the last visit")


# ---- any other protocol -----------------------------------------------------------------------

def _kit_procedure(protocol, form_id: str) -> bool:
    """Whether the form records a kit dispensing or return (entered by the allocation app's
    demo, which allocates the kits)."""
    proc = protocol.form_procedure(form_id)
    return proc is not None and not proc.treatment and bool({"dispensing", "returns"} & set(proc.checks))


def procedure_items(protocol, form_id: str, day, *, kit: str | None = None, units: int | None = None) -> dict:
    """A complete record of a procedure done on ``day`` as a careful site writes it: times in
    the morning, the kit and units given, every check of the product passed, yes to each yes/no
    question, the optional notes left empty."""
    from annulus.instruments.forms import KIT_CHECK, spec_for

    spec = spec_for(protocol, form_id)
    proc = spec.extra["procedure"]
    by_meaning = {f.id: f.means for f in proc.fields}
    checks = {KIT_CHECK + c.id: c for c in getattr(protocol.product, "kit_checks", [])}
    out = {}
    for item in spec.items:
        if item.id in checks:
            c = checks[item.id]
            out[item.id] = ("yes" if c.kind == "confirmed" else c.max - 3 if c.kind == "max" else
                            c.min + 1 if c.kind == "min" else (c.min + c.max) / 2 if c.kind == "range" else c.value)
        elif not item.required:
            continue
        elif item.kind == "datetime":
            out[item.id] = _at(day, 9, 30).isoformat()
        elif item.kind == "date":
            out[item.id] = day.isoformat()
        elif by_meaning.get(item.id) == "kit_number":
            out[item.id] = kit
        elif by_meaning.get(item.id) in ("units_dispensed", "units_returned"):
            out[item.id] = units
        elif item.kind == "choice":
            out[item.id] = "yes" if any(c[0] == "yes" for c in item.choices) else item.choices[0][0]
        elif item.kind == "number":
            out[item.id] = item.min if item.min is not None else 0
        else:
            out[item.id] = "-"
    return out


def _evidence(pid) -> dict:
    from annulus.participants.selectors import evidence_of

    return {e.field: e.value for e in evidence_of(pid) if not e.superseded}


def protocol_visits_all(ctx):
    """Every visit whose day has passed, for a protocol without the built-in models: the
    treatment's visit on the day of randomisation (its record with the kit the system allocated),
    then each visit near its target with the simulator's answers; dropouts, missed visits, drafts
    and late forms as in the first trial. Kit dispensings and returns are the allocation app's."""
    from .events import events_of, window_of
    from .procedures import allocated_kits

    protocol = active_protocol()
    coord, inv = ctx.users["coordinator"], ctx.users["investigator"]
    now, today = timezone.now(), timezone.localdate()
    rng = np.random.default_rng([ctx.seed, 41])
    treatment = protocol.treatment_procedure
    for n, pid in enumerate(ctx.enrolled):
        p = Participant.objects.get(pk=pid)
        if p.status not in selectors.ACTIVE:
            continue
        if n % 10 == 0:
            ctx.progress(f"visits {n}/{len(ctx.enrolled)}")
        traj = simulate_participant_for(protocol, _arm(pid) or protocol.control_arm.id, seed=ctx.seed, index=pid,
                                        evidence=_evidence(pid))
        with transaction.atomic():
            last_day = None
            for pv in protocol.schedule.visits:
                if pv.procedure and pv.procedure == (treatment.id if treatment else None):
                    day = timezone.localdate(p.enrolled_at)
                else:
                    target, start, end = window_of(pv, events_of(pid, protocol))
                    if target is None:
                        break
                    if pv.anchor == "consent" and pv.offset_days == 0:
                        day = target + timedelta(days=int(rng.integers(0, pv.window.after_days // 2 + 1)))
                    else:
                        jitter = int(rng.integers(-(pv.window.before_days // 2), pv.window.after_days // 2 + 1))
                        day = target + timedelta(days=jitter)
                if day > today or (pv.follow_up and pv.id not in traj.visits and pv.id not in traj.missed):
                    if pv.follow_up and traj.dropout_after is not None and day <= today:
                        _drop_out(p, traj, last_day or day, today, coord, rng)
                    break
                if pv.id in traj.missed:
                    continue
                age = (today - day).days
                if pv.follow_up and age <= 14 and rng.random() < 0.3:
                    break  # still to be entered
                answers = dict(traj.visits.get(pv.id, {}))
                for form_id in pv.forms:
                    form = next(f for f in protocol.schedule.forms if f.id == form_id)
                    if form.procedure and not _kit_procedure(protocol, form_id):
                        kit = next(iter(allocated_kits(pid, pv.id)), None)
                        units = getattr(protocol.product, "units_per_kit", None)
                        if kit is not None:
                            answers[form_id] = procedure_items(protocol, form_id, day, kit=kit, units=units)
                answers = {f: a for f, a in answers.items() if f in pv.forms and not _kit_procedure(protocol, f)}
                try:
                    _enter_visit(pid, pv, day, answers, coord, inv, now, today, age, rng,
                                 actors=procedure_actors(protocol, ctx.users))
                except RuleViolation as exc:
                    ctx.progress(f"visit {pv.id} of participant {pid} not entered: {exc}")
                    break
                last_day = day


def procedure_actors(protocol, users: dict) -> dict:
    """For each procedure record form, a demo user of a role that records the procedure."""
    from django.contrib.auth import get_user_model

    from annulus.accounts.permissions import role_of

    by_role = {}
    for u in get_user_model().objects.filter(username__in=[u.username for u in users.values()]).order_by("id"):
        by_role.setdefault(role_of(u), u)
    out = {}
    for f in protocol.schedule.forms:
        proc = protocol.form_procedure(f.id)
        if proc is not None:
            out[f.id] = next((by_role[r] for r in proc.recorded_by if r in by_role), None)
    return out


STEPS = [(20, liposuction_all), (40, follow_up_all), (45, book_upcoming)]
