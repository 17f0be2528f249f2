"""The visit schedule section of the participant page."""

from annulus.accounts.permissions import has
from annulus.participants import states as pstates

from . import selectors


def panels(request, participant):
    if not has(request.user, "visits.view"):
        return []
    if participant.status not in (pstates.RANDOMISED, pstates.TREATED, pstates.IN_FOLLOW_UP, pstates.COMPLETED,
                                  pstates.WITHDRAWN, pstates.LOST):
        return []
    slots = selectors.schedule(participant)
    lipo = selectors.current_liposuction(participant.pk)
    if participant.status in (pstates.WITHDRAWN, pstates.LOST) and lipo is None:
        return []
    can_edit = has(request.user, "visits.edit")
    rows = []
    for s in slots:
        done = sum(1 for v in s.form_states.values() if v in ("complete", "changed"))
        rows.append({"slot": s, "done": done, "total": len(s.form_states)})
    return [{
        "template": "visits/_schedule_panel.html", "order": 30, "rows": rows, "lipo": lipo, "p": participant,
        "can_edit": can_edit,
        "can_lipo": can_edit and participant.status == pstates.RANDOMISED,
        "can_unscheduled": can_edit and lipo is not None and participant.status in selectors.ACTIVE,
        "planned": any(s.planned for s in slots),
        "due_days": selectors.DUE_DAYS, "grace_days": selectors.GRACE_DAYS,
    }]
