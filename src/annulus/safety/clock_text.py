"""SAE and SUSAR reporting clocks in the page's language.

A report keeps, as written when its clock was set, the recipient's English name, the rule of its
deadline and any calendar warning (the record, in English). Pages show them in their own language:
the recipient's name from the protocol file (English and Chinese), the rule and the warning read
back from their fixed English forms (``annulus.workdays.clocks``, ``annulus.safety.deadlines``)
into their parts and said again in the active language. A text of another form is shown as kept."""

from __future__ import annotations

import re

from django.utils.translation import get_language
from django.utils.translation import gettext as _

_HOURS = re.compile(r"^(?P<hours>\d+) h after first knowledge$")
_LATER = re.compile(r"^later of (?P<hours>\d+) h after first knowledge and the end of working day (?P<days>\d+) "
                    r"\((?P<day>\d{4}-\d{2}-\d{2}) (?P<tz>[^,)]+)(?P<weekends>, weekends only)?\); "
                    r"the (?P<which>working day|hours) limit applies$")
_SUSAR = re.compile(r"^SUSAR, (?P<kind>fatal or life-threatening|not fatal or life-threatening): (?P<days>\d+) calendar "
                    r"days after first knowledge \(by the end of (?P<day>\d{4}-\d{2}-\d{2}) (?P<tz>[^;)]+); ICH E2A\)"
                    r"(?:; the event became a SUSAR at the follow-up of (?P<start>.+))?$")
_WARNING = re.compile(r"^holiday calendar for (?P<year>\d{4}) not available; weekends only$")


def recipient_name(report, protocol=None) -> str:
    """The recipient's name in the active language (the protocol's name for its id; else as kept)."""
    if protocol is None:
        from annulus.trial.selectors import active_protocol

        protocol = active_protocol()
    names = {r.id: r.name for r in protocol.safety.sae_recipients}
    names[protocol.safety.susar.id] = protocol.safety.susar.name
    text = names.get(report.recipient)
    return text.get(get_language()) if text is not None else report.recipient_name


def rule(text: str) -> str:
    """A kept deadline rule in the active language."""
    if m := _HOURS.match(text):
        return _("%(hours)s h after first knowledge") % {"hours": m["hours"]}
    if m := _LATER.match(text):
        values = {"hours": m["hours"], "days": m["days"], "day": m["day"], "tz": m["tz"]}
        if m["weekends"]:
            out = _("later of %(hours)s h after first knowledge and the end of working day %(days)s "
                    "(%(day)s %(tz)s, weekends only)") % values
        else:
            out = _("later of %(hours)s h after first knowledge and the end of working day %(days)s "
                    "(%(day)s %(tz)s)") % values
        which = _("the working-day limit applies") if m["which"] == "working day" else _("the hours limit applies")
        return _("%(first)s; %(then)s") % {"first": out, "then": which}
    if m := _SUSAR.match(text):
        values = {"days": m["days"], "day": m["day"], "tz": m["tz"]}
        if m["kind"] == "fatal or life-threatening":
            out = _("SUSAR, fatal or life-threatening: %(days)s calendar days after first knowledge "
                    "(by the end of %(day)s %(tz)s; ICH E2A)") % values
        else:
            out = _("SUSAR, not fatal or life-threatening: %(days)s calendar days after first knowledge "
                    "(by the end of %(day)s %(tz)s; ICH E2A)") % values
        if m["start"]:
            then = _("the event became a SUSAR at the follow-up of %(when)s") % {"when": m["start"]}
            out = _("%(first)s; %(then)s") % {"first": out, "then": then}
        return out
    return text


def warning(text: str) -> str:
    """A kept calendar warning in the active language."""
    if m := _WARNING.match(text or ""):
        return _("holiday calendar for %(year)s not available; weekends only") % {"year": m["year"]}
    return text
