"""The small input checks every service shares: free text and clinical times.

Times are compared with Django's clock (``django.utils.timezone.now``), the one the services
and their tests use. Each raises ``RuleViolation`` naming the field, so a form, the API and the CLI all show the same
message.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.utils import timezone

from annulus import dates
from annulus.errors import RuleViolation

TEXT_MAX = 2000
# a time entered a few minutes ahead of the server clock is a clock difference, not the future
CLOCK_SKEW = timedelta(minutes=5)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(field: str, value, *, required: bool = True, max_len: int = TEXT_MAX, min_len: int = 0) -> str:
    """Stripped text within its length bounds and free of control characters."""
    text = "" if value is None else str(value).strip()
    if required and not text:
        raise RuleViolation(field, "is required")
    if text and len(text) < min_len:
        raise RuleViolation(field, f"must be at least {min_len} characters")
    if len(text) > max_len:
        raise RuleViolation(field, f"must be at most {max_len} characters")
    if _CONTROL.search(text):
        raise RuleViolation(field, "contains control characters")
    return text


def clean_moment(field: str, value, *, required: bool = True) -> datetime | None:
    """An aware date and time that is not in the future."""
    if value in (None, ""):
        if required:
            raise RuleViolation(field, "is required")
        return None
    if not isinstance(value, datetime):
        raise RuleViolation(field, "must be a date and time")
    if value.tzinfo is None or value.utcoffset() is None:
        raise RuleViolation(field, "needs a time zone")
    if dates.problem(value):
        raise RuleViolation(field, dates.OUT_OF_RANGE)
    if value > timezone.now() + CLOCK_SKEW:
        raise RuleViolation(field, "cannot be in the future")
    return value
