"""Open work before the database lock: items the SDV plan asks to verify that are not verified
(never verified, or verified and changed since), one line per participant's form."""

from __future__ import annotations

from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext as _g
from django.utils.translation import gettext_lazy as _

ORDER = 25
GROUP = "sdv"
TITLE = _("Items not verified per the SDV plan")


def open_items() -> list[dict]:
    from annulus.participants.models import Participant
    from annulus.trial.selectors import active_protocol

    from . import selectors

    status = selectors.sdv_status()
    if not status:
        return []
    protocol = active_protocol()
    language = get_language()
    dictionary = selectors._dictionary()
    people = {p.pk: p for p in Participant.objects.filter(pk__in={pid for (pid, _v, _f) in status})}
    out = []
    for (pid, visit, form), s in sorted(status.items(), key=lambda kv: (people[kv[0][0]].screening_number,
                                                                         kv[0][1], kv[0][2])):
        left = s["required"] - s["verified"]
        if left <= 0:
            continue
        p = people[pid]
        label = (f"{p.label} · {selectors.visit_name(protocol, visit, language)} · "
                 f"{selectors.form_name(protocol, form, language, dictionary)} · "
                 + _g("%(left)d of %(n)d items not verified") % {"left": left, "n": s["required"]})
        if s["cleared"]:
            label += " (" + _g("%(n)d cleared by a change") % {"n": s["cleared"]} + ")"
        out.append({"key": f"sdv:{pid}:{visit}:{form}", "label": label,
                    "link": reverse("monitoring_sdv", args=[pid]) + "?show=todo"})
    return out
