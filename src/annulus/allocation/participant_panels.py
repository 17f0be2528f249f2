from annulus.accounts.permissions import has
from annulus.participants import states

from . import selectors


def panels(request, participant):
    user = request.user
    if not has(user, "allocation.view"):
        return []
    alloc = selectors.participant_allocation(user, participant)
    return [{
        "template": "allocation/_participant_panel.html", "order": 10, "alloc": alloc,
        "can_randomise": has(user, "allocation.randomise") and participant.status == states.ENROLLED
        and not alloc["randomised"],
        "can_transplant": has(user, "allocation.transplant") and participant.status == states.RANDOMISED
        and alloc["transplant"] is None,
        # before the product is dispensed there is nothing to unblind
        "can_unblind": has(user, "unblinding.emergency") and alloc["dispensed_at"] is not None,
    }]
