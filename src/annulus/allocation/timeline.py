"""Milestones this app adds to the participant's journey (blind-safe: number and code only)."""

from django.utils.translation import gettext as _

from .selectors import envelope_of, transplant_of


def events(participant) -> list[dict]:
    out = []
    env = envelope_of(participant.pk)
    if env and env.opened_at:
        out.append({"at": env.opened_at, "title": _("Randomised"), "status": "randomised", "milestone": "randomised",
                    "detail": _("envelope %(n)s opened, drug code %(code)s") % {"n": env.random_number, "code": env.drug_code},
                    "by": env.opened_by.username if env.opened_by else "", "recorded": env.opened_at})
    t = transplant_of(participant.pk)
    if t:
        out.append({"at": t.transplanted_at, "title": _("Transplanted"), "status": "treated", "milestone": "treated",
                    "detail": _("%(level)s, %(g)s G, %(ml)s mL; activity restricted until %(until)s") % {
                        "level": t.disc_level, "g": t.needle_gauge, "ml": t.volume_ml,
                        "until": t.activity_restriction_until.isoformat()},
                    "by": t.recorded_by.username, "recorded": t.recorded_at})
    return out
