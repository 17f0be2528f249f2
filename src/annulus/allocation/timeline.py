"""Milestones this app adds to the participant's journey (blind-safe: number and code only)."""

from .models import Envelope, Transplant


def events(participant) -> list[dict]:
    out = []
    env = Envelope.objects.filter(participant=participant).select_related("opened_by").first()
    if env and env.opened_at:
        out.append({"at": env.opened_at, "title": "Randomised", "status": "randomised", "milestone": "randomised",
                    "detail": f"envelope {env.random_number} opened, drug code {env.drug_code}",
                    "by": env.opened_by.username if env.opened_by else "", "recorded": env.opened_at})
    t = Transplant.objects.filter(participant=participant).select_related("recorded_by").first()
    if t:
        out.append({"at": t.transplanted_at, "title": "Transplanted", "status": "treated", "milestone": "treated",
                    "detail": f"{t.disc_level}, {t.needle_gauge} G, {t.volume_ml} mL; activity restricted until "
                              f"{t.activity_restriction_until.isoformat()}",
                    "by": t.recorded_by.username, "recorded": t.recorded_at})
    return out
