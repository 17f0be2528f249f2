from annulus.accounts.permissions import has
from annulus.participants import states
from annulus.trial.selectors import active_protocol

from . import selectors


def panels(request, participant):
    user = request.user
    if not has(user, "allocation.view"):
        return []
    alloc = selectors.participant_allocation(user, participant)
    # the transplantation record belongs to a cell product; a kit trial's treatment is its own procedure
    cell_product = active_protocol().product.kind == "cell_suspension"
    return [{
        "template": "allocation/_participant_panel.html", "order": 10, "alloc": alloc,
        "cell_product": cell_product,
        "can_randomise": has(user, "allocation.randomise") and participant.status == states.ENROLLED
        and not alloc["randomised"],
        "can_transplant": cell_product and has(user, "allocation.transplant")
        and participant.status == states.RANDOMISED and alloc["treatment_record"] is None,
        # before the product is given there is nothing to unblind
        "can_unblind": has(user, "unblinding.emergency") and alloc["given"],
    }]
