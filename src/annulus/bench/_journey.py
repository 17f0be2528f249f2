"""The whole journey for a benchmark or a test trial, through the demo builder's steps: every
participant enrolled and not yet randomised is randomised, has the liposuction, gets the product
(released, dispensed, transplanted on day 21), the follow-up visits whose dates have passed
(simulated answers, a few missed, late or left open) and the simulator's adverse events. A trial
can be grown step by step: each call takes only the newly enrolled participants further."""

from __future__ import annotations


def enrolled_waiting() -> list[int]:
    from annulus.participants.models import Participant

    return list(Participant.objects.filter(status="enrolled").order_by("enrolled_at", "id").values_list("pk", flat=True))


def advance(users: dict, *, seed: int, progress=lambda msg: None) -> int:
    """Take every enrolled participant through the journey; returns how many were taken."""
    from django.utils import timezone

    from annulus.allocation.demo import randomise_all, treat_all
    from annulus.safety.demo import simulated_adverse_events
    from annulus.trial.demo import DemoContext
    from annulus.visits.demo import follow_up_all, liposuction_all

    ctx = DemoContext(seed=seed, today=timezone.localdate(), users=users, progress=progress)
    ctx.enrolled = enrolled_waiting()
    for step in (randomise_all, liposuction_all, treat_all, follow_up_all, simulated_adverse_events):
        progress(f"journey: {step.__name__} ({len(ctx.enrolled)} participants)")
        step(ctx)
    return len(ctx.enrolled)


def sized_protocol_text(total: int) -> str:
    """The shipped protocol with room for ``total`` participants (a benchmark amendment):
    sample size and case-number width grown, nothing else changed."""
    import re
    from pathlib import Path

    from django.conf import settings

    text = Path(settings.ANNULUS_PROTOCOL_FILE).read_text(encoding="utf-8")
    total = max(100, -(-total // 8) * 8)  # whole blocks of 4 and 8
    width = max(3, len(str(total)))
    text = re.sub(r"sample_size: \{per_arm: \d+, total: \d+,", f"sample_size: {{per_arm: {total // 4}, total: {total},", text, count=1)
    text = re.sub(r"case_number_width: \d+", f"case_number_width: {width}", text, count=1)
    text = re.sub(r'^version: "([^"]+)"', lambda m: f'version: "{m.group(1)}.{total}"', text, count=1, flags=re.M)
    return text
