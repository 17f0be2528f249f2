"""Headless Chromium against the production server (gunicorn, WhiteNoise, the Content-Security-
Policy on): the pages are styled, htmx loads and swaps, the language switch and Swagger UI work,
and the browser reports no CSP violation. Screenshots go to /tmp/shots/production-*.png."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.production_support import ADMIN, ADMIN_PASSWORD, ProductionServer

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(os.environ.get("ANNULUS_SHOTS_DIR", "/tmp/shots"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.req("P-7.2"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install -y chromium)"),
]

# every violation the page reports, whether or not it reaches the console
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " + (e.sample || ""));
});
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # A browser cannot pretend to be behind the TLS proxy (its Origin and Referer stay http://, which
    # Django's CSRF check refuses on a request it believes secure), so this server speaks plain HTTP
    # on localhost, where Chromium keeps Secure cookies; the policy and the pages are the same.
    with ProductionServer(tmp_path_factory.mktemp("production-browser"), tag="brw",
                          ANNULUS_BEHIND_TLS_PROXY="0", ANNULUS_SSL_REDIRECT="0") as running:
        running.base = running.base.replace("127.0.0.1", "localhost")
        yield running


@pytest.fixture
def page(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
        context.add_init_script(RECORD_VIOLATIONS)
        p = context.new_page()
        p.set_default_timeout(20_000)
        p.console_messages_seen = []
        p.on("console", lambda m: p.console_messages_seen.append(m.text))
        yield p
        context.close()
        browser.close()


def _violations(page) -> list[str]:
    seen = page.evaluate("window.__csp || []")
    console = [m for m in page.console_messages_seen if "Content Security Policy" in m or "Refused to" in m]
    return seen + console


def _shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"production-{name}.png"), full_page=True)


def _styled(page) -> bool:
    return page.evaluate("""() => {
        const top = document.querySelector('header.top');
        return !!top && getComputedStyle(top).backgroundColor !== 'rgba(0, 0, 0, 0)'
            && getComputedStyle(document.body).fontFamily !== '';
    }""")


def test_pages_work_under_the_policy(server, page):
    page.goto(server.base + "/accounts/login/")
    assert _styled(page), "the style sheet did not load"
    assert page.evaluate("typeof window.htmx === 'object' && window.htmx.config.allowEval === false")
    _shot(page, "login")
    page.fill("input[name=username]", ADMIN)
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(server.base + "/")
    assert _styled(page) and ADMIN in page.inner_text("header.top")
    _shot(page, "dashboard")
    assert _violations(page) == []

    # htmx: the data dictionary's search swaps the table in place
    page.goto(server.base + "/data-dictionary/")
    rows_before = page.locator("#dtable tbody tr").count()
    assert rows_before > 5
    with page.expect_response(lambda r: "data-dictionary" in r.url and r.request.headers.get("hx-request") == "true"):
        page.fill("input[name=q]", "VAS")
    page.wait_for_function(f"document.querySelectorAll('#dtable tbody tr').length < {rows_before}")
    _shot(page, "dictionary-search")
    assert _violations(page) == []

    # the language switch submits itself (annulus.js, no inline handler)
    with page.expect_navigation():
        page.select_option("select[name=language]", "zh-hans")
    assert page.evaluate("document.documentElement.lang") == "zh-hans"
    with page.expect_navigation():
        page.select_option("select[name=language]", "en")
    assert page.evaluate("document.documentElement.lang") == "en"
    assert _violations(page) == []

    # Swagger UI: its own scripts from the static files
    page.goto(server.base + "/api/v1/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    page.wait_for_selector(".opblock")
    _shot(page, "api-docs")
    assert _violations(page) == []


def test_an_inline_script_would_be_blocked(server, page):
    """The policy is enforced, not merely sent: a script injected into a page does not run."""
    page.goto(server.base + "/accounts/login/")
    page.evaluate("""() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';
                            document.body.appendChild(s); }""")
    assert page.evaluate("window.__ran") is None
    assert any("script-src" in v for v in page.evaluate("window.__csp"))
