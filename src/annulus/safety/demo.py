"""Demo step 50: adverse events through the services, so the safety pages are alive: simulated
events, SAE reports sent in time for the older SAEs, one SAE whose clocks are running and one
whose clocks ran out, a DSMB alert, the six-monthly open and closed reports, a recommendation,
and one withdrawal for safety. Every clinical time is in the past."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from annulus.errors import RuleViolation
from annulus.participants import states
from annulus.participants.models import Participant
from annulus.simulator import TreatedParticipant, simulate_adverse_events_for, uses_builtin_models
from annulus.simulator.adverse_events import SimParticipant, simulate_adverse_events
from annulus.trial.selectors import active_protocol

from . import reports, services
from .causality import items as causality_items
from .models import AdverseEvent


def _aware(naive: datetime) -> datetime:
    return min(timezone.make_aware(naive), timezone.now() - timedelta(minutes=20))


def _procedure_days(p: Participant, today):
    """Liposuction and injection days as the visits and allocation apps recorded them; a step not
    yet done lies beyond ``today`` so it yields no event. Without those apps, the protocol's
    typical timing (liposuction a week after enrolment, injection in the third week after it)."""
    enrolled = timezone.localtime(p.enrolled_at).date()
    try:
        from annulus.visits.selectors import liposuction_date, transplant_date
    except ImportError:
        return enrolled + timedelta(days=7), enrolled + timedelta(days=28)
    never = today + timedelta(days=3650)
    return liposuction_date(p.pk) or never, transplant_date(p.pk) or never


def _treated_on(protocol, p: Participant, today):
    """The day of the treatment as recorded (its procedure's record), or beyond ``today``."""
    try:
        from annulus.visits.events import events_of
    except ImportError:
        return today + timedelta(days=3650)
    treatment = protocol.treatment_procedure
    day = events_of(p.pk, protocol).recorded(treatment.id) if treatment else None
    return day or today + timedelta(days=3650)


def simulated_adverse_events(ctx) -> list[Participant]:
    """The simulator's adverse events of the participants ``ctx.enrolled``, recorded through the
    services (SAEs reported in time); returns those participants."""
    inv, coord = ctx.users["investigator"], ctx.users["coordinator"]
    people = list(Participant.objects.filter(pk__in=ctx.enrolled).prefetch_related("consents"))
    protocol = active_protocol()
    builtin = uses_builtin_models(protocol)
    sims = []
    for p in people:
        consent = p.consents.order_by("consented_at").first()
        if consent is None or p.enrolled_at is None:
            continue
        consented = timezone.localtime(consent.consented_at).date()
        if builtin:
            lipo, inj = _procedure_days(p, ctx.today)
            sims.append(SimParticipant(p.pk, consented, lipo, inj, services.system_arm(p.pk)))
        else:
            sims.append(TreatedParticipant(p.pk, consented, _treated_on(protocol, p, ctx.today),
                                           services.system_arm(p.pk)))
    events = (simulate_adverse_events(sims, seed=ctx.seed, today=ctx.today) if builtin else
              simulate_adverse_events_for(protocol, sims, seed=ctx.seed, today=ctx.today))
    for i, ev in enumerate(events):
        if i % 20 == 0:
            ctx.progress(f"adverse events {i}/{len(events)}")
        f = dict(ev.fields)
        for k in ("onset_at", "end_at", "first_knowledge_at"):
            if f.get(k) is not None:
                f[k] = _aware(f[k])
        try:
            ae = services.record_adverse_event(actor=inv if i % 3 else coord, participant_id=ev.participant_id, **f)
        except RuleViolation:
            continue  # outside this participant's collection window (withdrawn earlier, say)
        if ae.serious:
            _report_in_time(inv, ae)
    return people


def _judged(treatment: str, other: str) -> dict:
    """The causality to each procedure the protocol names (``causality_<id>``): ``treatment`` for
    the procedure that gives the treatment (the injection of the first trial), ``other`` for the
    others."""
    protocol = active_protocol()
    given = getattr(protocol.treatment_procedure, "id", None)
    return {c.field: treatment if c.procedure == given else other for c in causality_items(protocol)}


def adverse_events_all(ctx) -> None:
    inv, coord = ctx.users["investigator"], ctx.users["coordinator"]
    now = timezone.now()
    people = simulated_adverse_events(ctx)
    active = [p for p in people if p.status in states.ACTIVE_AFTER_ENROLMENT and p.enrolled_at < now - timedelta(days=3)]
    if len(active) >= 3:
        # an SAE known three hours ago: its 12-hour clocks are running
        p = active[-1]
        services.record_adverse_event(
            actor=inv, participant_id=p.pk, term="Lower-limb weakness", onset_at=now - timedelta(hours=9),
            description="Acute weakness of the right leg after a fall at home; admitted for observation.",
            serious=True, serious_criteria=["hospitalisation"], first_knowledge_at=now - timedelta(hours=3), grade=3,
            **_judged("unlikely", "not_related"), causality_product="unlikely",
            expectedness="unexpected", action_taken="hospitalised", outcome="not_recovered")
        # an SAE known 30 hours ago and not yet reported: overdue
        q = active[-2]
        services.record_adverse_event(
            actor=coord, participant_id=q.pk, term="Pneumonia", onset_at=now - timedelta(hours=40),
            description="Community-acquired pneumonia; admitted to the respiratory ward.",
            serious=True, serious_criteria=["hospitalisation"], first_knowledge_at=now - timedelta(hours=30), grade=3,
            **_judged("not_related", "not_related"), causality_product="not_related",
            expectedness="unexpected", action_taken="hospitalised", outcome="recovering")
        # a related serious event after the treatment, ended, leading to withdrawal for safety:
        # a discitis after the injection (the first trial), a drug-induced liver injury otherwise
        builtin = uses_builtin_models(active_protocol())
        treated_on = (lambda x: _procedure_days(x, ctx.today)[1]) if builtin else (
            lambda x: _treated_on(active_protocol(), x, ctx.today))
        injected = [x for x in active[:-2] if treated_on(x) <= ctx.today - timedelta(days=20)]
        r = injected[-1] if injected else active[-3]
        onset = now - timedelta(days=12)
        if builtin:
            term, description, causality = "Discitis", ("Fever and severe back pain at L4-5; MRI consistent with "
                                                        "discitis; antibiotics for 10 days."), {
                **_judged("probable", "not_related"), "causality_product": "possible"}
            why = "discitis after the injection"
        else:
            term, description, causality = "Drug-induced liver injury", (
                "ALT 6 x ULN and jaundice at the week-4 visit; study drug stopped; admitted for observation."), {
                **_judged("not_related", "not_related"), "causality_product": "probable"}
            why = "liver injury on the study drug"
        ae = services.record_adverse_event(
            actor=inv, participant_id=r.pk, term=term, onset_at=onset, end_at=now - timedelta(days=2),
            description=description, serious=True, serious_criteria=["hospitalisation"],
            first_knowledge_at=onset + timedelta(hours=4), grade=3, **causality,
            expectedness="unexpected", action_taken="withdrawn", outcome="recovered_with_sequelae")
        _report_in_time(inv, ae)
        services.withdraw_for_event(actor=inv, adverse_event_id=ae.pk, withdrawn_on=timezone.localdate(),
                                    details=f"{ae.label}: {why}; the participant asked to stop.")
    services.notify_overdue()

    ctx.progress("DSMB six-monthly reports")
    made = services.generate_due_reports(today=ctx.today)
    first_open = min((r for r in made if r.kind == "open"), key=lambda r: r.as_of, default=None)
    if first_open is not None:
        meeting = min(first_open.as_of + timedelta(days=14), ctx.today)
        services.record_recommendation(
            actor=ctx.users["dsmb"], meeting_on=meeting, as_of=first_open.as_of, decision="continue",
            summary="The DSMB reviewed the first six-monthly safety report and recommends continuing the trial unchanged.",
            closed_notes="No imbalance of serious or grade 3 events between arms.")
    ctx.progress(f"safety: {AdverseEvent.objects.count()} adverse events, {len(made)} DSMB reports "
                 f"(due {', '.join(d.isoformat() for d in reports.schedule(months=6, today=ctx.today))})")


def _report_in_time(actor, ae) -> None:
    """The site sent every report of an older SAE within its deadline and had it acknowledged."""
    now = timezone.now()
    for r in ae.sae_reports.all():
        sent = min(ae.first_knowledge_at + timedelta(hours=2 + r.pk % 5), r.due_at)
        if sent > now - timedelta(hours=2):
            continue
        services.record_report_sent(actor=actor, report_id=r.pk, sent_at=sent, sent_to=r.recipient_name, method="e-mail")
        services.record_report_acknowledged(actor=actor, report_id=r.pk, acknowledged_at=sent + timedelta(minutes=45),
                                            acknowledged_by="office of " + r.recipient_name.lower())


STEPS = [(50, adverse_events_all)]
