"""The account-wide cap: the lockout per address leaves an attacker with many addresses 5 guesses
at each, so failures of one account from all addresses together are counted too. After
``ANNULUS_LOGIN_ACCOUNT_MAX_FAILURES`` of them (no pause as long as the window between them) every
address is refused, for a while that doubles at each further lock (never for ever); the failure
that locks it is audited, the refusals are not; the administrator's unlock ends it. A name that is
no account is counted and refused the same way, with the same message and the same work.

The clients sit behind the TLS proxy (``ANNULUS_BEHIND_TLS_PROXY``: the source is the address the
proxy appends to X-Forwarded-For), each guess from its own address, CSRF enforced."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.hashers import MD5PasswordHasher
from django.utils import timezone

from annulus.accounts import services as accounts
from annulus.accounts.backends import ACCOUNT_WIDE, account_locked_until, is_locked
from annulus.accounts.models import LoginAttempt, LoginLock
from annulus.audit.models import AuditEvent
from annulus.audit.selectors import verify_chain
from annulus.errors import RuleViolation
from tests.account_support import browser, logged_in, login, post_form
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.req("P-7.2")

PROXY = "10.0.0.5"
LOCKED = "locked after repeated failed logins"


@pytest.fixture
def behind_proxy(settings):
    """As ``ANNULUS_BEHIND_TLS_PROXY=1`` sets it."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    return settings


def _address(i: int) -> str:
    return f"198.51.{100 + i // 250}.{1 + i % 250}"


def _via_proxy(address: str):
    c = browser(PROXY)
    c.defaults["HTTP_X_FORWARDED_FOR"] = address
    return c


def _guess(name: str, password: str, address: str):
    c = _via_proxy(address)
    return c, login(c, name, password)


def _spread(name: str, count: int, first: int = 0):
    """``count`` wrong guesses, each from an address of its own (none of them locked)."""
    for i in range(first, first + count):
        _, r = _guess(name, "wrong-password", _address(i))
        assert r.status_code == 200 and LOCKED not in r.content.decode()


def _error(r) -> str:
    """The login form's error, its time masked."""
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d", "TIME", " ".join(r.context["form"].non_field_errors()))


def _failed_events(user):
    return AuditEvent.objects.filter(action="login_failed", object_id=str(user.pk)).order_by("id")


def test_many_addresses_get_no_more_guesses_than_the_cap(users, behind_proxy, monkeypatch):
    user = users["coordinator"]
    cap = django_settings.ANNULUS_LOGIN_ACCOUNT_MAX_FAILURES
    assert cap > django_settings.ANNULUS_LOCKOUT_FAILURES
    _spread(user.username, cap)
    assert account_locked_until(user.username) is not None
    assert not any(is_locked(user.username, _address(i)) for i in range(cap))  # no address locked by itself
    checked = []
    original = type(user).check_password
    monkeypatch.setattr(type(user), "check_password", lambda self, raw: checked.append(raw) or original(self, raw))
    # from any address, even a new one, even with the right password: refused, unchecked
    for i in (0, cap, cap + 1):
        c, r = _guess(user.username, TEST_PASSWORD, _address(i))
        assert r.status_code == 200 and not logged_in(c) and LOCKED in r.content.decode()
    assert checked == []
    # a password re-entered inside the app (a signature) is refused as well
    with pytest.raises(RuleViolation, match="locked"):
        accounts.sign(user=user, password=TEST_PASSWORD, meaning="test")
    assert checked == []
    # the failure that locked it is audited, once; the refusals after it are not recorded
    events = list(_failed_events(user))
    assert len(events) == cap == LoginAttempt.objects.filter(username=user.username, success=False).count()
    locking = [json.loads(e.payload)["changes"] for e in events if "every address" in e.payload]
    assert len(locking) == 1 and "account now locked for every address" in locking[0]["why"]
    assert locking[0]["account_locked_until"] == account_locked_until(user.username).isoformat()
    assert verify_chain().ok


def test_a_name_that_is_no_account_behaves_the_same(users, behind_proxy, monkeypatch):
    cap = django_settings.ANNULUS_LOGIN_ACCOUNT_MAX_FAILURES
    hashed = []
    original = MD5PasswordHasher.encode  # a check (verify) and a new hash (set_password) both hash once
    monkeypatch.setattr(MD5PasswordHasher, "encode", lambda self, *a, **k: hashed.append(1) or original(self, *a, **k))
    answers = {}
    for name in (users["monitor"].username, "no-such-user"):
        hashed.clear()
        _spread(name, cap)
        assert len(hashed) == cap  # one password hash per guess, for an account or not
        hashed.clear()
        _, r = _guess(name, TEST_PASSWORD, _address(cap + 5))
        assert len(hashed) == 0  # locked: nothing hashed, for an account or not
        answers[name] = (r.status_code, _error(r))
    assert answers[users["monitor"].username] == answers["no-such-user"]
    assert LOCKED in answers["no-such-user"][1]
    # names that are no account stay out of the audit trail
    assert not AuditEvent.objects.filter(payload__contains="no-such-user").exists()


def test_the_lock_ends_and_each_further_lock_lasts_twice_as_long(users, behind_proxy):
    user = users["coordinator"]
    cap = django_settings.ANNULUS_LOGIN_ACCOUNT_MAX_FAILURES
    base = django_settings.ANNULUS_LOCKOUT_MINUTES
    lengths = []
    for run in range(3):
        before = timezone.now()
        _spread(user.username, cap, first=run * cap)
        until = account_locked_until(user.username)
        lengths.append(round((until - before).total_seconds() / 60))
        # the clock moves past the lock: it is not for ever
        LoginLock.objects.filter(username=user.username, source=ACCOUNT_WIDE).update(
            locked_until=timezone.now() - timedelta(seconds=1))
        LoginLock.objects.filter(username=user.username).exclude(source=ACCOUNT_WIDE).delete()
    assert lengths == [base, 2 * base, 4 * base]
    c, r = _guess(user.username, TEST_PASSWORD, _address(0))
    assert r.status_code == 302 and logged_in(c)


def test_a_success_does_not_give_the_attacker_fresh_guesses(users, behind_proxy):
    user = users["coordinator"]
    cap = django_settings.ANNULUS_LOGIN_ACCOUNT_MAX_FAILURES
    _spread(user.username, cap - 1)
    real, r = _guess(user.username, TEST_PASSWORD, "192.0.2.10")
    assert r.status_code == 302 and logged_in(real)
    assert account_locked_until(user.username) is None
    _spread(user.username, 1, first=cap)  # the cap-th failure: locked
    assert account_locked_until(user.username) is not None


def test_failures_further_apart_than_the_window_are_forgotten(users, behind_proxy):
    user = users["coordinator"]
    cap = django_settings.ANNULUS_LOGIN_ACCOUNT_MAX_FAILURES
    _spread(user.username, cap - 1)
    LoginLock.objects.filter(username=user.username, source=ACCOUNT_WIDE).update(
        last_attempt=timezone.now() - timedelta(minutes=django_settings.ANNULUS_LOGIN_ACCOUNT_WINDOW_MINUTES + 1))
    _spread(user.username, cap - 1, first=cap)
    assert account_locked_until(user.username) is None
    assert LoginLock.objects.get(username=user.username, source=ACCOUNT_WIDE).attempts == cap - 1


def test_the_cap_is_a_setting(users, behind_proxy):
    behind_proxy.ANNULUS_LOGIN_ACCOUNT_MAX_FAILURES = 7
    _spread(users["monitor"].username, 7)
    assert account_locked_until(users["monitor"].username) is not None


def test_the_administrators_unlock_ends_the_account_wide_lock(users, behind_proxy):
    user = users["coordinator"]
    _spread(user.username, django_settings.ANNULUS_LOGIN_ACCOUNT_MAX_FAILURES)
    admin = browser(user=users["admin"])
    page = admin.get("/accounts/users/").content.decode()
    assert "every address" in page and f'name="unlock" value="{user.username}"' in page
    admin.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    assert "所有地址" in admin.get("/accounts/users/").content.decode()
    r = post_form(admin, "/accounts/users/", {"unlock": user.username, "reason": "Scanner blocked at the firewall"})
    assert r.status_code == 302 and account_locked_until(user.username) is None
    event = AuditEvent.objects.filter(action="change", object_id=str(user.pk), payload__contains="locked_for").get()
    payload = json.loads(event.payload)
    assert payload["changes"]["locked_for"] == [["every address"], []] and event.actor_username == users["admin"].username
    c, r = _guess(user.username, TEST_PASSWORD, _address(3))
    assert r.status_code == 302 and logged_in(c)
