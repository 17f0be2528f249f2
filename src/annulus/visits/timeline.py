"""Milestones this app adds to the participant's journey: liposuction and each visit."""

from datetime import datetime, time

from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from annulus.trial.selectors import active_protocol

from .selectors import current_liposuction, visits_of


def _day(d):
    return timezone.make_aware(datetime.combine(d, time(12, 0)))


def events(participant) -> list[dict]:
    out = []
    lipo = current_liposuction(participant.pk)
    if lipo:
        out.append({"at": _day(lipo.performed_on), "title": _("Liposuction (day 0)"), "status": "treated",
                    "detail": f"{lipo.fat_volume_ml} mL", "by": lipo.recorded_by.username, "recorded": lipo.recorded_at})
    visits = active_protocol().schedule.visits
    names = {v.id: v.name.get(get_language()) for v in visits}
    follow_up = {v.id for v in visits if v.follow_up}
    first_follow_up = True
    # by date (the first follow-up visit attended starts the follow-up), undated ones last
    for v in sorted(visits_of(participant.pk), key=lambda v: (v.visit_date is None, v.visit_date, v.id)):
        if v.visit_date is None and v.outcome != "missed":
            continue
        name = names.get(v.visit_id) or _("Unscheduled visit")
        title = _("%(visit)s missed") % {"visit": name} if v.outcome == "missed" else name
        status = "missed" if v.outcome == "missed" else ("completed" if v.completed_at else "open")
        when = _day(v.visit_date) if v.visit_date else v.created_at
        item = {"at": when, "title": title, "status": status, "detail": v.reason,
                "by": v.created_by.username, "recorded": v.created_at}
        if first_follow_up and v.visit_id in follow_up and v.outcome == "attended":
            item["milestone"] = "in_follow_up"  # the first follow-up data start the follow-up
            first_follow_up = False
        out.append(item)
    return out
