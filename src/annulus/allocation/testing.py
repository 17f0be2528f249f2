"""Building allocated participants through the services, for tests of this and other apps."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from . import services

SEED = 731_224_905_117_3
PASSING = {
    "passage": 3, "cd44": 98.6, "cd73": 97.9, "cd29": 99.1, "cd45": 0.8, "sterility_aerobic": "negative",
    "sterility_anaerobic": "negative", "mycoplasma": "negative", "karyotype": "normal", "concentration": 20.1,
    "viability": 94.5, "transport_temperature": 4.2,
}


def liposuction_days_ago(monkeypatch, days: int = 21, only: set[int] | None = None):
    """Make ``annulus.visits.selectors.liposuction_date`` answer ``today - days`` (for ``only`` ids)."""
    import annulus.visits.selectors as vs

    day = timezone.localdate() - timedelta(days=days)
    monkeypatch.setattr(vs, "liposuction_date", lambda pid: day if only is None or pid in only else None)
    return day


def generate(users, seed: int = SEED):
    return services.generate_list(actor=users["designer"], seed=seed)


def randomised(users, make_participant, n: int) -> list:
    """``n`` enrolled and randomised participants (list generated when missing)."""
    if services.current_list() is None:
        generate(users)
    out = []
    for _ in range(n):
        p = make_participant("enrolled")
        services.randomise(actor=users["investigator"], participant_id=p.pk)
        out.append(p)
    return out


def clock_at(monkeypatch, hh_mm: str) -> datetime:
    """Make the clock read ``hh_mm`` (site's zone) on today's date and run on from there:
    ``django.utils.timezone.now``, and through it ``localdate`` and ``localtime``, are patched."""
    real = timezone.now
    start_real = real()
    hour, minute = (int(x) for x in hh_mm.split(":"))
    start = timezone.localtime(start_real).replace(hour=hour, minute=minute, second=0, microsecond=0)
    monkeypatch.setattr(timezone, "now", lambda: start + (real() - start_real))
    return start


def earlier_today(share: float) -> datetime:
    """A moment of today, the site's local date, before now: ``share`` (between 0 and 1) of the way
    from local midnight to now. "Three hours ago" is yesterday in Asia/Shanghai between 00:00 and
    03:00 (16:00-19:00 UTC), so what a test means to happen today never steps back a fixed time."""
    now = timezone.now()
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + (now - midnight) * share


def released_and_dispensed(users, envelope):
    """Release checks and dispensing, both today (local date), in that order."""
    services.record_release(actor=users["pharmacist"], envelope_id=envelope.pk, lot_number="LOT-1",
                            tested_on=timezone.localdate(), results=PASSING, checked_at=earlier_today(0.25))
    return services.dispense(actor=users["pharmacist"], envelope_id=envelope.pk, dispensed_at=earlier_today(0.5))


def transplanted(users, participant, envelope):
    """Released, dispensed and transplanted today (local date)."""
    released_and_dispensed(users, envelope)
    return services.record_transplant(actor=users["investigator"], participant_id=participant.pk,
                                      transplanted_at=earlier_today(0.75),
                                      drug_code=envelope.drug_code, activity_restriction_explained=True)


def dispensed(users, make_participant, n: int, monkeypatch) -> list:
    """``n`` randomised participants whose product was released and dispensed (so an emergency
    unblinding has a treatment to reveal); their liposuction is made 21 days ago."""
    from .models import Envelope

    liposuction_days_ago(monkeypatch, 21)
    people = randomised(users, make_participant, n)
    for p in people:
        released_and_dispensed(users, Envelope.objects.get(participant=p))
    return people
