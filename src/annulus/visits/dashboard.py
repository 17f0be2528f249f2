"""Dashboard panels: today's reminder calls (P-4.6) and what is overdue (P-4.7, X-4.8)."""

from django.utils import timezone

from annulus.accounts.permissions import has

from . import selectors


def panels(request):
    out = []
    if has(request.user, "visits.remind"):
        today = timezone.localdate()
        rows = selectors.call_list(today)
        out.append({"template": "visits/_calls_panel.html", "order": 15, "rows": rows, "day": today,
                    "pending": sum(1 for r in rows if r["call"] is None)})
    if has(request.user, "visits.view"):
        data = selectors.overdue()
        out.append({"template": "visits/_overdue_panel.html", "order": 16,
                    "visits": len(data["visits"]), "unsubmitted": len(data["unsubmitted"]),
                    "incomplete": len(data["incomplete"]), "late_submitted": len(data["late_submitted"]),
                    "submission_days": data["submission_days"], "completion_days": data["completion_days"],
                    "top": data["visits"][:5]})
    return out
