"""A waiver of a pre-lock checklist line that belongs to a participant (its key names the
participant or one of the participant's records: participant, visit, draft form, query, adverse
event, ...) is on that participant's audit trail (the event carries the participant), each on its
own participant's; a line of the trial as a whole has none."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annulus.allocation import selectors, services
from annulus.audit.models import AuditEvent

from .lock_support import WAIVE_REASON
from .test_visits_support import transplant_dates, trial_participant  # noqa: F401

pytestmark = pytest.mark.req("P-3.7")

EVENT = dict(term="Back pain", serious=False, grade=1, causality_liposuction="not_related",
             causality_injection="not_related", causality_product="not_related", expectedness="expected",
             action_taken="none", outcome="recovering")


def test_each_waiver_is_on_its_participants_trail(trial_participant, users):
    from annulus.queries import services as qs
    from annulus.safety import services as ss
    from annulus.visits import services as vs

    p = trial_participant(lipo_days_ago=41, transplant_days_ago=20)
    q = trial_participant(lipo_days_ago=41, transplant_days_ago=20)
    ae = ss.record_adverse_event(actor=users["investigator"], participant_id=q.pk,
                                 onset_at=timezone.now() - timedelta(hours=6), **EVENT)
    query = qs.raise_query(actor=users["monitor"], participant_id=q.pk, text="Please check the date of birth",
                           assigned_to="site")
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w1",
                  visit_date=timezone.localdate() - timedelta(days=13))
    draft = vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="vas",
                         items={}, complete=False)
    expected = {f"participant:{p.pk}": p.pk, f"participant:{q.pk}": q.pk, f"visit:{q.pk}:w1": q.pk, f"ae_outcome:{ae.pk}": q.pk, f"query:{query.pk}": q.pk,
                f"crf_form:{draft.pk}": p.pk}
    items = selectors.lock_checklist()["items"]
    assert set(expected) <= set(items), set(expected) - set(items)
    # the lines of this trial are all some participant's: each waiver names its own
    keys = [k for k in items if items[k]["waiver"] is None]
    services.waive_lock_items(actor=users["pi"], items=keys, reason=WAIVE_REASON)
    events = {e.object_id: e for e in AuditEvent.objects.filter(object_type="lock_waiver")}
    from annulus.allocation.models import LockWaiver

    waivers = {w.item: str(w.pk) for w in LockWaiver.objects.all()}
    for key, pid in expected.items():
        assert events[waivers[key]].participant_id == pid, key
    assert all(events[waivers[k]].participant_id in (p.pk, q.pk) for k in keys)

    # and the waiver is on the participant's audit page
    c = Client(enforce_csrf_checks=True)
    c.force_login(users["auditor"])
    html = c.get(f"/participants/{q.pk}/audit/?type=lock_waiver").content.decode()
    assert WAIVE_REASON in html
    assert html.count("<tr>") - 1 == sum(1 for k in keys if events[waivers[k]].participant_id == q.pk)
    # the line as it read, never its key
    assert f"query:{query.pk}" not in html and "Open item" in html
    c.cookies["django_language"] = "zh-hans"
    html = c.get(f"/participants/{q.pk}/audit/?type=lock_waiver").content.decode()
    assert WAIVE_REASON in html and "未关闭项" in html and f"ae_outcome:{ae.pk}" not in html


def test_a_line_of_no_participant_has_none(db):
    assert services.waived_participant({"key": "protocol_deviation:1"}) is None
    assert services.waived_participant({"key": "participant:999999"}) is None
    assert services.waived_participant({"key": "query:999999"}) is None
