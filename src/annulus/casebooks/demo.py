"""Demo steps: the principal investigator signs casebooks through the service, so the casebook
pages, the participant pages and the pre-lock checklist show every state. Step 44 signs the first
participants in follow-up (an adverse event recorded for one of them at step 50 invalidates its
signature, as a later change does); step 90 signs the casebooks of participants whose study ended."""

from __future__ import annotations

from annulus.participants import states
from annulus.participants.models import Participant

from . import selectors, services

FIRST_IN_FOLLOW_UP = 12


def _signature(ctx):
    from annulus.accounts.services import sign
    from annulus.trial.demo import DEMO_PASSWORD

    pi = ctx.users.get("pi")
    return pi, (sign(user=pi, password=DEMO_PASSWORD, meaning=selectors.MEANING) if pi else None)


def _sign_all(ctx, people) -> None:
    pi, signature = _signature(ctx)
    if pi is None:
        return
    done = selectors.signature_status([p.pk for p in people])
    for p in people:
        if done[p.pk] != selectors.SIGNED:
            services.sign_casebook(actor=pi, participant_id=p.pk, signature=signature)


def sign_follow_up(ctx) -> None:
    people = Participant.objects.filter(status=states.IN_FOLLOW_UP).order_by("case_number")[:FIRST_IN_FOLLOW_UP]
    _sign_all(ctx, list(people))


def sign_ended(ctx) -> None:
    people = Participant.objects.filter(case_number__isnull=False,
                                        status__in=(states.COMPLETED, states.WITHDRAWN, states.LOST)).order_by("case_number")
    _sign_all(ctx, list(people))


STEPS = [(44, sign_follow_up), (90, sign_ended)]
