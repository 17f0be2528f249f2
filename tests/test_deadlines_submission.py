"""Deadlines (P-4.7): records submitted within 3 days of collection, all data within 10 days."""

from datetime import timedelta

import pytest
from django.utils import timezone

from .test_visits_support import GOOD, aware, transplant_dates, trial_participant  # noqa: F401


@pytest.mark.req("P-4.7")
def test_unsubmitted_late_and_incomplete_are_listed(trial_participant, transplant_dates, users):
    from annulus.visits import services as vs
    from annulus.visits.selectors import overdue

    p = trial_participant(lipo_days_ago=60, transplant_days_ago=40)
    tx = transplant_dates[p.pk]
    day = tx + timedelta(days=7)
    coord = users["coordinator"]
    vs.open_visit(actor=coord, participant_id=p.pk, visit_id="w1", visit_date=day, at=aware(day, 9))
    # collected on the visit day, still a draft: submission overdue
    vs.save_form(actor=coord, participant_id=p.pk, visit_key="w1", form_id="vas", items={"vas_mm": 40},
                 collected_at=aware(day), at=aware(day, 11))
    # completed 5 days after collection: submitted late
    vs.save_form(actor=coord, participant_id=p.pk, visit_key="w1", form_id="odi", items=GOOD["odi"], complete=True,
                 collected_at=aware(day), at=aware(day + timedelta(days=5)))
    # completed the same day: on time
    vs.save_form(actor=coord, participant_id=p.pk, visit_key="w1", form_id="joa", items=GOOD["joa"], complete=True,
                 collected_at=aware(day), at=aware(day, 15))
    data = overdue()
    assert [r["form"].form_id for r in data["unsubmitted"]] == ["vas"]
    assert [r["form"].form_id for r in data["late_submitted"]] == ["odi"]
    assert [r["visit"].visit_id for r in data["incomplete"]] == ["w1"]
    assert data["late_submitted"][0]["late_by"] >= timedelta(days=2)


@pytest.mark.req("P-4.7")
def test_nothing_overdue_when_submitted_in_time(trial_participant, transplant_dates, users):
    from annulus.visits import services as vs
    from annulus.visits.selectors import overdue

    p = trial_participant(lipo_days_ago=35, transplant_days_ago=8)
    day = timezone.localdate() - timedelta(days=1)
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w1", visit_date=day)
    for f in ("vas", "odi"):
        vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id=f, items=GOOD[f],
                     complete=True, collected_at=aware(day))
    data = overdue()
    assert data["unsubmitted"] == [] and data["late_submitted"] == [] and data["incomplete"] == []


@pytest.mark.req("P-4.7")
def test_save_time_cannot_be_in_the_future(trial_participant, transplant_dates, users):
    from annulus.errors import RuleViolation
    from annulus.visits import services as vs

    p = trial_participant(lipo_days_ago=35, transplant_days_ago=8)
    with pytest.raises(RuleViolation) as e:
        vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w1", visit_date=timezone.localdate(),
                      at=timezone.now() + timedelta(days=1))
    assert e.value.field == "at"
