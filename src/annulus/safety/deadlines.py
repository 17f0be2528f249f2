"""SAE deadlines for this site, with a stated fallback when the holiday schedule of a year is
not yet published: working days are then Monday to Friday and the report carries a warning.
The workdays core itself never guesses; the fallback and its warning live here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from annulus.workdays import WorkdayCalendarError, sae_deadlines, supported_years


@dataclass(frozen=True)
class SiteDeadline:
    recipient: str
    due_utc: datetime
    rule: str
    warning: str = ""


def _weekday_nth(day, n: int):
    """The n-th Monday-Friday day of a period starting on ``day`` (day 1 if it is a weekday)."""
    current = day
    while current.weekday() >= 5:
        current += timedelta(days=1)
    left = n - 1
    while left:
        current += timedelta(days=1)
        if current.weekday() < 5:
            left -= 1
    return current


def _weekends_only(known: datetime, tz: str, rules) -> tuple[list[SiteDeadline], int]:
    zone = ZoneInfo(tz)
    local = known.astimezone(zone)
    out, years = [], []
    for r in rules:
        by_hours = known + timedelta(hours=r.hours)
        days = getattr(r, "or_end_of_working_day", None)
        if not days:
            out.append(SiteDeadline(r.id, by_hours, f"{r.hours} h after first knowledge"))
            continue
        day = _weekday_nth(local.date(), days)
        years.append(day.year)
        by_day = datetime.combine(day, time.max, tzinfo=zone).astimezone(timezone.utc)
        due = max(by_hours, by_day)
        which = "working day" if due == by_day else "hours"
        out.append(SiteDeadline(
            r.id, due,
            f"later of {r.hours} h after first knowledge and the end of working day {days} "
            f"({day.isoformat()} {tz}, weekends only); the {which} limit applies"))
    return out, max(years) if years else local.year


def site_deadlines(first_knowledge_utc: datetime, tz: str, rules) -> list[SiteDeadline]:
    """One deadline per recipient rule (protocol ``safety.sae_recipients``), in UTC."""
    try:
        return [SiteDeadline(d.recipient, d.due_utc, d.rule)
                for d in sae_deadlines(first_knowledge_utc, tz, rules=rules)]
    except WorkdayCalendarError:
        first, last = supported_years()
        deadlines, year = _weekends_only(first_knowledge_utc.astimezone(timezone.utc), tz, rules)
        if first <= year <= last:
            year = last + 1
        warning = f"holiday calendar for {year} not available; weekends only"
        return [SiteDeadline(d.recipient, d.due_utc, d.rule, warning if "weekends only" in d.rule else "")
                for d in deadlines]
