"""The dashboard's call list and overdue panel are built from the schedules of only the participants
who can be on them (chosen in SQL by their liposuction, transplantation and appointment dates).
Those lists equal the lists built from every active participant's schedule, participant by
participant, on a trial with participants at every stage (randomised, operated on but not yet
transplanted, treated, in follow-up with visits done, missed, late or open, booked appointments,
reminder calls made), on the days around today and a year ahead."""

from datetime import datetime, time, timedelta

import pytest
from django.test import RequestFactory
from django.utils import timezone

from tests.conftest import fresh, shared_rows


def _calls(rows):
    return [(r["participant"].pk, r["slot"].key, r["slot"].state, r["slot"].planned_on, r["visit_on"],
             r["call"].pk if r["call"] else None) for r in rows]


def _late(rows):
    return [(r["participant"].pk, r["slot"].key, r["slot"].state, r["days"]) for r in rows]


@pytest.fixture(scope="module")
def _trial(request, django_db_setup, django_db_blocker):
    """The trial, built once for the module (both tests only read it)."""
    from annulus.bench import _journey
    from annulus.bench.pages import _fill
    from annulus.participants.models import Participant
    from annulus.trial.demo import DemoContext, create_demo_users
    from annulus.trial.services import load_default_protocol
    from annulus.visits import services
    from annulus.visits.demo import book_upcoming
    from annulus.visits.models import Liposuction

    with shared_rows(request, django_db_blocker) as shared:
        with shared.build():
            load_default_protocol()
            users = create_demo_users()
            _fill(45, 7, users["coordinator"], users["investigator"], lambda done, total: None)
            _journey.advance(users, seed=7)
            book_upcoming(DemoContext(seed=7, today=timezone.localdate(), users=users, progress=lambda msg: None))
            # the randomised participants still waiting are operated on, not yet transplanted
            for p in Participant.objects.filter(status="randomised").exclude(
                    pk__in=Liposuction.objects.values("participant_id")):
                day = min(timezone.localdate(p.enrolled_at) + timedelta(days=1), timezone.localdate())
                services.record_liposuction(actor=users["investigator"], participant_id=p.pk, performed_on=day,
                                            fat_volume_ml=150, observation_hours=4)
            _late_forms(users)
        yield users


def _late_forms(users) -> None:
    """A form the late lists must show whatever the day the tests run (the demo leaves drafts only
    at visits of the last twelve days, and whether one is older than the submission deadline
    depends on the day): a form of an attended visit four days ago or more not yet entered, or
    else of an unscheduled visit ten days ago, saved as a draft then and never submitted."""
    from datetime import datetime as dt
    from datetime import time as clock

    from annulus.visits import services
    from annulus.visits.models import FormRecord, Visit

    today = timezone.localdate()
    for v in Visit.objects.filter(outcome="attended", visit_date__lte=today - timedelta(days=4),
                                  visit_date__gte=today - timedelta(days=90)).order_by("-visit_date"):
        entered = set(FormRecord.objects.filter(visit=v).values_list("form_id", flat=True))
        missing = [f for f in v.forms if f not in entered]
        if missing:
            collected = timezone.make_aware(dt.combine(v.visit_date, clock(9)))
            services.save_form(actor=users["coordinator"], participant_id=v.participant_id, visit_key=v.key,
                               form_id=missing[0], items={}, collected_at=collected, at=collected + timedelta(hours=1))
            return
    # every form entered: an unscheduled visit ten days ago with its VAS left as a draft
    from annulus.errors import RuleViolation
    from annulus.participants.models import Participant

    day = today - timedelta(days=10)
    for p in Participant.objects.filter(status="in_follow_up").order_by("pk"):
        try:
            v = services.add_unscheduled_visit(actor=users["investigator"], participant_id=p.pk, visit_date=day,
                                               reason="back pain between visits", forms=["vas"],
                                               at=timezone.make_aware(dt.combine(day, clock(10))))
        except RuleViolation:
            continue
        collected = timezone.make_aware(dt.combine(day, clock(10, 30)))
        services.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key=v.key, form_id="vas",
                           items={}, collected_at=collected, at=collected + timedelta(hours=1))
        return
    raise AssertionError("no participant in follow-up could have an unscheduled visit ten days ago")


@pytest.fixture
def trial(_trial, db):
    return {role: fresh(user) for role, user in _trial.items()}


@pytest.mark.req("P-4.6")
@pytest.mark.req("P-4.7")
@pytest.mark.req("X-4.8")
def test_panel_lists_equal_the_lists_from_every_schedule(trial):
    from annulus.participants.models import Participant
    from annulus.visits import selectors
    from annulus.visits.models import Appointment, Liposuction

    statuses = set(Participant.objects.filter(status__in=selectors.ACTIVE).values_list("status", flat=True))
    assert {"randomised", "in_follow_up"} <= statuses, statuses
    assert Appointment.objects.filter(superseded=False).exists()
    today = timezone.localdate()
    every_today = selectors.active_schedules(today=today)
    untransplanted = [p for p, slots in every_today
                      if any(s.procedure == "transplant" and s.state != "completed" for s in slots)]
    assert any(Liposuction.objects.filter(participant=p).exists() for p in untransplanted)

    calls_seen = late_seen = fewer = 0
    for shift in list(range(-30, 60)) + list(range(60, 400, 5)):
        day = today + timedelta(days=shift)
        every = selectors.active_schedules(today=day)
        fast_calls = selectors.call_list(day)
        assert _calls(fast_calls) == _calls(selectors.call_list(day, schedules=every)), day
        now = timezone.make_aware(datetime.combine(day, time(12)))
        fast_late = selectors.overdue(now=now)["visits"]
        assert _late(fast_late) == _late(selectors.overdue(now=now, schedules=every)["visits"]), day
        calls_seen += len(fast_calls)
        late_seen += len(fast_late)
        fewer += len(selectors.panel_schedules(day)) < len(every)
    # the comparison saw lists that were not empty, and the fast way derived fewer schedules
    assert calls_seen > 10 and late_seen > 10, (calls_seen, late_seen)
    assert fewer > 0


@pytest.mark.req("P-4.6")
@pytest.mark.req("P-4.7")
def test_dashboard_panels_equal_the_lists_from_every_schedule(trial, monkeypatch):
    from types import SimpleNamespace

    from annulus.visits import dashboard, selectors

    request = RequestFactory().get("/")
    request.user = trial["coordinator"]
    calls_seen = late_seen = forms_seen = 0
    for shift in (0, 3, 10, 20, 30, 45):
        now = timezone.now() + timedelta(days=shift)
        today = timezone.localdate(now)
        # the dashboard's clock moved ahead by ``shift`` days
        monkeypatch.setattr(dashboard, "timezone", SimpleNamespace(now=lambda now=now: now,
                                                                  localdate=timezone.localdate))
        panels = {p["template"]: p for p in dashboard.panels(request)}
        every = selectors.active_schedules(today=today)
        calls = panels["visits/_calls_panel.html"]
        expected_calls = selectors.call_list(today, schedules=every)
        assert _calls(calls["rows"]) == _calls(expected_calls), shift
        assert calls["pending"] == sum(1 for r in expected_calls if r["call"] is None)
        late = panels["visits/_overdue_panel.html"]
        expected = selectors.overdue(now=now, schedules=every)
        expected_late = expected["visits"]
        assert late["visits"] == len(expected_late), shift
        for name in ("unsubmitted", "incomplete", "late_submitted"):  # counted in SQL on the dashboard
            assert late[name] == len(expected[name]), (shift, name)
        forms_seen += len(expected["unsubmitted"]) + len(expected["late_submitted"])
        assert _late(late["top"]) == _late(expected_late[:5]), shift
        calls_seen += len(expected_calls)
        late_seen += len(expected_late)
    assert calls_seen and late_seen and forms_seen, (calls_seen, late_seen, forms_seen)
