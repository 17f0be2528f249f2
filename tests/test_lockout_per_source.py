"""The lockout counts failed logins per account and source (the client's address): an attacker
at one address locks the account for that address only, and the real user elsewhere still logs
in; each further lock of a source lasts twice as long as the one before, up to a cap."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from annulus.accounts.backends import is_locked, lock_delay, locked_until
from annulus.accounts.models import LoginLock
from tests.account_support import browser, logged_in, login
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.req("P-7.2")

ATTACKER, USER = "203.0.113.66", "192.0.2.10"


def _fail(name: str, ip: str, times: int):
    for _ in range(times):
        r = login(browser(ip), name, "wrong-password")
        assert r.status_code == 200


def test_a_lock_from_one_address_leaves_the_user_at_another_address_in(users):
    name = users["coordinator"].username
    _fail(name, ATTACKER, settings.ANNULUS_LOCKOUT_FAILURES)
    assert is_locked(name, ATTACKER) and not is_locked(name, USER)
    attacker = browser(ATTACKER)
    r = login(attacker, name, TEST_PASSWORD)  # even the right password, from the locked address
    assert not logged_in(attacker)
    assert "locked after repeated failed logins" in r.content.decode()
    real = browser(USER)
    assert login(real, name, TEST_PASSWORD).status_code == 302 and logged_in(real)
    # the user's success does not open the attacker's address
    assert is_locked(name, ATTACKER)


def test_four_failures_from_one_address_do_not_count_at_another(users):
    name = users["monitor"].username
    _fail(name, ATTACKER, settings.ANNULUS_LOCKOUT_FAILURES - 1)
    _fail(name, "198.51.100.7", settings.ANNULUS_LOCKOUT_FAILURES - 1)
    assert not is_locked(name, ATTACKER) and not is_locked(name, "198.51.100.7")
    assert LoginLock.objects.filter(username=name).exclude(source="*").count() == 2  # "*": the account-wide count


def test_each_further_lock_lasts_twice_as_long_up_to_the_cap(users, settings):
    name = users["coordinator"].username
    base = settings.ANNULUS_LOCKOUT_MINUTES
    # 4 locks of 5 failures would reach the account-wide cap (test_lockout_account_cap): not tested here
    settings.ANNULUS_LOGIN_ACCOUNT_MAX_FAILURES = 100
    lengths = []
    for _ in range(4):
        before = timezone.now()
        _fail(name, ATTACKER, settings.ANNULUS_LOCKOUT_FAILURES)
        until = locked_until(name, ATTACKER)
        assert until is not None
        lengths.append(round((until - before).total_seconds() / 60))
        # the lock ends: the clock moved past it
        LoginLock.objects.filter(username=name, source=ATTACKER).update(locked_until=timezone.now() - timedelta(seconds=1))
    assert lengths == [base, 2 * base, 4 * base, 8 * base]
    assert lock_delay(30) == timedelta(minutes=settings.ANNULUS_LOCKOUT_MAX_MINUTES)
    # a success from the address starts the run again
    assert login(browser(ATTACKER), name, TEST_PASSWORD).status_code == 302
    before = timezone.now()
    _fail(name, ATTACKER, settings.ANNULUS_LOCKOUT_FAILURES)
    assert round((locked_until(name, ATTACKER) - before).total_seconds() / 60) == base


def test_while_locked_no_password_is_checked(users, monkeypatch):
    from django.contrib.auth import get_user_model

    name = users["coordinator"].username
    _fail(name, ATTACKER, settings.ANNULUS_LOCKOUT_FAILURES)
    checked = []
    original = get_user_model().check_password
    monkeypatch.setattr(get_user_model(), "check_password", lambda self, raw: checked.append(raw) or original(self, raw))
    for _ in range(3):
        login(browser(ATTACKER), name, TEST_PASSWORD)
    assert checked == []


def test_behind_the_tls_proxy_the_address_the_proxy_forwarded_is_the_source(users, settings):
    from django.test import RequestFactory

    from annulus.accounts.backends import client_source

    proxy = "10.0.0.5"
    forged = RequestFactory().get("/", REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=f"198.51.100.1, {ATTACKER}")
    assert client_source(forged) == proxy  # no proxy configured: the header is the client's to invent
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # the proxy appends the address it saw; what the client put before it is not believed
    assert client_source(forged) == ATTACKER
    name = users["coordinator"].username
    for _ in range(settings.ANNULUS_LOCKOUT_FAILURES):
        c = browser(proxy)
        c.defaults["HTTP_X_FORWARDED_FOR"] = ATTACKER
        login(c, name, "wrong-password")
    assert is_locked(name, ATTACKER) and not is_locked(name, proxy)
    real = browser(proxy)
    real.defaults["HTTP_X_FORWARDED_FOR"] = USER
    assert login(real, name, TEST_PASSWORD).status_code == 302 and logged_in(real)
