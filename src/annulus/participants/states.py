"""The participant status machine. One table says which step may follow which."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from annulus.errors import IllegalTransition

PRE_SCREENED = "pre_screened"
CONSENTED = "consented"
SCREENING = "screening"
SCREEN_FAILED = "screen_failed"
ELIGIBLE = "eligible"
ENROLLED = "enrolled"
RANDOMISED = "randomised"
TREATED = "treated"
IN_FOLLOW_UP = "in_follow_up"
COMPLETED = "completed"
WITHDRAWN = "withdrawn"
LOST = "lost_to_follow_up"

LABELS = {
    PRE_SCREENED: _("pre-screened"),
    CONSENTED: _("consented"),
    SCREENING: _("screening"),
    SCREEN_FAILED: _("screen failure"),
    ELIGIBLE: _("eligible"),
    ENROLLED: _("enrolled"),
    RANDOMISED: _("randomised"),
    TREATED: _("treated"),
    IN_FOLLOW_UP: _("in follow-up"),
    COMPLETED: _("completed"),
    WITHDRAWN: _("withdrawn"),
    LOST: _("lost to follow-up"),
}
CHOICES = list(LABELS.items())
ORDER = list(LABELS)

ACTIVE_AFTER_ENROLMENT = {ENROLLED, RANDOMISED, TREATED, IN_FOLLOW_UP}

TRANSITIONS: dict[str, set[str]] = {
    PRE_SCREENED: {CONSENTED, WITHDRAWN},
    CONSENTED: {SCREENING, WITHDRAWN},
    SCREENING: {SCREEN_FAILED, ELIGIBLE, WITHDRAWN},
    ELIGIBLE: {ENROLLED, SCREENING, WITHDRAWN},
    ENROLLED: {RANDOMISED, WITHDRAWN, LOST},
    RANDOMISED: {TREATED, WITHDRAWN, LOST},
    TREATED: {IN_FOLLOW_UP, WITHDRAWN, LOST},
    IN_FOLLOW_UP: {COMPLETED, WITHDRAWN, LOST},
    SCREEN_FAILED: set(),
    COMPLETED: set(),
    WITHDRAWN: set(),
    LOST: set(),
}

# why a step is refused, in words a coordinator understands
REASONS = {
    SCREEN_FAILED: _("this person failed screening; a screen failure cannot continue"),
    WITHDRAWN: _("this participant has withdrawn; nothing more can be done"),
    LOST: _("this participant is lost to follow-up"),
    COMPLETED: _("this participant has completed the trial"),
}


def check(current: str, target: str) -> None:
    if target in TRANSITIONS.get(current, set()):
        return
    why = REASONS.get(current)
    if why is None:
        why = _("a participant who is %(current)s cannot become %(target)s") % {
            "current": LABELS.get(current, current), "target": LABELS.get(target, target)}
    raise IllegalTransition("status", str(why))
