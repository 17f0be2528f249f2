from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db import transaction
from django.utils import timezone

from annulus.audit import services as audit

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
        ip = (request.META.get("REMOTE_ADDR", "") if request else "")[:64]
        if is_locked(username):
            record_failed_login(username, ip, "account locked")
            return None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        LoginAttempt.objects.create(username=username[:150], success=user is not None, ip=ip)
        if user is None:
            known = get_user_model().objects.filter(username=username[:150]).exists()
            record_failed_login(username, ip, "wrong password" if known else "unknown user name")
        return user


def record_failed_login(username: str, ip: str, why: str) -> None:
    """A failed login in the audit trail too, so that a monitor reading one record sees every
    attempt on an account (the lockout counts from ``LoginAttempt``). No actor: nobody is
    logged in."""
    with transaction.atomic():
        audit.record(actor=None, action="login_failed", obj_type="user", obj_id=username[:64],
                     changes={"username": username[:150], "ip": ip, "why": why})
