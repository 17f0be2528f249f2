"""Every role logs in and opens every page it can reach from the navigation and every page of a
small dataset's participants: no server error, no traceback, and forms name the bad field."""

from __future__ import annotations

import re
from collections import deque
from datetime import timedelta
from html import unescape

import pytest
from django.utils import timezone

from annulus.participants import services as ps
from annulus.participants.models import Participant

from .test_participants_bad_input import counts

ROLES = ["investigator", "coordinator", "pharmacist", "designer", "statistician", "monitor", "data_manager", "auditor", "dsmb",
         "ethics", "admin"]
NASTY = "<script>alert('x')</script>'; DROP TABLE participants_participant;--"


@pytest.fixture
def dataset(make_participant, users):
    stages = ["pre_screened", "consented", "screening", "eligible", "enrolled", "screen_failed"]
    out = [make_participant(s) for s in stages]
    ps.withdraw(actor=users["coordinator"], participant_id=make_participant("enrolled").pk,
                withdrawn_on=timezone.localdate(), category="other", details=NASTY)
    return out


def links(html: str) -> list[str]:
    found = []
    for href in re.findall(r'href="([^"]+)"', html):
        href = unescape(href)
        if href.startswith("?"):
            continue  # sort and page links of the same page; the first page is enough here
        if href.startswith("/") and not href.startswith(("/static/", "/i18n/", "//")):
            found.append(href.split("#")[0])
    return found


def crawl(client, start=("/",), limit=400):
    seen, queue, statuses = set(), deque(start), {}
    while queue and len(seen) < limit:
        url = queue.popleft()
        if url in seen:
            continue
        seen.add(url)
        r = client.get(url)
        statuses[url] = r.status_code
        body = r.content.decode("utf-8", "replace")
        assert r.status_code < 500, (url, r.status_code)
        assert "Traceback" not in body and "Exception Value" not in body, url
        assert "<script>alert(" not in body, url  # user text is escaped
        if r.status_code == 200 and r["Content-Type"].startswith("text/html"):
            queue.extend(links(body))
    return statuses


@pytest.mark.req("P-7.2")
@pytest.mark.parametrize("role", ROLES)
def test_every_reachable_page_renders_for_every_role(role, client_for, dataset):
    c = client_for(role)
    participant_pages = [f"/participants/{p.pk}/{suffix}" for p in Participant.objects.all()
                         for suffix in ("", "consent/", "screening/", "withdraw/", "audit/")]
    statuses = crawl(c, start=["/", *participant_pages])
    assert statuses["/"] == 200
    ok = {u for u, s in statuses.items() if s == 200}
    assert len(ok) >= 5, statuses  # every role reaches at least its dashboard, protocol, tokens...


@pytest.mark.req("X-7.3")
def test_user_text_is_stored_literally_and_shown_escaped(client_for, dataset):
    withdrawn = Participant.objects.get(status="withdrawn")
    html = client_for("investigator").get(f"/participants/{withdrawn.pk}/").content.decode()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&#x27;; DROP TABLE participants_participant;--" in html
    audit = client_for("auditor").get(f"/participants/{withdrawn.pk}/audit/").content.decode()
    assert "&lt;script&gt;" in audit and "<script>alert" not in audit


def _form(client, url, data):
    before = counts()
    r = client.post(url, data)
    assert r.status_code == 200, (url, r.status_code)  # the form again, with the error
    assert counts() == before
    return r.content.decode()


@pytest.mark.req("P-2.1", "X-2.5")
@pytest.mark.parametrize(
    "field, value, message",
    [
        # the page puts the field's label before its message, once
        ("vas_mm", "140", "VAS pain (0-100 mm): must be at most 100 mm, got 140"),
        ("odi_percent", "140", "ODI (%): must be at most 100 %, got 140"),
        ("odi_percent", "abc", "ODI (%): must be a number, got &#x27;abc&#x27;"),
        ("date_of_birth", "2099-01-01", "Date of birth: cannot be in the future (2099-01-01)"),
    ],
)
def test_screening_form_names_the_bad_field(client_for, make_participant, field, value, message):
    p = make_participant("consented")
    html = _form(client_for("coordinator"), f"/participants/{p.pk}/screening/",
                 {"collected_on": timezone.localdate().isoformat(), "lbp_duration_months": "24", field: value})
    assert message in html, html[html.find("errorlist") - 200: html.find("errorlist") + 400]


@pytest.mark.req("P-2.3")
def test_consent_form_refuses_a_future_date(client_for, make_participant, users):
    p = make_participant("pre_screened")
    later = timezone.localtime(timezone.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    html = _form(client_for("coordinator"), f"/participants/{p.pk}/consent/",
                 {"consent_version": "1.0", "consented_at": later, "taken_by": users["investigator"].pk})
    assert "cannot be in the future" in html


@pytest.mark.req("P-2.4")
def test_prescreen_form_records_source_and_refuses_bad_input(client_for):
    c = client_for("coordinator")
    html = _form(c, "/participants/new/", {"initials": "<b>", "sex": "F", "recruitment_source": "inpatient_referral",
                                           "prescreened_on": timezone.localdate().isoformat()})
    assert "letters only" in html
    html = _form(c, "/participants/new/", {"initials": "AB", "sex": "F", "recruitment_source": "tv",
                                           "prescreened_on": timezone.localdate().isoformat()})
    assert "Select a valid choice" in html
    r = c.post("/participants/new/", {"initials": "AB", "sex": "F", "recruitment_source": "flyers_website",
                                      "prescreened_on": timezone.localdate().isoformat()})
    assert r.status_code == 302
    assert Participant.objects.get().recruitment_source == "flyers_website"


@pytest.mark.req("P-2.3")
def test_enrol_button_on_a_screen_failure_shows_why(client_for, make_participant):
    p = make_participant("screen_failed")
    r = client_for("investigator").post(f"/participants/{p.pk}/enrol/", {"confirm": "yes"}, follow=True)
    assert "Not enrolled: a screen failure cannot be enrolled" in r.content.decode()


@pytest.mark.req("P-6.3")
def test_withdraw_form_twice(client_for, make_participant):
    p = make_participant("enrolled")
    c = client_for("investigator")
    data = {"withdrawn_on": timezone.localdate().isoformat(), "category": "other", "details": "moved"}
    assert c.post(f"/participants/{p.pk}/withdraw/", data).status_code == 302
    html = _form(c, f"/participants/{p.pk}/withdraw/", data)
    assert "already withdrawn" in html


def test_participant_list_search_sort_and_bad_parameters(client_for, dataset):
    c = client_for("monitor")
    for query in ("?q=S0001", "?sort=-case", "?status=enrolled", "?page=999", "?page=abc", "?sort=nonsense",
                  "?status=<script>", "?q=%27%3B--"):
        r = c.get("/participants/" + query)
        assert r.status_code == 200, query
    assert "S0001" in c.get("/participants/?q=S0001").content.decode()
    assert "S0002" not in c.get("/participants/?q=S0001").content.decode()
    r = c.get("/participants/?q=S000", HTTP_HX_REQUEST="true")
    assert "<html" not in r.content.decode() and "S0003" in r.content.decode()  # htmx gets the table only


def test_unknown_participant_is_a_404_page(client_for, dataset):
    r = client_for("investigator").get("/participants/999999/")
    assert r.status_code == 404 and "Page not found" in r.content.decode()


@pytest.mark.req("X-2.5")
def test_save_and_go_to_the_decision_with_missing_evidence(client_for, make_participant):
    p = make_participant("consented")
    r = client_for("coordinator").post(f"/participants/{p.pk}/screening/",
                                       {"collected_on": timezone.localdate().isoformat(), "vas_mm": "55", "decide": "1"},
                                       follow=True)
    html = r.content.decode()
    assert r.redirect_chain[-1][0] == f"/participants/{p.pk}/eligibility/"
    assert "evidence is missing" in html and "<b>I1</b>" in html and "<b>I2</b>" in html
    assert 'name="password"' not in html  # nothing to sign yet
    assert Participant.objects.get(pk=p.pk).status == "screening"


@pytest.mark.req("X-2.5", "X-7.5")
def test_coordinator_prepares_and_the_investigator_signs(client_for, make_participant):
    from .conftest import ELIGIBLE_EVIDENCE, TEST_PASSWORD

    p = make_participant("consented")
    data = {k: {True: "true", False: "false"}.get(v, v) if isinstance(v, bool) else v for k, v in ELIGIBLE_EVIDENCE.items()}
    r = client_for("coordinator").post(f"/participants/{p.pk}/screening/",
                                       {**data, "collected_on": timezone.localdate().isoformat(), "decide": "1"}, follow=True)
    assert "An investigator signs the eligibility decision" in r.content.decode()
    assert Participant.objects.get(pk=p.pk).status == "screening"
    r = client_for("investigator").post(f"/participants/{p.pk}/eligibility/", {"password": TEST_PASSWORD}, follow=True)
    assert "Eligible: every criterion is met." in r.content.decode()
    assert Participant.objects.get(pk=p.pk).status == "eligible"
