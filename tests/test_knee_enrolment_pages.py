"""The second shipped protocol (knee osteoarthritis, three sites, stratified by site and screening
pain) from pre-screening to randomisation through its pages, in both languages, with CSRF enforced
and each step done by the role the protocol gives it: the coordinator pre-screens at a site chosen
on the page, records the consent and enters the knee trial's own screening evidence; the
investigator signs the eligibility decision with their password, enrols and randomises from the
stratified list. A candidate who fails a criterion is told which, in the page's language; a form
sent with several problems names each of them and writes nothing (X-1.3)."""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.utils import timezone, translation
from django.utils.html import escape
from django.utils.translation import gettext

from annulus.participants import states
from annulus.participants.models import Participant
from annulus.trial.selectors import active_protocol

from .conftest import TEST_PASSWORD
from .knee_support import KNEE_EVIDENCE, knee_list
from .knee_support import protocol_version  # noqa: F401

LANGUAGES = ["en", "zh-hans"]


# ---- a person at the pages ------------------------------------------------------------------------

class _Fields(HTMLParser):
    """The controls of the page's forms: name -> {"tag", "type", "value", "options", "selected"}."""

    def __init__(self):
        super().__init__()
        self.fields: dict[str, dict] = {}
        self._select = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name"):
            self.fields[a["name"]] = {"tag": "input", "type": a.get("type", "text"), "value": a.get("value", ""),
                                      "checked": "checked" in a}
        elif tag == "textarea" and a.get("name"):
            self.fields[a["name"]] = {"tag": "textarea", "type": "textarea"}
        elif tag == "select" and a.get("name"):
            self._select = self.fields[a["name"]] = {"tag": "select", "type": "select", "options": [], "selected": []}
        elif tag == "option" and self._select is not None:
            self._select["options"].append(a.get("value", ""))
            if "selected" in a:
                self._select["selected"].append(a.get("value", ""))

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def fields_of(html: str, marker: str) -> dict[str, dict]:
    """The controls of the page's form that holds ``marker`` (not the header's language form)."""
    (form,) = [f for f in re.findall(r"<form\b.*?</form>", html, flags=re.S) if marker in f]
    parser = _Fields()
    parser.feed(form)
    parser.fields.pop("csrfmiddlewaretoken", None)
    return parser.fields


def chosen(select: dict) -> list[str]:
    """The answers a list offers as chosen (its blank entry is no answer)."""
    return [v for v in select["selected"] if v]


def browser(user, language: str) -> Client:
    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(user)
    c.get("/")
    return c


def page(c: Client, url: str, language: str) -> str:
    r = c.get(url)
    assert r.status_code == 200, (url, r.status_code)
    html = r.content.decode()
    assert f'<html lang="{language}"' in html, url
    return html


def send(c: Client, url: str, data: dict):
    """Open the page, then send its form with the token the page set, as a browser does. An
    authorised write is answered with a redirect or the form again, never a refusal."""
    page_ = c.get(url)
    assert page_.status_code == 200, (url, page_.status_code)
    r = c.post(url, {**data, "csrfmiddlewaretoken": c.cookies["csrftoken"].value})
    assert r.status_code in (200, 302), (url, r.status_code, r.content.decode()[-2000:])
    return r


def button(c: Client, url: str, data: dict):
    """A confirmed button of the participant page (enrol, randomise): the token is the page's."""
    r = c.post(url, {**data, "csrfmiddlewaretoken": c.cookies["csrftoken"].value})
    assert r.status_code == 302, (url, r.status_code, r.content.decode()[-2000:])
    return r


def in_language(language: str, text: str, **values) -> str:
    with translation.override(language):
        return gettext(text) % values if values else gettext(text)


def typed(value) -> str:
    """A value as the person picks or types it: yes/no from the list, dates in the ISO picker."""
    return {True: "true", False: "false"}[value] if isinstance(value, bool) else str(value)


def prescreen_and_consent(users, language: str, *, initials: str) -> Participant:
    """The coordinator pre-screens at site 02 (chosen on the page, none pre-selected) and records
    the consent taken by the investigator."""
    coord = browser(users["coordinator"], language)
    html = page(coord, "/participants/new/", language)
    form = fields_of(html, 'name="initials"')
    # three sites: the site is asked for, none chosen in advance
    assert form["site"]["options"] == ["", "01", "02", "03"] and not chosen(form["site"])
    site = active_protocol().site_by_id("02").name.get(language)
    assert site in html
    assert form["prescreened_on"]["type"] == "date"  # the ISO picker, in either language
    assert set(form["recruitment_source"]["options"]) == {"", *active_protocol().recruitment_sources}
    today = timezone.localdate()
    r = send(coord, "/participants/new/", {
        "site": "02", "initials": initials, "sex": "F", "phone": "", "full_name": "",
        "recruitment_source": "outpatient_clinic", "prescreened_on": (today - timedelta(days=3)).isoformat()})
    assert r.status_code == 302, r.content.decode()[-3000:]
    p = Participant.objects.get(initials=initials)
    assert (p.site, p.status, p.recruitment_source) == ("02", states.PRE_SCREENED, "outpatient_clinic")
    assert r["Location"] == f"/participants/{p.pk}/"
    detail = page(coord, f"/participants/{p.pk}/", language)
    assert f"02 · {site}" in detail

    html = page(coord, f"/participants/{p.pk}/consent/", language)
    form = fields_of(html, 'name="consented_at"')
    assert "1.0" in form["consent_version"]["options"] and not chosen(form["consent_version"])
    assert str(users["investigator"].pk) in form["taken_by"]["options"] and not chosen(form["taken_by"])
    assert form["consented_at"]["type"] == "datetime-local"
    signed = today - timedelta(days=2)
    r = send(coord, f"/participants/{p.pk}/consent/", {
        "consent_version": "1.0", "consented_at": f"{signed.isoformat()}T09:15",
        "taken_by": str(users["investigator"].pk)})
    assert r.status_code == 302, r.content.decode()[-3000:]
    p = Participant.objects.get(pk=p.pk)
    assert p.status == states.CONSENTED
    return p


def enter_evidence(users, language: str, p: Participant, **changes):
    """The coordinator fills in every field the screening page shows and goes to the decision."""
    coord = browser(users["coordinator"], language)
    url = f"/participants/{p.pk}/screening/"
    html = page(coord, url, language)
    form = fields_of(html, 'name="collected_on"')
    protocol = active_protocol()
    # the knee protocol's own fields, each labelled in the page's language, none answered in advance
    shown = set(form) - {"collected_on", "reason", "save", "decide"}
    assert shown == {f.id for f in protocol.eligibility.fields} == set(KNEE_EVIDENCE)
    for spec in protocol.eligibility.fields:
        assert spec.label.get(language) in html, spec.id
        control = form[spec.id]
        if control["type"] == "select":
            assert not chosen(control), spec.id
        else:
            assert control.get("value", "") == "", spec.id
    assert form["date_of_birth"]["type"] == "date" and form["collected_on"]["type"] == "date"
    values = {**KNEE_EVIDENCE, **changes}
    data = {name: typed(values[name]) for name in shown}
    data.update({"collected_on": (timezone.localdate() - timedelta(days=1)).isoformat(), "reason": "", "decide": ""})
    r = send(coord, url, data)
    assert r.status_code == 302, r.content.decode()[-3000:]
    assert r["Location"] == f"/participants/{p.pk}/eligibility/"
    # the coordinator prepares; the decision is the investigator's
    prepared = page(coord, r["Location"], language)
    assert 'name="password"' not in prepared
    assert in_language(language, "Prepared. An investigator signs the eligibility decision with their password.") \
        in prepared
    assert Participant.objects.get(pk=p.pk).status == states.SCREENING


# ---- the journey ----------------------------------------------------------------------------------

@pytest.mark.req("X-1.3", "P-2.4", "P-2.3", "X-2.5", "X-7.5", "P-1.1", "P-3.2")
@pytest.mark.parametrize("language, pain, stratum", [("en", 7, "severe"), ("zh-hans", 7, "severe"),
                                                     ("zh-hans", 6, "moderate")])
def test_a_knee_candidate_through_the_pages_from_prescreening_to_randomisation(users, language, pain, stratum):
    from annulus.allocation.models import AllocationList, Envelope

    lst = knee_list(users)
    p = prescreen_and_consent(users, language, initials="KW")
    enter_evidence(users, language, p, nrs_pain_screening=pain)

    inv = browser(users["investigator"], language)
    url = f"/participants/{p.pk}/eligibility/"
    html = page(inv, url, language)
    assert in_language(language, "eligible: every criterion is met") in html and 'name="password"' in html
    r = send(inv, url, {"password": TEST_PASSWORD})
    assert r.status_code == 302 and r["Location"] == f"/participants/{p.pk}/"
    assert in_language(language, "Eligible: every criterion is met.") in page(inv, r["Location"], language)
    assert Participant.objects.get(pk=p.pk).status == states.ELIGIBLE

    detail = page(inv, f"/participants/{p.pk}/", language)
    assert f'action="/participants/{p.pk}/enrol/"' in detail
    button(inv, f"/participants/{p.pk}/enrol/", {"confirm": "yes"})
    p = Participant.objects.get(pk=p.pk)
    assert p.status == states.ENROLLED and p.case_number == "001"  # the first case of the trial
    detail = page(inv, f"/participants/{p.pk}/", language)
    assert in_language(language, "Enrolled as case %(n)s.", n=p.case_number) in detail

    assert f'action="/participants/{p.pk}/randomise/"' in detail
    button(inv, f"/participants/{p.pk}/randomise/", {"confirm": "yes"})
    assert Participant.objects.get(pk=p.pk).status == states.RANDOMISED
    env = Envelope.objects.get(participant=p)
    # the stratum its site and screening pain give: site 02, NRS >= 7 severe, below moderate
    (expected,) = [s for s in AllocationList.objects.get(pk=lst.pk).method_settings["strata"]
                   if s["levels"] == {"site": "02", "pain": stratum}]
    assert env.levels == {"site": "02", "pain": stratum}
    assert env.stratum == str(expected["number"]) and env.random_number.startswith(f"{expected['number']}-")
    detail = page(inv, f"/participants/{p.pk}/", language)
    assert in_language(language, "Randomised: random number %(n)s, drug code %(c)s.",
                       n=env.random_number, c=env.drug_code) in detail
    assert f"<h1>{in_language(language, 'Participant')} {p.case_number} ({p.screening_number})" in detail
    assert f"<td>{env.random_number}</td>" in detail and f"<code>{env.drug_code}</code>" in detail
    # the blinded investigator sees neither the group label nor the arm
    for arm in active_protocol().arms:
        assert arm.name.get(language) not in detail


@pytest.mark.req("X-1.3", "X-2.5", "X-7.5", "P-2.3")
@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("changes, failed", [({"kl_grade": 1}, "I3"), ({"nrs_pain_screening": 3}, "I5")])
def test_a_knee_candidate_who_fails_a_criterion_is_told_which_in_the_pages_language(users, language, changes,
                                                                                      failed):
    p = prescreen_and_consent(users, language, initials="KF")
    enter_evidence(users, language, p, **changes)
    criterion = next(c for c in active_protocol().eligibility.inclusion if c.id == failed)
    other = "en" if language == "zh-hans" else "zh-hans"

    inv = browser(users["investigator"], language)
    url = f"/participants/{p.pk}/eligibility/"
    html = page(inv, url, language)
    assert in_language(language, "screen failure") in html
    assert f"<li><b>{failed}</b> {escape(criterion.text.get(language))}</li>" in html
    assert escape(criterion.text.get(other)) not in html
    assert html.count("<li><b>") == 1  # that criterion alone
    r = send(inv, url, {"password": TEST_PASSWORD})
    assert r.status_code == 302
    after = page(inv, r["Location"], language)
    assert in_language(language, "Screen failure: %(ids)s", ids=failed) in after
    assert Participant.objects.get(pk=p.pk).status == states.SCREEN_FAILED
    # a screen failure is not offered enrolment
    assert f'action="/participants/{p.pk}/enrol/"' not in after


# ---- problems at once, nothing written -------------------------------------------------------------

def _errors(html: str) -> str:
    return " ".join(part.split("</ul>")[0] for part in html.split('class="errorlist"')[1:])


@pytest.mark.req("X-1.3", "P-2.4")
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_prescreening_page_names_every_problem_at_once(users, language):
    coord = browser(users["coordinator"], language)
    r = send(coord, "/participants/new/", {"site": "", "initials": "K9", "sex": "F",
                                           "recruitment_source": "radio", "prescreened_on": "2026-13-01"})
    assert r.status_code == 200
    errors = _errors(r.content.decode())
    with translation.override(language):
        from annulus.participants.forms import PrescreenForm

        labels = PrescreenForm(sources=active_protocol().recruitment_sources, sites=active_protocol().site_list)
        for name in ("site", "initials", "recruitment_source", "prescreened_on"):
            assert f"{labels.fields[name].label}:" in errors, (name, errors)
    assert not Participant.objects.exists()


@pytest.mark.req("X-1.3", "X-2.5")
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_screening_page_names_every_problem_at_once_and_writes_nothing(users, language):
    from annulus.participants.models import Evidence

    p = prescreen_and_consent(users, language, initials="KE")
    coord = browser(users["coordinator"], language)
    url = f"/participants/{p.pk}/screening/"
    data = {name: typed(v) for name, v in KNEE_EVIDENCE.items()}
    # a grade the scale has not, a pain score above 10, a word for the eGFR, and no collection date
    data.update({"kl_grade": "5", "nrs_pain_screening": "11", "egfr": "normal", "collected_on": "", "reason": ""})
    r = send(coord, url, data)
    assert r.status_code == 200
    html = r.content.decode()
    errors = _errors(html)
    protocol = active_protocol()
    for name in ("kl_grade", "nrs_pain_screening", "egfr"):
        assert protocol.eligibility.field(name).label.get(language) in errors, (name, errors)
    with translation.override(language):
        assert f"{gettext('Collected on')}:" in errors, errors
    # each problem said in the page's language, the label not repeated
    if language == "en":
        assert "must be at most 4, got 5" in errors and "must be a number, got &#x27;normal&#x27;" in errors, errors
    else:
        assert "不得大于4，收到5" in errors and ": 必须是数字，收到&#x27;normal&#x27;" in errors, errors
        assert "must be" not in errors, errors
    kl = protocol.eligibility.field("kl_grade").label.get(language)
    assert errors.count(kl) == 1, errors
    assert not Evidence.objects.filter(participant=p).exists()
    assert Participant.objects.get(pk=p.pk).status == states.CONSENTED
    # what was typed is still there to correct
    assert chosen(fields_of(html, 'name="collected_on"')["acr_knee_oa"]) == ["true"] and 'value="normal"' in html


@pytest.mark.req("X-2.5")
def test_the_evidence_problems_marked_for_translation_are_the_cores_word_for_word():
    """The protocol core says an evidence problem in English; the participants app marks the same
    texts for translation: the two lists cannot drift apart, and each has a Chinese translation."""
    from annulus.participants.evidence_words import MESSAGES
    from annulus.protocol.rules import EVIDENCE_RULES

    assert MESSAGES == EVIDENCE_RULES
    with translation.override("zh-hans"):
        untranslated = [text for text in MESSAGES.values() if gettext(text) == text]
    assert not untranslated, untranslated
