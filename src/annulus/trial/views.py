from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils.translation import get_language

from annulus.accounts.permissions import has

from .extensions import dashboard_panels
from .selectors import active_protocol, active_version, trial_state


def dashboard(request):
    panels = sorted(dashboard_panels(request), key=lambda p: p.get("order", 100))
    pv = active_version()
    return render(request, "trial/dashboard.html", {"panels": panels, "pv": pv, "state": trial_state()})


def protocol_page(request):
    if not has(request.user, "protocol.view"):
        raise PermissionDenied
    protocol = active_protocol()
    blinded = not has(request.user, "allocation.recipe")
    return render(request, "trial/protocol.html", {"protocol": protocol, "pv": active_version(),
                                                   "lang": get_language(), "show_arms": not blinded})


def error_403(request, exception=None):
    return render(request, "error.html", {"code": 403, "message": "You do not have access to this page."}, status=403)


def error_404(request, exception=None):
    return render(request, "error.html", {"code": 404, "message": "Page not found."}, status=404)


def error_500(request):
    return render(request, "error.html", {"code": 500, "message": "Something went wrong; nothing was saved."}, status=500)


def notifications(request):
    from django.shortcuts import redirect

    from .models import Notification
    from .services import mark_read

    if request.method == "POST":
        try:
            mark_read(user=request.user, notification_id=int(request.POST.get("read", "0")))
        except ValueError:
            pass
        return redirect("notifications")
    rows = Notification.objects.filter(user=request.user)[:200]
    return render(request, "trial/notifications.html", {"rows": rows})
