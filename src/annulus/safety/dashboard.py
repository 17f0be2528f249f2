from django.utils import timezone

from annulus.accounts.permissions import has

from .models import AdverseEvent, SaeReport


def panels(request):
    if not has(request.user, "safety.view"):
        return []
    open_reports = SaeReport.objects.filter(sent_at__isnull=True, not_required_since__isnull=True)
    return [{"template": "safety/_dashboard_panel.html", "order": 30,
             "events": AdverseEvent.objects.count(), "serious": AdverseEvent.objects.filter(serious=True).count(),
             "running": open_reports.count(), "overdue": open_reports.filter(due_at__lt=timezone.now()).count()}]
