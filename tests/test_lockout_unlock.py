"""The administrator ends a lockout, on the users page (CSRF enforced) or with ``annulus user
unlock USERNAME --reason``; each unlock is an audit event with who, when and the reason, and a
request without a reason, or for an account that is not locked, changes nothing."""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from annulus.accounts.backends import is_locked
from annulus.audit.models import AuditEvent
from annulus.audit.selectors import verify_chain
from annulus.cli import main
from tests.account_support import browser, logged_in, login, post_form
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.req("P-7.2", "X-7.3")

ATTACKER = "203.0.113.66"


def _lock(name: str):
    for _ in range(settings.ANNULUS_LOCKOUT_FAILURES):
        login(browser(ATTACKER), name, "wrong-password")
    assert is_locked(name, ATTACKER)


def _unlocks(user):
    return AuditEvent.objects.filter(action="change", object_type="user", object_id=str(user.pk),
                                     payload__contains="locked_for").order_by("id")


def test_the_administrator_unlocks_on_the_users_page(users):
    coordinator = users["coordinator"]
    _lock(coordinator.username)
    admin = browser(user=users["admin"])
    page = admin.get("/accounts/users/").content.decode()
    assert "locked until" in page and ATTACKER in page and f'name="unlock" value="{coordinator.username}"' in page
    # no reason: refused, still locked, nothing audited
    r = post_form(admin, "/accounts/users/", {"unlock": coordinator.username, "reason": " "})
    assert r.status_code == 302 and is_locked(coordinator.username, ATTACKER) and not _unlocks(coordinator).exists()
    assert "reason: is required" in admin.get("/accounts/users/").content.decode()
    r = post_form(admin, "/accounts/users/", {"unlock": coordinator.username, "reason": "Phoned the user; typo in password"})
    assert r.status_code == 302 and not is_locked(coordinator.username, ATTACKER)
    event = _unlocks(coordinator).get()
    payload = json.loads(event.payload)
    assert event.actor_username == users["admin"].username and event.timestamp is not None
    assert payload["reason"] == "Phoned the user; typo in password"
    assert payload["changes"]["locked_for"] == [[ATTACKER], []]
    c = browser(ATTACKER)
    assert login(c, coordinator.username, TEST_PASSWORD).status_code == 302 and logged_in(c)
    assert verify_chain().ok


def test_only_the_administrator_may_unlock(users):
    _lock(users["monitor"].username)
    r = post_form(browser(user=users["coordinator"]), "/accounts/users/",
                  {"unlock": users["monitor"].username, "reason": "let me in"})
    assert r.status_code == 403 and is_locked(users["monitor"].username, ATTACKER)


def test_the_command_line_unlocks_with_a_reason(users, capsys):
    monitor = users["monitor"]
    assert main(["user", "unlock", monitor.username, "--reason", "not locked yet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not locked" in err[0]
    assert main(["user", "unlock", "nobody-here", "--reason", "x"]) == 2
    assert "no such user" in capsys.readouterr().err
    _lock(monitor.username)
    assert main(["user", "unlock", monitor.username, "--reason", "   "]) == 2
    assert "reason: is required" in capsys.readouterr().err and is_locked(monitor.username, ATTACKER)
    assert main(["user", "unlock", monitor.username, "--reason", "Ticket 42: locked by a scanner"]) == 0
    assert ATTACKER in capsys.readouterr().out
    assert not is_locked(monitor.username, ATTACKER)
    payload = json.loads(_unlocks(monitor).get().payload)
    assert payload["reason"].startswith("Ticket 42: locked by a scanner (from the server's command line, by ")
