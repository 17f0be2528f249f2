"""Causality 'not applicable (not yet done)' is refused once the procedure is recorded and the
event began on or after it (X-6.5): service, page and API name the field."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annulus.allocation import testing
from annulus.allocation.models import Envelope
from annulus.errors import RuleViolation
from annulus.safety.models import AdverseEvent
from annulus.safety.services import record_adverse_event, update_adverse_event
from annulus.visits.services import record_liposuction

NA = {"causality_liposuction": "not_applicable", "causality_injection": "not_applicable",
      "causality_product": "not_applicable"}


def _recent():
    """A few minutes ago, but today (local date): the liposuction of these tests is today."""
    now = timezone.now()
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(now - timedelta(minutes=5), midnight)


def _event(**changes):
    return {"term": "Back pain", "onset_at": _recent(), "serious": False,
            "serious_criteria": [], "grade": 1, **NA, "expectedness": "expected", "action_taken": "none",
            "outcome": "recovering", **changes}


def _lipo_today(users, p):
    return record_liposuction(actor=users["coordinator"], participant_id=p.pk, performed_on=timezone.localdate(),
                              fat_volume_ml="150", observation_hours="4", anaesthesia="local")


@pytest.mark.req("X-6.5")
def test_not_yet_done_is_allowed_before_the_procedure_and_refused_after(users, make_participant):
    p = testing.randomised(users, make_participant, 1)[0]
    inv = users["investigator"]
    before = record_adverse_event(actor=inv, participant_id=p.pk, **_event())  # nothing done yet
    _lipo_today(users, p)
    with pytest.raises(RuleViolation) as exc:
        record_adverse_event(actor=inv, participant_id=p.pk, **_event())
    assert exc.value.field == "causality_liposuction" and "not yet done" in exc.value.message
    assert AdverseEvent.objects.count() == 1
    # an event that began the day before the liposuction: 'not yet done' is still true of it
    earlier = record_adverse_event(actor=inv, participant_id=p.pk,
                                   **_event(onset_at=timezone.now() - timedelta(days=1)))
    assert earlier.causality_liposuction == "not_applicable"
    ok = record_adverse_event(actor=inv, participant_id=p.pk, **_event(causality_liposuction="unlikely"))
    assert ok.causality_injection == "not_applicable"  # the injection is not done yet
    # a follow-up of an event that began after the procedure cannot keep or return to 'not yet done'
    with pytest.raises(RuleViolation) as exc:
        update_adverse_event(actor=inv, adverse_event_id=ok.pk, reason="correction",
                             causality_liposuction="not_applicable")
    assert exc.value.field == "causality_liposuction"
    assert before.causality_liposuction == "not_applicable"


@pytest.mark.req("X-6.5")
def test_after_transplantation_injection_and_product_need_a_judgement(users, make_participant, monkeypatch):
    p = testing.randomised(users, make_participant, 1)[0]
    testing.liposuction_days_ago(monkeypatch, 21)
    testing.transplanted(users, p, Envelope.objects.get(participant=p))
    inv = users["investigator"]
    base = _event(causality_liposuction="not_related")
    with pytest.raises(RuleViolation) as exc:
        record_adverse_event(actor=inv, participant_id=p.pk, **base)
    assert exc.value.field == "causality_injection"
    with pytest.raises(RuleViolation) as exc:
        record_adverse_event(actor=inv, participant_id=p.pk, **{**base, "causality_injection": "possible"})
    assert exc.value.field == "causality_product"
    ae = record_adverse_event(actor=inv, participant_id=p.pk,
                              **{**base, "causality_injection": "possible", "causality_product": "unlikely"})
    assert ae.causality_product == "unlikely"


@pytest.mark.req("X-6.5")
def test_page_and_api_name_the_causality_field(users, make_participant):
    from annulus.accounts.services import issue_token

    p = testing.randomised(users, make_participant, 1)[0]
    _lipo_today(users, p)
    c = Client(enforce_csrf_checks=True)
    c.force_login(users["investigator"])
    url = f"/participants/{p.pk}/adverse-events/new/"
    c.get(url)
    onset = timezone.localtime(_recent()).strftime("%Y-%m-%dT%H:%M")
    form = {"csrfmiddlewaretoken": c.cookies["csrftoken"].value, "term": "Bruising", "onset_at": onset,
            "serious": "no", "grade": "1", **NA, "expectedness": "expected", "action_taken": "none",
            "outcome": "recovering"}
    r = c.post(url, form)
    assert r.status_code == 200
    assert "causality_liposuction" in r.context["form"].errors
    assert "not yet done" in str(r.context["form"].errors["causality_liposuction"])
    r = c.post(url, {**form, "causality_liposuction": "probable"})
    assert r.status_code == 302
    assert AdverseEvent.objects.get().causality_liposuction == "probable"

    key = issue_token(user=users["investigator"], name="script")
    api = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {key}")
    body = {"participant_id": p.pk, "term": "Haematoma", "onset_at": timezone.now().isoformat(), "serious": False,
            "grade": 1, **NA, "expectedness": "expected", "action_taken": "none", "outcome": "recovering"}
    r = api.post("/api/v1/safety/adverse-events", json.dumps(body), content_type="application/json")
    assert r.status_code == 400, r.content
    assert r.json()["detail"][0]["field"] == "causality_liposuction"
    assert AdverseEvent.objects.count() == 1
