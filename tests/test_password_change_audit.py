"""A password change is an audit event: who changed whose password and when (UTC), with no
password material in it, for the user's own change on the password page and for the
administrator's reset from the server's command line; the old password on the page counts
towards the lockout like any re-entered password."""

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

pytestmark = pytest.mark.req("X-7.3", "P-7.2")

NEW = "Granite-Lantern-47-Oboe"


def _password_events(user):
    return AuditEvent.objects.filter(action="change", object_type="user", object_id=str(user.pk),
                                     payload__contains='"password"').order_by("id")


def test_the_own_password_change_is_audited_without_the_password(users):
    user = users["coordinator"]
    c = browser()
    assert login(c, user.username, TEST_PASSWORD).status_code == 302
    r = post_form(c, "/accounts/password/", {"old_password": TEST_PASSWORD, "new_password1": NEW, "new_password2": NEW})
    assert r.status_code == 302 and logged_in(c)  # the session goes on with the new password
    user.refresh_from_db()
    assert user.check_password(NEW)
    event = _password_events(user).get()
    assert event.actor_username == user.username and event.timestamp.utcoffset().total_seconds() == 0
    payload = json.loads(event.payload)
    assert payload["changes"]["password"] == "password changed"
    for secret in (NEW, TEST_PASSWORD, user.password, user.password.split("$")[-1]):
        assert secret not in event.payload
    assert verify_chain().ok
    assert login(browser(), user.username, NEW).status_code == 302


def test_a_wrong_old_password_names_the_field_and_counts_towards_the_lockout(users):
    user = users["monitor"]
    c = browser(user=user)
    for _ in range(settings.ANNULUS_LOCKOUT_FAILURES):
        r = post_form(c, "/accounts/password/", {"old_password": "guess", "new_password1": NEW, "new_password2": NEW})
        assert r.status_code == 200 and list(r.context["form"].errors) == ["old_password"]
    assert is_locked(user.username)
    r = post_form(c, "/accounts/password/", {"old_password": TEST_PASSWORD, "new_password1": NEW, "new_password2": NEW})
    assert "locked" in str(r.context["form"].errors["old_password"])
    user.refresh_from_db()
    assert user.check_password(TEST_PASSWORD) and not _password_events(user).exists()


def test_the_administrators_reset_from_the_command_line_is_audited(users, capsys, monkeypatch):
    user = users["auditor"]
    monkeypatch.setenv("ANNULUS_PASSWORD", NEW)
    assert main(["user", "password", user.username, "--reason", " "]) == 2
    assert capsys.readouterr().err.strip().endswith("reason: is required")
    assert main(["user", "password", "nobody-here", "--reason", "x"]) == 2
    assert "no such user" in capsys.readouterr().err
    monkeypatch.setenv("ANNULUS_PASSWORD", "Password123!")
    assert main(["user", "password", user.username, "--reason", "forgotten"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("annulus user: error: password:")
    monkeypatch.setenv("ANNULUS_PASSWORD", NEW)
    assert main(["user", "password", user.username, "--reason", "Forgotten; identity checked by phone"]) == 0
    user.refresh_from_db()
    assert user.check_password(NEW)
    event = _password_events(user).get()
    payload = json.loads(event.payload)
    assert payload["changes"]["password"] == "password reset by the administrator"
    assert payload["reason"].startswith("Forgotten; identity checked by phone (from the server's command line, by ")
    assert NEW not in event.payload and user.password.split("$")[-1] not in event.payload
