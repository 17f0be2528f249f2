"""An account's API tokens are revoked, not deleted, when its password changes (the user's own
change and the administrator's reset) and when it is deactivated: each marked with when and
why, audited, and refused by the API from then on."""

from __future__ import annotations

import pytest
from django.test import Client

from annulus.accounts import services as accounts
from annulus.accounts.models import ApiToken
from annulus.audit.models import AuditEvent
from annulus.cli import main
from tests.account_support import browser, post_form
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.req("P-7.2", "X-7.3")

NEW = "Granite-Lantern-47-Oboe"


def _api(key):
    return Client().get("/api/v1/participants", HTTP_AUTHORIZATION=f"Bearer {key}").status_code


def _two_tokens(user):
    keys = [accounts.issue_token(user=user, name=n) for n in ("laptop", "script")]
    assert [_api(k) for k in keys] == [200, 200]
    return keys


def _revoked(user, why):
    tokens = list(ApiToken.objects.filter(user=user))
    assert len(tokens) == 2 and all(t.revoked is not None and t.revoked_reason == why for t in tokens)
    voids = AuditEvent.objects.filter(action="void", object_type="api_token",
                                      object_id__in=[str(t.pk) for t in tokens])
    assert voids.count() == 2 and all(why in v.payload for v in voids)


def test_the_own_password_change_revokes_the_tokens(users):
    user = users["coordinator"]
    keys = _two_tokens(user)
    other = accounts.issue_token(user=users["monitor"], name="someone else's")
    c = browser(user=user)
    r = post_form(c, "/accounts/password/", {"old_password": TEST_PASSWORD, "new_password1": NEW, "new_password2": NEW})
    assert r.status_code == 302
    assert [_api(k) for k in keys] == [401, 401] and _api(other) == 200
    _revoked(user, "password changed")
    assert "revoked" in c.get("/accounts/tokens/").content.decode()


def test_the_administrators_reset_revokes_the_tokens(users, monkeypatch):
    user = users["monitor"]
    keys = _two_tokens(user)
    monkeypatch.setenv("ANNULUS_PASSWORD", NEW)
    assert main(["user", "password", user.username, "--reason", "Forgotten; identity checked"]) == 0
    assert [_api(k) for k in keys] == [401, 401]
    _revoked(user, "password reset by the administrator")


def test_deactivating_the_account_revokes_the_tokens(users):
    user = users["monitor"]
    keys = _two_tokens(user)
    admin = browser(user=users["admin"])
    r = post_form(admin, "/accounts/users/", {"toggle": str(user.pk), "active": "0", "reason": "left the site"})
    assert r.status_code == 302
    user.refresh_from_db()
    assert not user.is_active and [_api(k) for k in keys] == [401, 401]
    _revoked(user, "account deactivated")
    # reactivated, the old tokens stay revoked
    accounts.set_active(actor=users["admin"], user_id=user.pk, active=True, reason="back")
    assert [_api(k) for k in keys] == [401, 401]
