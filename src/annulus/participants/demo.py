"""Demo steps 85 and 95: the investigator reviews the open adverse-event tasks of the participant
who completed the study (step 85, before its casebook is signed at step 90); the data manager locks what is clean, through the service, so the padlocks show on
the record pages, the status grid and the pre-lock checklist: the casebook of a participant who
completed the study (signed at step 90), and of the first participants in follow-up their screening
and their baseline visit (or, where work is still open there, single forms), and the 1-week VAS form
of the next two. A record with open work
(a draft, an open query) is refused by the service and left unlocked."""

from __future__ import annotations

from annulus.errors import RuleViolation

from . import services, states
from .models import Participant

FIRST = 4


def _lock(dm, pid: int, visit: str = "", form: str = "") -> bool:
    try:
        services.lock_record(actor=dm, participant_id=pid, visit=visit, form=form)
    except RuleViolation:
        return False
    return True


def _completed(ctx):
    return Participant.objects.filter(pk__in=ctx.enrolled, status=states.COMPLETED).order_by("case_number")[:1]


def close_out(ctx) -> None:
    """Step 85, before the casebooks of the ended participants are signed: the investigator reviews
    the adverse-event tasks still open on the casebook of the participant who completed."""
    from annulus.safety import services as safety
    from annulus.safety.models import AeTask

    inv = ctx.users.get("investigator")
    if inv is None:
        return
    for p in _completed(ctx):
        for task in AeTask.objects.filter(participant_id=p.pk, closed_at__isnull=True).order_by("id"):
            try:
                safety.dismiss_ae_task(actor=inv, task_id=task.pk, reason=(
                    "Reviewed at the end of study with the source notes: no new or worsening adverse event "
                    "to record; the finding was not clinically relevant on review."))
            except RuleViolation:
                continue


def locks_all(ctx) -> None:
    dm = ctx.users.get("datamanager")
    if dm is None:
        return
    for p in _completed(ctx):
        _lock(dm, p.pk)
    follow = list(Participant.objects.filter(pk__in=ctx.enrolled, status=states.IN_FOLLOW_UP)
                  .order_by("case_number").values_list("pk", flat=True)[:FIRST + 2])
    for pid in follow[FIRST:]:  # the primary end point at 1 week, verified: its form alone
        _lock(dm, pid, visit="w1", form="vas")
    for n, pid in enumerate(follow[:FIRST]):
        if n % 2 == 0:
            _lock(dm, pid, visit="screening") or _lock(dm, pid, visit="screening", form="consent")
        if not _lock(dm, pid, visit="baseline"):
            for form in ("vas", "odi"):
                _lock(dm, pid, visit="baseline", form=form)


STEPS = [(85, close_out), (95, locks_all)]
