"""The visit schedule section of the participant page."""

from django.utils.translation import get_language
from django.utils.translation import gettext as _

from annulus.accounts.permissions import has
from annulus.participants import states as pstates
from annulus.protocol.schema import CONSENT_ANCHOR
from annulus.trial.selectors import active_protocol

from . import selectors
from .events import chain_root, events_of


def panels(request, participant):
    if not has(request.user, "visits.view"):
        return []
    if participant.status not in (pstates.RANDOMISED, pstates.TREATED, pstates.IN_FOLLOW_UP, pstates.COMPLETED,
                                  pstates.WITHDRAWN, pstates.LOST):
        return []
    protocol = active_protocol()
    slots = selectors.schedule(participant)
    # a cell product harvested on its own page (day 0): its record heads the schedule
    harvest = "harvest" in protocol.page_procedures.values()
    lipo = selectors.current_liposuction(participant.pk) if harvest else None
    if participant.status in (pstates.WITHDRAWN, pstates.LOST) and harvest and lipo is None:
        return []
    can_edit = has(request.user, "visits.edit")
    ev = events_of(participant.pk, protocol)
    treatment = protocol.treatment_procedure
    planned_note = ""
    if not harvest and treatment is not None and treatment.timing is not None and treatment.id in ev.planned:
        after = treatment.timing.after
        lang = get_language()
        planned_note = _("Dates after %(event)s are planned (%(anchor)s + %(days)d days) until it is recorded.") % {
            "event": treatment.name.get(lang),
            "anchor": _("consent") if after == CONSENT_ANCHOR else protocol.procedure(after).name.get(lang),
            "days": treatment.timing.offset_days}
    started = ev.recorded(chain_root(protocol, treatment.id) if treatment else CONSENT_ANCHOR) is not None
    rows = []
    for s in slots:
        done = sum(1 for v in s.form_states.values() if v in ("complete", "changed"))
        rows.append({"slot": s, "done": done, "total": len(s.form_states)})
    return [{
        "template": "visits/_schedule_panel.html", "order": 30, "rows": rows, "lipo": lipo, "p": participant,
        "can_edit": can_edit, "harvest": harvest, "planned_note": planned_note,
        "unlinked": {s.key for s in slots if s.procedure in protocol.page_procedures},
        "can_lipo": harvest and can_edit and participant.status == pstates.RANDOMISED,
        "can_unscheduled": can_edit and started and participant.status in selectors.ACTIVE,
        "planned": harvest and any(s.planned for s in slots),
        "due_days": selectors.DUE_DAYS, "grace_days": selectors.GRACE_DAYS,
    }]
