"""Findings that may be adverse events open an adverse-event task (P-6.1): liposuction
complications, "AE review = yes" on a visit, a laboratory value judged clinically significant. The
task stays on the dashboard and the participant page until an adverse event is recorded and
linked, or it is dismissed with a reason (audited)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annulus.accounts.services import issue_token
from annulus.audit.models import AuditEvent
from annulus.errors import RuleViolation
from annulus.safety import services as safety
from annulus.safety.models import AdverseEvent, AeTask
from annulus.visits import services as vs

from .test_visits_support import LIVER, at_w1, transplant_dates, trial_participant  # noqa: F401

pytestmark = pytest.mark.req("P-6.1")

AE = dict(term="Haematoma at the harvest site", serious=False, serious_criteria=[], grade=1,
          causality_liposuction="probable", causality_injection="not_applicable", causality_product="not_applicable",
          expectedness="expected", action_taken="none", outcome="recovering")


def _csrf_client(user):
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    return c


def _token_client(user):
    return Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {issue_token(user=user, name='script')}")


def _post(c, url, data):
    """A form post the way a browser sends it: the CSRF token read from the page just fetched."""
    return c.post(url, {"csrfmiddlewaretoken": c.cookies["csrftoken"].value, **data})


def test_liposuction_complications_open_a_task_until_an_ae_is_recorded(users, make_participant):
    from annulus.allocation import testing

    p = testing.randomised(users, make_participant, 1)[0]
    vs.record_liposuction(actor=users["coordinator"], participant_id=p.pk, performed_on=timezone.localdate(),
                          fat_volume_ml="150", observation_hours="4", anaesthesia="local")
    assert not AeTask.objects.exists()  # no complication, no task
    vs.record_liposuction(actor=users["coordinator"], participant_id=p.pk, performed_on=timezone.localdate(),
                          fat_volume_ml="150", observation_hours="4", anaesthesia="local",
                          complications="Haematoma at the harvest site", reason="complication seen at discharge")
    task = AeTask.objects.get()
    assert task.is_open and task.source == "liposuction" and task.term == "Haematoma at the harvest site"
    assert AuditEvent.objects.filter(object_type="ae_task", object_id=str(task.pk), action="create").exists()

    inv = _csrf_client(users["investigator"])
    dashboard = inv.get("/").content.decode()
    assert "Adverse-event tasks" in dashboard and "Haematoma at the harvest site" in dashboard
    page = inv.get(f"/participants/{p.pk}/").content.decode()
    assert f"?task={task.pk}" in page

    url = f"/participants/{p.pk}/adverse-events/new/?task={task.pk}"
    form = inv.get(url)
    assert "Haematoma at the harvest site" in form.content.decode()  # the term comes from the task
    onset = timezone.localtime(timezone.now() - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M")
    r = _post(inv, url, {"term": "Haematoma", "onset_at": onset, "serious": "no", "grade": "1",
                         "causality_liposuction": "probable", "causality_injection": "not_applicable",
                         "causality_product": "not_applicable", "expectedness": "expected",
                         "action_taken": "none", "outcome": "recovering"})
    assert r.status_code == 302, r.context["form"].errors if r.context else r
    task.refresh_from_db()
    ae = AdverseEvent.objects.get()
    assert task.state == "recorded" and task.adverse_event == ae and not task.is_open
    assert AuditEvent.objects.filter(object_type="ae_task", object_id=str(task.pk), action="change").exists()
    assert f"?task={task.pk}" not in inv.get("/").content.decode()


def test_ae_review_yes_opens_one_task_that_is_dismissed_with_a_reason(at_w1, users):
    p, v = at_w1
    for _ in range(2):  # saving the same answer again opens no second task
        vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key=v.key, form_id="adverse_events",
                     items={"new_events": "yes"})
    task = AeTask.objects.get()
    assert task.source == "ae_review" and v.key in task.description
    coord = _csrf_client(users["coordinator"])
    url = f"/safety/tasks/{task.pk}/"
    assert coord.get(url).status_code == 200
    r = _post(coord, url, {"action": "dismiss", "reason": "no"})
    assert r.status_code == 200 and "reason" in r.context["dismiss_form"].errors
    assert AeTask.objects.get().is_open
    r = _post(coord, url, {"action": "dismiss", "reason": "Ticked by mistake; the participant reported nothing new"})
    assert r.status_code == 302
    task.refresh_from_db()
    assert task.state == "dismissed" and "by mistake" in task.dismissed_reason
    event = AuditEvent.objects.filter(object_type="ae_task", object_id=str(task.pk), action="change").get()
    assert "by mistake" in event.reason
    assert "Ticked by mistake" in coord.get(f"/participants/{p.pk}/").content.decode()  # kept, closed
    with pytest.raises(RuleViolation) as exc:
        safety.dismiss_ae_task(actor=users["coordinator"], task_id=task.pk, reason="Dismissed a second time")
    assert exc.value.field == "task_id"


def test_clinically_significant_lab_opens_a_task_linked_through_the_api(at_w1, users):
    p, v = at_w1
    items = {**LIVER, "alt": 160, "alt__cs": "yes"}
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key=v.key, form_id="liver_kidney",
                 items=items, complete=True, collected_at=timezone.now() - timedelta(days=1))
    task = AeTask.objects.get()
    assert task.source == "lab" and task.term.endswith("increased")
    api = _token_client(users["investigator"])
    r = api.get(f"/api/v1/safety/ae-tasks?participant_id={p.pk}")
    assert r.status_code == 200 and [t["id"] for t in r.json()] == [task.pk]
    r = api.post(f"/api/v1/safety/ae-tasks/{task.pk}/dismiss", json.dumps({"reason": ""}),
                 content_type="application/json")
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "reason"
    ae = safety.record_adverse_event(actor=users["investigator"], participant_id=p.pk,
                                     onset_at=timezone.now() - timedelta(days=1),
                                     **{**AE, "term": "ALT increased", "causality_liposuction": "unlikely",
                                        "causality_injection": "unlikely", "causality_product": "possible"})
    assert AeTask.objects.get().is_open  # recorded without the task: the task stays until linked
    r = api.post(f"/api/v1/safety/ae-tasks/{task.pk}/link", json.dumps({"adverse_event_id": ae.pk + 999}),
                 content_type="application/json")
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "adverse_event_id"
    r = api.post(f"/api/v1/safety/ae-tasks/{task.pk}/link", json.dumps({"adverse_event_id": ae.pk}),
                 content_type="application/json")
    assert r.status_code == 200 and r.json()["state"] == "recorded" and r.json()["adverse_event_id"] == ae.pk
    assert api.get("/api/v1/safety/ae-tasks").json() == []


def test_an_ae_recorded_through_the_api_closes_its_task(at_w1, users):
    p, v = at_w1
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key=v.key, form_id="adverse_events",
                 items={"new_events": "yes"})
    task = AeTask.objects.get()
    api = _token_client(users["investigator"])
    body = {**AE, "participant_id": p.pk, "task_id": task.pk, "term": "Back pain worse",
            "onset_at": (timezone.now() - timedelta(days=1)).isoformat(), "causality_liposuction": "not_related",
            "causality_injection": "possible", "causality_product": "possible"}
    r = api.post("/api/v1/safety/adverse-events", json.dumps(body), content_type="application/json")
    assert r.status_code == 201, r.content
    task.refresh_from_db()
    assert task.state == "recorded" and task.adverse_event_id == r.json()["id"]
    # a closed task cannot be answered twice
    r = api.post("/api/v1/safety/adverse-events", json.dumps(body), content_type="application/json")
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "task_id"
    assert AdverseEvent.objects.count() == 1


def test_the_ecrf_link_of_a_significant_value_answers_its_task(at_w1, users):
    p, v = at_w1
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key=v.key, form_id="liver_kidney",
                 items={**LIVER, "alt": 160, "alt__cs": "yes"}, complete=True,
                 collected_at=timezone.now() - timedelta(days=1))
    task = AeTask.objects.get()
    inv = _csrf_client(users["investigator"])
    crf = inv.get(f"/participants/{p.pk}/visits/{v.key}/liver_kidney/").content.decode()
    link = re.search(r'href="(/participants/\d+/adverse-events/new/\?[^"]+)"', crf).group(1).replace("&amp;", "&")
    page = inv.get(link).content.decode()
    assert "closes the adverse-event task" in page
    onset = timezone.localtime(timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    r = _post(inv, link, {"term": task.term, "onset_at": onset, "serious": "no", "grade": "2",
                          "causality_liposuction": "unlikely", "causality_injection": "unlikely",
                          "causality_product": "possible", "expectedness": "unexpected", "action_taken": "none",
                          "outcome": "recovering"})
    assert r.status_code == 302
    task.refresh_from_db()
    assert task.state == "recorded" and task.adverse_event == AdverseEvent.objects.get()
