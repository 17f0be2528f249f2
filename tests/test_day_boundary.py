"""Dates follow the site's zone (Asia/Shanghai, UTC+8) at every hour of the day.

Between 00:00 and 08:00 local time the UTC date is still yesterday, and "a few hours ago" is
yesterday in the first hours of the day. The clock is set just after midnight, just before it and
at noon (``testing.clock_at``) and the path from release to transplantation is run through the
services with the shared test helpers: what they do "today" happens on today's local date, and the
transplantation window is counted in local days.
"""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from annulus.allocation import selectors, services, testing
from annulus.allocation.models import Envelope
from annulus.errors import RuleViolation
from annulus.participants.models import Participant
from tests.conftest import TEST_PASSWORD

HOURS = ["00:30", "01:59", "12:00", "23:30"]


@pytest.mark.req("P-4.2", "P-4.3")
@pytest.mark.parametrize("local", HOURS)
def test_release_dispensing_and_transplant_happen_today_at_any_hour(users, make_participant, monkeypatch, local):
    testing.clock_at(monkeypatch, local)
    assert timezone.localtime().strftime("%H:%M") == local
    today = timezone.localdate()
    testing.liposuction_days_ago(monkeypatch, 21)
    a, b = testing.randomised(users, make_participant, 2)
    t = testing.transplanted(users, a, Envelope.objects.get(participant=a))
    env = Envelope.objects.select_related("dispensing").get(participant=a)
    rel = env.dispensing.release
    assert rel.tested_on == today
    assert timezone.localtime(rel.checked_at).date() == today
    assert timezone.localtime(env.dispensing.dispensed_at).date() == today
    assert rel.checked_at <= env.dispensing.dispensed_at <= t.transplanted_at <= timezone.now()
    assert selectors.transplant_date(a.pk) == today
    assert t.activity_restriction_until == today + timedelta(days=14)
    assert Participant.objects.get(pk=a.pk).status == "treated"
    # the other one is dispensed today, so there is a treatment to reveal in an emergency
    testing.released_and_dispensed(users, Envelope.objects.get(participant=b))
    services.emergency_unblind(actor=users["investigator"], participant_id=b.pk, password=TEST_PASSWORD,
                               reason="Emergency surgery, anaesthetist must know")
    assert selectors.emergency_unblinded_participant_ids() == [b.pk]


@pytest.mark.req("P-4.3", "P-4.1")
@pytest.mark.parametrize("local", HOURS)
def test_the_first_day_of_the_transplant_window_is_today_at_any_hour(users, make_participant, monkeypatch, local):
    testing.clock_at(monkeypatch, local)
    testing.liposuction_days_ago(monkeypatch, 14)  # today is day 14, the first day of the window
    p = testing.randomised(users, make_participant, 1)[0]
    testing.transplanted(users, p, Envelope.objects.get(participant=p))
    assert selectors.transplant_date(p.pk) == timezone.localdate()


@pytest.mark.req("P-4.3", "P-4.1")
def test_the_transplant_window_ends_at_local_midnight_not_utc(users, make_participant, monkeypatch):
    """00:30 in Shanghai is 16:30 UTC of the day before: on day 22 by the local date, day 21 by UTC."""
    now = testing.clock_at(monkeypatch, "00:30")
    lipo = testing.liposuction_days_ago(monkeypatch, 22)  # yesterday was day 21, the last of the window
    p = testing.randomised(users, make_participant, 1)[0]
    env = Envelope.objects.get(participant=p)
    late_last_day = now - timedelta(minutes=40)  # 23:50 local yesterday
    assert (late_last_day.date() - lipo).days == 21 and (now.date() - lipo).days == 22
    assert timezone.now().astimezone(UTC).date() == late_last_day.date()  # by UTC it is still day 21
    services.record_release(actor=users["pharmacist"], envelope_id=env.pk, lot_number="L", tested_on=late_last_day.date(),
                            results=testing.PASSING, checked_at=late_last_day - timedelta(hours=2))
    services.dispense(actor=users["pharmacist"], envelope_id=env.pk, dispensed_at=late_last_day - timedelta(hours=1))
    kw = dict(actor=users["investigator"], participant_id=p.pk, drug_code=env.drug_code,
              activity_restriction_explained=True)
    with pytest.raises(RuleViolation) as exc:
        services.record_transplant(transplanted_at=timezone.now(), **kw)  # day 22 in Shanghai
    assert exc.value.field == "transplanted_at" and "must be between" in exc.value.message
    t = services.record_transplant(transplanted_at=late_last_day, **kw)
    assert selectors.transplant_date(p.pk) == late_last_day.date()
    assert t.activity_restriction_until == late_last_day.date() + timedelta(days=14)
