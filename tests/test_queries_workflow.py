"""Manual queries (X-7.4): raised on an item of a form by the monitor, answered by the site,
closed or re-opened by the raiser's side; a thread with who and when; every step audited in its
transaction; rights enforced."""

from __future__ import annotations

import json

import pytest

from annulus.audit.models import AuditEvent
from annulus.errors import NotPermitted, RuleViolation
from annulus.queries import selectors, services
from annulus.queries.models import Query

from .test_visits_support import at_w1, complete_visit, trial_participant, transplant_dates  # noqa: F401


@pytest.fixture
def w1_vas(at_w1, users):  # noqa: F811
    from annulus.visits import services as vs

    p, v = at_w1
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="vas",
                 items={"vas_mm": 40}, complete=True)
    return p


def _events(q):
    return [json.loads(e.payload) for e in AuditEvent.objects.filter(object_type="query", object_id=str(q.pk))]


@pytest.mark.req("X-7.4")
def test_lifecycle_open_answered_closed_reopened_with_thread_and_audit(w1_vas, users):
    p = w1_vas
    q = services.raise_query(actor=users["monitor"], participant_id=p.pk, visit="w1", form="vas", item="vas_mm",
                             text="Source says 45 mm, please check", assigned_to="coordinator")
    assert (q.status, q.origin, q.assigned_to, q.raised_by) == ("open", "manual", "coordinator", users["monitor"])
    assert selectors.open_query_counts([p.pk]) == {(p.pk, "w1", "vas"): 1}
    services.answer_query(actor=users["coordinator"], query_id=q.pk, text="Corrected the value to 45 mm")
    assert Query.objects.get(pk=q.pk).status == "answered"
    assert selectors.open_query_counts([p.pk]) == {(p.pk, "w1", "vas"): 1}  # answered still counts
    services.reopen_query(actor=users["monitor"], query_id=q.pk, text="Form still shows 40 mm")
    assert Query.objects.get(pk=q.pk).status == "open"
    services.answer_query(actor=users["investigator"], query_id=q.pk, text="Now saved as 45 mm")
    services.close_query(actor=users["monitor"], query_id=q.pk, text="Verified against the source")
    q = Query.objects.get(pk=q.pk)
    assert q.status == "closed" and q.closed_by == users["monitor"] and q.closed_at is not None
    assert selectors.open_query_counts([p.pk]) == {}
    thread = list(q.messages.order_by("at", "id"))
    assert [(m.kind, m.author.username, m.author_role) for m in thread] == [
        ("raise", "t_monitor", "monitor"), ("answer", "t_coordinator", "coordinator"), ("reopen", "t_monitor", "monitor"),
        ("answer", "t_investigator", "investigator"), ("close", "t_monitor", "monitor")]
    assert all(m.at is not None for m in thread)
    events = _events(q)
    assert [e["action"] for e in events] == ["create", "change", "change", "change", "change"]
    assert [e["changes"].get("status") for e in events] == [
        [None, "open"], ["open", "answered"], ["answered", "open"], ["open", "answered"], ["answered", "closed"]]
    assert events[0]["changes"]["item"] == "vas_mm" and events[0]["actor"] == "t_monitor"
    assert events[-1]["reason"] == "Verified against the source"
    assert all(e["participant_id"] == p.pk for e in events)


@pytest.mark.req("X-7.4")
def test_queries_on_a_form_a_visit_and_the_participant(w1_vas, users):
    p = w1_vas
    on_form = services.raise_query(actor=users["data_manager"], participant_id=p.pk, visit="w1", form="odi",
                                   text="ODI form missing", assigned_to="site")
    on_visit = services.raise_query(actor=users["coordinator"], participant_id=p.pk, visit="w1", item="visit_date",
                                    text="Date on the source is a day later?", assigned_to="investigator")
    on_participant = services.raise_query(actor=users["investigator"], participant_id=p.pk, text="Casebook cover",
                                          assigned_to="data_manager")
    assert on_form.item == "" and on_visit.form == "" and on_participant.visit == ""
    assert selectors.open_query_counts([p.pk]) == {(p.pk, "w1", "odi"): 1, (p.pk, "w1", ""): 1, (p.pk, "", ""): 1}
    assert selectors.status_counts(p.pk, "w1") == {"open": 2, "answered": 0}


@pytest.mark.req("X-7.4")
def test_who_may_do_what(w1_vas, users):
    p = w1_vas
    q = services.raise_query(actor=users["monitor"], participant_id=p.pk, visit="w1", form="vas", item="vas_mm",
                             text="Please check", assigned_to="site")
    for role in ("auditor", "ethics", "pharmacist", "designer", "statistician"):
        with pytest.raises(NotPermitted):
            services.raise_query(actor=users[role], participant_id=p.pk, text="x", assigned_to="site")
    for role in ("monitor", "data_manager", "auditor"):
        with pytest.raises(NotPermitted):  # the site answers
            services.answer_query(actor=users[role], query_id=q.pk, text="answer")
    for role in ("coordinator", "investigator", "auditor"):  # someone else's query, without the right
        with pytest.raises(RuleViolation) as exc:
            services.close_query(actor=users[role], query_id=q.pk, text="done")
        assert exc.value.field == "query" and exc.value.status == 403
    # the data manager is on the raiser's side; a coordinator may close a query of their own
    services.close_query(actor=users["data_manager"], query_id=q.pk, text="Checked")
    own = services.raise_query(actor=users["coordinator"], participant_id=p.pk, visit="w1", form="vas",
                               text="Note to self", assigned_to="investigator")
    services.close_query(actor=users["coordinator"], query_id=own.pk, text="Settled")
    assert Query.objects.get(pk=own.pk).status == "closed"


@pytest.mark.req("X-7.4")
def test_answering_a_query_on_a_locked_record_is_refused(w1_vas, users):
    from annulus.participants import locks
    from annulus.participants import services as ps

    p = w1_vas
    # a lock waits for open queries; a question about a locked form may still be raised
    ps.lock_record(actor=users["data_manager"], participant_id=p.pk, visit="w1", form="vas")
    q = services.raise_query(actor=users["monitor"], participant_id=p.pk, visit="w1", form="vas", item="vas_mm",
                             text="Please check", assigned_to="site")
    before = AuditEvent.objects.count()
    with pytest.raises(locks.RecordLocked):
        services.answer_query(actor=users["coordinator"], query_id=q.pk, text="Corrected")
    assert Query.objects.get(pk=q.pk).status == "open" and AuditEvent.objects.count() == before


@pytest.mark.req("X-7.4", "P-3.7")
def test_open_and_answered_queries_are_open_work_before_the_lock(w1_vas, users):
    from annulus.trial.extensions import lock_checklist_groups

    def listed():
        group = next(g for g in lock_checklist_groups() if g["group"] == "open_queries")
        return [i["key"] for i in group["items"]]

    p = w1_vas
    assert listed() == []
    q = services.raise_query(actor=users["monitor"], participant_id=p.pk, visit="w1", form="vas", item="vas_mm",
                             text="Please check", assigned_to="site")
    assert listed() == [f"query:{q.pk}"]
    services.answer_query(actor=users["coordinator"], query_id=q.pk, text="Checked")
    assert listed() == [f"query:{q.pk}"]  # answered is not settled until the raiser's side closes it
    services.close_query(actor=users["monitor"], query_id=q.pk, text="Verified")
    assert listed() == []


@pytest.mark.req("X-7.4")
def test_the_participant_audit_page_names_query_steps(w1_vas, users, client_for):
    p = w1_vas
    q = services.raise_query(actor=users["monitor"], participant_id=p.pk, visit="w1", form="vas", item="vas_mm",
                             text="Please check", assigned_to="site")
    services.answer_query(actor=users["coordinator"], query_id=q.pk, text="Checked against the source")
    html = client_for("auditor").get(f"/participants/{p.pk}/audit/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "质疑" in html and "待回答 → 已回答" in html and "Checked against the source" in html
