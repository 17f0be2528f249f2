"""Dashboard panels: today's reminder calls (P-4.6) and what is overdue (P-4.7, X-4.8)."""

from django.utils import timezone

from annulus.accounts.permissions import has
from annulus.trial.selectors import active_protocol

from . import selectors


def panels(request):
    out = []
    now = timezone.now()
    today = timezone.localdate(now)
    calls, late = has(request.user, "visits.remind"), has(request.user, "visits.view")
    # the schedules are derived once for both panels, and only of the participants who can be on them
    schedules = selectors.panel_schedules(today, calls=calls, user=request.user) if calls or late else []
    if calls:
        rows = selectors.call_list(today, schedules=schedules)
        out.append({"template": "visits/_calls_panel.html", "order": 15, "rows": rows, "day": today,
                    "pending": sum(1 for r in rows if r["call"] is None)})
    if late:
        # the same lists as the overdue page: the visits from the schedules, the records counted in SQL
        visits = selectors.overdue_visits(today, schedules=schedules)
        schedule = active_protocol().schedule
        out.append({"template": "visits/_overdue_panel.html", "order": 16, "visits": len(visits),
                    **selectors.late_record_counts(now=now, user=request.user),
                    "submission_days": schedule.submission_days, "completion_days": schedule.completion_days,
                    "top": visits[:5]})
    return out
