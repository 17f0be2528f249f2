"""The participant page's casebook section: the casebook signature's state with its manifest
(who, when, meaning) and the eligibility decision's signature, with a link to the casebook."""

from annulus.accounts.permissions import has

from . import selectors


def panels(request, participant):
    if not has(request.user, "casebook.view"):
        return []
    signatures = selectors.latest_signatures([participant.pk])
    latest = signatures.get(participant.pk)
    state = selectors.signature_status([participant.pk], latest=signatures)[participant.pk]
    return [{"template": "casebooks/_participant_panel.html", "order": 90, "p": participant, "state": state,
             "signature": latest, "eligibility": selectors.eligibility_signature(participant)}]
