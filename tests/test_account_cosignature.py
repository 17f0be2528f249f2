"""Accounts that could learn an allocation (pharmacist, designer, DSMB; an investigator, who may
unblind in an emergency) or that co-sign them (a principal investigator) are created in the app only with a PI's co-signature; the first accounts
of an installation come from the server's command line (X-3.8, X-7.3)."""

import json
import os
import subprocess
import sys

import pytest

from annulus.errors import RuleViolation

from .conftest import TEST_PASSWORD

NEW_PASSWORD = "Fresh-Account-2026!"
ROLES = {"investigator", "coordinator", "pharmacist", "designer", "statistician", "monitor", "data_manager", "auditor", "dsmb",
         "ethics", "admin"}


def _create(users, role, is_pi=False, **kw):
    from annulus.accounts.services import create_user

    return create_user(actor=users["admin"], username=f"new_{role}{'_pi' if is_pi else ''}", password=NEW_PASSWORD,
                       role=role, known_roles=ROLES, is_pi=is_pi, **kw)


def _accounts():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.count()


@pytest.mark.req("X-3.8")
@pytest.mark.parametrize("role, is_pi", [("pharmacist", False), ("designer", False), ("dsmb", False),
                                         ("investigator", False), ("investigator", True)])
def test_unblinded_role_or_pi_needs_a_pi_cosignature(users, role, is_pi):
    before = _accounts()
    for cosigner, password in [("", ""), (users["pi"].username, "wrong"), (users["coordinator"].username, TEST_PASSWORD)]:
        with pytest.raises(RuleViolation) as e:
            _create(users, role, is_pi, cosigner_username=cosigner, cosigner_password=password)
        assert e.value.field == "cosigner_username"
    assert _accounts() == before
    user = _create(users, role, is_pi, cosigner_username=users["pi"].username, cosigner_password=TEST_PASSWORD)
    assert user.membership.role == role


@pytest.mark.req("X-7.3")
def test_cosignature_is_audited_and_the_pi_is_notified(users):
    from annulus.audit.models import AuditEvent
    from annulus.trial.models import Notification

    user = _create(users, "pharmacist", cosigner_username=users["pi"].username, cosigner_password=TEST_PASSWORD)
    event = AuditEvent.objects.filter(object_type="user", object_id=str(user.pk)).get()
    assert json.loads(event.payload)["changes"]["cosigned_by"] == [None, users["pi"].username]
    assert event.actor_username == users["admin"].username
    note = Notification.objects.filter(user=users["pi"], kind="account_cosigned").get()
    assert user.username in note.subject


@pytest.mark.req("X-3.8")
def test_a_pi_cannot_cosign_their_own_creation(users):
    from annulus.accounts.services import create_user

    pi = users["pi"]
    pi.membership.role = "admin"  # a PI who also administers accounts: still needs someone else
    with pytest.raises(RuleViolation) as e:
        create_user(actor=pi, username="new_designer", password=NEW_PASSWORD, role="designer", known_roles=ROLES,
                    cosigner_username=pi.username, cosigner_password=TEST_PASSWORD)
    assert e.value.field == "cosigner_username" and "someone other" in e.value.message


@pytest.mark.req("X-3.8")
def test_roles_that_cannot_unblind_need_no_cosignature(users):
    for role in ("monitor", "coordinator", "statistician", "auditor", "ethics", "admin"):
        assert _create(users, role).membership.role == role


@pytest.mark.req("X-3.8")
def test_users_page_shows_the_cosignature_error_on_its_field(users, client_for):
    c = client_for("admin")
    data = {"create": "1", "username": "page_pharmacist", "role": "pharmacist", "password": NEW_PASSWORD}
    r = c.post("/accounts/users/", data)
    assert r.status_code == 200 and "co-signature" in r.content.decode()
    r = c.post("/accounts/users/", {**data, "cosigner_username": users["pi"].username,
                                    "cosigner_password": TEST_PASSWORD})
    assert r.status_code == 302


@pytest.mark.req("X-7.3")
def test_cli_creates_the_first_accounts(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(ANNULUS_VAR_DIR=str(tmp_path), ANNULUS_PASSWORD=NEW_PASSWORD)
    run = [sys.executable, "-m", "annulus", "user", "create"]
    out = subprocess.run(run + ["first_admin", "--role", "admin"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "created first_admin (admin)" in out.stdout
    out = subprocess.run(run + ["first_pi", "--role", "investigator", "--pi"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and "principal investigator" in out.stdout
    # bad input: one line, exit 2, nothing created
    for extra, words in ([["first_admin", "--role", "admin"], "already exists"],
                         [["x", "--role", "wizard"], "unknown role"]):
        out = subprocess.run(run + extra, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and words in out.stderr
    weak = subprocess.run(run + ["weak", "--role", "monitor"], env={**env, "ANNULUS_PASSWORD": "short"},
                          capture_output=True, text=True, timeout=300)
    assert weak.returncode == 2 and "password: This password is too short" in weak.stderr


@pytest.mark.req("X-3.8", "X-7.3")
def test_wrong_cosignature_passwords_count_towards_the_pi_lockout(users):
    from annulus.accounts.backends import is_locked
    from annulus.audit.models import AuditEvent

    pi = users["pi"].username
    for _ in range(5):
        with pytest.raises(RuleViolation):
            _create(users, "designer", cosigner_username=pi, cosigner_password="guess")
    assert is_locked(pi)
    whys = [json.loads(e.payload)["changes"]["why"] for e in AuditEvent.objects.filter(action="login_failed")]
    assert whys[0] == "co-signature: wrong password" and whys[-1].endswith("account now locked")
    # locked: even the right password does not co-sign now
    with pytest.raises(RuleViolation) as e:
        _create(users, "designer", cosigner_username=pi, cosigner_password=TEST_PASSWORD)
    assert "locked" in e.value.message
