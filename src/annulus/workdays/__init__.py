"""Working-day calendar with Chinese public holidays and adjusted working days, and the SAE
reporting clocks built on it. Pure Python; no Django import."""

from .calendar import (
    WorkdayCalendarError,
    add_working_days,
    end_of_day,
    end_of_nth_working_day,
    is_working_day,
    nth_working_day,
    supported_years,
)
from .clocks import (
    DEFAULT_SAE_RULES,
    ETHICS_COMMITTEE,
    HEAD_OF_CENTRE,
    TEAM_LEADER,
    Deadline,
    SaeRule,
    clock_status,
    sae_deadlines,
    susar_deadline,
)

__all__ = [
    "DEFAULT_SAE_RULES",
    "ETHICS_COMMITTEE",
    "HEAD_OF_CENTRE",
    "TEAM_LEADER",
    "Deadline",
    "SaeRule",
    "WorkdayCalendarError",
    "add_working_days",
    "clock_status",
    "end_of_day",
    "end_of_nth_working_day",
    "is_working_day",
    "nth_working_day",
    "sae_deadlines",
    "supported_years",
    "susar_deadline",
]
