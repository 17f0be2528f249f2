"""The administrator sets a temporary password for another account on the Users page: the password
twice and a reason, every error named by its field at once, in both languages. In one transaction
the password is set, the account's API tokens are revoked, its login locks cleared, and it is
marked so that the user must choose their own password at the next login (every page leads to
the password change until then); one audit event says who, when and why, with no password in it.
Only the administrator may, and not on their own account. Browsers post with CSRF enforced."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from annulus.accounts import services as accounts
from annulus.accounts.backends import is_locked
from annulus.accounts.models import ApiToken, LoginLock
from annulus.audit.models import AuditEvent
from annulus.audit.selectors import verify_chain
from annulus.cli import main
from tests.account_support import browser, logged_in, login, post_form
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.req("P-7.2", "X-7.3")

TEMPORARY = "Granite-Lantern-47-Oboe"
OWN = "Harbour-Violin-83-Quince"
ATTACKER = "203.0.113.66"
REASON = "Forgot the password; identity checked by telephone"


def _path(user) -> str:
    return f"/accounts/users/{user.pk}/password/"


def _form(password=TEMPORARY, again=TEMPORARY, reason=REASON) -> dict:
    return {"new_password1": password, "new_password2": again, "reason": reason}


def _resets(user):
    return AuditEvent.objects.filter(action="change", object_type="user", object_id=str(user.pk),
                                     payload__contains="password reset by the administrator").order_by("id")


def _api(key):
    return Client().get("/api/v1/participants", HTTP_AUTHORIZATION=f"Bearer {key}").status_code


def _must_change(user) -> bool:
    return get_user_model().objects.get(pk=user.pk).membership.must_change_password


def test_the_administrator_resets_a_password_on_the_users_page(users):
    user, admin_user = users["coordinator"], users["admin"]
    keys = [accounts.issue_token(user=user, name=n) for n in ("laptop", "script")]
    other_key = accounts.issue_token(user=users["monitor"], name="someone else's")
    for _ in range(settings.ANNULUS_LOCKOUT_FAILURES):
        login(browser(ATTACKER), user.username, "wrong-password")
    assert is_locked(user.username, ATTACKER)
    session = browser()
    assert login(session, user.username, TEST_PASSWORD).status_code == 302 and session.get("/").status_code == 200

    admin = browser(user=admin_user)
    page = admin.get("/accounts/users/").content.decode()
    assert f'href="{_path(user)}"' in page and f'href="{_path(admin_user)}"' not in page  # not on their own row
    page = admin.get(_path(user)).content.decode()
    assert f"Reset the password of {user.username}" in page and "their API tokens in force are revoked (2)" in page
    assert ATTACKER in page  # the lock that will be cleared
    r = post_form(admin, _path(user), _form())
    assert r.status_code == 302 and r["Location"] == "/accounts/users/"
    assert f"The password of {user.username} was reset" in admin.get("/accounts/users/").content.decode()

    user.refresh_from_db()
    assert user.check_password(TEMPORARY) and _must_change(user)
    # the tokens are revoked (kept, with when and why); another account's are not touched
    assert [_api(k) for k in keys] == [401, 401] and _api(other_key) == 200
    assert all(t.revoked_reason == "password reset by the administrator" for t in ApiToken.objects.filter(user=user))
    # the locks are cleared: the user logs in from the address that was locked
    assert not LoginLock.objects.filter(username=user.username).exists()
    # the session opened with the old password has ended
    assert session.get("/").status_code == 302 and not logged_in(session)

    event = _resets(user).get()
    payload = json.loads(event.payload)
    assert event.actor_username == admin_user.username and event.timestamp is not None
    assert payload["reason"] == REASON
    assert payload["changes"] == {"password": "password reset by the administrator", "tokens_revoked": 2,
                                  "must_change_password": [False, True], "locks_cleared": [[ATTACKER], []]}
    for secret in (TEMPORARY, TEST_PASSWORD, user.password, user.password.split("$")[-1]):
        assert secret not in event.payload
    assert verify_chain().ok


@pytest.mark.parametrize("language, labels", [
    ("en", ("Temporary password", "Temporary password (again)", "Reason", "This field is required.",
            "at least 12 characters", "didn’t match")),
    ("zh-hans", ("临时密码", "临时密码（再次输入）", "原因", "这个字段是必填项。", "12", "不一致")),
])
def test_every_error_is_shown_at_once_naming_its_field(users, language, labels):
    user = users["monitor"]
    admin = browser(user=users["admin"])
    admin.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    r = post_form(admin, _path(user), _form(password="short", again="different", reason="   "))
    assert r.status_code == 200
    assert set(r.context["form"].errors) == {"new_password1", "new_password2", "reason"}
    page = r.content.decode()
    first, again, reason, required, too_short, mismatch = labels
    assert f"{first}: " in page and f"{again}: " in page and f"{reason}: {required}" in page
    assert too_short in str(r.context["form"].errors["new_password1"])
    assert mismatch in str(r.context["form"].errors["new_password2"])
    # a password the validators refuse (a common word), the copies equal: only that field
    r = post_form(admin, _path(user), _form(password="password", again="password"))
    assert set(r.context["form"].errors) == {"new_password1"}
    user.refresh_from_db()
    assert user.check_password(TEST_PASSWORD) and not _must_change(user) and not _resets(user).exists()


def test_the_user_must_change_the_password_at_the_next_login(users):
    user = users["coordinator"]
    assert post_form(browser(user=users["admin"]), _path(user), _form()).status_code == 302
    c = browser()
    assert login(c, user.username, TEMPORARY).status_code == 302 and logged_in(c)
    for page in ("/", "/participants/", "/accounts/tokens/", "/accounts/users/"):
        r = c.get(page)
        assert r.status_code == 302 and r["Location"] == "/accounts/password/", page
    # an API call with the session is refused too (its tokens were revoked at the reset)
    r = c.get("/api/v1/participants")
    assert r.status_code == 403 and r.json()["detail"][0]["field"] == "password"
    page = c.get("/accounts/password/").content.decode()
    assert "The administrator has reset your password" in page
    assert 'href="/participants/"' not in page  # no menu of pages that would only lead back here
    c.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    assert "管理员已重置您的密码" in c.get("/accounts/password/").content.decode()
    del c.cookies[settings.LANGUAGE_COOKIE_NAME]
    r = post_form(c, "/accounts/password/", {"old_password": TEMPORARY, "new_password1": OWN, "new_password2": OWN})
    assert r.status_code == 302 and logged_in(c)
    assert c.get("/").status_code == 200 and c.get("/api/v1/participants").status_code == 200
    assert 'href="/participants/"' in c.get("/accounts/password/").content.decode()  # the menu is back
    assert not _must_change(user)
    change = AuditEvent.objects.filter(action="change", object_type="user", object_id=str(user.pk),
                                       payload__contains='"password changed"').get()
    assert json.loads(change.payload)["changes"]["must_change_password"] == [True, False]
    assert OWN not in change.payload and TEMPORARY not in change.payload


@pytest.mark.parametrize("role", ["coordinator", "investigator", "monitor", "data_manager"])
def test_only_the_administrator_may_reset_a_password(users, role):
    target = users["auditor"]
    c = browser(user=users[role])
    assert c.get(_path(target)).status_code == 403
    c.get("/")
    r = c.post(_path(target), {**_form(), "csrfmiddlewaretoken": c.cookies["csrftoken"].value})
    assert r.status_code == 403
    target.refresh_from_db()
    assert target.check_password(TEST_PASSWORD) and not _must_change(target) and not _resets(target).exists()
    # an unknown account: the same refusal, so the answer tells nothing
    assert c.get("/accounts/users/999999/password/").status_code == 403


def test_the_administrator_changes_their_own_password_on_the_password_page(users):
    admin_user = users["admin"]
    admin = browser(user=admin_user)
    page = admin.get(_path(admin_user)).content.decode()
    assert "This is your own account" in page and 'href="/accounts/password/"' in page and "new_password1" not in page
    r = post_form(admin, _path(admin_user), _form())
    assert r.status_code == 200 and "This is your own account" in r.content.decode()
    admin_user.refresh_from_db()
    assert admin_user.check_password(TEST_PASSWORD) and not _resets(admin_user).exists()
    with pytest.raises(accounts.RuleViolation) as refused:
        accounts.reset_password(actor=admin_user, user=admin_user, password=TEMPORARY, reason="mine")
    assert refused.value.field == "user"


def test_the_command_line_reset_does_the_same(users, monkeypatch, capsys):
    user = users["monitor"]
    for _ in range(settings.ANNULUS_LOCKOUT_FAILURES):
        login(browser(ATTACKER), user.username, "wrong-password")
    monkeypatch.setenv("ANNULUS_PASSWORD", TEMPORARY)
    assert main(["user", "password", user.username, "--reason", "Forgotten; identity checked"]) == 0
    assert "must be chosen at the next login" in capsys.readouterr().out
    assert _must_change(user) and not is_locked(user.username, ATTACKER)
    payload = json.loads(_resets(user).get().payload)
    assert payload["changes"]["locks_cleared"] == [[ATTACKER], []] and payload["changes"]["must_change_password"]
