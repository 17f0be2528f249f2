"""``{% record_lock p visit form %}``: the padlock of a casebook, visit or form (X-7.5), for
everyone who can see the record, with the data manager's lock/unlock controls."""

from __future__ import annotations

from django import template

from annulus.accounts.permissions import has

from .. import locks

register = template.Library()


def _with_participant(lock, participant):
    lock.participant = participant
    return lock


@register.inclusion_tag("participants/_record_lock.html", takes_context=True)
def record_lock(context, participant, visit: str = "", form: str = ""):
    request = context.get("request")
    user = getattr(request, "user", None)
    own = locks.open_lock(participant.pk, visit, form)
    cover = own or locks.covering_lock(participant.pk, visit, form)
    inner = []
    if not form:
        # the padlock of a casebook or a visit also lists the visits and forms locked inside it
        inner = [{"name": locks.record_name(v, f), "lock": r}
                 for (v, f), r in locks.participant_locks(participant.pk).items()
                 if (v or f) and (not visit or (v == visit and f))]
    return {
        "p": participant, "visit": visit, "form": form, "own": own, "cover": cover,
        "cover_name": locks.record_name(cover.visit, cover.form) if cover else "",
        # the refusal a write would meet, word for word (level, who, since when)
        "message": locks.RecordLocked(_with_participant(cover, participant)).message if cover else "",
        "name": locks.record_name(visit, form), "inner": inner,
        "can_lock": has(user, "record.lock"),
        "next": request.get_full_path() if request is not None else "",
        "csrf_token": context.get("csrf_token"),
    }
