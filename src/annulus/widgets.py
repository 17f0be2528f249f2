"""Form widgets shared by every app.

``<input type="date">`` and ``<input type="datetime-local">`` accept and show only ISO values
(``2026-03-05``, ``2026-03-05T14:30``), whatever the page's language. Django's own date widgets
render a value in the active locale's format (``2026年3月5日`` in zh-hans), which such an input
cannot show: the field looks empty and saving it fails. These widgets always render ISO; the
form fields read ISO in every language.
"""

from __future__ import annotations

from django import forms

ISO_DATE = "%Y-%m-%d"
ISO_DATETIME = "%Y-%m-%dT%H:%M"


class DateInput(forms.DateInput):
    """A browser date picker that shows its value in every language."""

    input_type = "date"

    def __init__(self, attrs=None, format=None):
        super().__init__(attrs, format=format or ISO_DATE)


class DateTimeInput(forms.DateTimeInput):
    """A browser date-and-time picker (local time of the trial) that shows its value in every language."""

    input_type = "datetime-local"

    def __init__(self, attrs=None, format=None):
        super().__init__(attrs, format=format or ISO_DATETIME)
