"""API tokens expire: 90 days after they are issued unless the owner asks for fewer (the default
is configurable); an expired token is refused with 401 JSON saying so, and the tokens page shows
each token's expiry, in English and in Chinese."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annulus.accounts import services as accounts
from annulus.accounts.models import ApiToken
from annulus.audit.models import AuditEvent
from annulus.errors import RuleViolation
from tests.account_support import browser, post_form

pytestmark = pytest.mark.req("P-7.2")


def _api(key):
    return Client().get("/api/v1/participants", HTTP_AUTHORIZATION=f"Bearer {key}")


def test_a_token_is_refused_with_401_json_once_it_expires(users):
    user = users["coordinator"]
    before = timezone.now()
    key = accounts.issue_token(user=user, name="laptop")
    token = user.api_tokens.get()
    assert before + timedelta(days=90) <= token.expires <= timezone.now() + timedelta(days=90)
    created = json.loads(AuditEvent.objects.get(action="create", object_type="api_token").payload)
    assert created["changes"]["expires"][1].startswith(token.expires.date().isoformat())
    assert _api(key).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires=timezone.now() - timedelta(seconds=1))  # the clock moved on
    r = _api(key)
    assert r.status_code == 401 and r["Content-Type"].startswith("application/json")
    assert r.json() == {"detail": [{"field": "authorization", "message": "the token has expired"}]}
    # a token that never existed still gets the plain answer
    assert _api("ann_" + "x" * 43).json()["detail"][0]["message"] == "authentication required"


def test_the_default_lifetime_is_a_setting_and_the_owner_may_ask_for_fewer_days(users, settings):
    settings.ANNULUS_TOKEN_DAYS = 30
    user = users["monitor"]
    accounts.issue_token(user=user, name="default")
    accounts.issue_token(user=user, name="short", days=2)
    expires = {t.name: t.expires - t.created for t in user.api_tokens.all()}
    assert round(expires["default"].total_seconds() / 86400) == 30
    assert round(expires["short"].total_seconds() / 86400) == 2
    with pytest.raises(RuleViolation) as info:
        accounts.issue_token(user=user, name="forever", days=0)
    assert info.value.field == "days" and user.api_tokens.count() == 2


@pytest.mark.parametrize("language, header, expired_word, help_word", [
    ("en", "Expires", "expired", "Valid for (days)"),
    ("zh-hans", "到期时间", "已过期", "有效期（天）"),
])
def test_the_tokens_page_shows_each_expiry(users, language, header, expired_word, help_word):
    user = users["investigator"]
    c = browser(user=user)
    c.cookies["django_language"] = language
    r = post_form(c, "/accounts/tokens/", {"name": "script", "days": "7"})
    assert r.status_code == 200 and r.context["new_key"]
    token = user.api_tokens.get()
    page = c.get("/accounts/tokens/").content.decode()
    shown = timezone.localtime(token.expires).strftime("%Y-%m-%d %H:%M")
    assert header in page and help_word in page and shown in page and expired_word not in page
    ApiToken.objects.filter(pk=token.pk).update(expires=timezone.now() - timedelta(minutes=1))
    assert expired_word in c.get("/accounts/tokens/").content.decode()
    # a lifetime out of range names the field
    r = post_form(c, "/accounts/tokens/", {"name": "forever", "days": "9999"})
    assert r.status_code == 200 and r.context["form"].errors.keys() == {"days"}
    assert user.api_tokens.count() == 1
