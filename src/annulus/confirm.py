"""The "I confirm" box of an irreversible step (enrol, randomise, dispense): the page asks for it
and the server checks it, so a stray click or a script without it records nothing."""

from __future__ import annotations

from django.utils.translation import gettext as _

FIELD = "confirm"


def confirmed(request) -> bool:
    return request.POST.get(FIELD) == "yes"


def missing() -> str:
    """The refusal, naming the field."""
    return _("confirm: tick “I confirm” to go ahead; nothing was recorded")
