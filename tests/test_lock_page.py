"""The lock page (/unblinding/) with the pre-lock checklist (P-3.7): every group with its counts
in the heading and a status colour, a summary table, a filter, long groups collapsed; each open
line links to where it is closed and carries the PI's waiver form; the signature form is
disabled with the reason while anything blocks. Bad input on the page (CSRF enforced, both
languages) and by API: locking with open work, a waiver without a reason, by someone other than
the PI, or of an item that is not open."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annulus.allocation import selectors
from annulus.allocation.models import LockWaiver, UnblindingStep
from annulus.allocation.views import OPEN_UP_TO
from tests.conftest import TEST_PASSWORD, fresh, make_users, participant_maker, shared_rows

from .lock_support import STATEMENT, WAIVE_REASON, audit_head, row_counts
from .test_visits_support import patched_transplant_dates, trial_participant_maker

EVENT = dict(term="Back pain", serious=False, grade=1, causality_liposuction="not_related",
             causality_injection="not_related", causality_product="not_related", expectedness="expected",
             action_taken="none", outcome="recovering")

WORDS = {
    "en": {"title": "Pre-lock checklist", "visits": "Visits neither done nor missed (window closed, nothing recorded)",
           "outcomes": "Adverse events without a final outcome", "group": "Checklist group",
           "blocked": "The lock cannot be signed: {n} items of the pre-lock checklist are neither closed nor waived.",
           "open_of": "{open} open of {total}", "required": "This field is required.",
           "refused": "{n} open item(s) of the pre-lock checklist are neither closed nor waived (first: ",
           "not_open": "is not an open item of the pre-lock checklist", "item": "Checklist item",
           "shown": "1 matching line"},
    "zh-hans": {"title": "锁库前检查清单", "visits": "既未完成也未记录为缺失的访视（窗口期已关闭，无任何记录）",
                "outcomes": "无最终转归的不良事件", "group": "检查清单分组",
                "blocked": "无法签署锁库：锁库前检查清单中有 {n} 项既未关闭也未豁免。",
                "open_of": None, "required": "这个字段是必填项。",
                "refused": "锁库前检查清单中有 {n} 项既未关闭也未豁免（第一项：",
                "not_open": "is not an open item of the pre-lock checklist", "item": "检查清单项",
                "shown": "1 条匹配"},
}


def _browser(user, language, query=""):
    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(user)
    page = c.get("/unblinding/" + query)
    return c, page, c.cookies["csrftoken"].value


def _script(user):
    from annulus.accounts.services import issue_token

    key = issue_token(user=user, name="lock page test")
    c = Client(enforce_csrf_checks=True)

    def call(method, path, body=None):
        if method == "GET":
            return c.get(path, HTTP_AUTHORIZATION=f"Bearer {key}")
        return c.post(path, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")
    return call


def _details(html: str, group: str) -> str:
    m = re.search(rf'<details id="group-{group}"( open)?>', html)
    assert m, f"group {group} not on the page"
    return m.group(0)


@pytest.fixture(scope="module")
def _busy_trial(request, django_db_setup, django_db_blocker):
    """Many enrolled participants without an end-of-study status (more than a group shows open),
    and one treated participant with a closed visit window and an adverse event still recovering.
    Built once for the module (conftest.shared_rows): what a test writes is undone after it."""
    from annulus.safety import services as ss
    from annulus.trial.services import load_default_protocol

    with shared_rows(request, django_db_blocker) as shared:
        with shared.build():
            load_default_protocol()
            users = make_users()
            make_participant = participant_maker(users)
            trial_participant = trial_participant_maker(make_participant, users, patched_transplant_dates(shared.patch))
            many = [make_participant("enrolled") for _ in range(OPEN_UP_TO + 5)]
            p = trial_participant(lipo_days_ago=41, transplant_days_ago=20)
            ae = ss.record_adverse_event(actor=users["investigator"], participant_id=p.pk,
                                         onset_at=timezone.now() - timedelta(hours=6), **EVENT)
        yield users, {"many": many, "p": p, "ae": ae}


@pytest.fixture
def users(_busy_trial, db):
    return {role: fresh(user) for role, user in _busy_trial[0].items()}


@pytest.fixture
def busy_trial(_busy_trial, db):
    rows = _busy_trial[1]
    return {"many": [fresh(p) for p in rows["many"]], "p": fresh(rows["p"]), "ae": fresh(rows["ae"])}


@pytest.mark.req("P-3.7")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_page_lists_every_group_with_counts_and_collapses_long_ones(busy_trial, users, language):
    w = WORDS[language]
    t = busy_trial
    checklist = selectors.lock_checklist()
    n = len(checklist["blocking"])
    c, page, _token = _browser(users["pi"], language)
    html = page.content.decode()
    assert page.status_code == 200
    for word in ("title", "visits", "outcomes", "group"):
        assert w[word] in html
    assert w["blocked"].format(n=n) in html
    for g in checklist["groups"]:
        assert str(g["title"]) in html and f'href="#group-{g["group"]}"' in html
    participants = next(g for g in checklist["groups"] if g["group"] == "participants")
    assert len(participants["items"]) == OPEN_UP_TO + 6
    if w["open_of"]:
        assert w["open_of"].format(open=len(participants["items"]), total=len(participants["items"])) in html
    # a long group starts collapsed, a short one open, an empty one collapsed
    assert _details(html, "participants") == '<details id="group-participants">'
    assert _details(html, "visits_open") == '<details id="group-visits_open" open>'
    assert _details(html, "ae_tasks") == '<details id="group-ae_tasks">'
    # each open line links to where it is closed and has its waiver form (the PI)
    assert f'href="/participants/{t["p"].pk}/visits/w1/"' in html
    assert f'href="/safety/adverse-events/{t["ae"].pk}/edit/"' in html
    assert html.count('name="action" value="waive"') == n
    assert 'class="status bad"' in html
    # the signature form is there but disabled, with the reason and the first item
    form = html[html.index('name="action" value="lock"'):]
    assert "disabled" in form[:form.index('name="statement"')]
    assert f'href="{checklist["blocking"][0]["link"]}"' in html
    # the filter keeps the counts and shows the lines that match
    c, page, _token = _browser(users["pi"], language, f"?q={t['ae'].label}&show=open")
    html = page.content.decode()
    assert w["shown"] in html and _details(html, "ae_outcomes") == '<details id="group-ae_outcomes" open>'
    assert html.count('name="action" value="waive"') == 1
    assert w["blocked"].format(n=n) in html


@pytest.mark.req("P-3.7")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_bad_input_on_the_page(busy_trial, users, language):
    w = WORDS[language]
    t = busy_trial
    item = f"ae_outcome:{t['ae'].pk}"
    c, page, token = _browser(users["pi"], language)
    counts, head = row_counts(), audit_head()
    # locking with open work: refused naming the count and the first item
    n = len(selectors.lock_checklist()["blocking"])
    first = selectors.lock_checklist()["blocking"][0]["label"]
    r = c.post("/unblinding/", {"action": "lock", "statement": STATEMENT, "password": TEST_PASSWORD, "confirm": "on",
                                "csrfmiddlewaretoken": token})
    body = r.content.decode()
    assert r.status_code == 200 and w["refused"].format(n=n) in body and first in body
    # a waiver without a reason: named on the field, the line's group open on the page
    r = c.post("/unblinding/", {"action": "waive", "item": item, "reason": "", "csrfmiddlewaretoken": token})
    body = r.content.decode()
    assert r.status_code == 200 and w["required"] in body
    assert _details(body, "ae_outcomes") == '<details id="group-ae_outcomes" open>'
    # a waiver of an item that is not open
    r = c.post("/unblinding/", {"action": "waive", "item": "ae_outcome:999999", "reason": WAIVE_REASON,
                                "csrfmiddlewaretoken": token})
    body = r.content.decode()
    assert r.status_code == 200 and f'{w["item"]}: {w["not_open"]}' in body
    # a waiver by someone other than the PI
    for role in ("investigator", "statistician", "data_manager"):
        oc, page, otoken = _browser(users[role], language)
        assert 'value="waive"' not in page.content.decode()
        r = oc.post("/unblinding/", {"action": "waive", "item": item, "reason": WAIVE_REASON,
                                     "csrfmiddlewaretoken": otoken})
        assert r.status_code == 403
    # without the CSRF token nothing goes through
    r = c.post("/unblinding/", {"action": "waive", "item": item, "reason": WAIVE_REASON})
    assert r.status_code == 403
    assert row_counts() == counts and audit_head() == head
    assert LockWaiver.objects.count() == 0 and UnblindingStep.objects.count() == 0


@pytest.mark.req("P-3.7")
def test_bad_input_by_api_and_the_checklist_read(busy_trial, users):
    t = busy_trial
    item = f"ae_outcome:{t['ae'].pk}"
    pi, stat = _script(users["pi"]), _script(users["statistician"])
    counts, head = row_counts(), audit_head()
    checklist = selectors.lock_checklist()
    n = len(checklist["blocking"])
    r = stat("POST", "/api/v1/allocation/unblinding/lock", {"password": TEST_PASSWORD, "statement": STATEMENT})
    assert r.status_code == 400
    d = r.json()["detail"][0]
    assert d["field"] == "checklist" and d["message"].startswith(f"{n} open item(s)")
    assert str(checklist["blocking"][0]["label"]) in d["message"]
    cases = [(pi, {"item": item, "reason": ""}, 400, "reason", "is required"),
             (pi, {"item": item, "reason": "too short"}, 400, "reason", "must be at least 10 characters"),
             (pi, {"item": "ae_outcome:999999", "reason": WAIVE_REASON}, 400, "item",
              "is not an open item of the pre-lock checklist"),
             (stat, {"item": item, "reason": WAIVE_REASON}, 403, "", "not permitted for your role")]
    for client, body, status, field, message in cases:
        r = client("POST", "/api/v1/allocation/unblinding/waivers", body)
        assert r.status_code == status, r.content
        assert r.json()["detail"][0] == {"field": field, "message": message}
    assert row_counts() == counts and audit_head() == head
    # the checklist as the API reads it
    r = stat("GET", "/api/v1/allocation/unblinding/checklist")
    data = r.json()
    assert r.status_code == 200 and data["blocking"] == n and data["state"] in ("setup", "recruiting")
    groups = {g["group"]: g for g in data["groups"]}
    assert [i["key"] for i in groups["ae_outcomes"]["items"]] == [item]
    assert groups["visits_open"]["open"] == 2  # baseline and the 1-week visit
    # the PI waives one; it shows with its waiver, and the count drops
    r = pi("POST", "/api/v1/allocation/unblinding/waivers", {"item": item, "reason": WAIVE_REASON})
    assert r.status_code == 201 and r.json()["waived_by"] == users["pi"].username
    data = stat("GET", "/api/v1/allocation/unblinding/checklist").json()
    line = next(g for g in data["groups"] if g["group"] == "ae_outcomes")["items"][0]
    assert data["blocking"] == n - 1 and line["waiver"]["reason"] == WAIVE_REASON
    r = pi("POST", "/api/v1/allocation/unblinding/waivers", {"item": item, "reason": WAIVE_REASON})
    assert r.status_code == 400 and r.json()["detail"][0] == {"field": "item", "message": "is already waived"}


@pytest.mark.req("P-3.7")
def test_a_long_group_shows_its_first_lines_and_the_filter_finds_the_others(busy_trial, users, monkeypatch):
    import annulus.allocation.views as views

    monkeypatch.setattr(views, "LINES_PER_GROUP", 10)
    total = len(next(g for g in selectors.lock_checklist()["groups"] if g["group"] == "participants")["items"])
    _c, page, _token = _browser(users["pi"], "en")
    html = page.content.decode()
    assert f"Showing the first 10 of {total} lines; use the filter to find the others." in html
    section = html[html.index('<details id="group-participants"'):html.index('<details id="group-draft_forms"')]
    assert section.count('name="action" value="waive"') == 10
    last = busy_trial["many"][-1]
    assert f'value="participant:{last.pk}"' not in section
    _c, page, _token = _browser(users["pi"], "zh-hans", f"?q={last.case_number}")
    html = page.content.decode()
    section = html[html.index('<details id="group-participants"'):html.index('<details id="group-draft_forms"')]
    assert f'value="participant:{last.pk}"' in section and "其余条目请使用筛选查找" not in section


@pytest.mark.req("P-3.7")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_pi_waives_the_open_lines_of_a_group_with_one_reason(busy_trial, users, language):
    from annulus.allocation import services
    from annulus.audit.models import AuditEvent
    from annulus.errors import NotPermitted, RuleViolation

    p = busy_trial["p"]
    keys = [f"visit:{p.pk}:baseline", f"visit:{p.pk}:w1"]
    c, page, token = _browser(users["pi"], language)
    html = page.content.decode()
    form = html[html.index('name="group" value="visits_open"'):]
    form = form[:form.index("</form>")]
    assert 'name="group" value="visits_open"' in form and all(f'value="{k}"' in form for k in keys)
    counts, head = row_counts(), audit_head()
    post = {"action": "waive_group", "group": "visits_open", "item": keys, "csrfmiddlewaretoken": token}
    r = c.post("/unblinding/", {**post, "reason": ""})
    assert r.status_code == 200 and WORDS[language]["required"] in r.content.decode()
    assert _details(r.content.decode(), "visits_open") == '<details id="group-visits_open" open>'
    # all or none: one line that is not open refuses the lot, naming it
    r = c.post("/unblinding/", {**post, "item": keys + ["visit:999999:w1"], "reason": WAIVE_REASON})
    assert r.status_code == 200 and "visit:999999:w1: is not an open item of the pre-lock checklist" in r.content.decode()
    assert row_counts() == counts and audit_head() == head
    r = c.post("/unblinding/", {**post, "reason": WAIVE_REASON})
    assert r.status_code == 302
    assert set(LockWaiver.objects.values_list("item", flat=True)) == set(keys)
    assert AuditEvent.objects.filter(object_type="lock_waiver", reason=WAIVE_REASON).count() == 2
    assert not set(keys) & {i["key"] for i in selectors.lock_checklist()["blocking"]}
    # only the PI; not more than a page of lines at once
    with pytest.raises(NotPermitted):
        services.waive_lock_items(actor=users["investigator"], items=keys, reason=WAIVE_REASON)
    with pytest.raises(RuleViolation) as exc:
        services.waive_lock_items(actor=users["pi"], items=[f"participant:{i}" for i in range(101)],
                                  reason=WAIVE_REASON)
    assert exc.value.field == "item" and "at most 100" in exc.value.message
