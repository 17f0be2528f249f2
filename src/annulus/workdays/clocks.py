"""Reporting clocks for serious adverse events (protocol: "report to the head of the centre and the
ethics committee within 12 hours of the first learning, and report to the team leader within
24 hours or no later than the second working day").

Times are stored and returned in UTC; working days are counted on the site's local dates.

Interpretation of the team-leader rule. "Within 24 hours or no later than the second working day"
gives the reporter whichever limit is later, so the deadline is::

    max(first knowledge + 24 h, end of the 2nd working day)

where working days are counted from the local date of first knowledge, that date being working
day 1 if it is a working day (otherwise the next working day is day 1), and the "end" of a day is
23:59:59.999999 local time (the protocol names no office hours). On an ordinary Tuesday at 10:00
the deadline is Wednesday 23:59:59.999999; on a Friday it is the following Monday's end (or the
adjusted working Saturday/Sunday, if the holiday schedule makes one a working day).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .calendar import WorkdayCalendarError, end_of_day, end_of_nth_working_day

HEAD_OF_CENTRE = "head_of_centre"
ETHICS_COMMITTEE = "ethics_committee"
TEAM_LEADER = "team_leader"


@dataclass(frozen=True)
class SaeRule:
    """One recipient's limit: ``hours`` after first knowledge, or, when ``working_days`` is set,
    the later of that and the end of that working day (see the module docstring)."""

    recipient: str
    hours: int
    working_days: int | None = None


DEFAULT_SAE_RULES: tuple[SaeRule, ...] = (
    SaeRule(HEAD_OF_CENTRE, 12),
    SaeRule(ETHICS_COMMITTEE, 12),
    SaeRule(TEAM_LEADER, 24, working_days=2),
)


@dataclass(frozen=True)
class Deadline:
    recipient: str
    due_utc: datetime
    rule: str


def _require_aware(value: Any, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name}: must be a datetime (got {type(value).__name__})")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: naive datetime refused; give a timezone-aware UTC time")
    return value.astimezone(timezone.utc)


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise WorkdayCalendarError(f"tz: unknown time zone {tz!r}") from None


def _as_rule(item: Any) -> SaeRule:
    """Accept ``SaeRule`` or any object with ``id``/``hours``/``or_end_of_working_day``
    (the protocol file's ``safety.sae_recipients`` entries)."""
    if isinstance(item, SaeRule):
        return item
    try:
        return SaeRule(item.id, int(item.hours), getattr(item, "or_end_of_working_day", None))
    except AttributeError:
        raise TypeError(f"rules: cannot read a recipient rule from {item!r}") from None


def sae_deadlines(
    first_knowledge_utc: datetime,
    tz: str = "Asia/Shanghai",
    rules: Iterable[Any] | None = None,
) -> list[Deadline]:
    """Reporting deadlines, in UTC, for an SAE first known at ``first_knowledge_utc``.

    ``first_knowledge_utc`` must be timezone-aware (any offset is converted to UTC); a naive
    datetime raises ``ValueError``. ``tz`` is the site's time zone, used to count working days.
    ``rules`` defaults to the protocol's three recipients (head of centre and ethics committee:
    12 h; team leader: the later of 24 h and the end of the second working day). A date outside
    the holiday calendar's years raises ``WorkdayCalendarError``.
    """
    known = _require_aware(first_knowledge_utc, "first_knowledge_utc")
    zone = _zone(tz)
    local = known.astimezone(zone)
    deadlines = []
    for rule in (_as_rule(r) for r in (DEFAULT_SAE_RULES if rules is None else rules)):
        by_hours = known + timedelta(hours=rule.hours)
        if rule.working_days is None:
            deadlines.append(Deadline(rule.recipient, by_hours, f"{rule.hours} h after first knowledge"))
            continue
        by_day_local = end_of_nth_working_day(local, rule.working_days)
        by_day = by_day_local.astimezone(timezone.utc)
        due = max(by_hours, by_day)
        which = "working day" if due == by_day else "hours"
        deadlines.append(
            Deadline(
                rule.recipient,
                due,
                f"later of {rule.hours} h after first knowledge and the end of working day "
                f"{rule.working_days} ({by_day_local.date().isoformat()} {tz}); the {which} limit applies",
            )
        )
    return deadlines


def susar_deadline(
    start_utc: datetime, tz: str = "Asia/Shanghai", *, fatal_or_life_threatening: bool,
    fatal_days: int = 7, other_days: int = 15, recipient: str = "susar_expedited",
) -> Deadline:
    """Deadline of the expedited report of a SUSAR (ICH E2A): "no later than N calendar days after
    first knowledge" -- the local date of ``start_utc`` is day 0 and the report is due by the end
    (23:59:59.999999 local) of day N: 7 for a fatal or life-threatening SUSAR, 15 for others.
    Calendar days: weekends and public holidays count."""
    start = _require_aware(start_utc, "start_utc")
    zone = _zone(tz)
    days = fatal_days if fatal_or_life_threatening else other_days
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError("days: a positive whole number of calendar days")
    day = start.astimezone(zone).date() + timedelta(days=days)
    due = end_of_day(day, zone).astimezone(timezone.utc)
    kind = "fatal or life-threatening" if fatal_or_life_threatening else "not fatal or life-threatening"
    return Deadline(recipient, due, f"SUSAR, {kind}: {days} calendar days after first knowledge "
                                    f"(by the end of {day.isoformat()} {tz}; ICH E2A)")


def clock_status(
    deadline: Deadline | datetime, now_utc: datetime, sent_at: datetime | None = None
) -> dict[str, Any]:
    """State of one reporting clock.

    Before sending: ``running`` (``time_left`` = due - now, zero or more) or ``overdue``
    (``time_left`` negative). After sending: ``met`` when sent at or before the deadline, else
    ``late``; ``time_left`` is then the margin at sending (due - sent_at, negative when late).
    Naive datetimes raise ``ValueError``.
    """
    due = deadline.due_utc if isinstance(deadline, Deadline) else deadline
    due = _require_aware(due, "deadline")
    now = _require_aware(now_utc, "now_utc")
    if sent_at is not None:
        sent = _require_aware(sent_at, "sent_at")
        left = due - sent
        return {"state": "met" if left >= timedelta(0) else "late", "time_left": left}
    left = due - now
    return {"state": "running" if left >= timedelta(0) else "overdue", "time_left": left}
