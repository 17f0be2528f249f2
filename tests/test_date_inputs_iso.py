"""Date and date-time inputs show their value in every language.

A browser's ``<input type="date">`` / ``<input type="datetime-local">`` shows only an ISO value; a
value in the page's locale format (``2026年3月5日``) is dropped, so the field looks blank and saving
fails with "这个字段是必填项". Every form of the project with a date or date-time field is rendered
with a value in English and Chinese, and what it renders must read back to the same value.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from datetime import date, datetime, timedelta

import pytest
from django import forms
from django.test import Client
from django.utils import timezone, translation

import annulus

from .test_visits_support import transplant_dates, trial_participant  # noqa: F401

LANGUAGES = ("en", "zh-hans")
DAY = date(2026, 3, 5)
ISO_DAY = "2026-03-05"
ISO_MOMENT = "2026-03-05T14:30"


def _form_classes() -> list[type]:
    """Every form class defined in a ``forms`` or ``views`` module of the project."""
    for info in pkgutil.walk_packages(annulus.__path__, "annulus."):
        if info.name.rsplit(".", 1)[-1] in ("forms", "views"):
            importlib.import_module(info.name)
    seen, todo = [], list(forms.BaseForm.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("annulus.") and cls not in seen:
            seen.append(cls)
    return sorted(seen, key=lambda c: f"{c.__module__}.{c.__qualname__}")


def _instance(cls, protocol, **kwargs):
    """The form built as its view builds it (the constructor arguments it names)."""
    from annulus.visits import crf

    pool = {"protocol": protocol, "language": translation.get_language(), "spec": crf.spec_for(protocol, "vas"),
            "criteria": protocol.product.release_criteria, "staff": None, "sources": protocol.recruitment_sources,
            "choices": [("vas", "VAS")], "current": None, "product": None, "user": None}
    names = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in pool.items() if k in names}, **kwargs)


def _date_fields(form) -> list[str]:
    return [name for name, f in form.fields.items() if isinstance(f, (forms.DateField, forms.DateTimeField))]


def _value(field):
    if isinstance(field, forms.DateTimeField):
        return timezone.make_aware(datetime(2026, 3, 5, 14, 30)), ISO_MOMENT
    return DAY, ISO_DAY


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_date_field_of_every_form_renders_iso_and_reads_it_back(protocol_version, language):
    from annulus.trial.selectors import active_protocol

    protocol = active_protocol()
    checked = []
    with translation.override(language):
        for cls in _form_classes():
            names = _date_fields(_instance(cls, protocol))
            if not names:
                continue
            initial = {name: _value(_instance(cls, protocol).fields[name])[0] for name in names}
            form = _instance(cls, protocol, initial=initial)
            for name in names:
                value, iso = _value(form.fields[name])
                html = str(form[name])
                where = f"{cls.__module__}.{cls.__qualname__}.{name} in {language}"
                assert f'value="{iso}"' in html, f"{where} renders {html}"
                assert re.search(r'type="(date|datetime-local)"', html), f"{where} is not a date input: {html}"
                # what the input shows is what it accepts back
                bound = _instance(cls, protocol, data={form.add_prefix(name): iso})
                raw = bound.fields[name].widget.value_from_datadict(bound.data, {}, bound.add_prefix(name))
                assert bound.fields[name].clean(raw) == value, where
                checked.append(where)
    # the prescreen, consent, screening, withdrawal, AE (3), SAE report (2), DSMB (3), release, transplant,
    # liposuction, visit (4), eCRF and visit-entry forms: at least 23 fields
    assert len(checked) >= 23, checked


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_saved_moment_is_shown_in_the_trial_time_zone(protocol_version, language):
    from annulus.safety.forms import AdverseEventForm

    utc = datetime(2026, 3, 5, 6, 30, tzinfo=timezone.get_fixed_timezone(0))  # 14:30 in Asia/Shanghai
    with translation.override(language):
        html = str(AdverseEventForm(initial={"onset_at": utc})["onset_at"])
    assert f'value="{ISO_MOMENT}"' in html


# ---- the pages, as a browser sends them ---------------------------------------------------------

def _browser(user, language: str) -> Client:
    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(user)
    return c


def _inputs(html: str) -> dict[str, str]:
    """name -> value of every input, as a browser submits it: a date input whose value is not ISO
    is blank (the HTML value sanitisation algorithm)."""
    out = {}
    for tag in re.findall(r"<input\b[^>]*>", html):
        name = re.search(r'\bname="([^"]*)"', tag)
        if not name:
            continue
        value = re.search(r'\bvalue="([^"]*)"', tag)
        value = value.group(1) if value else ""
        kind = re.search(r'\btype="([^"]*)"', tag)
        kind = kind.group(1) if kind else "text"
        if kind == "date" and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            value = ""
        if kind == "datetime-local" and not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?", value):
            value = ""
        if kind in ("checkbox", "radio", "submit"):
            continue
        out[name.group(1)] = value
    return out


def _form_of(html: str, marker: str) -> str:
    """The <form> that contains ``marker``."""
    for form in re.findall(r"<form\b.*?</form>", html, flags=re.S):
        if marker in form:
            return form
    raise AssertionError(f"no form with {marker!r}")


@pytest.mark.req("P-2.4")
@pytest.mark.parametrize("language", LANGUAGES)
def test_prescreening_is_saved_with_the_date_the_page_fills_in(users, language):
    from annulus.participants.models import Participant

    c = _browser(users["coordinator"], language)
    page = c.get("/participants/new/")
    assert page.status_code == 200
    sent = _inputs(_form_of(page.content.decode(), 'name="prescreened_on"'))
    assert sent["prescreened_on"] == timezone.localdate().isoformat()
    sent.update({"initials": "WL", "sex": "M", "recruitment_source": "inpatient_referral"})
    r = c.post("/participants/new/", sent)
    assert r.status_code == 302, r.content.decode()[:3000]
    p = Participant.objects.get(initials="WL")
    assert p.prescreened_on == timezone.localdate()


@pytest.mark.req("X-4.8")
@pytest.mark.parametrize("language", LANGUAGES)
def test_a_visit_is_recorded_with_the_date_the_page_fills_in(trial_participant, transplant_dates, users, language):
    from annulus.visits.models import Visit

    p = trial_participant(lipo_days_ago=35, transplant_days_ago=8)
    c = _browser(users["coordinator"], language)
    page = c.get(f"/participants/{p.pk}/visits/w1/").content.decode()
    sent = _inputs(_form_of(page, 'value="open"'))
    assert sent["visit_date"] == timezone.localdate().isoformat()
    r = c.post(f"/participants/{p.pk}/visits/w1/", {**sent, "action": "open"})
    assert r.status_code == 302, r.content.decode()[:3000]
    assert Visit.objects.get(participant=p, visit_id="w1").visit_date == timezone.localdate()
    # the saved date comes back in the correction form, as the browser shows it
    page = c.get(f"/participants/{p.pk}/visits/w1/").content.decode()
    sent = _inputs(_form_of(page, 'value="correct_date"'))
    assert sent["visit_date"] == timezone.localdate().isoformat()


@pytest.mark.req("P-6.1")
@pytest.mark.parametrize("language", LANGUAGES)
def test_an_adverse_event_page_shows_its_saved_onset(make_participant, users, language):
    from annulus.safety import services as ss

    p = make_participant("enrolled")
    onset = timezone.localtime() - timedelta(days=2)
    ae = ss.record_adverse_event(
        actor=users["coordinator"], participant_id=p.pk, term="Headache", onset_at=onset, serious=False,
        serious_criteria=[], grade=1, causality_liposuction="not_related", causality_injection="not_related",
        causality_product="not_related", expectedness="expected", action_taken="none", outcome="not_recovered")
    c = _browser(users["coordinator"], language)
    page = c.get(f"/safety/adverse-events/{ae.pk}/edit/")
    sent = _inputs(_form_of(page.content.decode(), 'name="onset_at"'))
    assert sent["onset_at"] == onset.strftime("%Y-%m-%dT%H:%M")
