"""The Report page's form (X-8.5): nothing chosen for the reader; the as-of time may be typed as
the page shows it (ISO, ``2026-03-05T14:30``) or as a Chinese reader writes it
(``2026年3月5日 14:30``, ``2026/03/05 14:30``); a day alone means the end of that day."""

from __future__ import annotations

import re
from datetime import datetime, time

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from annulus import dates, formdates
from annulus.formdates import DateTimeField

# the report's own language, named in that language (as the language switch names them)
LANGUAGE_CHOICES = [("en", "English"), ("zh-hans", "中文")]
FORMAT_CHOICES = [("pdf", "PDF"), ("html", "HTML")]
BLIND_CHOICES = [("blinded", _("Blinded report (all participants pooled)")),
                 ("unblinded", _("Unblinded report (by group or treatment)"))]

MOMENT_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S",
                  "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S"]
DAY_FORMATS = ["%Y-%m-%d", "%Y/%m/%d"]
CHINESE = re.compile(r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日\s*"
                     r"(?:(\d{1,2})\s*[:：]\s*(\d{1,2})(?:\s*[:：]\s*(\d{1,2}))?)?$")


class AsOfField(DateTimeField):
    """A date and time (site time) as typed in either language; a day alone is the end of that
    day (now, for today), as ``annulus report --as-of`` reads it."""

    def __init__(self, **kwargs):
        super().__init__(input_formats=MOMENT_FORMATS, **kwargs)

    def to_python(self, value):
        text = value.strip() if isinstance(value, str) else value
        if isinstance(text, str) and text:
            m = CHINESE.match(text)
            if m:
                y, mo, d, h, mi, s = m.groups()
                text = f"{y}-{int(mo):02d}-{int(d):02d}"
                if h is not None:
                    text += f" {int(h):02d}:{int(mi):02d}:{int(s or 0):02d}"
            day = _day(text)
            if day is not None:
                if dates.problem(day):
                    raise formdates._refuse()
                end = timezone.make_aware(datetime.combine(day, time(23, 59, 59)), timezone.get_current_timezone())
                return min(end, timezone.now()) if day == timezone.localdate() else end
        return super().to_python(text)


def _day(text: str):
    for fmt in DAY_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


class OptionSelect(forms.Select):
    """A select whose options in ``disabled_values`` are shown but cannot be chosen."""

    disabled_values: frozenset = frozenset()

    def create_option(self, name, value, *args, **kwargs):
        option = super().create_option(name, value, *args, **kwargs)
        if value in self.disabled_values:
            option["attrs"]["disabled"] = True
        return option


class ReportForm(forms.Form):
    as_of = AsOfField(label=_("Data as of (optional)"), required=False,
                      help_text=_("Empty: the data as they stand when you ask. A day alone means the end of that day."))
    language = forms.ChoiceField(label=_("Language of the report"), choices=[("", "—"), *LANGUAGE_CHOICES])
    unblinded = forms.ChoiceField(label=_("Blinded or unblinded"), widget=OptionSelect,
                                  choices=[("", _("— choose —")), *BLIND_CHOICES])
    format = forms.ChoiceField(label=_("Format"), choices=[("", "—"), *FORMAT_CHOICES])

    def __init__(self, *args, unblinded_possible: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if not unblinded_possible:  # shown, so that the reader sees it exists, but not offered yet
            self.fields["unblinded"].widget.disabled_values = frozenset({"unblinded"})
