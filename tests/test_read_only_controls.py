"""Roles that may not change trial data see no control that would: every page (each route of the
site, filled with the ids of a demo-like trial) is opened as each such role, and every form on it
that posts somewhere must post to a route the role may use (a POST there is not refused with
403). The ethics reviewer may change nothing of the trial, so its pages carry no such form at all,
only its own account's (log out, language, notifications, password, API tokens); the monitor
(source-data verification) and the auditor (review findings) see only forms they may use."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urljoin, urlsplit

import pytest
from django.db import transaction
from django.test import Client

from .routes import url_routes
# the crawl's trial, built once for this module too (with its users)
from .test_blind_crawl import MISSING, SKIP, STRINGS, _fill, crawl_trial, trial, users  # noqa: F401

# the user's own session and account: allowed on every page
OWN = ("/accounts/logout/", "/i18n/setlang/", "/notifications/", "/accounts/password/", "/accounts/tokens/")
# The ethics reviewer changes nothing at all: no form but its own account's, and none of the
# monitor's SDV controls or the auditor's finding forms on the monitoring pages it may read.
READ_ONLY = ["ethics"]
# roles with a few writes of their own: each form they see must be one they may use. The monitor
# changes no trial data but marks data verified against source (P-7.1: the SDV page's "Verified"
# forms), and the auditor changes no trial data but records and resolves review findings; both
# moved here from READ_ONLY when those records came: every form they are shown must be one they
# may use (a POST there is not refused with 403), so a data-entry form would still be caught.
PARTLY = ["monitor", "auditor", "statistician", "dsmb", "designer", "pharmacist", "admin"]


def _post_forms(html: str, page: str) -> set[tuple[str, tuple]]:
    """The POST forms of a page: (path they send to, their hidden and submit-button fields)."""
    out = set()
    for tag, body in re.findall(r"(<form\b[^>]*>)(.*?)</form>", html, flags=re.I | re.S):
        if not re.search(r'method="?post', tag, flags=re.I):
            continue
        action = re.search(r'action="([^"]*)"', tag)
        target = urljoin(page, unescape(action.group(1)) if action and action.group(1) else page)
        fixed = []
        for field in re.findall(r"<(?:input|button)\b[^>]*>", body, flags=re.I):
            name, value = re.search(r'name="([^"]*)"', field), re.search(r'value="([^"]*)"', field)
            hidden = 'type="hidden"' in field or field.lower().startswith("<button")
            if name and value and hidden and name.group(1) != "csrfmiddlewaretoken":
                fixed.append((name.group(1), unescape(value.group(1))))
        out.add((urlsplit(target).path, tuple(sorted(fixed))))
    return out


def _button_links(html: str, page: str) -> set[str]:
    """The paths of links drawn as buttons (an action offered)."""
    out = set()
    for tag in re.findall(r"<a\b[^>]*>", html, flags=re.I):
        cls = re.search(r'class="([^"]*)"', tag)
        href = re.search(r'href="([^"]*)"', tag)
        if cls and href and "button" in cls.group(1).split() and not href.group(1).startswith(("#", "http")):
            out.add(urlsplit(urljoin(page, unescape(href.group(1)))).path)
    return out


@pytest.fixture
def recorded(trial, users):  # noqa: F811
    """The demo-like trial with a baseline visit on record and its VAS form saved, so that visit
    and eCRF pages are among those opened."""
    from datetime import timedelta

    from django.utils import timezone

    from annulus.visits import services as vs

    p, _env = trial["reps"]["high"]
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="baseline",
                  visit_date=timezone.localdate() - timedelta(days=1))
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="baseline", form_id="vas",
                 items={"vas_mm": 60}, complete=True)
    return trial


def _pages(role, users, trial):  # noqa: F811
    """Every page route filled with the trial's ids: (path, html) of those the role may open."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(users[role])
    reps = trial["reps"]
    ints = sorted({p.pk for p, _ in reps.values()} | {e.pk for _, e in reps.values()}
                  | {trial["sealed"].pk, trial["record"].pk, MISSING})
    routes = [r for r in url_routes() if r not in SKIP and not r.startswith("api/")]
    for route in routes:
        if "(?P<" in route or "^" in route or route.endswith(("pdf/", ".pdf", "csv", "sha256")):
            continue
        for path, _value, _shape in _fill(route, ints):
            r = client.get("/" + path)
            if r.status_code == 200 and r.get("Content-Type", "").startswith("text/html") and not r.streaming:
                yield client, "/" + path, r.content.decode("utf-8", "replace")


def _refused(client: Client, target: tuple) -> bool:
    """Whether the role's POST of a form (path, fixed fields) is refused for its role (nothing is kept)."""
    path, fixed = target
    with transaction.atomic():
        r = client.post(path, {**dict(fixed), "csrfmiddlewaretoken": client.cookies["csrftoken"].value})
        transaction.set_rollback(True)
    return r.status_code == 403


@pytest.mark.req("P-7.2")
@pytest.mark.parametrize("role", READ_ONLY + PARTLY)
def test_no_page_offers_a_form_the_role_may_not_use(role, users, recorded, monkeypatch):
    trial = recorded
    monkeypatch.setitem(STRINGS, "form_id", ["vas"])
    seen: dict[str, set[str]] = {}
    buttons: dict[str, set[str]] = {}
    pages = 0
    client = None
    for client, page, html in _pages(role, users, trial):
        pages += 1
        for target in _post_forms(html, page):
            if not target[0].startswith(OWN):
                seen.setdefault(target, set()).add(page)
        for target in _button_links(html, page):
            buttons.setdefault(target, set()).add(page)
    assert pages >= 3, pages  # the role opened its pages
    if role in READ_ONLY:
        assert not seen, f"{role} sees forms that change trial data: {seen}"
    problems = {t: sorted(p)[:3] for t, p in seen.items() if _refused(client, t)}
    assert not problems, f"{role} sees forms it may not use (target: pages): {problems}"
    # a link drawn as a button offers an action: it must open for this role
    dead = {t: sorted(p)[:3] for t, p in buttons.items() if client.get(t).status_code == 403}
    assert not dead, f"{role} sees buttons to pages it may not open (target: pages): {dead}"


def test_the_check_catches_a_form_for_a_forbidden_action(users, trial, settings, tmp_path):  # noqa: F811
    """A page that showed a write form to a read-only role would be caught."""
    html = '<form method="post" action="/participants/1/withdraw/"><button>x</button></form>' \
           '<form method="post" action="/accounts/logout/"></form><form method="get" action="/participants/"></form>'
    assert _post_forms(html, "/participants/1/") == {("/participants/1/withdraw/", ()), ("/accounts/logout/", ())}
    c = Client(enforce_csrf_checks=True)
    c.force_login(users["monitor"])
    c.get("/")
    assert _refused(c, ("/participants/1/withdraw/", ()))


@pytest.mark.req("P-7.2")
def test_disabled_buttons_look_disabled():
    """The style sheet gives disabled buttons and inputs their own look (not the enabled one)."""
    from pathlib import Path

    css = (Path(__file__).resolve().parents[1] / "src/annulus/static/annulus/annulus.css").read_text()
    rule = re.search(r"button:disabled[^{]*\{([^}]*)\}", css)
    assert rule and "cursor: not-allowed" in rule.group(1) and "opacity" in rule.group(1), rule
