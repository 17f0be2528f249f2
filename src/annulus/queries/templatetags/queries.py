"""``{% query_badge participant visit form %}``: the open and answered queries of a participant,
a visit or a form, linked to their list, with a link to raise one for those who may."""

from django import template

from annulus.accounts.permissions import has

register = template.Library()


@register.inclusion_tag("queries/_badge.html", takes_context=True)
def query_badge(context, participant, visit=None, form=None, item_level=False):
    from urllib.parse import urlencode

    from django.utils.translation import get_language

    from .. import selectors

    request = context.get("request")
    user = getattr(request, "user", None)
    if participant is None or not has(user, "queries.view"):
        return {"show": False}
    pid = getattr(participant, "pk", participant)
    counts = selectors.status_counts(pid, visit, form)
    rows = []
    if item_level:
        language = get_language()
        for q in selectors.queries_on(pid, visit, form, active_only=True)[:20]:
            rows.append((q, selectors.item_label(q.form, q.item, language) or q.form or "—"))
    target = {"participant": pid, "visit": visit or "", "form": form or ""}
    listing = {"participant": pid, "status": "active"}
    if form:
        listing["form"] = form
    return {"show": True, "open": counts["open"], "answered": counts["answered"], "rows": rows,
            "raise_url": "/queries/new/?" + urlencode(target) if has(user, "queries.raise") else "",
            "list_url": "/queries/?" + urlencode(listing)}
