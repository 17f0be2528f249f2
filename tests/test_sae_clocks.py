"""SAE reporting deadlines: 12 h (head of centre, ethics committee) and the later of 24 h and the
end of the second working day (team leader), in the site's time zone, stored in UTC."""

from __future__ import annotations

import types
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from annulus.workdays import (
    ETHICS_COMMITTEE,
    HEAD_OF_CENTRE,
    TEAM_LEADER,
    SaeRule,
    WorkdayCalendarError,
    clock_status,
    sae_deadlines,
    supported_years,
)

UTC = timezone.utc
SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(*args) -> datetime:
    """A Shanghai wall-clock time as an aware UTC datetime."""
    return datetime(*args, tzinfo=SHANGHAI).astimezone(UTC)


def end_of_local_day(y, m, d) -> datetime:
    return datetime(y, m, d, 23, 59, 59, 999999, tzinfo=SHANGHAI).astimezone(UTC)


def due(deadlines, recipient) -> datetime:
    return next(d.due_utc for d in deadlines if d.recipient == recipient)


@pytest.mark.req("P-6.2")
def test_three_recipients_all_in_utc():
    deadlines = sae_deadlines(local(2024, 3, 5, 10, 0))  # a Tuesday
    assert [d.recipient for d in deadlines] == [HEAD_OF_CENTRE, ETHICS_COMMITTEE, TEAM_LEADER]
    for d in deadlines:
        assert d.due_utc.utcoffset() == timedelta(0)
        assert d.rule
    assert due(deadlines, HEAD_OF_CENTRE) == local(2024, 3, 5, 22, 0)
    assert due(deadlines, ETHICS_COMMITTEE) == local(2024, 3, 5, 22, 0)
    # Tuesday is working day 1, Wednesday day 2.
    assert due(deadlines, TEAM_LEADER) == end_of_local_day(2024, 3, 6)


@pytest.mark.req("P-6.2")
def test_across_a_weekend():
    friday = sae_deadlines(local(2024, 3, 8, 10, 0))
    assert due(friday, TEAM_LEADER) == end_of_local_day(2024, 3, 11)  # Monday
    saturday = sae_deadlines(local(2024, 3, 9, 10, 0))
    assert due(saturday, TEAM_LEADER) == end_of_local_day(2024, 3, 12)  # Monday is day 1, Tuesday day 2
    assert due(saturday, HEAD_OF_CENTRE) == local(2024, 3, 9, 22, 0)  # hours run on weekends


@pytest.mark.req("P-6.2")
def test_across_the_spring_festival():
    # 2024-02-09, the eve, was a working day (day 1); 10-17 February were holidays and
    # Sunday 18 February an adjusted working day (day 2).
    eve = sae_deadlines(local(2024, 2, 9, 16, 0))
    assert due(eve, HEAD_OF_CENTRE) == local(2024, 2, 10, 4, 0)
    assert due(eve, TEAM_LEADER) == end_of_local_day(2024, 2, 18)
    first_day = sae_deadlines(local(2024, 2, 10, 9, 0))
    assert due(first_day, TEAM_LEADER) == end_of_local_day(2024, 2, 19)


@pytest.mark.req("P-6.2")
def test_across_an_adjusted_working_saturday():
    # Saturday 2024-05-11 was a working day (Labour Day adjustment): it is day 2 after Friday.
    deadlines = sae_deadlines(local(2024, 5, 10, 11, 0))
    assert due(deadlines, TEAM_LEADER) == end_of_local_day(2024, 5, 11)
    # Labour Day week: knowledge on the holiday of 1 May; 6 May is day 1, 7 May day 2.
    deadlines = sae_deadlines(local(2024, 5, 1, 11, 0))
    assert due(deadlines, TEAM_LEADER) == end_of_local_day(2024, 5, 7)


@pytest.mark.req("P-6.2")
def test_late_friday_evening_uses_the_local_date():
    # 23:30 Friday in Shanghai is 15:30 Friday UTC; day 2 is Monday.
    known = local(2024, 3, 8, 23, 30)
    assert known == datetime(2024, 3, 8, 15, 30, tzinfo=UTC)
    deadlines = sae_deadlines(known)
    assert due(deadlines, HEAD_OF_CENTRE) == datetime(2024, 3, 9, 3, 30, tzinfo=UTC)
    assert due(deadlines, TEAM_LEADER) == datetime(2024, 3, 11, 15, 59, 59, 999999, tzinfo=UTC)


@pytest.mark.req("P-6.2")
def test_early_morning_local_date_differs_from_utc_date():
    # 00:30 Friday in Shanghai is still Thursday in UTC: Friday is day 1, so day 2 is Monday
    # (counting from the UTC date would wrongly give Friday).
    known = local(2024, 3, 8, 0, 30)
    assert known.date().isoformat() == "2024-03-07"
    assert due(sae_deadlines(known), TEAM_LEADER) == end_of_local_day(2024, 3, 11)


@pytest.mark.req("P-6.2")
def test_twelve_hour_clock_across_midnight():
    known = local(2024, 3, 5, 20, 15)
    assert due(sae_deadlines(known), HEAD_OF_CENTRE) == local(2024, 3, 6, 8, 15)


@pytest.mark.req("P-6.2")
def test_other_offsets_are_converted_and_other_site_zones_used():
    known = datetime(2024, 3, 8, 10, 0, tzinfo=ZoneInfo("Europe/London"))  # 18:00 in Shanghai
    deadlines = sae_deadlines(known)
    assert due(deadlines, HEAD_OF_CENTRE) == datetime(2024, 3, 8, 22, 0, tzinfo=UTC)
    assert due(deadlines, TEAM_LEADER).tzinfo == UTC
    # The same instant at a site in Urumqi time (UTC+6) still falls on Friday.
    urumqi = sae_deadlines(known, tz="Asia/Urumqi")
    assert due(urumqi, TEAM_LEADER) == datetime(2024, 3, 11, 17, 59, 59, 999999, tzinfo=UTC)


@pytest.mark.req("P-6.2")
def test_the_later_limit_applies():
    # With one working day, knowledge at 10:00 gives end of day (23:59) < 24 h (10:00 next day).
    rules = [SaeRule("sponsor", 24, working_days=1), SaeRule("dsmb", 48)]
    deadlines = sae_deadlines(local(2024, 3, 5, 10, 0), rules=rules)
    assert due(deadlines, "sponsor") == local(2024, 3, 6, 10, 0)
    assert "hours limit applies" in deadlines[0].rule
    assert due(deadlines, "dsmb") == local(2024, 3, 7, 10, 0)


@pytest.mark.req("P-6.2")
def test_rules_from_protocol_recipients():
    recipients = [
        types.SimpleNamespace(id="head_of_centre", hours=12, or_end_of_working_day=None),
        types.SimpleNamespace(id="team_leader", hours=24, or_end_of_working_day=2),
    ]
    deadlines = sae_deadlines(local(2024, 3, 8, 10, 0), rules=recipients)
    assert [d.recipient for d in deadlines] == ["head_of_centre", "team_leader"]
    assert due(deadlines, "team_leader") == end_of_local_day(2024, 3, 11)


@pytest.mark.req("P-6.2")
def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        sae_deadlines(datetime(2024, 3, 8, 10, 0))
    deadline = sae_deadlines(local(2024, 3, 8, 10, 0))[0]
    with pytest.raises(ValueError, match="naive"):
        clock_status(deadline, datetime(2024, 3, 8, 11, 0))
    with pytest.raises(ValueError, match="naive"):
        clock_status(deadline, local(2024, 3, 8, 11, 0), sent_at=datetime(2024, 3, 8, 11, 0))
    with pytest.raises(TypeError):
        sae_deadlines("2024-03-08T10:00Z")


@pytest.mark.req("P-6.2")
def test_unknown_zone_and_uncovered_year_are_refused():
    with pytest.raises(WorkdayCalendarError, match="time zone"):
        sae_deadlines(local(2024, 3, 8, 10, 0), tz="Mars/Olympus")
    last = supported_years()[1]
    with pytest.raises(WorkdayCalendarError, match="outside the working-day calendar"):
        sae_deadlines(datetime(last, 12, 31, 6, 0, tzinfo=UTC))


@pytest.mark.req("P-6.2")
def test_clock_states():
    deadline = sae_deadlines(local(2024, 3, 5, 10, 0))[0]  # due 22:00 local
    assert clock_status(deadline, local(2024, 3, 5, 19, 0)) == {
        "state": "running",
        "time_left": timedelta(hours=3),
    }
    assert clock_status(deadline, local(2024, 3, 5, 22, 0))["state"] == "running"  # due exactly now
    overdue = clock_status(deadline, local(2024, 3, 5, 23, 30))
    assert overdue == {"state": "overdue", "time_left": timedelta(hours=-1, minutes=-30)}
    met = clock_status(deadline, local(2024, 3, 6, 9, 0), sent_at=local(2024, 3, 5, 21, 0))
    assert met == {"state": "met", "time_left": timedelta(hours=1)}
    late = clock_status(deadline, local(2024, 3, 6, 9, 0), sent_at=local(2024, 3, 5, 22, 10))
    assert late == {"state": "late", "time_left": timedelta(minutes=-10)}
    # A bare UTC datetime works as the deadline too.
    assert clock_status(deadline.due_utc, local(2024, 3, 5, 21, 0))["state"] == "running"
