"""Building allocated participants through the services, for tests of this and other apps."""

from __future__ import annotations

from datetime import timedelta

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


def released_and_dispensed(users, envelope):
    checked_at = timezone.now() - timedelta(hours=3)
    services.record_release(actor=users["pharmacist"], envelope_id=envelope.pk, lot_number="LOT-1",
                            tested_on=timezone.localdate(checked_at), results=PASSING, checked_at=checked_at)
    return services.dispense(actor=users["pharmacist"], envelope_id=envelope.pk,
                             dispensed_at=timezone.now() - timedelta(hours=2))


def transplanted(users, participant, envelope):
    released_and_dispensed(users, envelope)
    return services.record_transplant(actor=users["investigator"], participant_id=participant.pk,
                                      transplanted_at=timezone.now() - timedelta(hours=1),
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
