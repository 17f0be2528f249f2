"""The shared input checks: one message per rule, naming the field."""

from datetime import datetime, timedelta, timezone

import pytest

from annulus.checks import clean_moment, clean_text
from annulus.errors import RuleViolation


@pytest.mark.req("X-5.7")
@pytest.mark.parametrize("value, kwargs, message", [
    ("", {}, "is required"),
    ("x" * 2001, {}, "must be at most 2000 characters"),
    ("short", {"min_len": 10}, "must be at least 10 characters"),
    ("bell\x07", {}, "contains control characters"),
])
def test_clean_text_refuses_naming_the_field(value, kwargs, message):
    with pytest.raises(RuleViolation) as err:
        clean_text("reason", value, **kwargs)
    assert err.value.field == "reason" and err.value.message == message


def test_clean_text_keeps_sql_and_html_literally_and_allows_empty_optional():
    assert clean_text("details", "  '); DROP TABLE x; -- <b>  ") == "'); DROP TABLE x; -- <b>"
    assert clean_text("details", None, required=False) == ""


@pytest.mark.req("P-2.3")
@pytest.mark.parametrize("value, message", [
    (datetime(2024, 1, 1, 9, 0), "needs a time zone"),
    (datetime.now(timezone.utc) + timedelta(hours=1), "cannot be in the future"),
    ("2024-01-01", "must be a date and time"),
    (None, "is required"),
])
def test_clean_moment_refuses_naming_the_field(value, message):
    with pytest.raises(RuleViolation) as err:
        clean_moment("onset_at", value)
    assert err.value.field == "onset_at" and err.value.message == message


def test_clean_moment_allows_clock_skew_and_optional_absence():
    soon = datetime.now(timezone.utc) + timedelta(minutes=2)
    assert clean_moment("at", soon) == soon
    assert clean_moment("at", None, required=False) is None
