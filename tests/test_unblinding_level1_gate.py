"""First-level unblinding needs the database lock AND the pre-lock checklist empty - every item
closed or waived - read again at release time (P-3.7, "CRFs checked and signed"). Nothing can
change trial data after the lock, but open work can still appear: time passes and a follow-up
visit's window closes with nothing recorded, or the database owner edits a row outside the
application. Release is then refused naming what is open (service, page, API); only the
principal investigator's waiver of that new item, with a reason, lets it go ahead."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annulus.allocation import selectors, services
from annulus.allocation.models import LockWaiver, UnblindingStep
from annulus.errors import RuleViolation
from annulus.trial.lock import TrialLocked
from annulus.trial.selectors import trial_state
from tests.conftest import TEST_PASSWORD

from .lock_support import STATEMENT, WAIVE_REASON, audit_head, row_counts, sign_lock
from .test_visits_support import transplant_dates, trial_participant  # noqa: F401

EVENT = dict(term="Back pain", serious=False, grade=1, causality_liposuction="not_related",
             causality_injection="not_related", causality_product="not_related", expectedness="expected",
             action_taken="none")


def _release(users):
    return services.release_level1(actor=users["designer"], password=TEST_PASSWORD, statement=STATEMENT)


def _days_later(monkeypatch, days: int):
    """The calendar moves on ``days`` (what the schedule reads as today); explicit dates keep theirs."""
    real = timezone.localdate
    future = real() + timedelta(days=days)
    monkeypatch.setattr(timezone, "localdate", lambda value=None, timezone=None: future if value is None
                        else real(value, timezone))
    return future


def _browser(user, language):
    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(user)
    page = c.get("/unblinding/")
    return c, page, c.cookies["csrftoken"].value


def _script(user):
    from annulus.accounts.services import issue_token

    key = issue_token(user=user, name="gate test")
    c = Client(enforce_csrf_checks=True)

    def post(path, body):
        return c.post(path, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")
    return post


@pytest.fixture
def locked_in_follow_up(trial_participant, users):
    """A participant transplanted three days ago (the 1-week window, days 5-9, still to come), the
    open items of the day waived by the PI, and the database locked."""
    p = trial_participant(lipo_days_ago=24, transplant_days_ago=3)
    assert selectors.lock_checklist()["blocking"]  # the participant and the missed baseline, at least
    sign_lock(users)
    assert trial_state() == "locked" and selectors.lock_checklist()["blocking"] == []
    return p


@pytest.mark.req("P-3.7")
def test_a_visit_window_that_closes_after_the_lock_holds_back_first_level_unblinding(locked_in_follow_up, users,
                                                                                     monkeypatch):
    from annulus.visits import services as vs

    p = locked_in_follow_up
    _days_later(monkeypatch, 10)
    blocking = selectors.lock_checklist()["blocking"]
    assert [i["key"] for i in blocking] == [f"visit:{p.pk}:w1"]
    counts, head = row_counts(), audit_head()
    with pytest.raises(RuleViolation) as exc:
        _release(users)
    assert exc.value.field == "checklist"
    assert exc.value.message.startswith("first-level unblinding needs every item of the pre-lock checklist closed "
                                        "or waived: 1 open")
    assert blocking[0]["label"] in exc.value.message
    assert row_counts() == counts and audit_head() == head and trial_state() == "locked"
    # the visit cannot be recorded any more: the lock refuses it, as every write of trial data
    with pytest.raises(TrialLocked):
        vs.record_missed(actor=users["coordinator"], participant_id=p.pk, visit_id="w1", reason="Participant abroad")
    # items from before the lock stay as they were: no new waiver, nothing unknown
    for item in (f"participant:{p.pk}", "participant:999999"):
        with pytest.raises(TrialLocked):
            services.waive_lock_item(actor=users["pi"], item=item, reason=WAIVE_REASON)
    # only the PI waives the new item
    from annulus.errors import NotPermitted

    with pytest.raises(NotPermitted):
        services.waive_lock_item(actor=users["investigator"], item=f"visit:{p.pk}:w1", reason=WAIVE_REASON)
    w = services.waive_lock_item(actor=users["pi"], item=f"visit:{p.pk}:w1", reason="Follow-up ended at the lock")
    assert w.group == "visits_open" and selectors.lock_checklist()["blocking"] == []
    _release(users)
    assert trial_state() == "unblinded_1"
    # after the release the checklist no longer matters and nothing more is waived
    with pytest.raises(TrialLocked):
        services.waive_lock_item(actor=users["pi"], item=f"visit:{p.pk}:w1", reason=WAIVE_REASON)


@pytest.mark.req("P-3.7")
def test_a_database_owner_edit_after_the_lock_holds_back_first_level_unblinding(trial_participant, users):
    from annulus.safety import services as ss
    from annulus.safety.models import AdverseEvent

    p = trial_participant(lipo_days_ago=35, transplant_days_ago=8)
    now = timezone.now()
    ae = ss.record_adverse_event(actor=users["investigator"], participant_id=p.pk, onset_at=now - timedelta(hours=6),
                                 outcome="recovered", end_at=now - timedelta(hours=1), **EVENT)
    sign_lock(users)
    assert f"ae_outcome:{ae.pk}" not in selectors.lock_checklist()["items"]
    # A database-owner edit outside the application (no service, no audit record): the outcome is
    # set back to "recovering". The application cannot prevent it; the release must not miss it.
    AdverseEvent.objects.filter(pk=ae.pk).update(outcome="recovering", end_at=None)
    with pytest.raises(RuleViolation) as exc:
        _release(users)
    assert exc.value.field == "checklist" and ae.label in exc.value.message
    assert not UnblindingStep.objects.filter(kind="level1").exists()
    # the API answers the same, naming the field
    resp = _script(users["designer"])("/api/v1/allocation/unblinding/level1",
                                      {"password": TEST_PASSWORD, "statement": STATEMENT})
    assert resp.status_code == 400
    detail = resp.json()["detail"]
    assert detail[0]["field"] == "checklist" and ae.label in detail[0]["message"]
    assert trial_state() == "locked"
    # the PI waives it through the API; then the release goes ahead
    resp = _script(users["pi"])("/api/v1/allocation/unblinding/waivers",
                                {"item": f"ae_outcome:{ae.pk}", "reason": "Outcome edited outside the system; "
                                                                          "recovered per source, see note"})
    assert resp.status_code == 201 and resp.json()["item"] == f"ae_outcome:{ae.pk}"
    resp = _script(users["designer"])("/api/v1/allocation/unblinding/level1",
                                      {"password": TEST_PASSWORD, "statement": STATEMENT})
    assert resp.status_code == 201 and trial_state() == "unblinded_1"


@pytest.mark.req("P-3.7")
@pytest.mark.parametrize("language,words", [
    ("en", {"heading": "open work that appeared after the lock",
            "blocked": "Group labels cannot be released: 1 item of the pre-lock checklist is neither closed nor waived.",
            "refused": "first-level unblinding needs every item of the pre-lock checklist closed or waived: 1 open"}),
    ("zh-hans", {"heading": "锁库后出现的未完成工作",
                 "blocked": "无法发布组别标签：锁库前检查清单中有 1 项既未关闭也未豁免。",
                 "refused": "第一级揭盲要求锁库前检查清单的每一项均已关闭或豁免：尚有 1 项未关闭"}),
])
def test_the_page_shows_what_holds_back_the_release(locked_in_follow_up, users, monkeypatch, language, words):
    p = locked_in_follow_up
    _days_later(monkeypatch, 10)
    item = f"visit:{p.pk}:w1"
    c, page, token = _browser(users["designer"], language)
    html = page.content.decode()
    assert page.status_code == 200
    assert words["heading"] in html and words["blocked"] in html
    assert f'href="/participants/{p.pk}/visits/w1/"' in html
    assert "disabled" in html[html.index('value="level1"'):]
    assert 'value="waive"' not in html  # the key holder sees the item, not the PI's waiver form
    # posted all the same (the disabled form is no guard): refused, the reason shown, nothing written
    counts, head = row_counts(), audit_head()
    r = c.post("/unblinding/", {"action": "level1", "statement": STATEMENT, "password": TEST_PASSWORD,
                                "confirm": "on", "csrfmiddlewaretoken": token})
    assert r.status_code == 200 and words["refused"] in r.content.decode()
    assert row_counts() == counts and audit_head() == head and trial_state() == "locked"
    # the PI waives it on the page; then the key holder releases
    pc, page, ptoken = _browser(users["pi"], language)
    assert f'value="{item}"' in page.content.decode()
    r = pc.post("/unblinding/", {"action": "waive", "item": item, "reason": WAIVE_REASON, "csrfmiddlewaretoken": ptoken})
    assert r.status_code == 302 and LockWaiver.objects.filter(item=item).exists()
    html = c.get("/unblinding/").content.decode()
    assert words["heading"] not in html and "disabled" not in html[html.index('value="level1"'):]
    r = c.post("/unblinding/", {"action": "level1", "statement": STATEMENT, "password": TEST_PASSWORD,
                                "confirm": "on", "csrfmiddlewaretoken": token})
    assert r.status_code == 302 and trial_state() == "unblinded_1"
