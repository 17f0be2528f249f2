from annulus.accounts.permissions import has
from annulus.participants import selectors, states


def panels(request):
    if not has(request.user, "participant.view"):
        return []
    from django.utils.translation import get_language

    from annulus.trial.selectors import active_protocol

    protocol = active_protocol()
    texts = {c.id: c.text.get(get_language()) for c in protocol.eligibility.inclusion + protocol.eligibility.exclusion}
    counts = selectors.status_counts(request.user)
    funnel = selectors.funnel(request.user)
    top = max((n for _, n in funnel), default=0) or 1
    by_site = []
    if len(protocol.site_list) > 1:  # recruitment by site (those of a user scoped to sites)
        mine = selectors.user_sites(request.user)
        counts_at, enrolled_at = selectors.site_counts(request.user), selectors.site_counts(request.user, enrolled=True)
        by_site = [{"template": "trial/_site_counts.html", "order": 15,
                    "sites": [(s.id, s.name.get(get_language()), counts_at.get(s.id, 0), enrolled_at.get(s.id, 0))
                              for s in protocol.site_list if mine is None or s.id in mine]}]
    return by_site + [
        {"template": "trial/_status_counts.html", "order": 10,
         "counts": [(s, states.LABELS[s], counts[s]) for s in states.ORDER]},
        {"template": "trial/_funnel.html", "order": 20,
         "funnel": [(label, n, round(100 * n / top)) for label, n in funnel],
         "reasons": [(cid, texts.get(cid, ""), n) for cid, n in selectors.screen_failure_reasons(request.user)[:10]]},
    ]
