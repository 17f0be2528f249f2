"""The schedule derived from the protocol and the anchor dates (P-4.1, P-4.4, X-4.8)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.errors import RuleViolation
from .test_visits_support import complete_visit, transplant_dates, trial_participant  # noqa: F401


def _slots(p, **kw):
    from annulus.visits.selectors import schedule

    return {s.key: s for s in schedule(p, **kw)}


@pytest.mark.req("P-4.1", "P-4.4")
def test_planned_dates_before_transplant_then_recorded_dates(trial_participant, transplant_dates):
    p = trial_participant(lipo_days_ago=10, transplant_days_ago=None)
    today = timezone.localdate()
    lipo = today - timedelta(days=10)
    s = _slots(p)
    assert s["liposuction"].state == "completed"
    # planned transplant = liposuction + 21 days; window days 14-21 (the third week)
    assert s["transplant"].target == lipo + timedelta(days=21)
    assert s["transplant"].window_start == lipo + timedelta(days=14)
    assert s["transplant"].planned
    assert s["baseline"].target == lipo + timedelta(days=20)
    assert s["m24"].target == lipo + timedelta(days=21 + 730)
    assert [k for k in s] == ["liposuction", "baseline", "transplant", "w1", "m1", "m3", "m6", "m12", "m18", "m24"]
    # recording the transplant on day 16 moves every transplant-anchored date
    transplant_dates[p.pk] = lipo + timedelta(days=16)
    s = _slots(p, today=lipo + timedelta(days=16))
    assert not s["transplant"].planned
    assert s["transplant"].state == "completed"
    assert s["w1"].target == lipo + timedelta(days=23)
    assert s["m24"].target == lipo + timedelta(days=16 + 730)


@pytest.mark.req("X-4.8")
def test_visit_states_follow_the_calendar(trial_participant, transplant_dates):
    p = trial_participant(lipo_days_ago=40, transplant_days_ago=19)
    tx = transplant_dates[p.pk]
    # w1 window tx+5..tx+9: due a week before, open inside, overdue after, missed after the grace
    assert _slots(p, today=tx - timedelta(days=1))["w1"].state == "due"
    assert _slots(p, today=tx - timedelta(days=5))["w1"].state == "upcoming"
    assert _slots(p, today=tx + timedelta(days=7))["w1"].state == "open"
    assert _slots(p, today=tx + timedelta(days=12))["w1"].state == "overdue"
    assert _slots(p, today=tx + timedelta(days=40))["w1"].state == "missed"
    # baseline not done before the transplantation: missed
    assert _slots(p)["baseline"].state == "missed"
    assert _slots(p)["m1"].state == "due"  # window opens at day 23


@pytest.mark.req("X-4.8", "P-4.4")
def test_completed_in_and_out_of_window(trial_participant, transplant_dates, users):
    p = trial_participant(lipo_days_ago=60, transplant_days_ago=45)
    tx = transplant_dates[p.pk]
    complete_visit(users["coordinator"], p.pk, "w1", tx + timedelta(days=7))
    complete_visit(users["coordinator"], p.pk, "m1", tx + timedelta(days=38))  # window ends tx+37
    s = _slots(p)
    assert s["w1"].state == "completed"
    assert s["m1"].state == "completed_out_of_window"
    p.refresh_from_db()
    assert p.status == "in_follow_up"


@pytest.mark.req("X-4.8")
def test_missed_visit_recorded_and_unscheduled_visit_added(trial_participant, transplant_dates, users):
    from annulus.visits import services as vs

    p = trial_participant(lipo_days_ago=60, transplant_days_ago=45)
    tx = transplant_dates[p.pk]
    vs.record_missed(actor=users["coordinator"], participant_id=p.pk, visit_id="w1", reason="in hospital elsewhere")
    v = vs.add_unscheduled_visit(actor=users["investigator"], participant_id=p.pk, visit_date=tx + timedelta(days=3),
                                 reason="back pain flare", forms=["vas", "adverse_events"])
    s = _slots(p)
    assert s["w1"].state == "missed"
    assert s["u1"].state == "in_progress" and v.key == "u1"
    with pytest.raises(RuleViolation) as e:
        vs.add_unscheduled_visit(actor=users["investigator"], participant_id=p.pk, visit_date=tx, reason="",
                                 forms=["vas"])
    assert e.value.field == "reason"


@pytest.mark.req("X-4.8", "P-4.4")
def test_24_month_visit_at_3_months_is_refused(trial_participant, transplant_dates, users):
    from annulus.visits import services as vs
    from annulus.visits.models import Visit

    p = trial_participant(lipo_days_ago=120, transplant_days_ago=92)
    with pytest.raises(RuleViolation) as e:
        vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="m24",
                      visit_date=timezone.localdate())
    assert e.value.field == "visit_date"
    assert "window" in e.value.message
    assert not Visit.objects.exists()


@pytest.mark.req("X-4.8")
def test_visit_date_before_transplantation_is_refused(trial_participant, transplant_dates, users):
    from annulus.visits import services as vs
    from annulus.visits.models import Visit

    p = trial_participant(lipo_days_ago=40, transplant_days_ago=10)
    tx = transplant_dates[p.pk]
    with pytest.raises(RuleViolation) as e:
        vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w1", visit_date=tx - timedelta(days=1))
    assert e.value.field == "visit_date" and "transplantation" in e.value.message
    with pytest.raises(RuleViolation) as e:
        vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="baseline",
                      visit_date=tx + timedelta(days=1))
    assert e.value.field == "visit_date" and "before transplantation" in e.value.message
    assert not Visit.objects.exists()


@pytest.mark.req("X-4.8")
def test_follow_up_needs_a_recorded_transplantation(trial_participant, users):
    from annulus.visits import services as vs

    p = trial_participant(lipo_days_ago=30, transplant_days_ago=None)
    with pytest.raises(RuleViolation) as e:
        vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w1",
                      visit_date=timezone.localdate())
    assert e.value.field == "visit"


@pytest.mark.req("X-4.8")
def test_visit_in_the_next_visits_window_is_refused(trial_participant, transplant_dates, users):
    from annulus.visits import services as vs

    p = trial_participant(lipo_days_ago=60, transplant_days_ago=40)
    tx = transplant_dates[p.pk]
    with pytest.raises(RuleViolation) as e:  # w1 at day 30 is the 1-month visit
        vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w1", visit_date=tx + timedelta(days=30))
    assert e.value.field == "visit_date" and "1 month" in e.value.message


@pytest.mark.req("P-4.4")
def test_participant_completes_after_the_24_month_visit(trial_participant, transplant_dates, users):
    p = trial_participant(lipo_days_ago=760, transplant_days_ago=735)
    tx = transplant_dates[p.pk]
    complete_visit(users["coordinator"], p.pk, "w1", tx + timedelta(days=7))
    p.refresh_from_db()
    assert p.status == "in_follow_up"
    complete_visit(users["coordinator"], p.pk, "m24", tx + timedelta(days=731))
    p.refresh_from_db()
    assert p.status == "completed"


@pytest.mark.req("P-4.1")
def test_liposuction_selector_and_status_rule(make_participant, users):
    from annulus.visits import services as vs
    from annulus.visits.selectors import liposuction_date

    p = make_participant("enrolled")
    assert liposuction_date(p.pk) is None
    with pytest.raises(RuleViolation) as e:
        vs.record_liposuction(actor=users["investigator"], participant_id=p.pk, performed_on=timezone.localdate(),
                              fat_volume_ml=150, observation_hours=4)
    assert e.value.field == "status"


@pytest.mark.req("X-4.8")
def test_withdrawn_participant_has_no_visits_to_come(trial_participant, transplant_dates, users):
    from annulus.participants import services as ps
    from annulus.visits import services as vs

    p = trial_participant(lipo_days_ago=60, transplant_days_ago=40)
    tx = transplant_dates[p.pk]
    ps.withdraw(actor=users["coordinator"], participant_id=p.pk, withdrawn_on=tx + timedelta(days=20),
                category="participant_request", details="moved away")
    p.refresh_from_db()
    s = _slots(p)
    assert s["m3"].state == "cancelled"
    with pytest.raises(RuleViolation) as e:
        vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="m1", visit_date=tx + timedelta(days=30))
    assert e.value.field == "visit_date" and "left the trial" in e.value.message
    # data collected before the withdrawal can still be entered
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w1", visit_date=tx + timedelta(days=7))
