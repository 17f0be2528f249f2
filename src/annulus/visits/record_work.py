"""What the visits app tells record locks (X-7.5): the visits that exist only once recorded
(unscheduled ones, with their forms) and the draft forms that forbid locking a form, a visit or
the casebook."""

from __future__ import annotations

from django.utils.translation import gettext as _

from .models import UNSCHEDULED, FormRecord, Visit, parse_visit_key


def recorded_visits(participant_id: int) -> dict[str, list[str]]:
    return {v.key: list(v.forms) for v in Visit.objects.filter(participant_id=participant_id, visit_id=UNSCHEDULED)}


def open_work(participant_id: int, visit: str, form: str) -> list[str]:
    from annulus.participants.locks import record_name

    drafts = FormRecord.objects.filter(participant_id=participant_id, state=FormRecord.DRAFT).select_related("visit")
    if visit:
        visit_id, number = parse_visit_key(visit)
        drafts = drafts.filter(visit__visit_id=visit_id, visit__number=number)
    elif form:
        return []  # a log form of the casebook has no visit forms
    if form:
        drafts = drafts.filter(form_id=form)
    return [_("draft form: %(what)s") % {"what": record_name(r.visit.key, r.form_id)}
            for r in drafts.order_by("visit_id", "id")]
