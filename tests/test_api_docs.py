"""/api/v1/docs works without internet (Swagger UI's files are served by the app itself) and,
like /api/v1/openapi.json, needs a login."""

from __future__ import annotations

import re
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.test import Client

from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.req("P-7.2")

CHROMIUM = "/usr/bin/chromium"


class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])
        if tag in ("img", "iframe") and attrs.get("src"):
            self.urls.append(attrs["src"])


def assets_of(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return parser.urls


def test_anonymous_is_refused_the_docs_and_the_schema(db):
    c = Client()
    r = c.get("/api/v1/docs")
    assert r.status_code == 302 and r["Location"].startswith("/accounts/login/?next=/api/v1/docs")
    r = c.get("/api/v1/openapi.json")
    assert r.status_code == 401 and r.json() == {"detail": [{"field": "", "message": "authentication required"}]}
    r = c.get("/api/v1/openapi.json", HTTP_AUTHORIZATION="Bearer ann_wrong")
    assert r.status_code == 401
    r = c.get("/api/v1/docs", HTTP_AUTHORIZATION="Bearer ann_wrong")
    assert r.status_code == 302


def test_a_login_or_a_token_opens_the_schema(users, client_for):
    from annulus.accounts.services import issue_token

    key = issue_token(user=users["monitor"], name="docs")
    r = Client().get("/api/v1/openapi.json", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert r.status_code == 200 and r.json()["info"]["title"] == "Annulus API"
    r = client_for("monitor").get("/api/v1/openapi.json")
    assert r.status_code == 200 and "/api/v1/participants" in r.json()["paths"]


def test_the_docs_page_references_only_local_assets(client_for):
    from django.contrib.staticfiles import finders

    r = client_for("coordinator").get("/api/v1/docs")
    assert r.status_code == 200
    html = r.content.decode()
    urls = assets_of(html)
    assert any(u.endswith("swagger-ui-bundle.js") for u in urls) and any(u.endswith("swagger-ui.css") for u in urls)
    for url in urls:
        assert url.startswith("/static/") and not url.startswith("//"), url
        assert finders.find(url.removeprefix("/static/")), url
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing from a CDN


def _login(base, opener, username):
    import http.cookiejar  # noqa: F401  (the opener keeps the cookies)

    page = opener.open(base + "/accounts/login/", timeout=30).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    data = urllib.parse.urlencode({"username": username, "password": TEST_PASSWORD,
                                   "csrfmiddlewaretoken": token}).encode()
    return opener.open(urllib.request.Request(base + "/accounts/login/", data=data,
                                              headers={"Referer": base + "/accounts/login/"}), timeout=30)


@pytest.fixture
def flushable_audit_table(transactional_db):
    """The live server's database is emptied by TRUNCATE after the test; on PostgreSQL the audit
    table refuses TRUNCATE, so the trigger is lifted for this private test database only."""
    from django.db import connection

    yield
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_no_truncate")


def test_the_live_server_serves_the_docs_assets(flushable_audit_table, live_server, users):
    import http.cookiejar
    import urllib.parse  # noqa: F401

    base = live_server.url
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    _login(base, opener, users["coordinator"].username)
    html = opener.open(base + "/api/v1/docs", timeout=30).read().decode()
    kinds = {".js": "javascript", ".css": "text/css", ".svg": "image/svg", ".png": "image/png"}
    urls = assets_of(html)
    assert len(urls) >= 3
    for url in urls:
        with urllib.request.urlopen(base + url, timeout=30) as response:
            body = response.read()
            assert response.status == 200 and len(body) > 100, url
            assert kinds[Path(url).suffix] in response.headers["Content-Type"], (url, response.headers["Content-Type"])


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install -y chromium)")
def test_swagger_ui_renders_with_no_network_beyond_the_server(flushable_audit_table, live_server, users, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    sync_api = pytest.importorskip("playwright.sync_api")
    base = live_server.url
    outside = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})

        def block(route):
            if route.request.url.startswith(base):
                return route.continue_()
            outside.append(route.request.url)
            return route.abort()

        context.route("**/*", block)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(base + "/api/v1/docs")
        assert "/accounts/login/" in page.url
        page.fill("input[name=username]", users["coordinator"].username)
        page.fill("input[name=password]", TEST_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/api/v1/docs$"))
        page.wait_for_selector(".opblock-summary-path")
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert any("/api/v1/participants" in p for p in paths)
        from django.db import connections

        connections.close_all()
        context.close()
        browser.close()
    assert outside == []


def test_every_route_documents_its_own_body():
    # two input schemas of one name (e.g. two "GenerateIn") share one OpenAPI component: the docs
    # and schemathesis then show one route the other's body
    from annulus.site.api import api

    schema = api.get_openapi_schema(path_params={})
    components = schema["components"]["schemas"]
    checked = set()
    for _prefix, router in api._routers:
        for path_view in router.path_operations.values():
            for op in path_view.operations:
                for model in op.signature.models:
                    if model.__ninja_param_source__ != "body":
                        continue
                    for name, field in model.model_fields.items():
                        ref = components.get(field.annotation.__name__ if isinstance(field.annotation, type) else "")
                        if ref is None:
                            continue
                        assert set(ref.get("properties", {})) == set(field.annotation.model_fields), (
                            op.view_func.__name__, field.annotation.__name__)
                        checked.add(field.annotation.__name__)
    assert {"ListGenerateIn", "DsmbReportIn", "EventWithdrawIn", "WithdrawIn", "ConsentIn"} <= checked
