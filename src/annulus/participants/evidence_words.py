"""The screening evidence's problems in the reader's language. The protocol core says them in
English (``annulus.protocol.rules.EVIDENCE_RULES``); the same texts are marked here for
translation, and the field's label is taken in the active language."""

from __future__ import annotations

from django.utils.translation import get_language, gettext
from django.utils.translation import gettext_noop as _noop

# the core's texts, word for word (a test compares the two)
MESSAGES = {
    "unknown": _noop("is not an evidence field of this protocol"),
    "date": _noop("%(label)s must be a date (YYYY-MM-DD), got %(value)s"),
    "future": _noop("%(label)s cannot be in the future (%(value)s)"),
    "date_range": _noop("%(label)s must be between %(earliest)s and %(latest)s (%(value)s)"),
    "number": _noop("%(label)s must be a number"),
    "number_got": _noop("%(label)s must be a number, got %(value)s"),
    "finite": _noop("%(label)s must be a finite number"),
    "whole": _noop("%(label)s must be a whole number, got %(value)s"),
    "min": _noop("%(label)s must be at least %(limit)s%(unit)s, got %(value)s"),
    "max": _noop("%(label)s must be at most %(limit)s%(unit)s, got %(value)s"),
    "yes_no": _noop("%(label)s must be yes or no, got %(value)s"),
    "choice": _noop("%(label)s must be one of %(choices)s, got %(value)s"),
    "long": _noop("%(label)s must be at most 2000 characters"),
}


def evidence_message(exc) -> str:
    """An ``EvidenceError`` said in the active language (its English message when its rule is
    not known here)."""
    text = MESSAGES.get(getattr(exc, "rule", ""))
    if text is None:
        return exc.message
    label = exc.label.get(get_language()) if exc.label is not None else exc.field
    return gettext(text) % {"label": label, **exc.params}
