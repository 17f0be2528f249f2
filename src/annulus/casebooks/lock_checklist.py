"""Open work before the database lock: casebooks of enrolled participants that the principal
investigator has not signed, or whose signature a later change invalidated."""

from __future__ import annotations

from django.urls import reverse
from django.utils.translation import gettext as _g
from django.utils.translation import gettext_lazy as _

from annulus.participants.models import Participant

from . import selectors

ORDER = 40
GROUP = "casebooks"
TITLE = _("Casebooks not signed by the investigator (or signature invalidated)")


def open_items() -> list[dict]:
    people = list(Participant.objects.filter(case_number__isnull=False).order_by("case_number")
                  .only("id", "case_number", "screening_number"))
    states = selectors.signature_status([p.pk for p in people])
    words = {selectors.UNSIGNED: _g("not signed"), selectors.INVALIDATED: _g("signature invalidated by a change after signing")}
    return [{"key": f"casebook:{p.pk}", "label": f"{p.label} · {words[states[p.pk]]}",
             "link": reverse("casebook", args=[p.pk])} for p in people if states[p.pk] != selectors.SIGNED]
