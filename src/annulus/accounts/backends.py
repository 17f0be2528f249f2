"""Logins and the lockout. An account is locked per source: the client's address for a login, ""
for a password re-entered inside the app (a signature). After ``ANNULUS_LOCKOUT_FAILURES``
failed checks from one source within ``ANNULUS_LOCKOUT_MINUTES``, that source is refused for
``ANNULUS_LOCKOUT_MINUTES``, then twice as long at each further lock, up to
``ANNULUS_LOCKOUT_MAX_MINUTES``; a success from the source or the administrator's unlock ends it.
Someone guessing from elsewhere therefore cannot keep the real user out. Passwords re-entered
inside the app come from someone holding a session of the account: their lock refuses logins
from every address too.

Every check also counts towards the account's cap over all sources together (the source
``ACCOUNT_WIDE``): after ``ANNULUS_LOGIN_ACCOUNT_MAX_FAILURES`` failed checks with no pause as long
as ``ANNULUS_LOGIN_ACCOUNT_WINDOW_MINUTES`` between them, every source is refused, for
``ANNULUS_LOCKOUT_MINUTES`` and twice as long at each further lock (capped as above), so an
attacker with many addresses gets no more guesses than the cap per lock. A success gives back
the check it took (the cap counts failures) without ending the account's run of locks; the
administrator's unlock ends it. Names that are no account are counted and refused the same way,
so that the answer tells nothing about which names exist.

Each check is taken before the password is compared, by one conditional UPDATE (``attempts =
attempts + 1`` where fewer than the limit are taken and the source is not locked): however many
guesses arrive at once, at most the limit of them reach the password; the account's check is
taken the same way, after the source's."""

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from annulus.audit import services as audit

from .models import LoginAttempt, LoginLock

# the source of an account's checks from all sources together (no address is "*")
ACCOUNT_WIDE = "*"


def client_source(request) -> str:
    """The source a login is counted against: the client's address. Behind the TLS proxy
    (``ANNULUS_BEHIND_TLS_PROXY``, where gunicorn is reachable only through it) every request comes
    from the proxy's address, so the address the proxy appended to ``X-Forwarded-For`` is taken
    (the last one: those before it are the client's to choose)."""
    if request is None:
        return ""
    from django.conf import settings

    address = request.META.get("REMOTE_ADDR", "")
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
        if forwarded:
            address = forwarded[-1]
    if address == ACCOUNT_WIDE:  # not an address: never the account-wide row
        address = "?"
    return address[:64]


def _key(username, source) -> dict:
    return {"username": str(username)[:150], "source": str(source or "")[:64]}


def lock_delay(locks: int) -> timedelta:
    """How long the ``locks``-th lock in a row lasts: the base, doubled at each further lock, capped."""
    minutes = settings.ANNULUS_LOCKOUT_MINUTES * 2 ** min(max(locks - 1, 0), 20)
    return timedelta(minutes=min(minutes, settings.ANNULUS_LOCKOUT_MAX_MINUTES))


def locked_until(username: str, source: str = "") -> datetime | None:
    """The end of the lock of ``username`` for ``source``, or None when it is not locked now."""
    until = LoginLock.objects.filter(**_key(username, source)).values_list("locked_until", flat=True).first()
    return until if until is not None and until > timezone.now() else None


def is_locked(username: str, source: str = "") -> bool:
    return locked_until(username, source) is not None


def account_locked_until(username: str) -> datetime | None:
    """The end of the account-wide lock of ``username`` (every source refused), or None."""
    return locked_until(username, ACCOUNT_WIDE)


def login_locked_until(username: str, source: str) -> datetime | None:
    """The end of the lock that refuses a login of ``username`` from ``source``: the source's own,
    the lock of passwords re-entered inside the app (whoever made those guesses held a session
    of the account, so the account is refused from everywhere until it ends), or the account-wide
    lock (too many failures from all sources together)."""
    now = timezone.now()
    ends = [u for u in LoginLock.objects.filter(username=str(username)[:150],
                                                source__in={str(source or "")[:64], "", ACCOUNT_WIDE})
            .values_list("locked_until", flat=True) if u is not None and u > now]
    return max(ends) if ends else None


def _limits(source: str) -> tuple[int, int]:
    """The number of checks allowed and the window (minutes) of a source's count."""
    if source == ACCOUNT_WIDE:
        return settings.ANNULUS_LOGIN_ACCOUNT_MAX_FAILURES, settings.ANNULUS_LOGIN_ACCOUNT_WINDOW_MINUTES
    return settings.ANNULUS_LOCKOUT_FAILURES, settings.ANNULUS_LOCKOUT_MINUTES


def _take(username: str, source: str) -> bool:
    """Take one check from the count of ``source`` (one conditional UPDATE; see ``take_check``)."""
    key = _key(username, source)
    limit, window = _limits(key["source"])
    now = timezone.now()
    cutoff = now - timedelta(minutes=window)
    open_ = Q(locked_until__isnull=True) | Q(locked_until__lte=now)
    room = Q(attempts__lt=limit) | Q(last_attempt__lt=cutoff)
    for _ in range(3):  # again only if a success removed the row in between
        row, created = LoginLock.objects.get_or_create(**key, defaults={"attempts": 1, "last_attempt": now})
        if created:
            return True
        if LoginLock.objects.filter(open_, room, pk=row.pk).update(
                attempts=Case(When(last_attempt__lt=cutoff, then=Value(1)), default=F("attempts") + 1),
                last_attempt=now) == 1:
            return True
        if LoginLock.objects.filter(pk=row.pk).exists():
            return False
    return False


def _give_back(username: str, source: str) -> None:
    """Return a check taken from ``source`` whose password was not compared as a failure."""
    LoginLock.objects.filter(**_key(username, source), attempts__gt=0).update(attempts=F("attempts") - 1)


def take_check(username: str, source: str = "") -> bool:
    """Take one password check for ``username`` from ``source``, and one from the account's count
    over all sources; False when either is locked or its checks are all taken (then the password
    must not be compared). Each is one UPDATE ... SET attempts = attempts + 1 WHERE attempts <
    limit: concurrent callers cannot take more than the limit. Checks older than the window are
    forgotten. When the account refuses, the source's check is given back (nothing was compared)."""
    if not _take(username, source):
        return False
    if _take(username, ACCOUNT_WIDE):
        return True
    _give_back(username, source)
    return False


def check_passed(username: str, source: str = "") -> None:
    """The right password from ``source``: its count and its run of locks start again, and the
    account's count gets back the check this one took (it was no failure). The rows are the
    lockout's state, not a record (the attempts are kept in ``LoginAttempt`` and the audit
    trail): at zero they are removed, so that a correct password writes nothing of its own."""
    LoginLock.objects.filter(**_key(username, source)).delete()
    _give_back(username, ACCOUNT_WIDE)
    LoginLock.objects.filter(**_key(username, ACCOUNT_WIDE), attempts=0, locks=0, locked_until__isnull=True).delete()


def _check_failed(username: str, source: str) -> datetime | None:
    """A wrong password counted against ``source`` (inside the caller's transaction). When it was
    the last check allowed, the source is locked; returns the lock's end then, else None. A lock
    that ended longer ago than the longest lock no longer makes the next one longer."""
    row = LoginLock.objects.select_for_update().filter(**_key(username, source)).first()
    if row is None or row.attempts < _limits(row.source)[0]:
        return None
    now = timezone.now()
    if row.locked_until and row.locked_until < now - timedelta(minutes=settings.ANNULUS_LOCKOUT_MAX_MINUTES):
        row.locks = 0
    row.locks += 1
    row.attempts = 0
    row.locked_until = now + lock_delay(row.locks)
    row.save(update_fields=["locks", "attempts", "locked_until"])
    return row.locked_until


class LockoutModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or password is None:
            return None
        ip = client_source(request)
        if login_locked_until(username, ip) is not None or not take_check(username, ip):
            return None  # the failure that began the lock is in the audit trail; these are refused unrecorded
        User = get_user_model()
        try:
            user = User._default_manager.get_by_natural_key(username)
        except User.DoesNotExist:
            User().set_password(password)  # as long as a real check: the answer tells nothing
            record_failed_login(username, ip)
            return None
        right = user.check_password(password)
        if right and self.user_can_authenticate(user):
            check_passed(username, ip)
            LoginAttempt.objects.create(username=str(username)[:150], success=True, ip=ip)
            return user
        record_failed_login(username, ip, why="inactive account" if right else "wrong password")
        return None


def record_failed_login(username: str, ip: str, what: str = "login", why: str = "wrong password") -> None:
    """A failed password check (a login, a co-signature, a signature): a ``LoginAttempt``, the
    lockout's count for the source (locking it at the limit), and for an existing account an
    audit event too, so that a monitor reading the account's record sees every attempt. Names
    that are no account stay out of the append-only trail: a password typed into the name field
    must not be kept for ever. At most the lockout's number of events per account, source and
    window, and the account-wide cap's over all sources: once locked, attempts are refused before
    any check. The failure that begins a lock says so in its event (with the lock's end); the
    refusals during the lock are not recorded."""
    with transaction.atomic():
        LoginAttempt.objects.create(username=str(username)[:150], success=False, ip=ip)
        until = _check_failed(username, ip)
        account_until = _check_failed(username, ACCOUNT_WIDE)
        account = get_user_model().objects.filter(username=str(username)[:150]).first()
        if account is None:
            return
        if what != "login":
            why = f"{what}: {why}"
        changes = {"username": account.username, "ip": ip, "why": why}
        if until is not None:
            changes["why"] += "; account now locked"
            changes["locked_until"] = until.isoformat()
        if account_until is not None:
            changes["why"] += "; account now locked for every address (too many failures from all addresses)"
            changes["account_locked_until"] = account_until.isoformat()
        audit.record(actor=None, action="login_failed", obj_type="user", obj_id=account.pk, changes=changes)
