"""Plausible dates and times, one rule for every form, API schema and protocol value (no Django).

Any date or date-time a user types must lie between 1900-01-01 and 2100-12-31 (a date of birth
included), and a date-time must convert to UTC (``0001-01-01T00:00+14:00`` does not). Rules that
say more (not in the future, not before the trial, not before consent) live with their records.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import AfterValidator

EARLIEST = date(1900, 1, 1)
LATEST = date(2100, 12, 31)
OUT_OF_RANGE = f"must be between {EARLIEST.isoformat()} and {LATEST.isoformat()}"


def problem(value) -> str | None:
    """Why ``value`` (a date or datetime) is implausible, or None."""
    if isinstance(value, datetime):
        try:
            if value.tzinfo is not None:
                value.astimezone(UTC)
        except (OverflowError, ValueError):
            return OUT_OF_RANGE
        value = value.date()
    if isinstance(value, date) and not EARLIEST <= value <= LATEST:
        return OUT_OF_RANGE
    return None


def _check(value):
    message = problem(value)
    if message:
        raise ValueError(message)
    return value


# for API schemas: ``visit_date: PlausibleDate`` (a 422 naming the field otherwise)
PlausibleDate = Annotated[date, AfterValidator(_check)]
PlausibleDateTime = Annotated[datetime, AfterValidator(_check)]
