from annulus.accounts.permissions import has
from annulus.participants import selectors, states


def panels(request):
    if not has(request.user, "participant.view"):
        return []
    from django.utils.translation import get_language

    from annulus.trial.selectors import active_protocol

    protocol = active_protocol()
    texts = {c.id: c.text.get(get_language()) for c in protocol.eligibility.inclusion + protocol.eligibility.exclusion}
    counts = selectors.status_counts()
    funnel = selectors.funnel()
    top = max((n for _, n in funnel), default=0) or 1
    return [
        {"template": "trial/_status_counts.html", "order": 10,
         "counts": [(s, states.LABELS[s], counts[s]) for s in states.ORDER]},
        {"template": "trial/_funnel.html", "order": 20,
         "funnel": [(label, n, round(100 * n / top)) for label, n in funnel],
         "reasons": [(cid, texts.get(cid, ""), n) for cid, n in selectors.screen_failure_reasons()[:10]]},
    ]
