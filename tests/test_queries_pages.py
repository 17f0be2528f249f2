"""Query pages (X-7.4): the dashboard (by age, form, participant, assignee; a table that sorts and
filters; CSV), raising a query from a form, the thread page with answer / close / re-open forms,
and the badges on the eCRF, visit and participant pages; in English and Chinese, posted as a
browser does (CSRF enforced)."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.test import Client

from annulus.queries import services
from annulus.queries.models import Query

from .test_visits_support import at_w1, trial_participant, transplant_dates  # noqa: F401


class Browser:
    def __init__(self, user, language="en"):
        self.client = Client(enforce_csrf_checks=True)
        self.client.force_login(user)
        self.client.cookies["django_language"] = language
        self.client.get("/")
        self.token = self.client.cookies["csrftoken"].value

    def get(self, path, **kw):
        return self.client.get(path, **kw)

    def post(self, path, data, follow=True):
        return self.client.post(path, {**data, "csrfmiddlewaretoken": self.token}, follow=follow)


@pytest.fixture
def w1(at_w1, users):  # noqa: F811
    from annulus.visits import services as vs

    p, _v = at_w1
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="vas",
                 items={"vas_mm": 40}, complete=True)
    return p


@pytest.mark.req("X-7.4")
@pytest.mark.parametrize("language, words", [
    ("en", ["Raise a query", "Pain on the 100 mm line", "To be answered by", "Query raised."]),
    ("zh-hans", ["发起质疑", "100 mm 直线上的疼痛", "回答方", "质疑已发起。"]),
])
def test_raise_answer_close_reopen_through_the_pages(w1, users, language, words):
    p = w1
    monitor = Browser(users["monitor"], language)
    page = monitor.get(f"/queries/new/?participant={p.pk}&visit=w1&form=vas").content.decode()
    for w in words[:3]:
        assert w in page, w
    assignee = page.split('name="assigned_to"')[1].split("</select>")[0]
    assert 'name="csrfmiddlewaretoken"' in page and not re.search(r'<option value="[^"]+"[^>]*selected', assignee)
    r = monitor.post("/queries/new/", {"participant": p.pk, "visit": "w1", "form": "vas", "record": 0, "item": "vas_mm",
                                       "assigned_to": "coordinator", "text": "Source says 45 mm"})
    assert r.status_code == 200 and words[3] in r.content.decode()
    q = Query.objects.get()
    assert r.redirect_chain[-1][0] == f"/queries/{q.pk}/"
    assert (q.item, q.raised_by, q.status) == ("vas_mm", users["monitor"], "open")
    html = r.content.decode()
    assert 'value="close"' in html and 'value="answer"' not in html  # the monitor closes, the site answers
    coord = Browser(users["coordinator"], language)
    html = coord.get(f"/queries/{q.pk}/").content.decode()
    assert 'value="answer"' in html and 'value="close"' not in html
    r = coord.post(f"/queries/{q.pk}/", {"action": "answer", "answer-text": "Corrected to 45 mm"})
    assert r.status_code == 200 and Query.objects.get().status == "answered"
    assert "Corrected to 45 mm" in r.content.decode() and "t_coordinator" in r.content.decode()
    r = monitor.post(f"/queries/{q.pk}/", {"action": "reopen", "reopen-text": "Still 40 on the form"})
    assert Query.objects.get().status == "open"
    r = monitor.post(f"/queries/{q.pk}/", {"action": "close", "close-text": "Verified"})
    assert Query.objects.get().status == "closed"
    assert [m.kind for m in Query.objects.get().messages.all()] == ["raise", "answer", "reopen", "close"]


@pytest.mark.req("X-7.4")
def test_a_post_without_the_csrf_token_is_refused(w1, users):
    c = Client(enforce_csrf_checks=True)
    c.force_login(users["monitor"])
    r = c.post("/queries/new/", {"participant": w1.pk, "visit": "w1", "form": "vas", "item": "vas_mm",
                                 "assigned_to": "site", "text": "x"})
    assert r.status_code == 403 and not Query.objects.exists()


def _raise(users, p, **kw):
    data = dict(visit="w1", form="vas", item="vas_mm", text="Please check", assigned_to="site")
    data.update(kw)
    return services.raise_query(actor=users["monitor"], participant_id=p.pk, **data)


@pytest.mark.req("X-7.4")
@pytest.mark.parametrize("language, words", [
    ("en", ["Queries", "By age (days since raised)", "By form", "By participant", "By assignee", "VAS pain",
            "open or answered", "Download CSV"]),
    ("zh-hans", ["质疑", "按时长（发起后天数）", "按表单", "按受试者", "按回答方", "VAS疼痛评分", "未关闭或已回答",
                 "下载CSV"]),
])
def test_dashboard_groups_filters_and_sorts(w1, users, language, words):
    p = w1
    a = _raise(users, p)
    _raise(users, p, form="", item="visit_date", assigned_to="investigator")
    c = _raise(users, p, form="odi", item="", assigned_to="coordinator")
    services.close_query(actor=users["monitor"], query_id=c.pk, text="fine")
    b = Browser(users["data_manager"], language)
    html = b.get("/queries/").content.decode()
    for w in words:
        assert w in html, w
    rows = re.findall(r'<a href="/queries/(\d+)/">', html)
    assert sorted(map(int, rows)) == sorted([a.pk, a.pk + 1])  # the closed one is not listed by default
    html = b.get("/queries/?status=closed").content.decode()
    assert re.findall(r'<a href="/queries/(\d+)/">', html) == [str(c.pk)]
    html = b.get("/queries/?status=&assigned_to=investigator").content.decode()
    assert re.findall(r'<a href="/queries/(\d+)/">', html) == [str(a.pk + 1)]
    html = b.get("/queries/?status=&sort=raised").content.decode()
    assert re.findall(r'<a href="/queries/(\d+)/">', html) == [str(a.pk), str(a.pk + 1), str(c.pk)]
    html = b.get("/queries/?status=&sort=-raised").content.decode()
    assert re.findall(r'<a href="/queries/(\d+)/">', html) == [str(c.pk), str(a.pk + 1), str(a.pk)]
    for bad in ("?status=<script>", "?sort=nonsense", "?page=abc", "?participant=x", "?origin=zzz"):
        assert b.get("/queries/" + bad).status_code == 200


@pytest.mark.req("X-7.4")
def test_csv_download_parses(w1, users):
    p = w1
    a = _raise(users, p, text="=SUM(A1) please check")
    services.answer_query(actor=users["coordinator"], query_id=a.pk, text="Checked: 40 mm is right")
    r = Browser(users["monitor"]).get("/queries/?format=csv&status=")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == 1
    row = rows[0]
    assert (row["query"], row["status"], row["visit"], row["form"], row["item"], row["origin"]) == (
        a.label, "answered", "w1", "vas", "vas_mm", "manual")
    assert row["messages"] == "2" and row["last_message"] == "Checked: 40 mm is right"
    assert row["screening_number"] if "screening_number" in row else row["participant"] == p.screening_number
    assert "VAS pain" in row["target"] and row["raised_by"] == "t_monitor"


@pytest.mark.req("X-7.4")
@pytest.mark.parametrize("language, open_text", [("en", "1 open query"), ("zh-hans", "1 条未关闭质疑")])
def test_badges_on_the_crf_visit_and_participant_pages(w1, users, language, open_text):
    p = w1
    q = _raise(users, p)
    b = Browser(users["coordinator"], language)
    for path in (f"/participants/{p.pk}/visits/w1/vas/", f"/participants/{p.pk}/visits/w1/", f"/participants/{p.pk}/"):
        html = b.get(path).content.decode()
        assert open_text in html, path
        assert f"/queries/{q.pk}/" in html or "/queries/?" in html, path
    # the ODI form of the same visit has no query
    html = b.get(f"/participants/{p.pk}/visits/w1/odi/").content.decode()
    assert open_text not in html


@pytest.mark.req("X-7.4", "P-7.2")
def test_read_only_roles_see_queries_without_controls(w1, users):
    q = _raise(users, w1)
    auditor = Browser(users["auditor"])
    html = auditor.get(f"/queries/{q.pk}/").content.decode()
    assert "Please check" in html and 'name="action"' not in html
    assert "Raise a query" not in auditor.get(f"/participants/{w1.pk}/").content.decode()
    assert auditor.get("/queries/new/").status_code == 403
    ethics = Browser(users["ethics"])
    assert ethics.get("/queries/").status_code == 403
    assert ethics.get(f"/queries/{q.pk}/").status_code == 403
