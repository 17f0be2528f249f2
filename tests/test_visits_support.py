"""Helpers shared by the visit tests (no tests here): a participant at a given point of the
schedule, with the transplant date set by monkeypatching the selector the allocation app feeds."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from django.utils import timezone

VAS = {"vas_mm": 62}
ODI = {f"s{i}": 2 for i in range(1, 11)}
JOA = {"low_back_pain": 1, "leg_pain": 2, "gait": 2, "slr": 2, "sensory": 2, "motor": 2, "turn_over": 1,
       "standing": 1, "washing": 2, "leaning_forward": 1, "sitting": 1, "lifting": 0, "walking": 1, "bladder": 0}
SF36 = {f"q{n}": 1 for n in range(1, 37)}
IMAGING = {"modic_superior": "II", "modic_inferior": "none", "pfirrmann": "IV", "height_index_mm": 7.5,
           "height_above_mm": 11.0, "height_below_mm": 10.0, "rom_flexion_deg": 8, "rom_extension_deg": -3}
VITALS = {"temperature": 36.6, "pulse": 72, "respiration": 16, "systolic_bp": 124, "diastolic_bp": 78}
BLOOD = {"wbc": 6.1, "neut": 3.5, "hgb": 138, "plt": 230}
LIVER = {"alt": 22, "ast": 20, "tbil": 12, "alb": 45, "crea": 70, "bun": 5.0}
IMMUNO = {"crp": 2, "esr": 8, "igg": 11, "c3": 1.1}
URINE = {"u_protein": "negative", "u_glucose": "negative", "u_rbc": 3, "u_wbc": 4}
AE = {"new_events": "no"}
GOOD = {"vas": VAS, "odi": ODI, "joa": JOA, "sf36": SF36, "imaging": IMAGING, "vitals": VITALS,
        "blood_routine": BLOOD, "liver_kidney": LIVER, "immunology": IMMUNO, "urinalysis": URINE,
        "adverse_events": AE}


def aware(day: date, hour: int = 10) -> datetime:
    return min(timezone.make_aware(datetime.combine(day, time(hour))), timezone.now())


@pytest.fixture
def transplant_dates(monkeypatch):
    """``transplant_dates[participant_id] = date`` sets the transplantation date the schedule sees."""
    return patched_transplant_dates(monkeypatch)


def patched_transplant_dates(monkeypatch) -> dict[int, date]:
    """The ``transplant_dates`` patch made with ``monkeypatch`` (also one undone after a module)."""
    dates: dict[int, date] = {}
    monkeypatch.setattr("annulus.visits.selectors._transplant_date", lambda pid: dates.get(pid))
    monkeypatch.setattr("annulus.visits.selectors._transplant_dates", lambda ids: {i: dates[i] for i in ids if i in dates})
    return dates


@pytest.fixture
def trial_participant(make_participant, users, transplant_dates):
    """``trial_participant(lipo_days_ago=..., transplant_days_ago=...)`` -> a randomised (or treated)
    participant with liposuction and transplantation that many days ago."""
    return trial_participant_maker(make_participant, users, transplant_dates)


def trial_participant_maker(make_participant, users, transplant_dates):
    """The ``trial_participant`` function (also for rows built once per module)."""
    from annulus.participants import services as ps
    from annulus.participants.models import Participant
    from annulus.visits import services as vs

    def make(lipo_days_ago: int | None = 40, transplant_days_ago: int | None = 19):
        p = make_participant("enrolled")
        today = timezone.localdate()
        if lipo_days_ago is not None:
            # enrolment is "now" in the fixture; move it back so day 0 may lie in the past
            Participant.objects.filter(pk=p.pk).update(enrolled_at=timezone.now() - timedelta(days=lipo_days_ago + 5),
                                                       prescreened_on=today - timedelta(days=lipo_days_ago + 20))
        ps.advance(actor=users["investigator"], participant_id=p.pk, target="randomised", reason="test")
        if lipo_days_ago is not None:
            vs.record_liposuction(actor=users["investigator"], participant_id=p.pk,
                                  performed_on=today - timedelta(days=lipo_days_ago), fat_volume_ml=150,
                                  observation_hours=4)
        if transplant_days_ago is not None:
            transplant_dates[p.pk] = today - timedelta(days=transplant_days_ago)
            ps.advance(actor=users["investigator"], participant_id=p.pk, target="treated", reason="test")
        return Participant.objects.get(pk=p.pk)

    return make


@pytest.fixture
def at_w1(trial_participant, transplant_dates, users):
    """A treated participant whose 1-week visit took place yesterday: (participant, visit)."""
    from annulus.visits import services as vs

    p = trial_participant(lipo_days_ago=35, transplant_days_ago=8)
    v = vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w1",
                      visit_date=timezone.localdate() - timedelta(days=1))
    return p, v


def complete_visit(user, participant_id: int, visit_id: str, visit_date: date, forms=None):
    from annulus.visits import services as vs

    v = vs.open_visit(actor=user, participant_id=participant_id, visit_id=visit_id, visit_date=visit_date)
    for f in forms or v.forms:
        vs.save_form(actor=user, participant_id=participant_id, visit_key=v.key, form_id=f, items=GOOD[f],
                     complete=True, collected_at=aware(visit_date))
    return v
