"""Choice lists for web forms: every choice a person answers starts empty.

No clinical answer is pre-selected anywhere: a select shows an empty first option ("—") and a
required choice must be made before the form is accepted.
"""

from __future__ import annotations

BLANK = ("", "—")


def with_blank(choices) -> list:
    """``choices`` with the empty first option (once, even if ``choices`` already has one)."""
    return [BLANK] + [c for c in choices if c[0] != ""]
