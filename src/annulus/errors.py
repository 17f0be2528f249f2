"""Errors shared by services, views, the API and the CLI (no Django import).

A ``RuleViolation`` names the field and the rule it breaks. Views turn it into a form error,
the API into a 4xx JSON body ``{"field": ..., "message": ...}``, the CLI into one line.
"""

from __future__ import annotations


class RuleViolation(Exception):
    """A request broke a business rule; nothing was written."""

    status = 400

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def as_dict(self) -> dict:
        return {"field": self.field, "message": self.message}


class RuleViolations(RuleViolation):
    """Several rules broken in one request (a visit's forms saved together), each naming its
    field; the first one is also this exception's own field and message."""

    def __init__(self, violations: list[RuleViolation]):
        first = violations[0]
        super().__init__(first.field, first.message)
        self.violations = list(violations)


class IllegalTransition(RuleViolation):
    """A participant cannot move from its status to the one asked for."""

    status = 409


class NotPermitted(Exception):
    """The user's role may not do this. Views answer 403; the API answers 403."""
