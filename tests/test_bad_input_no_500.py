"""Input that used to give HTTP 500 gets a clear 4xx naming the field (or a form error), and
nothing is written: NUL characters anywhere in a request, date-times that do not convert to UTC,
dates far in the past or future, a call list for 9999-12-31, pre-screening before the trial."""

from __future__ import annotations

import importlib
import json
from datetime import timedelta

import pytest
from django import forms as django_forms
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from annulus import formdates
from tests.conftest import ELIGIBLE_EVIDENCE, TEST_PASSWORD

pytestmark = pytest.mark.req("X-7.1")

BAD_DATETIMES = ["0001-01-01T00:00+14:00", "9999-12-31T23:59-14:00", "1899-12-31T23:00+00:00", "2101-01-01T00:00Z"]
BAD_DATES = ["0001-01-01", "9999-12-31", "1899-12-31"]
RANGE = "must be between 1900-01-01 and 2100-12-31"


def counts():
    from annulus.audit.models import AuditEvent
    from annulus.participants.models import Consent, Evidence, Participant

    return (AuditEvent.objects.count(), Participant.objects.count(), Consent.objects.count(), Evidence.objects.count())


def api_client(users, role="investigator"):
    from annulus.accounts.services import issue_token

    return Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {issue_token(user=users[role], name='t')}")


def page_client(users, role="coordinator"):
    c = Client(enforce_csrf_checks=True)
    c.get("/accounts/login/")
    c.post("/accounts/login/", {"username": users[role].username, "password": TEST_PASSWORD,
                                "csrfmiddlewaretoken": c.cookies["csrftoken"].value})
    assert "_auth_user_id" in c.session
    return c


def post_form(c, url, data):
    c.get(url)
    return c.post(url, {**data, "csrfmiddlewaretoken": c.cookies["csrftoken"].value})


def send(c, method, url, body):
    return getattr(c, method)(url, json.dumps(body), content_type="application/json")


def fields_of(r):
    return {d["field"]: d["message"] for d in r.json()["detail"]}


# ---- NUL characters -------------------------------------------------------------------------

@pytest.mark.parametrize("url, field", [
    ("/participants/?q=a%00b", "q"),
    ("/participants/?status=%00", "status"),
    ("/participants/{pk}/audit/?actor=x%00", "actor"),
    ("/participants/{pk}/audit/?action=%00&type=visit", "action"),
    ("/safety/?q=%00", "q"),
    ("/participants/{pk}/visits/w1%00/", "key"),
    ("/participants/{pk}/visits/w1%00/vas/", "key"),
    ("/visits/calls/?date=2026-01-01%00", "date"),
])
def test_nul_in_a_page_request_is_a_400_naming_the_parameter(users, make_participant, url, field):
    p = make_participant("enrolled")
    r = page_client(users, "monitor").get(url.format(pk=p.pk))
    assert r.status_code == 400
    assert f"{field}: must not contain a NUL character" in r.content.decode()


@pytest.mark.parametrize("url, field", [
    ("/api/v1/participants?q=%00", "q"),
    ("/api/v1/participants/{pk}/audit?action=%00", "action"),
    ("/api/v1/participants/{pk}/audit?object_type=a%00", "object_type"),
    ("/api/v1/safety/adverse-events?q=%00", "q"),
    ("/api/v1/visits/participants/{pk}/visits/w1%00/forms/vas", "key"),
])
def test_nul_in_an_api_query_or_path_is_a_400_naming_it(users, make_participant, url, field):
    p = make_participant("enrolled")
    r = api_client(users, "monitor").get(url.format(pk=p.pk))
    assert r.status_code == 400 and fields_of(r) == {field: "must not contain a NUL character (\\0)"}


def test_nul_in_a_json_value_or_a_visit_key_writes_nothing(users, make_participant):
    p = make_participant("pre_screened")
    c = api_client(users)
    before = counts()
    r = send(c, "post", f"/api/v1/participants/{p.pk}/consent",
             {"consent_version": "1.0", "consented_at": timezone.now().isoformat(), "taken_by": "t_coordinator\x00"})
    assert r.status_code == 400 and list(fields_of(r)) == ["taken_by"]
    r = send(c, "post", f"/api/v1/participants/{p.pk}/evidence",
             {"values": {"date_of_birth": "1980\x00"}, "collected_on": timezone.localdate().isoformat()})
    assert r.status_code == 400 and list(fields_of(r)) == ["values.date_of_birth"]
    r = send(c, "put", f"/api/v1/visits/participants/{p.pk}/visits/w1%00/forms/vas", {"items": {"vas_mm": 40}})
    assert r.status_code == 400 and list(fields_of(r)) == ["key"]
    # an escaped backslash before "u0000" is text, not NUL: it reaches the service (a 4xx of its own)
    r = send(c, "post", f"/api/v1/participants/{p.pk}/consent",
             {"consent_version": "1.0", "consented_at": timezone.now().isoformat(), "taken_by": "\\u0000"})
    assert r.status_code == 400 and list(fields_of(r)) == ["taken_by"] and "NUL" not in r.content.decode()
    assert counts() == before


def test_nul_in_a_page_form_writes_nothing(users, make_participant):
    p = make_participant("pre_screened")
    c = page_client(users)
    before = counts()
    r = post_form(c, f"/participants/{p.pk}/consent/", {
        "consent_version": "1.0", "consented_at": (timezone.localtime() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "taken_by": f"{users['coordinator'].pk}\x00"})
    assert r.status_code == 400 and "taken_by: must not contain a NUL character" in r.content.decode()
    assert counts() == before


# ---- dates and date-times in the API ----------------------------------------------------------

def _api_date_fields():
    """(method, path, field, format) for every date and date-time an API write takes in its body,
    and every date query parameter."""
    from annulus.site.api import api

    schema = api.get_openapi_schema(path_params={})
    components = schema["components"]["schemas"]

    def formats(prop):
        options = prop.get("anyOf", [prop])
        return {o.get("format") for o in options} & {"date", "date-time"}

    out = []
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            for param in op.get("parameters", []):
                for fmt in formats(param.get("schema", {})):
                    out.append((method, path, param["name"], fmt, "query"))
            ref = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
            if ref:
                for name, prop in components[ref.split("/")[-1]].get("properties", {}).items():
                    for fmt in formats(prop):
                        out.append((method, path, name, fmt, "body"))
    return out


API_DATE_FIELDS = _api_date_fields()


def test_the_api_takes_dates_on_many_routes():
    assert len(API_DATE_FIELDS) >= 20
    assert ("post", "/api/v1/participants/{pk}/consent", "consented_at", "date-time", "body") in API_DATE_FIELDS
    assert ("get", "/api/v1/visits/calls", "day", "date", "query") in API_DATE_FIELDS


@pytest.mark.parametrize("method, path, field, fmt, where", API_DATE_FIELDS)
def test_every_api_date_refuses_implausible_values_naming_the_field(users, method, path, field, fmt, where):
    c = api_client(users)
    url = path.replace("{pk}", "999999").replace("{key}", "w1").replace("{form_id}", "vas").replace(
        "{envelope_id}", "999999")
    for bad in (BAD_DATETIMES if fmt == "date-time" else BAD_DATES):
        if where == "query":
            r = getattr(c, method)(url, {field: bad})
        else:
            r = send(c, method, url, {field: bad})
        assert r.status_code == 422, (method, url, field, bad, r.content)
        assert fields_of(r).get(field) == RANGE, (field, bad, r.json())


def test_the_call_list_for_the_last_plausible_day_works(users):
    r = api_client(users, "coordinator").get("/api/v1/visits/calls", {"day": "2100-12-31"})
    assert r.status_code == 200 and r.json() == []
    r = page_client(users).get("/visits/calls/?date=2100-12-31")
    assert r.status_code == 200


def test_the_call_list_page_refuses_9999_naming_the_date(users):
    r = page_client(users).get("/visits/calls/?date=9999-12-31")
    assert r.status_code == 400 and f"date: {RANGE}" in r.content.decode()


def test_api_prescreening_before_the_trial_and_a_birth_in_year_1_are_refused(users, make_participant):
    c = api_client(users)
    before = counts()
    r = send(c, "post", "/api/v1/participants", {"initials": "AB", "sex": "F", "recruitment_source": "flyers_website",
                                                 "prescreened_on": "1900-01-01"})
    assert r.status_code == 400 and "before the trial's protocol took effect (2022-04-04)" in fields_of(r)["prescreened_on"]
    assert counts() == before
    p = make_participant("consented")
    before = counts()
    r = send(c, "post", f"/api/v1/participants/{p.pk}/evidence",
             {"values": {**ELIGIBLE_EVIDENCE, "date_of_birth": "0001-01-01"},
              "collected_on": timezone.localdate().isoformat()})
    assert r.status_code == 400 and RANGE in fields_of(r)["date_of_birth"]
    assert counts() == before


# ---- dates and date-times in forms --------------------------------------------------------------

def _form_classes():
    out = []
    for app in ("accounts", "participants", "allocation", "visits", "safety", "trial"):
        try:
            module = importlib.import_module(f"annulus.{app}.forms")
        except ModuleNotFoundError:
            continue
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, django_forms.BaseForm) and obj.__module__ == module.__name__:
                out.append(obj)
    return out


def _date_fields(form_class):
    return {name: f for name, f in form_class.base_fields.items()
            if isinstance(f, (django_forms.DateField, django_forms.DateTimeField))}


def test_every_date_field_of_every_form_has_the_plausibility_rule(protocol_version):
    from annulus.participants.forms import EvidenceForm
    from annulus.trial.selectors import active_protocol

    seen = 0
    for form_class in _form_classes():
        for name, f in _date_fields(form_class).items():
            seen += 1
            kind = formdates.DateTimeField if isinstance(f, django_forms.DateTimeField) else formdates.DateField
            assert isinstance(f, kind), f"{form_class.__name__}.{name} is a plain {type(f).__name__}"
            for bad in (BAD_DATETIMES if kind is formdates.DateTimeField else BAD_DATES) + ["0001-01-01T00:00"]:
                if kind is formdates.DateField and "T" in bad:
                    continue
                with pytest.raises(ValidationError):
                    f.clean(bad)
    assert seen >= 20
    dob = EvidenceForm(protocol=active_protocol()).fields["date_of_birth"]  # built from the protocol
    assert isinstance(dob, formdates.DateField)


def test_prescreening_page_refuses_1900_and_year_1(users):
    c = page_client(users)
    before = counts()
    for day, words in (("1900-01-01", "before the trial"), ("0001-01-01", "Enter a date between 1900-01-01")):
        r = post_form(c, "/participants/new/", {"initials": "AB", "sex": "F", "recruitment_source": "flyers_website",
                                                "prescreened_on": day})
        errors = r.context["form"].errors
        assert words in " ".join(errors.get("prescreened_on", []) + errors.get("__all__", [])), errors
    assert counts() == before


def test_consent_page_refuses_a_time_in_year_1(users, make_participant):
    p = make_participant("pre_screened")
    c = page_client(users)
    before = counts()
    for bad in ("0001-01-01T00:00", "9999-12-31T23:59"):
        r = post_form(c, f"/participants/{p.pk}/consent/", {"consent_version": "1.0", "consented_at": bad,
                                                           "taken_by": users["coordinator"].pk})
        assert r.status_code in (200, 400)
        assert "Enter a date between 1900-01-01 and 2100-12-31." in r.context["form"].errors["consented_at"]
    assert counts() == before


def test_screening_page_refuses_a_birth_in_year_1(users, make_participant):
    p = make_participant("consented")
    c = page_client(users)
    before = counts()
    r = post_form(c, f"/participants/{p.pk}/screening/", {"collected_on": timezone.localdate().isoformat(),
                                                           "date_of_birth": "0001-01-01", "vas_mm": "60"})
    assert "Enter a date between 1900-01-01 and 2100-12-31." in r.context["form"].errors["date_of_birth"]
    assert counts() == before


def test_adverse_event_page_refuses_an_onset_that_has_no_utc_time(users, make_participant):
    from annulus.safety.models import AdverseEvent

    p = make_participant("consented")
    c = page_client(users, "investigator")
    r = post_form(c, f"/participants/{p.pk}/adverse-events/new/", {
        "term": "Headache", "onset_at": "0001-01-01T00:00", "grade": "1", "causality_liposuction": "not_related",
        "causality_injection": "not_related", "causality_product": "not_related", "expectedness": "expected",
        "action_taken": "none", "outcome": "recovering"})
    assert r.status_code in (200, 400)
    assert "Enter a date between 1900-01-01 and 2100-12-31." in r.context["form"].errors["onset_at"]
    assert not AdverseEvent.objects.exists()


def test_the_messages_are_chinese_on_chinese_pages(users, make_participant):
    from django.conf import settings

    c = page_client(users)
    c.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    r = c.get("/participants/?q=%00")
    assert r.status_code == 400 and "q: 不得包含空字符（\\0）" in r.content.decode()
    p = make_participant("pre_screened")
    r = post_form(c, f"/participants/{p.pk}/consent/", {"consent_version": "1.0", "consented_at": "0001-01-01T00:00",
                                                       "taken_by": users["coordinator"].pk})
    assert "请输入 1900-01-01 至 2100-12-31 之间的日期。" in r.context["form"].errors["consented_at"]


@pytest.mark.parametrize("argv, words", [
    (["reminders", "--date", "9999-12-31"], "--date 9999-12-31: must be between 1900-01-01 and 2100-12-31"),
    (["dsmb", "report", "--as-of", "0001-01-01", "--open", "--out", "{tmp}/r.html"],
     "--as-of: 0001-01-01 must be between 1900-01-01 and 2100-12-31"),
])
def test_command_line_dates_out_of_range_are_one_line_exit_2(protocol_version, tmp_path, capsys, argv, words):
    from annulus.cli import main

    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not (tmp_path / "r.html").exists()
