"""Form fields for every date and date-time a page asks for: Django's fields plus the plausibility
rule of ``annulus.dates`` (1900-01-01 to 2100-12-31, convertible to UTC), shown by the ISO widgets
of ``annulus.widgets``. A value outside it is a
form error on its field, never a server error when it is stored or compared."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from annulus import dates
from annulus.widgets import DateInput, DateTimeInput

MESSAGE = _("Enter a date between %(earliest)s and %(latest)s.")


def _refuse():
    return ValidationError(MESSAGE, code="implausible",
                           params={"earliest": dates.EARLIEST.isoformat(), "latest": dates.LATEST.isoformat()})


class DateField(forms.DateField):
    widget = DateInput  # ISO in every language

    def to_python(self, value):
        value = super().to_python(value)
        if value is not None and dates.problem(value):
            raise _refuse()
        return value


class DateTimeField(forms.DateTimeField):
    widget = DateTimeInput

    def to_python(self, value):
        try:
            value = super().to_python(value)
        except (OverflowError, ValueError):  # a naive time that the site's zone cannot place
            raise _refuse() from None
        if value is not None and dates.problem(value):
            raise _refuse()
        return value
