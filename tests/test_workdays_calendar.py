"""Working-day calendar for mainland China (public holidays and adjusted working days)."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

import pytest

from annulus.workdays import (
    WorkdayCalendarError,
    add_working_days,
    end_of_nth_working_day,
    is_working_day,
    nth_working_day,
    supported_years,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.req("P-6.2")
@pytest.mark.parametrize(
    "day, working",
    [
        (date(2024, 3, 8), True),  # ordinary Friday
        (date(2024, 3, 9), False),  # ordinary Saturday
        (date(2024, 2, 9), True),  # Spring Festival eve 2024 was a working day
        (date(2024, 2, 12), False),  # Spring Festival holiday, a Monday
        (date(2024, 2, 4), True),  # Sunday made a working day before the Spring Festival
        (date(2024, 2, 18), True),  # Sunday made a working day after the Spring Festival
        (date(2024, 5, 11), True),  # Saturday made a working day after Labour Day
        (date(2024, 5, 1), False),  # Labour Day, a Wednesday
        (date(2024, 10, 1), False),  # National Day
    ],
)
def test_is_working_day(day, working):
    assert is_working_day(day) is working


@pytest.mark.req("P-6.2")
def test_add_working_days():
    assert add_working_days(date(2024, 3, 8), 1) == date(2024, 3, 11)  # Friday -> Monday
    assert add_working_days(date(2024, 3, 11), -1) == date(2024, 3, 8)
    assert add_working_days(date(2024, 3, 9), 0) == date(2024, 3, 9)
    assert add_working_days(date(2024, 2, 9), 1) == date(2024, 2, 18)  # across the Spring Festival
    assert add_working_days(date(2024, 5, 10), 1) == date(2024, 5, 11)  # adjusted working Saturday
    assert add_working_days(date(2024, 3, 4), 5) == date(2024, 3, 11)


@pytest.mark.req("P-6.2")
def test_nth_working_day_counts_a_working_start_as_day_one():
    assert nth_working_day(date(2024, 3, 8), 1) == date(2024, 3, 8)
    assert nth_working_day(date(2024, 3, 8), 2) == date(2024, 3, 11)
    # A non-working start: the next working day is day 1.
    assert nth_working_day(date(2024, 3, 9), 1) == date(2024, 3, 11)
    assert nth_working_day(date(2024, 2, 10), 2) == date(2024, 2, 19)
    with pytest.raises(WorkdayCalendarError, match="n:"):
        nth_working_day(date(2024, 3, 8), 0)


@pytest.mark.req("P-6.2")
def test_end_of_nth_working_day_is_local_end_of_day():
    start = datetime(2024, 2, 9, 18, 0, tzinfo=SHANGHAI)
    end = end_of_nth_working_day(start, 2)
    assert end == datetime.combine(date(2024, 2, 18), time.max, tzinfo=SHANGHAI)
    assert end.astimezone(timezone.utc) == datetime(2024, 2, 18, 15, 59, 59, 999999, tzinfo=timezone.utc)


@pytest.mark.req("P-6.2")
def test_naive_start_is_refused():
    with pytest.raises(WorkdayCalendarError, match="timezone-aware"):
        end_of_nth_working_day(datetime(2024, 2, 9, 18, 0), 2)


@pytest.mark.req("P-6.2")
def test_datetime_is_not_taken_for_a_date():
    with pytest.raises(WorkdayCalendarError, match="datetime.date"):
        is_working_day(datetime(2024, 2, 9, 18, 0, tzinfo=timezone.utc))


@pytest.mark.req("P-6.2")
def test_years_outside_the_calendar_are_refused():
    first, last = supported_years()
    assert first <= 2024 <= last
    with pytest.raises(WorkdayCalendarError, match="outside the working-day calendar"):
        is_working_day(date(first - 1, 6, 1))
    with pytest.raises(WorkdayCalendarError, match="outside the working-day calendar"):
        is_working_day(date(last + 1, 6, 1))
    # Counting forward across the last covered year is refused too, not guessed.
    with pytest.raises(WorkdayCalendarError, match=str(last + 1)):
        add_working_days(date(last, 12, 31), 5)
