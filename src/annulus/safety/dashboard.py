from django.utils import timezone

from annulus.accounts.permissions import has

from annulus.participants.selectors import scoped

from . import selectors
from .models import AdverseEvent, SaeReport

TASKS_SHOWN = 20


def panels(request):
    if not has(request.user, "safety.view"):
        return []
    user = request.user
    open_reports = scoped(user, SaeReport.objects, "adverse_event__participant").filter(sent_at__isnull=True, not_required_since__isnull=True)
    open_tasks = selectors.open_tasks(user=user)
    tasks = {"template": "safety/_ae_tasks_panel.html", "order": 5, "count": open_tasks.count(),
             "tasks": list(open_tasks[:TASKS_SHOWN]), "can_edit": has(request.user, "safety.edit")}
    # shown while a task is open (a full-width panel of its own)
    return ([tasks] if tasks["count"] else []) + [{"template": "safety/_dashboard_panel.html", "order": 30,
             "events": scoped(user, AdverseEvent.objects).count(),
             "serious": scoped(user, AdverseEvent.objects).filter(serious=True).count(),
             "running": open_reports.count(), "overdue": open_reports.filter(due_at__lt=timezone.now()).count()}]
