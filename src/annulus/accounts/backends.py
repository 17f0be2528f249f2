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
            return None  # the failure that began the lock is in the audit trail; these are refused unrecorded
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            record_failed_login(username, password, ip)
        else:
            LoginAttempt.objects.create(username=username[:150], success=True, ip=ip)
        return user


def record_failed_login(username: str, password, ip: str, what: str = "login") -> None:
    """A failed password check (a login, a co-signature): a ``LoginAttempt``, which the lockout
    counts, and for an existing account an audit event too, so that a monitor reading the
    account's record sees every attempt. Names that are no account stay out of the append-only
    trail: a password typed into the name field must not be kept for ever. At most the lockout's
    number of events per account and window: once locked, attempts are refused before any check."""
    with transaction.atomic():
        LoginAttempt.objects.create(username=str(username)[:150], success=False, ip=ip)
        account = get_user_model().objects.filter(username=str(username)[:150]).first()
        if account is None:
            return
        why = "wrong password"
        if not account.is_active and account.check_password(str(password or "")):
            why = "inactive account"
        if what != "login":
            why = f"{what}: {why}"
        if is_locked(account.username):
            why += "; account now locked"
        audit.record(actor=None, action="login_failed", obj_type="user", obj_id=account.pk,
                     changes={"username": account.username, "ip": ip, "why": why})
