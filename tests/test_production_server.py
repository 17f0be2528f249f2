"""`annulus serve --production` on a fresh installation: gunicorn answers, the static files are
collected under hashed names and served with a year's cache lifetime, every page carries the
security headers, cookies are Secure and HttpOnly, and a real HTTP client logs in and reaches a
page. On the database of the run (SQLite file, or a scratch PostgreSQL database)."""

from __future__ import annotations

import re

import pytest

from tests.production_support import ADMIN, Client, ProductionServer

pytestmark = pytest.mark.req("P-7.2")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ProductionServer(tmp_path_factory.mktemp("production")) as running:
        yield running


def test_gunicorn_serves_with_workers_and_an_access_log(server):
    assert Client(server.base).get("/healthz").status == 200
    log = server.log.read_text()
    assert "Using worker: gthread" in log and log.count("Booting worker") >= 2, log
    assert re.search(r'"GET /healthz HTTP/1\.1" 200', log), log  # the access log goes to stdout


def test_login_page_and_hashed_static_files(server):
    page = Client(server.base).get("/accounts/login/")
    assert page.status == 200
    css = re.search(r'href="(/static/annulus/annulus\.[0-9a-f]{12}\.css)"', page.text)
    js = re.search(r'src="(/static/annulus/htmx\.min\.[0-9a-f]{12}\.js)"', page.text)
    assert css and js, page.text[:1500]
    for url, kind in ((css.group(1), "text/css"), (js.group(1), "javascript")):
        static = Client(server.base).get(url)
        assert static.status == 200, url
        assert kind in static.headers["Content-Type"]
        cache = static.headers["Cache-Control"]
        assert "immutable" in cache and int(re.search(r"max-age=(\d+)", cache).group(1)) >= 365 * 24 * 3600, cache
    assert b".top" in Client(server.base).get(css.group(1)).body  # the real style sheet
    assert Client(server.base).get("/static/annulus/no-such-file.css").status == 404


def test_security_headers(server):
    page = Client(server.base).get("/accounts/login/")
    h = page.headers
    assert h["X-Frame-Options"] == "DENY"
    assert h["Referrer-Policy"] == "same-origin"
    assert h["X-Content-Type-Options"] == "nosniff"
    hsts = h["Strict-Transport-Security"]
    assert int(re.search(r"max-age=(\d+)", hsts).group(1)) >= 365 * 24 * 3600 and "includeSubDomains" in hsts
    csp = dict(part.strip().split(" ", 1) for part in h["Content-Security-Policy"].split(";"))
    assert csp["script-src"] == "'self'"  # no inline script, no eval
    assert csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'"
    nonce = re.search(r"'nonce-([^']+)'", csp["style-src"]).group(1)
    assert nonce not in Client(server.base).get("/accounts/login/").headers["Content-Security-Policy"]
    # no inline script or event-handler attribute for the policy to block
    assert not re.search(r"<script(?![^>]*\ssrc=)", page.text) and not re.search(r"\son[a-z]+=", page.text)
    # plain HTTP (not through the TLS proxy) is sent to HTTPS
    plain = Client(server.base, via_proxy=False).get("/accounts/login/")
    assert plain.status == 301 and plain.headers["Location"].startswith("https://")


def test_log_in_with_secure_cookies_and_reach_a_page(server):
    client = Client(server.base)
    answer = client.log_in()
    assert answer.status == 302, answer.text[:2000]
    session = client.set_cookies["sessionid"]
    assert "Secure" in session and "HttpOnly" in session, session
    assert "Secure" in client.set_cookies["csrftoken"]
    dashboard = client.get(answer.headers["Location"])
    assert dashboard.status == 200 and ADMIN in dashboard.text
    users = client.get("/accounts/users/")
    assert users.status == 200 and ADMIN in users.text
    # a wrong password is refused, and no session comes of it
    stranger = Client(server.base)
    assert stranger.log_in(password="Wrong-Password-2026!").status == 200
    assert "sessionid" not in stranger.cookies
    assert stranger.get("/").status == 302
