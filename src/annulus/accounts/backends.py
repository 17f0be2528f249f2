from datetime import timedelta

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.utils import timezone

from .models import LoginAttempt


def is_locked(username: str) -> bool:
    """Locked after N failures within the window since the last success."""
    since = timezone.now() - timedelta(minutes=settings.ANNULUS_LOCKOUT_MINUTES)
    last_ok = LoginAttempt.objects.filter(username=username, success=True).order_by("-when").values_list("when", flat=True).first()
    if last_ok and last_ok > since:
        since = last_ok
    failures = LoginAttempt.objects.filter(username=username, success=False, when__gt=since).count()
    return failures >= settings.ANNULUS_LOCKOUT_FAILURES


class LockoutModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            return None
        if is_locked(username):
            return None
        ip = (request.META.get("REMOTE_ADDR", "") if request else "")[:64]
        user = super().authenticate(request, username=username, password=password, **kwargs)
        LoginAttempt.objects.create(username=username[:150], success=user is not None, ip=ip)
        return user
