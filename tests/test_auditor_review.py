"""The auditor reviews any record and its audit trail and records review findings on a
participant, visit, form or item (text, category, open/resolved with who and when), on the page
and by API; each is audited; other roles may read findings but not record them; bad input is
refused naming the field, with nothing written."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from annulus.audit.models import AuditEvent
from annulus.monitoring.models import ReviewFinding
from annulus.visits import services as vs

from .test_visits_support import GOOD, aware, at_w1, trial_participant, transplant_dates  # noqa: F401

pytestmark = pytest.mark.req("P-7.1")


@pytest.fixture
def w1(at_w1, users):  # noqa: F811
    p, _v = at_w1
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="vas", items=GOOD["vas"],
                 complete=True, collected_at=aware(timezone.localdate() - timezone.timedelta(days=1)))
    return p


def _page(user, path: str, language: str = "en") -> Client:
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    c.cookies["django_language"] = language
    assert c.get(path).status_code == 200
    return c


def _post(c: Client, path: str, data: dict):
    return c.post(path, {**data, "csrfmiddlewaretoken": c.cookies["csrftoken"].value})


def _api(users, role: str) -> Client:
    from annulus.accounts.services import issue_token

    return Client(HTTP_AUTHORIZATION=f"Bearer {issue_token(user=users[role], name='t')}")


@pytest.mark.parametrize("language,saved", [("en", "Review finding recorded."), ("zh-hans", "已记录稽查发现。")])
def test_auditor_records_and_resolves_a_finding_on_the_page(w1, users, language, saved):
    p = w1
    path = f"/monitoring/participants/{p.pk}/review/"
    c = _page(users["auditor"], path, language)
    html = c.get(path).content.decode()
    # the records and their audit trail are one click away
    assert f"/participants/{p.pk}/audit/" in html and f"/participants/{p.pk}/visits/w1/" in html
    assert c.get(f"/participants/{p.pk}/audit/").status_code == 200
    assert c.get(f"/participants/{p.pk}/visits/w1/vas/preview/").status_code == 200
    before = AuditEvent.objects.count()
    # the place is chosen by name from the casebook's forms and items
    assert 'value="w1|vas|0|vas_mm"' in html and 'value="w1|vas|0|"' in html
    r = _post(c, path, {"where": "w1|vas|0|vas_mm", "category": "data_discrepancy",
                        "text": "VAS on the paper diary is 26, not 62"})
    assert r.status_code == 302
    assert saved in c.get(path).content.decode()
    f = ReviewFinding.objects.get()
    assert (f.visit, f.form, f.item, f.status, f.raised_by) == ("w1", "vas", "vas_mm", "open", users["auditor"])
    e = AuditEvent.objects.order_by("-id").first()
    assert AuditEvent.objects.count() == before + 1 and (e.object_type, e.action) == ("review_finding", "create")

    fpath = f"/monitoring/findings/{f.pk}/"
    c.get(fpath)
    # resolving needs a resolution
    r = _post(c, fpath, {"resolution": ""})
    assert r.status_code == 200 and ReviewFinding.objects.get().status == "open"
    r = _post(c, fpath, {"resolution": "Site corrected the entry; source confirmed"})
    assert r.status_code == 302
    f.refresh_from_db()
    assert f.status == "resolved" and f.resolved_by == users["auditor"] and f.resolved_at is not None
    page = c.get(fpath).content.decode()
    assert "t_auditor" in page and timezone.localtime(f.resolved_at).strftime("%Y-%m-%d %H:%M") in page
    assert AuditEvent.objects.filter(object_type="review_finding", action="change").count() == 1


def test_findings_by_api(w1, users):
    p = w1
    api = _api(users, "auditor")
    r = api.post("/api/v1/monitoring/findings", {"participant_id": p.pk, "category": "consent",
                                                  "text": "Consent form copy missing from the site file"},
                 content_type="application/json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["status"] == "open" and body["raised_by"] == "t_auditor" and body["visit"] == ""
    r = api.post(f"/api/v1/monitoring/findings/{body['id']}/resolve", {"resolution": "Copy filed"},
                 content_type="application/json")
    assert r.status_code == 200 and r.json()["status"] == "resolved" and r.json()["resolved_by"] == "t_auditor"
    # resolving twice is refused
    r = api.post(f"/api/v1/monitoring/findings/{body['id']}/resolve", {"resolution": "again"},
                 content_type="application/json")
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "finding"
    # a record without its form, and ids beyond a database integer, are refused naming the field
    r = api.post("/api/v1/monitoring/findings", {"participant_id": p.pk, "category": "other", "text": "x", "record": 5},
                 content_type="application/json")
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "record"
    r = api.post("/api/v1/monitoring/findings", {"participant_id": 2**70, "category": "other", "text": "x"},
                 content_type="application/json")
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "participant_id"
    assert api.get(f"/api/v1/monitoring/findings?participant_id={2**62}").json() == []
    # the monitor reads them; open ones filter
    listed = _api(users, "monitor").get(f"/api/v1/monitoring/findings?participant_id={p.pk}&status=resolved").json()
    assert [x["id"] for x in listed] == [body["id"]]
    assert _api(users, "monitor").get("/api/v1/monitoring/findings?status=open").json() == []


@pytest.mark.parametrize("role", ["monitor", "coordinator", "investigator", "data_manager", "ethics"])
def test_only_the_auditor_records_findings(w1, users, role):
    p = w1
    api = _api(users, role)
    before = (ReviewFinding.objects.count(), AuditEvent.objects.count())
    r = api.post("/api/v1/monitoring/findings", {"participant_id": p.pk, "category": "other", "text": "x"},
                 content_type="application/json")
    assert r.status_code == 403
    c = Client(enforce_csrf_checks=True)
    c.force_login(users[role])
    path = f"/monitoring/participants/{p.pk}/review/"
    page = c.get(path)
    if page.status_code == 200:
        assert "Record the finding" not in page.content.decode()
    c.get("/")
    r = _post(c, path, {"category": "other", "text": "x"})
    assert r.status_code == 403
    assert (ReviewFinding.objects.count(), AuditEvent.objects.count()) == before


@pytest.mark.parametrize("data,fields", [
    ({"category": "", "text": ""}, {"category", "text"}),
    ({"category": "made_up", "text": "something"}, {"category"}),
    ({"category": "other", "text": "x", "form": "vas", "visit": "w1", "item": "no_such_item"}, {"item"}),
    ({"category": "other", "text": "x", "item": "vas_mm"}, {"form"}),
    ({"category": "other", "text": "x", "visit": "m24"}, {"visit"}),
])
def test_bad_findings_are_refused_naming_every_field(w1, users, data, fields):
    p = w1
    api = _api(users, "auditor")
    before = (ReviewFinding.objects.count(), AuditEvent.objects.count())
    r = api.post("/api/v1/monitoring/findings", {"participant_id": p.pk, **data}, content_type="application/json")
    assert r.status_code == 400, r.content
    assert {d["field"] for d in r.json()["detail"]} == fields
    path = f"/monitoring/participants/{p.pk}/review/"
    c = _page(users["auditor"], path)
    page = {k: v for k, v in data.items() if k in ("category", "text")}
    if any(k in data for k in ("visit", "form", "item")):
        page["where"] = f"{data.get('visit', '')}|{data.get('form', '')}|0|{data.get('item', '')}"
    r = _post(c, path, page)
    assert r.status_code == 200 and 'class="errorlist"' in r.content.decode()
    assert (ReviewFinding.objects.count(), AuditEvent.objects.count()) == before


def test_nul_in_a_finding_is_refused(w1, users):
    p = w1
    api = _api(users, "auditor")
    r = api.post("/api/v1/monitoring/findings", {"participant_id": p.pk, "category": "other", "text": "a\x00b"},
                 content_type="application/json")
    assert r.status_code == 400
    path = f"/monitoring/participants/{p.pk}/review/"
    c = _page(users["auditor"], path)
    assert _post(c, path, {"category": "other", "text": "a\x00b"}).status_code == 400
    assert not ReviewFinding.objects.exists()
