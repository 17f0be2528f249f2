"""Concurrent wrong guesses against PostgreSQL: however many arrive at the same moment, at most
the lockout's limit of them are checked against the password (each check is taken with one
conditional UPDATE before the password is compared), for logins from one address and for
passwords re-entered inside the app; and from many addresses at once, at most the account-wide
cap of them.

ANNULUS_TEST_DB_NAME=test_accounts DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
    pytest tests/test_lockout_race.py
"""

from __future__ import annotations

import threading

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from annulus.accounts import services
from annulus.accounts.backends import is_locked
from annulus.accounts.models import LoginAttempt
from annulus.audit.models import AuditEvent
from annulus.errors import RuleViolation
from tests.account_support import browser
from tests.conftest import TEST_PASSWORD, postgres_url

pytestmark = [pytest.mark.postgres, pytest.mark.req("P-7.2"),
              pytest.mark.skipif(postgres_url() is None, reason="needs DATABASE_URL=postgres://...")]

GUESSES = 16
ATTACKER = "203.0.113.66"


@pytest.fixture
def committed(committed_db, users):
    """Committed accounts that the racing threads can see (``committed_db``)."""


@pytest.fixture
def password_checks(monkeypatch):
    """Every comparison of a password with an account's hash, from any thread."""
    checked, guard = [], threading.Lock()
    User = get_user_model()
    original = User.check_password

    def counting(self, raw):
        with guard:
            checked.append(raw)
        return original(self, raw)

    monkeypatch.setattr(User, "check_password", counting)
    return checked


def _race(calls):
    """Run the calls at the same moment, each on its own connection; return results/exceptions."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, prepare):
        try:
            go = prepare()
            barrier.wait(timeout=60)
            results[i] = go()
        except Exception as exc:  # noqa: BLE001 - the test inspects every outcome
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    return results


def _guess_login(username):
    def prepare():
        c = browser(ATTACKER)
        c.get("/accounts/login/")
        token = c.cookies["csrftoken"].value
        return lambda: c.post("/accounts/login/", {"username": username, "password": "wrong-guess",
                                                   "csrfmiddlewaretoken": token}).status_code
    return prepare


def test_concurrent_wrong_logins_check_at_most_the_limit(committed, users, password_checks):
    name = users["coordinator"].username
    results = _race([_guess_login(name) for _ in range(GUESSES)])
    assert results == [200] * GUESSES, results  # each one refused with the form, none an error
    assert len(password_checks) == settings.ANNULUS_LOCKOUT_FAILURES
    assert LoginAttempt.objects.filter(username=name, success=False).count() == settings.ANNULUS_LOCKOUT_FAILURES
    assert AuditEvent.objects.filter(action="login_failed", object_id=str(users["coordinator"].pk)).count() == \
        settings.ANNULUS_LOCKOUT_FAILURES
    assert is_locked(name, ATTACKER)
    c = browser(ATTACKER)
    c.get("/accounts/login/")
    c.post("/accounts/login/", {"username": name, "password": TEST_PASSWORD,
                                "csrfmiddlewaretoken": c.cookies["csrftoken"].value})
    assert "_auth_user_id" not in c.session and len(password_checks) == settings.ANNULUS_LOCKOUT_FAILURES


def test_concurrent_wrong_signatures_check_at_most_the_limit(committed, users, password_checks):
    user = users["investigator"]
    results = _race([lambda: (lambda: services.sign(user=user, password="wrong-guess", meaning="test"))
                     for _ in range(GUESSES)])
    assert all(isinstance(r, RuleViolation) and r.field == "password" for r in results), results
    assert sum("is not correct" in r.message for r in results) == settings.ANNULUS_LOCKOUT_FAILURES
    assert len(password_checks) == settings.ANNULUS_LOCKOUT_FAILURES
    assert is_locked(user.username)


def _guess_login_from(username, address):
    """A wrong login from ``address``, behind the TLS proxy (the address it appends)."""
    def prepare():
        c = browser("10.0.0.5")
        c.defaults["HTTP_X_FORWARDED_FOR"] = address
        c.get("/accounts/login/")
        token = c.cookies["csrftoken"].value
        return lambda: c.post("/accounts/login/", {"username": username, "password": "wrong-guess",
                                                   "csrfmiddlewaretoken": token}).status_code
    return prepare


def test_concurrent_wrong_logins_from_many_addresses_check_at_most_the_account_cap(committed, users, password_checks,
                                                                                    settings):
    """Each guess from an address of its own (no address reaches its own limit): the account's
    check is taken with one conditional UPDATE too, so at most the cap reach the password."""
    from annulus.accounts.backends import account_locked_until

    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # ANNULUS_BEHIND_TLS_PROXY=1
    settings.ANNULUS_LOGIN_ACCOUNT_MAX_FAILURES = cap = 6
    name = users["monitor"].username
    addresses = [f"198.51.100.{i + 1}" for i in range(GUESSES)]
    results = _race([_guess_login_from(name, a) for a in addresses])
    assert results == [200] * GUESSES, results
    assert len(password_checks) == cap
    assert LoginAttempt.objects.filter(username=name, success=False).count() == cap
    events = AuditEvent.objects.filter(action="login_failed", object_id=str(users["monitor"].pk))
    assert events.count() == cap and sum("every address" in e.payload for e in events) == 1
    assert account_locked_until(name) is not None and not any(is_locked(name, a) for a in addresses)
    c = browser("10.0.0.5")
    c.defaults["HTTP_X_FORWARDED_FOR"] = "192.0.2.99"
    c.get("/accounts/login/")
    c.post("/accounts/login/", {"username": name, "password": TEST_PASSWORD,
                                "csrfmiddlewaretoken": c.cookies["csrftoken"].value})
    assert "_auth_user_id" not in c.session and len(password_checks) == cap
