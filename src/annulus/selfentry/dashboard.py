"""Dashboard panel: the questionnaires of the visits whose window is open - completed by the
participant, link issued and not completed (to remind), no link issued."""

from django.utils import timezone

from annulus.accounts.permissions import has
from annulus.participants.models import Participant
from annulus.participants.selectors import visible
from annulus.visits.selectors import ACTIVE

from . import selectors

SHOWN = 8  # rows listed on the panel; the call list has them all


def panels(request):
    if not has(request.user, "visits.view"):
        return []
    rows = selectors.open_questionnaires(today=timezone.localdate(),
                                         people=visible(request.user, Participant.objects.filter(status__in=ACTIVE)))
    counts = {s: 0 for s in (selectors.DONE, selectors.ENTERED, selectors.ISSUED, selectors.NOT_ISSUED)}
    for r in rows:
        counts[r["status"]] += 1
    waiting = [r for r in rows if r["status"] == selectors.ISSUED]
    not_issued = [r for r in rows if r["status"] == selectors.NOT_ISSUED]
    return [{"template": "selfentry/_dashboard_panel.html", "order": 17, "counts": counts,
             "labels": {s: selectors.status_label(s) for s in counts}, "css": selectors.STATUS_CSS,
             "to_remind": waiting[:SHOWN], "more_to_remind": max(len(waiting) - SHOWN, 0),
             "not_issued": not_issued[:SHOWN], "more_not_issued": max(len(not_issued) - SHOWN, 0),
             "can_remind": has(request.user, "visits.remind"), "can_issue": has(request.user, "visits.edit")}]
