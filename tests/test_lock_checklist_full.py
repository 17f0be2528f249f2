"""The full pre-lock checklist (P-3.7): besides draft forms and participants without an
end-of-study status, it lists SAE reports not sent or not acknowledged, adverse events without a
final outcome and visits whose window closed with nothing recorded; each item leaves the list
when the work is done through the ordinary services, and a waiver of one item covers that item
only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.allocation import selectors, services
from annulus.allocation.models import LockWaiver
from annulus.audit.models import AuditEvent

from .lock_support import WAIVE_REASON
from .test_visits_support import transplant_dates, trial_participant  # noqa: F401

EVENT = dict(term="Back pain", serious=False, grade=1, causality_liposuction="not_related",
             causality_injection="not_related", causality_product="not_related", expectedness="expected",
             action_taken="none", outcome="recovering")
SERIOUS = {**EVENT, "term": "Pneumonia", "serious": True, "serious_criteria": ["hospitalisation"], "grade": 3}


def _group(name: str) -> dict:
    return next(g for g in selectors.lock_checklist()["groups"] if g["group"] == name)


def _keys(name: str) -> list[str]:
    return [i["key"] for i in _group(name)["items"]]


def _blocking() -> set[str]:
    return {i["key"] for i in selectors.lock_checklist()["blocking"]}


@pytest.mark.req("P-3.7")
def test_sae_reports_are_open_until_sent_and_acknowledged(trial_participant, users):
    from annulus.safety import services as ss

    p = trial_participant(lipo_days_ago=35, transplant_days_ago=8)
    now = timezone.now()
    ae = ss.record_adverse_event(actor=users["investigator"], participant_id=p.pk, onset_at=now - timedelta(hours=5),
                                 first_knowledge_at=now - timedelta(hours=4), **SERIOUS)
    reports = list(ae.sae_reports.order_by("due_at", "id"))
    assert len(reports) >= 2
    assert _keys("sae_reports") == [f"sae_report:{r.pk}" for r in reports]
    first = reports[0]
    group = _group("sae_reports")
    line = next(i for i in group["items"] if i["key"] == f"sae_report:{first.pk}")
    assert line["link"] == f"/safety/sae/reports/{first.pk}/" and p.label in line["label"] and "not sent" in line["label"]
    # the PI waives the unsent report; once sent it is open again, for its acknowledgement
    services.waive_lock_item(actor=users["pi"], item=f"sae_report:{first.pk}", reason=WAIVE_REASON)
    assert f"sae_report:{first.pk}" not in _blocking()
    ss.record_report_sent(actor=users["investigator"], report_id=first.pk, sent_at=now - timedelta(hours=1),
                          sent_to="Ethics office")
    assert f"sae_report_ack:{first.pk}" in _keys("sae_reports") and f"sae_report:{first.pk}" not in _keys("sae_reports")
    assert f"sae_report_ack:{first.pk}" in _blocking()
    ss.record_report_acknowledged(actor=users["investigator"], report_id=first.pk, acknowledged_at=now,
                                  acknowledged_by="Ms Receipt")
    assert _keys("sae_reports") == [f"sae_report:{r.pk}" for r in reports[1:]]
    # the event stops being serious before the other reports went out: they are no longer required
    ss.update_adverse_event(actor=users["investigator"], adverse_event_id=ae.pk, reason="not hospitalised after all",
                            serious=False, serious_criteria=[])
    assert _keys("sae_reports") == []


@pytest.mark.req("P-3.7")
def test_adverse_events_without_a_final_outcome(trial_participant, users):
    from annulus.safety import services as ss

    p = trial_participant(lipo_days_ago=35, transplant_days_ago=8)
    now = timezone.now()
    made = {}
    for outcome in ("recovering", "not_recovered", "unknown", "recovered", "recovered_with_sequelae"):
        extra = {"end_at": now - timedelta(hours=1)} if outcome.startswith("recovered") else {}
        made[outcome] = ss.record_adverse_event(actor=users["investigator"], participant_id=p.pk,
                                                onset_at=now - timedelta(hours=6),
                                                **{**EVENT, "outcome": outcome, **extra})
    open_ = [made[o] for o in ("recovering", "not_recovered", "unknown")]
    assert _keys("ae_outcomes") == [f"ae_outcome:{ae.pk}" for ae in open_]
    group = _group("ae_outcomes")
    assert "final outcome" in str(group["title"])
    line = group["items"][0]
    assert line["link"] == f"/safety/adverse-events/{open_[0].pk}/edit/" and open_[0].label in line["label"]
    assert "recovering/resolving" in line["label"]
    # the follow-up gives the final outcome: the line goes
    ss.update_adverse_event(actor=users["investigator"], adverse_event_id=open_[0].pk, reason="resolved at follow-up",
                            outcome="recovered", end_at=now - timedelta(minutes=30))
    assert _keys("ae_outcomes") == [f"ae_outcome:{ae.pk}" for ae in open_[1:]]
    # an event still not recovered at the end of follow-up is waived by the PI with the reason
    services.waive_lock_item(actor=users["pi"], item=f"ae_outcome:{open_[1].pk}", reason="Ongoing at the last visit")
    assert f"ae_outcome:{open_[1].pk}" not in _blocking() and f"ae_outcome:{open_[2].pk}" in _blocking()
    w = LockWaiver.objects.get(item=f"ae_outcome:{open_[1].pk}")
    assert w.group == "ae_outcomes" and w.waived_by == users["pi"]


@pytest.mark.req("P-3.7")
def test_visits_whose_window_closed_with_nothing_recorded(trial_participant, users):
    from annulus.participants import services as ps
    from annulus.visits import services as vs

    today = timezone.localdate()
    # transplanted 20 days ago: the baseline (up to the transplant day) and the 1-week visit
    # (days 5-9) are past their window; the 1-month one (days 23-37) is not
    p = trial_participant(lipo_days_ago=41, transplant_days_ago=20)
    # transplanted 3 days ago: no window has closed yet except the baseline's
    q = trial_participant(lipo_days_ago=24, transplant_days_ago=3)
    assert _keys("visits_open") == [f"visit:{p.pk}:baseline", f"visit:{p.pk}:w1", f"visit:{q.pk}:baseline"]
    line = _group("visits_open")["items"][1]
    assert line["link"] == f"/participants/{p.pk}/visits/w1/" and p.label in line["label"]
    assert (today - timedelta(days=11)).isoformat() in line["label"]  # the window's last day
    # the 1-week visit is recorded as missed, the baseline took place (entered late)
    vs.record_missed(actor=users["coordinator"], participant_id=p.pk, visit_id="w1", reason="Participant abroad")
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="baseline",
                  visit_date=today - timedelta(days=21))
    assert _keys("visits_open") == [f"visit:{q.pk}:baseline"]
    # a withdrawn participant has no visits left to do or miss
    ps.withdraw(actor=users["investigator"], participant_id=q.pk, withdrawn_on=today,
                category="participant_request", details="Moved away")
    assert _keys("visits_open") == []


@pytest.mark.req("P-3.7")
def test_every_group_is_listed_in_order_and_waivers_are_audited(trial_participant, users):
    from annulus.safety import services as ss

    p = trial_participant(lipo_days_ago=41, transplant_days_ago=20)
    now = timezone.now()
    ae = ss.record_adverse_event(actor=users["investigator"], participant_id=p.pk, onset_at=now - timedelta(hours=6),
                                 **EVENT)
    groups = [g["group"] for g in selectors.lock_checklist()["groups"]]
    for name in ("participants", "draft_forms", "visits_open", "sae_reports", "ae_outcomes", "ae_tasks"):
        assert name in groups
    assert groups.index("participants") < groups.index("draft_forms") < groups.index("visits_open") \
        < groups.index("sae_reports") < groups.index("ae_outcomes")
    keys = [f"visit:{p.pk}:w1", f"ae_outcome:{ae.pk}"]
    before = AuditEvent.objects.filter(object_type="lock_waiver").count()
    for key in keys:
        services.waive_lock_item(actor=users["pi"], item=key, reason=WAIVE_REASON)
    assert not set(keys) & _blocking()
    c = selectors.lock_checklist()
    assert all(c["items"][k]["waiver"].reason == WAIVE_REASON for k in keys)
    events = AuditEvent.objects.filter(object_type="lock_waiver").order_by("id")
    assert events.count() == before + 2 and {e.reason for e in events} == {WAIVE_REASON}
    # a group's open count leaves out what is waived
    assert _group("ae_outcomes")["open"] == 0 and len(_group("ae_outcomes")["items"]) == 1
