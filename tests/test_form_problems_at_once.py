"""Every form shows all of its problems at once, each on its own field; the API answers every
problem in ``detail``. Each test sends several wrong fields together and expects each of them."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annulus.errors import RuleViolations

from .test_visits_support import transplant_dates, trial_participant  # noqa: F401


def _browser(user, language: str = "en") -> Client:
    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(user)
    c.get("/")
    return c


def _post(c: Client, url: str, data: dict):
    page = c.get(url)
    assert page.status_code == 200, url
    return c.post(url, {**data, "csrfmiddlewaretoken": c.cookies["csrftoken"].value})


def _api(c: Client, method: str, url: str, data: dict):
    return getattr(c, method)(url, data, content_type="application/json", HTTP_X_CSRFTOKEN=c.cookies["csrftoken"].value)


def _field_errors(html: str) -> dict[str, str]:
    """input name -> the error text shown in its field block (the page's `.field` wrapper)."""
    out = {}
    for block in re.findall(r'<div class="field[^"]*">.*?(?=<div class="field|</form>)', html, flags=re.S):
        name = re.search(r'name="([^"]+)"', block)
        errors = re.findall(r'class="errorlist[^"]*"[^>]*>(.*?)</(?:ul|div)>', block, flags=re.S)
        if name and errors:
            out[name.group(1)] = " ".join(errors)
    return out


def _fields(exc) -> set[str]:
    return {v.field for v in getattr(exc, "violations", [exc])}


# ---- screening evidence --------------------------------------------------------------------------

@pytest.mark.req("X-2.5")
def test_screening_evidence_refuses_every_wrong_value_at_once(make_participant, users):
    from annulus.participants import services as ps

    p = make_participant("consented")
    with pytest.raises(RuleViolations) as info:
        ps.enter_evidence(actor=users["coordinator"], participant_id=p.pk,
                          values={"vas_mm": 140, "odi_percent": "abc", "slip_mm": -3},
                          collected_on=timezone.localdate() + timedelta(days=3))
    assert _fields(info.value) == {"vas_mm", "odi_percent", "slip_mm", "collected_on"}


@pytest.mark.req("X-2.5")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_screening_page_shows_each_problem_on_its_field(make_participant, users, language):
    p = make_participant("consented")
    r = _post(_browser(users["coordinator"], language), f"/participants/{p.pk}/screening/",
              {"collected_on": timezone.localdate().isoformat(), "vas_mm": "140", "odi_percent": "250"})
    assert r.status_code == 200
    errors = _field_errors(r.content.decode())
    assert {"vas_mm", "odi_percent"} <= set(errors), errors


@pytest.mark.req("X-2.5")
def test_screening_api_answers_every_problem(make_participant, users):
    p = make_participant("consented")
    c = _browser(users["coordinator"])
    r = _api(c, "post", f"/api/v1/participants/{p.pk}/evidence",
             {"values": {"vas_mm": 140, "odi_percent": "abc"}, "collected_on": timezone.localdate().isoformat()})
    assert r.status_code == 400
    assert {d["field"] for d in r.json()["detail"]} == {"vas_mm", "odi_percent"}


# ---- pre-screening and consent ------------------------------------------------------------------

@pytest.mark.req("P-2.4")
def test_prescreening_refuses_every_wrong_field_at_once(users):
    from annulus.participants import services as ps

    with pytest.raises(RuleViolations) as info:
        ps.prescreen(actor=users["coordinator"], initials="A1", sex="X", recruitment_source="radio",
                     prescreened_on=timezone.localdate() + timedelta(days=1), phone="call me")
    assert _fields(info.value) == {"initials", "sex", "recruitment_source", "prescreened_on", "phone"}


@pytest.mark.req("P-2.4")
def test_prescreening_page_shows_each_problem_on_its_field(users):
    r = _post(_browser(users["coordinator"]), "/participants/new/", {
        "initials": "A1", "sex": "F", "recruitment_source": "inpatient_referral", "phone": "call me",
        "prescreened_on": timezone.localdate().isoformat()})
    assert r.status_code == 200
    assert {"initials", "phone"} <= set(_field_errors(r.content.decode()))


@pytest.mark.req("P-2.3")
def test_consent_refuses_every_wrong_field_at_once(make_participant, users):
    from annulus.participants import services as ps

    p = make_participant("pre_screened")
    with pytest.raises(RuleViolations) as info:
        ps.record_consent(actor=users["coordinator"], participant_id=p.pk, consent_version="9.9",
                          consented_at=timezone.now() + timedelta(days=2), taken_by=None)
    assert _fields(info.value) == {"consent_version", "consented_at", "taken_by"}


# ---- vital signs and other eCRF forms -----------------------------------------------------------

@pytest.mark.req("P-5.6", "X-5.7")
def test_vital_signs_refuse_every_implausible_value_at_once(trial_participant, transplant_dates, users):
    from annulus.visits import services as vs

    p = trial_participant(lipo_days_ago=35, transplant_days_ago=8)
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w1", visit_date=timezone.localdate())
    with pytest.raises(RuleViolations) as info:
        vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="vitals",
                     items={"temperature": 50, "pulse": 300, "respiration": 16, "systolic_bp": 124}, complete=True)
    # two implausible values and the item still missing for completion
    assert _fields(info.value) == {"temperature", "pulse", "diastolic_bp"}


@pytest.mark.req("P-5.6", "X-5.7")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_vital_signs_page_shows_each_problem_on_its_field(trial_participant, transplant_dates, users, language):
    from annulus.visits import services as vs

    p = trial_participant(lipo_days_ago=35, transplant_days_ago=8)
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w1", visit_date=timezone.localdate())
    r = _post(_browser(users["coordinator"], language), f"/participants/{p.pk}/visits/w1/vitals/", {
        "temperature": "50", "pulse": "300", "respiration": "abc", "systolic_bp": "124", "diastolic_bp": "78",
        "complete": "1"})
    assert r.status_code == 200
    errors = _field_errors(r.content.decode())
    assert {"temperature", "pulse", "respiration"} <= set(errors), errors


@pytest.mark.req("P-5.6", "X-5.7")
def test_a_crf_api_save_answers_every_problem(trial_participant, transplant_dates, users):
    from annulus.visits import services as vs

    p = trial_participant(lipo_days_ago=35, transplant_days_ago=8)
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w1", visit_date=timezone.localdate())
    c = _browser(users["coordinator"])
    r = _api(c, "put", f"/api/v1/visits/participants/{p.pk}/visits/w1/forms/vitals",
             {"items": {"temperature": 50, "pulse": 300, "bogus": 1}})
    assert r.status_code == 400
    assert {d["field"] for d in r.json()["detail"]} == {"temperature", "pulse", "bogus"}


# ---- adverse events -------------------------------------------------------------------------------

def _ae(**overrides) -> dict:
    onset = timezone.localtime() - timedelta(days=2)
    return {"term": "Back pain", "onset_at": onset, "serious": False, "serious_criteria": [], "grade": 2,
            "causality_liposuction": "unlikely", "causality_injection": "unlikely", "causality_product": "unlikely",
            "expectedness": "expected", "action_taken": "none", "outcome": "recovering", **overrides}


@pytest.mark.req("P-6.1", "X-6.5")
def test_an_adverse_event_refuses_every_broken_rule_at_once(make_participant, users):
    from annulus.safety import services as ss
    from annulus.safety.models import AdverseEvent

    p = make_participant("enrolled")
    onset = timezone.now() - timedelta(days=2)
    with pytest.raises(RuleViolations) as info:
        ss.record_adverse_event(actor=users["coordinator"], participant_id=p.pk, **_ae(
            term="", meddra_pt_code="123", end_at=onset - timedelta(hours=1), onset_at=onset, grade=7,
            expectedness="maybe", serious=True))
    assert _fields(info.value) >= {"term", "meddra_pt_code", "end_at", "grade", "expectedness", "serious_criteria",
                                   "first_knowledge_at"}
    assert not AdverseEvent.objects.exists()


@pytest.mark.req("P-6.1", "X-6.5")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_adverse_event_page_shows_each_problem_on_its_field(make_participant, users, language):
    p = make_participant("enrolled")
    onset = timezone.localtime() - timedelta(days=2)
    r = _post(_browser(users["coordinator"], language), f"/participants/{p.pk}/adverse-events/new/", {
        "term": "Back pain", "meddra_pt_code": "123", "onset_at": onset.strftime("%Y-%m-%dT%H:%M"),
        "end_at": (onset - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"), "serious": "yes", "grade": "2",
        "causality_liposuction": "unlikely", "causality_injection": "unlikely", "causality_product": "unlikely",
        "expectedness": "expected", "action_taken": "none", "outcome": "recovered"})
    assert r.status_code == 200
    errors = _field_errors(r.content.decode())
    assert {"meddra_pt_code", "end_at", "serious_criteria", "first_knowledge_at"} <= set(errors), errors


@pytest.mark.req("P-6.1", "X-6.5")
def test_the_adverse_event_api_answers_every_problem(make_participant, users):
    p = make_participant("enrolled")
    onset = timezone.now() - timedelta(days=2)
    c = _browser(users["coordinator"])
    body = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in _ae(
        participant_id=p.pk, meddra_pt_code="123", onset_at=onset, end_at=onset - timedelta(hours=1),
        outcome="fatal").items()}
    r = _api(c, "post", "/api/v1/safety/adverse-events", body)
    assert r.status_code == 400, r.content
    fields = {d["field"] for d in r.json()["detail"]}
    assert {"meddra_pt_code", "end_at", "grade", "serious_criteria"} <= fields, r.json()


@pytest.mark.req("P-6.1", "X-6.5")
def test_every_causality_judged_not_yet_done_after_its_procedure_is_named(trial_participant, transplant_dates, users):
    from annulus.safety import services as ss

    p = trial_participant(lipo_days_ago=35, transplant_days_ago=8)
    with pytest.raises(RuleViolations) as info:
        ss.record_adverse_event(actor=users["coordinator"], participant_id=p.pk, **_ae(
            causality_liposuction="not_applicable", causality_injection="not_applicable",
            causality_product="not_applicable"))
    assert _fields(info.value) == {"causality_liposuction", "causality_injection", "causality_product"}


@pytest.mark.req("P-4.1")
def test_liposuction_refuses_every_wrong_field_at_once(make_participant, users):
    from annulus.participants import services as ps
    from annulus.visits import services as vs

    p = make_participant("enrolled")
    ps.advance(actor=users["investigator"], participant_id=p.pk, target="randomised", reason="test")
    with pytest.raises(RuleViolations) as info:
        vs.record_liposuction(actor=users["investigator"], participant_id=p.pk,
                              performed_on=timezone.localdate() + timedelta(days=2), fat_volume_ml="lots",
                              observation_hours=-1, anaesthesia="")
    assert _fields(info.value) == {"performed_on", "fat_volume_ml", "observation_hours", "anaesthesia"}


@pytest.mark.req("P-6.4")
def test_a_dsmb_recommendation_refuses_every_wrong_field_at_once(users):
    from annulus.safety import services as ss

    with pytest.raises(RuleViolations) as info:
        ss.record_recommendation(actor=users["dsmb"], meeting_on=timezone.localdate() + timedelta(days=1),
                                 decision="maybe", summary="")
    assert _fields(info.value) == {"meeting_on", "decision", "summary"}


@pytest.mark.req("P-6.1", "X-6.5")
def test_field_problems_and_participant_checks_of_an_event_come_together(trial_participant, transplant_dates, users):
    from annulus.safety import services as ss

    p = trial_participant(lipo_days_ago=35, transplant_days_ago=8)
    with pytest.raises(RuleViolations) as info:
        ss.record_adverse_event(actor=users["coordinator"], participant_id=p.pk, **_ae(
            meddra_pt_code="123", grade=9, causality_liposuction="not_applicable"))
    assert _fields(info.value) == {"meddra_pt_code", "meddra_version", "grade", "causality_liposuction"}


@pytest.mark.req("X-2.5")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_missing_date_does_not_hide_the_wrong_values_on_the_screening_page(make_participant, users, language):
    from annulus.participants.models import Evidence

    p = make_participant("consented")
    r = _post(_browser(users["coordinator"], language), f"/participants/{p.pk}/screening/",
              {"collected_on": "", "vas_mm": "140", "odi_percent": "abc", "lbp_duration_months": "24"})
    assert r.status_code == 200
    errors = _field_errors(r.content.decode())
    assert {"collected_on", "vas_mm", "odi_percent"} <= set(errors), errors
    assert "lbp_duration_months" not in errors
    assert not Evidence.objects.filter(participant=p).exists()


@pytest.mark.req("P-2.4")
def test_a_refused_choice_does_not_hide_the_services_rules_on_the_prescreening_page(users):
    from annulus.participants.models import Participant

    later = (timezone.localdate() + timedelta(days=2)).isoformat()
    r = _post(_browser(users["coordinator"]), "/participants/new/", {
        "initials": "A1", "sex": "", "recruitment_source": "radio", "phone": "call me", "prescreened_on": later})
    assert r.status_code == 200
    errors = _field_errors(r.content.decode())
    assert {"initials", "sex", "recruitment_source", "phone", "prescreened_on"} <= set(errors), errors
    assert "cannot be in the future" in errors["prescreened_on"] and "letters only" in errors["initials"]
    assert not Participant.objects.exists()
