"""Login for every page and API call; per-user API tokens; lockout; session timeout; password
rules; each role sees only what it must (P-7.2)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from annulus.accounts import services as accounts
from annulus.accounts.models import LoginLock
from annulus.errors import RuleViolation

from .conftest import TEST_PASSWORD

pytestmark = pytest.mark.req("P-7.2")

# "/p/": the participant's one-time questionnaire links, opened with the link and the card code
# and no account (tests/test_selfentry.py: the same 404 for any link that does not work)
OPEN = ("/accounts/login/", "/i18n/", "/healthz", "/static/", "/api/", "/p/")


def page_paths():
    """Every page route of the site, with 1 for each path parameter."""
    out = []

    def walk(patterns, prefix):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                route = prefix + str(p.pattern)
                path = "/" + re.sub(r"<(?:\w+:)?\w+>", "1", route).lstrip("^").rstrip("$")
                out.append(path)

    walk(get_resolver().url_patterns, "")
    return sorted({p for p in out if not p.startswith(OPEN)})



def test_every_page_needs_a_login(db):
    paths = page_paths()
    assert "/participants/1/" in paths and "/accounts/tokens/" in paths and "/" in paths
    anon = Client()
    for path in paths:
        r = anon.get(path)
        assert r.status_code == 302, path
        assert r["Location"].startswith("/accounts/login/?next="), (path, r["Location"])


def test_every_api_call_needs_authentication(db):
    from annulus.site.api import api

    anon = Client()
    spec = api.get_openapi_schema(path_params={})  # the document itself needs a login too
    assert anon.get("/api/v1/openapi.json").status_code == 401
    count = 0
    for path, ops in spec["paths"].items():
        url = re.sub(r"\{[^}]+\}", "1", path)
        for method in ops:
            if method in ("get", "delete"):
                r = getattr(anon, method)(url)
            else:
                r = getattr(anon, method)(url, data="{}", content_type="application/json")
            assert r.status_code == 401, (method, url, r.status_code)
            assert r.json()["detail"][0]["message"] == "authentication required"
            count += 1
    assert count >= 10


def test_api_token_create_use_revoke(users):
    user = users["coordinator"]
    key = accounts.issue_token(user=user, name="laptop")
    c = Client()
    r = c.get("/api/v1/participants", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert r.status_code == 200 and r.json()["count"] == 0
    token = user.api_tokens.get()
    assert token.key_hash != key and key.startswith(token.prefix)  # only the hash is stored
    assert token.last_used is not None
    for bad in (f"Bearer {key}x", "Bearer ", f"Token {key}", key):
        assert c.get("/api/v1/participants", HTTP_AUTHORIZATION=bad).status_code == 401, bad
    accounts.revoke_token(user=user, token_id=token.pk)
    assert c.get("/api/v1/participants", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 401
    with pytest.raises(RuleViolation):
        accounts.revoke_token(user=user, token_id=token.pk)


def test_token_of_another_user_cannot_be_revoked_and_inactive_user_token_fails(users):
    key = accounts.issue_token(user=users["monitor"], name="m")
    token = users["monitor"].api_tokens.get()
    with pytest.raises(RuleViolation):
        accounts.revoke_token(user=users["coordinator"], token_id=token.pk)
    users["monitor"].is_active = False
    users["monitor"].save()
    assert Client().get("/api/v1/participants", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 401


def test_token_page_creates_shows_once_and_revokes(client_for, users):
    c = client_for("investigator")
    r = c.post("/accounts/tokens/", {"name": "script"})
    key = r.context["new_key"]
    assert key and key in r.content.decode()
    assert key not in c.get("/accounts/tokens/").content.decode()  # shown once
    assert Client().get("/api/v1/participants", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    token = users["investigator"].api_tokens.get()
    c.post("/accounts/tokens/", {"revoke": str(token.pk)})
    assert Client().get("/api/v1/participants", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 401
    assert c.post("/accounts/tokens/", {"revoke": "abc"}).status_code == 302  # nonsense id: a message, no error


def _login(client, username, password):
    return client.post("/accounts/login/", {"username": username, "password": password})


def test_lockout_after_five_failed_logins(users):
    c = Client()
    name = users["coordinator"].username
    for _ in range(5):
        r = _login(c, name, "wrong-password")
        assert r.status_code == 200 and "_auth_user_id" not in c.session
    r = _login(c, name, TEST_PASSWORD)  # the right password no longer helps
    assert "_auth_user_id" not in c.session
    assert "locked after repeated failed logins" in r.content.decode()
    # other accounts are not affected
    assert _login(Client(), users["monitor"].username, TEST_PASSWORD).status_code == 302
    # after the lockout window the account opens again
    LoginLock.objects.filter(username=name).update(locked_until=timezone.now() - timedelta(seconds=1))
    assert _login(c, name, TEST_PASSWORD).status_code == 302


def test_four_failures_then_success_resets_the_count(users):
    c = Client()
    name = users["coordinator"].username
    for _ in range(4):
        _login(c, name, "wrong")
    assert _login(c, name, TEST_PASSWORD).status_code == 302
    c2 = Client()
    for _ in range(4):
        _login(c2, name, "wrong")
    assert _login(c2, name, TEST_PASSWORD).status_code == 302


def test_login_and_logout_are_audited(users):
    from annulus.audit.models import AuditEvent

    c = Client()
    assert _login(c, users["auditor"].username, TEST_PASSWORD).status_code == 302
    c.post("/accounts/logout/")
    actions = list(AuditEvent.objects.filter(actor_username=users["auditor"].username).values_list("action", flat=True))
    assert actions[-2:] == ["login", "logout"]


def test_session_times_out_after_idle_period(settings, users):
    assert settings.SESSION_COOKIE_AGE == 30 * 60 and settings.SESSION_REFRESH_SECONDS == 60
    c = Client()
    _login(c, users["coordinator"].username, TEST_PASSWORD)
    assert c.get("/").status_code == 200
    assert 29 * 60 < c.session.get_expiry_age() <= 30 * 60
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    r = c.get("/participants/")
    assert r.status_code == 302 and r["Location"].startswith("/accounts/login/")


def test_the_idle_timeout_slides_with_use_and_the_session_is_written_at_most_once_a_minute(users):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from annulus.accounts.middleware import SESSION_SEEN

    c = Client()
    _login(c, users["coordinator"].username, TEST_PASSWORD)
    assert c.get("/").status_code == 200
    # the next reads within the minute leave the session row alone
    with CaptureQueriesContext(connection) as q:
        assert c.get("/participants/").status_code == 200
    assert not [x for x in q.captured_queries if x["sql"].startswith(("UPDATE", "INSERT")) and "django_session" in x["sql"]]
    # ten minutes of reading later (the expiry last moved 10 minutes ago), a read moves it again
    session = Session.objects.get()
    data = session.get_decoded()
    data[SESSION_SEEN] -= 600
    Session.objects.filter(pk=session.pk).update(session_data=Session.objects.encode(data),
                                                 expire_date=timezone.now() + timedelta(minutes=20))
    assert c.get("/participants/").status_code == 200
    left = Session.objects.get().expire_date - timezone.now()
    assert timedelta(minutes=29) < left <= timedelta(minutes=30)


@pytest.mark.parametrize(
    "password, words",
    [
        ("Sh0rt!pw", "too short"),
        ("nouppercase-password-1", "an upper-case letter"),
        ("NoSymbolPassword123", "a symbol"),
        ("No-Digits-In-Here", "a digit"),
        ("Password123!", "common word"),
        ("Welcome2026!!", "common word"),
        ("123456789012", "entirely numeric"),
        ("t_newuser-Pass1", "too similar"),
    ],
)
def test_weak_passwords_are_refused_with_a_message(users, password, words):
    with pytest.raises(RuleViolation) as info:
        accounts.create_user(actor=users["admin"], username="t_newuser", password=password, role="coordinator",
                             known_roles={"coordinator"}, email="t_newuser@example.org")
    assert info.value.field == "password" and words in info.value.message, info.value.message
    from django.contrib.auth import get_user_model

    assert not get_user_model().objects.filter(username="t_newuser").exists()


def test_strong_password_is_accepted(users):
    u = accounts.create_user(actor=users["admin"], username="t_newuser", password="Granite-Lantern-47-Oboe",
                             role="coordinator", known_roles={"coordinator"})
    assert u.check_password("Granite-Lantern-47-Oboe") and u.membership.role == "coordinator"


def test_password_change_page_refuses_a_weak_password(client_for, users):
    c = Client()
    _login(c, users["coordinator"].username, TEST_PASSWORD)
    r = c.post("/accounts/password/", {"old_password": TEST_PASSWORD, "new_password1": "Password123!",
                                       "new_password2": "Password123!"})
    assert r.status_code == 200 and "common word" in r.content.decode()
    users["coordinator"].refresh_from_db()
    assert users["coordinator"].check_password(TEST_PASSWORD)


# ---- each role sees only what it must ------------------------------------------------------

ROLES = ["investigator", "coordinator", "pharmacist", "designer", "statistician", "monitor", "data_manager", "auditor", "dsmb",
         "ethics", "admin"]
ALL = set(ROLES)
VIEWERS = {"investigator", "coordinator", "monitor", "data_manager", "auditor", "ethics", "dsmb"}  # trial data during collection
EDITORS = {"investigator", "coordinator"}
# a participant's audit trail shows clinical values: audit roles that also see trial data
AUDIT = {"investigator", "coordinator", "monitor", "data_manager", "auditor"}

# (method, path, roles that get 200; everyone else gets 403)
PAGES = [
    ("get", "/", ALL),
    ("get", "/participants/", VIEWERS),
    ("get", "/participants/{pk}/", VIEWERS),
    ("get", "/participants/new/", EDITORS),
    ("get", "/participants/{pk}/consent/", EDITORS),
    ("get", "/participants/{pk}/screening/", EDITORS),
    ("get", "/participants/{pk}/withdraw/", EDITORS),
    ("get", "/participants/{pk}/audit/", AUDIT),
    ("get", "/protocol/", ALL),
    ("get", "/protocol/upload/", {"admin"}),
    ("get", "/accounts/users/", {"admin"}),
    ("get", "/accounts/tokens/", ALL),
    ("get", "/notifications/", ALL),
]
API = [
    ("get", "/api/v1/protocol", ALL),
    ("get", "/api/v1/participants", VIEWERS),
    ("get", "/api/v1/participants/{pk}", VIEWERS),
    ("get", "/api/v1/participants/{pk}/eligibility", VIEWERS),
    ("get", "/api/v1/participants/{pk}/audit", AUDIT),
]


@pytest.mark.parametrize("role", ROLES)
def test_role_access_table(role, client_for, make_participant):
    p = make_participant("consented")
    c = client_for(role)
    for method, path, allowed in PAGES + API:
        url = path.format(pk=p.pk)
        r = getattr(c, method)(url)
        expected = 200 if role in allowed else 403
        assert r.status_code == expected, (role, url, r.status_code)
        if url.startswith("/api/") and expected == 403:
            assert r.json()["detail"][0]["message"] == "not permitted for your role"


@pytest.mark.parametrize("role", sorted(ALL - EDITORS))
def test_roles_without_edit_rights_cannot_write(role, client_for, make_participant):
    from annulus.participants.models import Participant

    p = make_participant("eligible")
    c = client_for(role)
    before = (Participant.objects.count(), Participant.objects.get(pk=p.pk).status)
    assert c.post("/participants/new/", {"initials": "AB", "sex": "F", "recruitment_source": "inpatient_referral",
                                         "prescreened_on": "2026-01-01"}).status_code == 403
    assert c.post(f"/participants/{p.pk}/enrol/").status_code == 403
    api = c.post(f"/api/v1/participants/{p.pk}/enrol", content_type="application/json")
    assert api.status_code == 403
    api = c.post("/api/v1/participants", {"initials": "AB", "sex": "F", "recruitment_source": "inpatient_referral",
                                          "prescreened_on": "2026-01-01"}, content_type="application/json")
    assert api.status_code == 403
    assert (Participant.objects.count(), Participant.objects.get(pk=p.pk).status) == before


def test_login_redirect_keeps_the_full_path_encoded(users):
    r = Client().get("/participants/?status=enrolled&sort=-case")
    assert r.status_code == 302
    assert r["Location"] == "/accounts/login/?next=/participants/%3Fstatus%3Denrolled%26sort%3D-case"
    c = Client()
    r = c.post(r["Location"], {"username": users["monitor"].username, "password": TEST_PASSWORD})
    assert r["Location"] == "/participants/?status=enrolled&sort=-case"


def test_api_with_a_session_needs_the_csrf_token(users, protocol_version):
    # a browser session is accepted by the API only with its CSRF token (a token header needs none)
    c = Client(enforce_csrf_checks=True)
    c.force_login(users["coordinator"])
    body = {"initials": "AB", "sex": "F", "recruitment_source": "flyers_website",
            "prescreened_on": timezone.localdate().isoformat()}
    r = c.post("/api/v1/participants", body, content_type="application/json")
    assert r.status_code in (401, 403)
    from annulus.participants.models import Participant

    assert Participant.objects.count() == 0
    c.get("/participants/")  # sets the CSRF cookie
    r = c.post("/api/v1/participants", body, content_type="application/json",
               HTTP_X_CSRFTOKEN=c.cookies["csrftoken"].value)
    assert r.status_code == 201 and Participant.objects.count() == 1


@pytest.mark.req("X-7.3")
def test_failed_logins_on_accounts_are_in_the_audit_trail(users):
    import json

    from annulus.audit.models import AuditEvent
    from annulus.audit.selectors import verify_chain

    coordinator = users["coordinator"]
    for _ in range(5):
        _login(Client(), coordinator.username, "wrong-password")
    before = AuditEvent.objects.count()
    for _ in range(3):  # refused while locked, before any password check: nothing more recorded
        _login(Client(), coordinator.username, TEST_PASSWORD)
    assert AuditEvent.objects.count() == before
    # a name that is no account (a password typed into the name field?) stays out of the trail
    _login(Client(), "Secret-Password-123!", "x")
    # a deactivated account with its right password
    accounts.set_active(actor=users["admin"], user_id=users["monitor"].pk, active=False, reason="left the site")
    _login(Client(), users["monitor"].username, TEST_PASSWORD)
    events = [json.loads(e.payload)["changes"] for e in AuditEvent.objects.filter(action="login_failed").order_by("id")]
    assert [e["why"] for e in events] == ["wrong password"] * 4 + ["wrong password; account now locked",
                                                                   "inactive account"]
    assert [e["username"] for e in events] == [coordinator.username] * 5 + [users["monitor"].username]
    assert not AuditEvent.objects.filter(payload__contains="Secret-Password").exists()
    assert verify_chain().ok
