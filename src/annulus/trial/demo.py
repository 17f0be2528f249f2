"""Fill a database with a realistic demo trial, entirely through the services, so that its
audit trail is real. Other apps add their part with a ``demo.py`` defining
``STEPS = [(order, function), ...]``; every step ``function(ctx)`` of every app runs after
screening and enrolment, sorted by ``order`` (allocation 10, liposuction 20, transplant 30,
follow-up visits 40, safety 50, ..., participants' own questionnaires 105). A module may also
define ``notes(users) -> list[str]``: lines the demo prints with the logins."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Callable

from django.contrib.auth import get_user_model
from django.utils import timezone

from annulus.accounts.services import create_user, sign
from annulus.errors import RuleViolation
from annulus.participants import services as ps
from annulus.simulator import generate_candidates, uses_builtin_models

from .selectors import active_protocol
from .services import load_default_protocol

DEMO_PASSWORD = "Annulus-Demo-2026!"

# username, role, full name, principal investigator
DEMO_USERS = [
    ("pi", "investigator", "Zhang Wei", True),
    ("investigator", "investigator", "Li Na", False),
    ("coordinator", "coordinator", "Chen Jing", False),
    ("pharmacist", "pharmacist", "Wang Fang", False),
    ("designer", "designer", "Liu Yang", False),
    ("statistician", "statistician", "Zhao Min", False),
    ("monitor", "monitor", "Sun Lei", False),
    ("datamanager", "data_manager", "Gao Yan", False),
    ("auditor", "auditor", "Zhou Hui", False),
    ("dsmb", "dsmb", "Wu Tao", False),
    ("ethics", "ethics", "Xu Ling", False),
    ("admin", "admin", "Ma Bo", False),
    ("supply", "supply_manager", "Qian Hong", False),
]
# the evidence still awaited for the most recent candidates of the first trial (results that take
# longest); for another protocol, its last two eligibility fields
PENDING_EVIDENCE = ("discography_l45_only_concordant", "disc_height_loss_percent")


def demo_users(protocol=None) -> list[tuple[str, str, str, bool]]:
    """The demo's logins for the roles the protocol declares."""
    roles = {r.id for r in (protocol or active_protocol()).roles}
    return [u for u in DEMO_USERS if u[1] in roles]


@dataclass
class DemoContext:
    seed: int
    today: object
    users: dict = field(default_factory=dict)
    enrolled: list = field(default_factory=list)  # participant ids in enrolment order
    progress: Callable[[str], None] = lambda msg: None


def create_demo_users(password: str = DEMO_PASSWORD) -> dict:
    roles = {r.id for r in active_protocol().roles}
    User = get_user_model()
    users = {}
    for username, role, name, is_pi in demo_users():
        existing = User.objects.filter(username=username).first()
        users[username] = existing or create_user(
            actor=None, username=username, password=password, role=role, known_roles=roles,
            full_name=name, is_pi=is_pi, email=f"{username}@annulus.example", phone="+86 411 8363 5963",
        )
    return users


def _aware(day, hour=10):
    """A clinic time on ``day``, never later than a few minutes ago."""
    when = timezone.make_aware(datetime.combine(day, time(hour, 0)))
    return min(when, timezone.now() - timedelta(minutes=10))


def build_demo(*, seed: int = 2022, candidates: int = 130, progress: Callable[[str], None] | None = None) -> DemoContext:
    progress = progress or (lambda msg: None)
    load_default_protocol()
    protocol = active_protocol()
    today = timezone.localdate()
    ctx = DemoContext(seed=seed, today=today, progress=progress)
    ctx.users = create_demo_users()
    coord, inv = ctx.users["coordinator"], ctx.users["investigator"]
    # the investigator signs the eligibility decisions of the batch once, as one session
    signature = sign(user=inv, password=DEMO_PASSWORD, meaning=ps.ELIGIBILITY_SIGNATURE)
    builtin = uses_builtin_models(protocol)
    # recruitment over the time the schedule takes and four months more (800 days for the first
    # trial): some participants have finished, others are in follow-up, the last are screening
    span = 800 if builtin else max(v.offset_days for v in protocol.schedule.visits) + 120
    start = today - timedelta(days=span)
    people = generate_candidates(candidates, seed=seed, start=start, days=span, protocol=None if builtin else protocol)
    pending = PENDING_EVIDENCE if builtin else tuple(f.id for f in protocol.eligibility.fields[-2:])
    limit = protocol.sample_size.total
    for i, c in enumerate(people, 1):
        if i % 10 == 0:
            progress(f"screening {i}/{len(people)}")
        p = ps.prescreen(actor=coord, initials=c.initials, sex=c.sex, recruitment_source=c.source,
                         prescreened_on=c.prescreened_on, full_name=c.full_name, phone=c.phone, site=c.site or "")
        recent = (today - c.prescreened_on).days < 12
        if not c.consents:
            if not recent:
                ps.withdraw(actor=coord, participant_id=p.pk, withdrawn_on=c.prescreened_on + timedelta(days=3),
                            category="declined_consent", details="Declined to take part after the information visit")
            continue
        consent_day = min(c.consent_date, today)
        if recent and c.index % 3 == 0:
            continue  # still deciding: stays pre-screened
        ps.record_consent(actor=coord, participant_id=p.pk, consent_version="1.0",
                          consented_at=_aware(consent_day, 9), taken_by=inv)
        collected = min(consent_day + timedelta(days=2), today)
        if recent and c.index % 3 == 1:
            continue  # consented, screening not started
        ev = dict(c.evidence)
        if recent:
            ev = {k: v for k, v in ev.items() if k not in pending}
        ps.enter_evidence(actor=coord, participant_id=p.pk, values=ev, collected_on=collected)
        try:
            d = ps.decide_eligibility(actor=inv, participant_id=p.pk, signature=signature,
                                      decided_at=_aware(collected, 16))
        except RuleViolation:
            continue  # evidence incomplete: still screening
        if d.outcome == "eligible" and len(ctx.enrolled) < limit:
            if recent and c.index % 2 == 0:
                continue  # eligible, awaiting enrolment
            ps.enrol(actor=inv, participant_id=p.pk, enrolled_at=_aware(min(collected + timedelta(days=3), today), 11))
            ctx.enrolled.append(p.pk)
    steps = sorted((order, fn.__module__, fn) for m in _demo_modules() for order, fn in m.STEPS)
    for order, name, fn in steps:
        progress(f"demo: {name}.{fn.__name__}")
        fn(ctx)
    return ctx


def demo_notes(users=None) -> list[str]:
    """The lines the apps' demo modules add to the demo's output (``notes(users)``), such as a
    participant link to try on a phone."""
    lines = []
    for m in _demo_modules():
        if hasattr(m, "notes"):
            lines.extend(m.notes(users))
    return lines


def _demo_modules():
    from .extensions import app_modules

    return [m for m in app_modules("demo") if m.__name__ != __name__]
