from annulus.accounts.permissions import has
from annulus.participants import selectors, states


def panels(request):
    if not has(request.user, "participant.view"):
        return []
    counts = selectors.status_counts()
    funnel = selectors.funnel()
    top = max((n for _, n in funnel), default=0) or 1
    return [
        {"template": "trial/_status_counts.html", "order": 10,
         "counts": [(s, states.LABELS[s], counts[s]) for s in states.ORDER]},
        {"template": "trial/_funnel.html", "order": 20,
         "funnel": [(label, n, round(100 * n / top)) for label, n in funnel],
         "reasons": selectors.screen_failure_reasons()[:10]},
    ]
