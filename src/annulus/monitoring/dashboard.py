"""The monitor's and the data manager's home: the status grid's counts at the top of the
dashboard, with the participants that need attention first."""

from annulus.accounts.permissions import has

SHOWN = 10


def panels(request):
    if not has(request.user, "monitoring.home"):
        return []
    from annulus.participants.selectors import visible

    from . import selectors

    rows = selectors.status_grid(visible(request.user).exclude(status="pre_screened").order_by("screening_number"))
    totals = selectors.grid_totals(rows)
    attention = []
    for r in rows:
        queries = sum(c.queries for c in r.cells)
        cleared = sum(c.sdv_cleared for c in r.cells)
        todo = sum(c.sdv_required - c.sdv_verified - c.sdv_cleared for c in r.cells)
        if queries or cleared or todo:
            attention.append({"p": r.participant, "queries": queries, "cleared": cleared, "todo": todo})
    attention.sort(key=lambda a: (-a["cleared"], -a["queries"], -a["todo"], a["p"].screening_number))
    percent = round(100 * totals["sdv_verified"] / totals["sdv_required"]) if totals["sdv_required"] else None
    return [{"template": "monitoring/_dashboard_panel.html", "order": 1, "totals": totals, "percent": percent,
             "attention": attention[:SHOWN], "more": max(0, len(attention) - SHOWN),
             "available": selectors.columns_available()}]
