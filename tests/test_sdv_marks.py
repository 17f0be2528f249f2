"""Source-data verification marks (P-7.1): the monitor marks items or whole forms verified against
source on the page and by API; a later change to a verified item clears its verification on read
(shown with who changed it and when, and counted in the plan's progress); only the monitor may
verify; marks are audited; bad input is refused naming the field, with nothing written."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from annulus.audit.models import AuditEvent
from annulus.monitoring import selectors
from annulus.monitoring.models import SdvMark
from annulus.visits import services as vs

from .test_visits_support import GOOD, aware, at_w1, trial_participant, transplant_dates  # noqa: F401

pytestmark = pytest.mark.req("P-7.1")


@pytest.fixture
def w1(at_w1, users):  # noqa: F811
    """A participant whose 1-week VAS (critical: the primary end point) and ODI are complete."""
    p, v = at_w1
    day = timezone.localdate() - timezone.timedelta(days=1)
    for form in ("vas", "odi"):
        vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id=form,
                     items=GOOD[form], complete=True, collected_at=aware(day))
    return p


def _page_client(user, path: str) -> Client:
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    assert c.get(path).status_code == 200
    return c


def _post(c: Client, path: str, data: dict):
    return c.post(path, {**data, "csrfmiddlewaretoken": c.cookies["csrftoken"].value})


def _api(users, role: str) -> Client:
    from annulus.accounts.services import issue_token

    return Client(HTTP_AUTHORIZATION=f"Bearer {issue_token(user=users[role], name='t')}")


def _point(p, visit, form, item):
    return next(pt for pt in selectors.evaluate([p.pk])[p.pk] if (pt.visit, pt.form, pt.item) == (visit, form, item))


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_monitor_verifies_an_item_on_the_page_and_a_change_clears_it(w1, users, language):
    p = w1
    path = f"/monitoring/participants/{p.pk}/sdv/"
    c = _page_client(users["monitor"], path)
    c.cookies["django_language"] = language
    assert _point(p, "w1", "vas", "vas_mm").required  # the primary end point is critical
    before = AuditEvent.objects.count()
    r = _post(c, path, {"visit": "w1", "form": "vas", "record": "0", "item": "vas_mm"})
    assert r.status_code == 302
    assert _point(p, "w1", "vas", "vas_mm").state == "verified"
    mark = SdvMark.objects.get(participant=p, form="vas", item="vas_mm")
    assert mark.revision == "1" and mark.verified_by == users["monitor"] and len(mark.value_hash) == 64
    event = AuditEvent.objects.order_by("-id").first()
    assert AuditEvent.objects.count() == before + 1 and event.action == "verify" and event.object_type == "sdv_mark"
    assert (p.pk, "w1", "vas") in selectors.sdv_status([p.pk])
    assert selectors.sdv_status([p.pk])[(p.pk, "w1", "vas")] == {"required": 1, "verified": 1, "cleared": 0}

    # the coordinator corrects the value: the verification is cleared on read, nothing written to marks
    marks = SdvMark.objects.count()
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="vas",
                 items={"vas_mm": 40}, complete=True, reason="typing error on the line")
    assert SdvMark.objects.count() == marks
    assert _point(p, "w1", "vas", "vas_mm").state == "cleared"
    assert selectors.sdv_status([p.pk])[(p.pk, "w1", "vas")] == {"required": 1, "verified": 0, "cleared": 1}
    html = c.get(path).content.decode()
    day = timezone.localtime().strftime("%Y-%m-%d")
    if language == "en":
        assert f"verification cleared by a change on {day}" in html and "by t_coordinator" in html
    else:
        assert "核查因修改而清除" in html and "t_coordinator" in html and day in html

    # verified again, it holds for the new value
    assert _post(c, path, {"visit": "w1", "form": "vas", "record": "0", "item": "vas_mm"}).status_code == 302
    assert _point(p, "w1", "vas", "vas_mm").state == "verified"


def test_an_unchanged_item_stays_verified_when_another_item_of_the_form_changes(w1, users):
    p = w1
    vs_marks = vs  # noqa: F841
    from annulus.monitoring import services

    services.verify(actor=users["monitor"], participant_id=p.pk, visit="w1", form="odi")
    assert {pt.state for pt in selectors.evaluate([p.pk])[p.pk] if pt.form == "odi"} == {"verified"}
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="odi",
                 items={**GOOD["odi"], "s3": 4}, complete=True, reason="section 3 read wrongly")
    states = {pt.item: pt.state for pt in selectors.evaluate([p.pk])[p.pk] if pt.form == "odi"}
    assert states["s3"] == "cleared" and states["s1"] == "verified"
    points = [pt for pt in selectors.evaluate([p.pk])[p.pk] if pt.form == "odi" and pt.item == "s3"]
    selectors.explain_cleared(p.pk, points)
    assert points[0].cleared_by == "t_coordinator" and points[0].cleared_at is not None


def test_whole_form_by_api_and_progress(w1, users):
    p = w1
    api = _api(users, "monitor")
    r = api.post(f"/api/v1/monitoring/participants/{p.pk}/sdv", {"visit": "w1", "form": "odi"},
                 content_type="application/json")
    assert r.status_code == 201, r.content
    assert sorted(m["item"] for m in r.json()) == sorted(GOOD["odi"])
    items = api.get(f"/api/v1/monitoring/participants/{p.pk}/sdv").json()
    assert {i["state"] for i in items if i["form"] == "odi"} == {"verified"}
    progress = api.get(f"/api/v1/monitoring/sdv?participant_id={p.pk}").json()
    vas = next(x for x in progress if x["form"] == "vas")
    assert vas == {"participant_id": p.pk, "visit": "w1", "form": "vas", "required": 1, "verified": 0, "cleared": 0}
    # a form already verified in full is refused (nothing left to verify), nothing written
    marks = SdvMark.objects.count()
    r = api.post(f"/api/v1/monitoring/participants/{p.pk}/sdv", {"visit": "w1", "form": "odi"},
                 content_type="application/json")
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "form"
    assert SdvMark.objects.count() == marks


@pytest.mark.parametrize("role", ["coordinator", "investigator", "data_manager", "auditor", "ethics"])
def test_only_the_monitor_may_verify(w1, users, role):
    p = w1
    api = _api(users, role)
    before = (SdvMark.objects.count(), AuditEvent.objects.count())
    r = api.post(f"/api/v1/monitoring/participants/{p.pk}/sdv",
                               {"visit": "w1", "form": "vas", "item": "vas_mm"}, content_type="application/json")
    assert r.status_code == 403
    c = Client(enforce_csrf_checks=True)
    c.force_login(users[role])
    path = f"/monitoring/participants/{p.pk}/sdv/"
    page = c.get(path)
    if page.status_code == 200:
        assert "Mark the whole form verified" not in page.content.decode()
    c.get("/")
    assert _post(c, path, {"visit": "w1", "form": "vas", "item": "vas_mm"}).status_code == 403
    assert (SdvMark.objects.count(), AuditEvent.objects.count()) == before


@pytest.mark.parametrize("data,field", [
    ({"visit": "w1", "form": "vas", "item": "no_such_item"}, "item"),
    ({"visit": "w1", "form": "no_such_form", "item": ""}, "form"),
    ({"visit": "m24", "form": "vas", "item": "vas_mm"}, "visit"),
])
def test_unknown_addresses_are_refused_naming_the_field(w1, users, data, field):
    p = w1
    api = _api(users, "monitor")
    before = (SdvMark.objects.count(), AuditEvent.objects.count())
    r = api.post(f"/api/v1/monitoring/participants/{p.pk}/sdv", data,
                                    content_type="application/json")
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == field
    path = f"/monitoring/participants/{p.pk}/sdv/"
    c = _page_client(users["monitor"], path)
    r = _post(c, path, data)
    assert r.status_code == 200 and f"{field}: " in r.content.decode()
    assert (SdvMark.objects.count(), AuditEvent.objects.count()) == before


def test_nul_and_unknown_participant(w1, users):
    p = w1
    api = _api(users, "monitor")
    r = api.post(f"/api/v1/monitoring/participants/{p.pk}/sdv", {"visit": "w1", "form": "vas", "item": "vas\x00mm"},
                 content_type="application/json")
    assert r.status_code == 400
    path = f"/monitoring/participants/{p.pk}/sdv/"
    c = _page_client(users["monitor"], path)
    assert _post(c, path, {"visit": "w1", "form": "vas", "item": "vas\x00mm"}).status_code == 400
    assert api.post("/api/v1/monitoring/participants/999999/sdv", {"visit": "w1", "form": "vas"},
                    content_type="application/json").status_code == 404
    assert not SdvMark.objects.exists()


def test_screening_records_and_serious_events_are_in_the_plan(w1, users):
    """Consent, screening evidence and the eligibility decision are verified in full; a serious
    adverse event in full, a non-serious one only if drawn."""
    from datetime import timedelta

    from annulus.safety import services as ss

    p = w1
    fields = dict(term="Back pain", grade=1, causality_liposuction="not_related", causality_injection="not_related",
                  causality_product="not_related", expectedness="expected", action_taken="none", outcome="recovering")
    sae = ss.record_adverse_event(actor=users["investigator"], participant_id=p.pk,
                                  onset_at=timezone.now() - timedelta(hours=5),
                                  first_knowledge_at=timezone.now() - timedelta(hours=4),
                                  **{**fields, "term": "Pneumonia", "serious": True,
                                     "serious_criteria": ["hospitalisation"], "grade": 3})
    points = selectors.evaluate([p.pk])[p.pk]
    for form in ("consent", "screening", "eligibility"):
        mine = [pt for pt in points if pt.form == form]
        assert mine and all(pt.required and pt.critical for pt in mine), form
    assert all(pt.critical for pt in points if pt.form == "adverse_event" and pt.record == sae.pk)
    # the lock checklist lists what the plan asks and is not verified
    from annulus.monitoring import lock_checklist

    keys = {i["key"] for i in lock_checklist.open_items()}
    assert f"sdv:{p.pk}:screening:consent" in keys and f"sdv:{p.pk}::adverse_event" in keys
