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
        if any(v.status == 403 for v in self.violations):
            # a refusal for the caller's role is answered as one (403), whatever else is wrong
            self.status = 403


class IllegalTransition(RuleViolation):
    """A participant cannot move from its status to the one asked for."""

    status = 409


class NotPermitted(Exception):
    """The user's role may not do this. Views answer 403; the API answers 403."""


class Problems:
    """Collects the broken rules of one request so that all are reported at once.

    ::

        problems = Problems()
        with problems.check():
            initials = clean_initials(initials)      # a RuleViolation here is kept, not raised
        with problems.check():
            phone = clean_phone(phone)
        problems.raise_any()                         # RuleViolation, or RuleViolations for several

    ``problems.broken("field")`` tells later checks that depend on a field to skip it.
    """

    def __init__(self):
        self.violations: list[RuleViolation] = []

    def add(self, field: str, message: str) -> None:
        self.violations.append(RuleViolation(field, message))

    def check(self):
        return _Catch(self)

    def broken(self, *fields: str) -> bool:
        return any(v.field in fields for v in self.violations)

    def raise_any(self) -> None:
        if len(self.violations) == 1:
            raise self.violations[0]
        if self.violations:
            raise RuleViolations(self.violations)

    def __bool__(self) -> bool:
        return bool(self.violations)


class _Catch:
    def __init__(self, problems: Problems):
        self.problems = problems

    def __enter__(self):
        return self.problems

    def __exit__(self, kind, exc, tb):
        if exc is None or not isinstance(exc, RuleViolation):
            return False
        self.problems.violations.extend(getattr(exc, "violations", [exc]))
        return True
