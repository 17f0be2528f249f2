"""Working days in mainland China: weekends, public holidays and adjusted working days.

Backed by the ``chinesecalendar`` package (import name ``chinese_calendar``), which carries the
State Council's holiday schedule year by year, including the weekend days that are made working
days to bridge a holiday (for example Sunday 2024-02-18 after the Spring Festival, Saturday
2024-05-11 after Labour Day). Years the package does not cover raise ``WorkdayCalendarError``
rather than falling back to a Monday-Friday guess: a wrong deadline is worse than none.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo

import chinese_calendar
from chinese_calendar import constants as _cc_constants


class WorkdayCalendarError(ValueError):
    """A date outside the years the holiday calendar covers, or an unusable argument."""


def supported_years() -> tuple[int, int]:
    """First and last calendar year for which the holiday schedule is known."""
    years = [d.year for d in _cc_constants.holidays]
    return min(years), max(years)


def _check_date(day: date, name: str = "day") -> date:
    # A datetime is also a date; refuse it so nobody passes a UTC instant where a local date is meant.
    if isinstance(day, datetime) or not isinstance(day, date):
        raise WorkdayCalendarError(f"{name}: must be a datetime.date (got {type(day).__name__})")
    first, last = supported_years()
    if not first <= day.year <= last:
        raise WorkdayCalendarError(
            f"{name}: {day.isoformat()} is outside the working-day calendar "
            f"({first}-{last}); update the chinesecalendar package"
        )
    return day


def is_working_day(day: date) -> bool:
    """True when ``day`` is a working day in mainland China (adjusted weekend working days included)."""
    return bool(chinese_calendar.is_workday(_check_date(day)))


def add_working_days(day: date, n: int) -> date:
    """The date ``n`` working days after ``day`` (before it when ``n`` is negative).

    ``day`` itself is not counted, so ``add_working_days(friday, 1)`` is the next working day
    (usually Monday). ``n == 0`` returns ``day`` unchanged, working day or not.
    """
    _check_date(day)
    if isinstance(n, bool) or not isinstance(n, int):
        raise WorkdayCalendarError(f"n: must be an integer (got {n!r})")
    step = timedelta(days=1 if n >= 0 else -1)
    left = abs(n)
    current = day
    while left:
        current = _check_date(current + step)
        if is_working_day(current):
            left -= 1
    return current


def nth_working_day(day: date, n: int) -> date:
    """The ``n``-th working day of a period that starts on ``day``.

    ``day`` is working day 1 when it is a working day; otherwise the first working day after it
    is day 1. ``n`` must be at least 1.
    """
    _check_date(day)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise WorkdayCalendarError(f"n: must be an integer of at least 1 (got {n!r})")
    first = day if is_working_day(day) else add_working_days(day, 1)
    return add_working_days(first, n - 1)


def end_of_day(day: date, tz: tzinfo) -> datetime:
    """The last representable instant (23:59:59.999999) of ``day`` in time zone ``tz``."""
    return datetime.combine(day, time.max, tzinfo=tz)


def end_of_nth_working_day(start_dt_local: datetime, n: int) -> datetime:
    """End (23:59:59.999999, local) of the ``n``-th working day counted from ``start_dt_local``.

    ``start_dt_local`` must be aware; its local date is used, and that date counts as day 1 when
    it is a working day (see ``nth_working_day``). The result is in the same time zone. The end
    of the calendar day is used rather than office hours, which the protocol does not define.
    """
    aware = isinstance(start_dt_local, datetime) and start_dt_local.utcoffset() is not None
    if not aware:
        raise WorkdayCalendarError("start_dt_local: must be a timezone-aware datetime")
    return end_of_day(nth_working_day(start_dt_local.date(), n), start_dt_local.tzinfo)
