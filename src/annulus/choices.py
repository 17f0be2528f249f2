"""Choice lists for web forms: every choice a person answers starts empty.

No clinical answer is pre-selected anywhere: a select shows an empty first option ("—") and a
required choice must be made before the form is accepted.
"""

from __future__ import annotations

BLANK = ("", "—")


def with_blank(choices) -> list:
    """``choices`` with the empty first option (once, even if ``choices`` already has one)."""
    return [BLANK] + [c for c in choices if c[0] != ""]


def _protocol_values() -> dict:
    from django.utils.translation import gettext_lazy as _

    return {"negative": _("negative"), "positive": _("positive"), "none": _("none"),
            "normal": _("normal"), "abnormal": _("abnormal"), "unknown": _("unknown"),
            "yes": _("yes"), "no": _("no"), "present": _("present"), "absent": _("absent")}


def value_label(value):
    """A choice value of the protocol file (its choices are plain strings, e.g. ``negative``) in the
    active language; values without a translation (Modic ``I``/``II``, grades) as they are."""
    if not isinstance(value, str):
        return value
    label = _protocol_values().get(value.strip().lower())
    return str(label) if label is not None else value
