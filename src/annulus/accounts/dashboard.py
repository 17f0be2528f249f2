"""The administrator's dashboard: the accounts they look after (by role, deactivated, locked
out now, failed password checks in the last day) and where to act. Nothing of the trial data."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db.models import Count
from django.utils import timezone

from .models import LoginAttempt, LoginLock, Membership
from .permissions import has


def panels(request):
    if not has(request.user, "users.manage"):
        return []
    User = get_user_model()
    by_role = dict(Membership.objects.filter(user__is_active=True).values_list("role").annotate(n=Count("id")))
    since = timezone.now() - timedelta(hours=24)
    failures = (LoginAttempt.objects.filter(success=False, when__gte=since).values("username")
                .annotate(n=Count("id")).order_by("-n", "username"))
    known = set(User.objects.values_list("username", flat=True))
    locked = sorted(set(LoginLock.objects.filter(locked_until__gt=timezone.now(), username__in=known)
                        .values_list("username", flat=True)))
    from django.utils.translation import get_language

    from annulus.trial.selectors import active_protocol

    names = {r.id: r.name.get(get_language()) for r in active_protocol().roles}
    return [{"template": "accounts/_admin_panel.html", "order": 5,
             "by_role": sorted((names.get(role, role), n) for role, n in by_role.items()), "active": User.objects.filter(is_active=True).count(),
             "inactive": User.objects.filter(is_active=False).count(), "locked": locked,
             "failures": [r for r in failures if r["username"] in known][:10],
             "unknown_failures": sum(r["n"] for r in failures if r["username"] not in known),
             "can_load_protocol": has(request.user, "protocol.manage")}]
