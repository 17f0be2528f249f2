from django.utils.translation import get_language

from annulus.accounts.permissions import has

from . import selectors


def panels(request, participant):
    if not has(request.user, "queries.view"):
        return []
    language = get_language()
    rows = list(selectors.queries_on(participant.pk, active_only=True)[:30])
    for q in rows:
        q.target_text = selectors.target_text(q, language)
    return [{"template": "queries/_participant_panel.html", "order": 60, "p": participant, "rows": rows}]
