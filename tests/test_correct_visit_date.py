"""Correcting a recorded visit date: the same checks as opening the visit, collection times kept
within reach, a reason required, the old date kept in the audit trail (P-4.4, X-4.8, X-7.3)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.errors import RuleViolation

from .test_visits_support import GOOD, aware, transplant_dates, trial_participant  # noqa: F401


@pytest.fixture
def w1(trial_participant, transplant_dates, users):
    from annulus.visits import services as vs

    p = trial_participant(lipo_days_ago=225, transplant_days_ago=200)
    tx = transplant_dates[p.pk]
    v = vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w1", visit_date=tx + timedelta(days=7))
    return p, v, tx


def _correct(users, p, day, reason="typed the wrong day", key="w1"):
    from annulus.visits import services as vs

    return vs.correct_visit_date(actor=users["coordinator"], participant_id=p.pk, visit_key=key, visit_date=day,
                                 reason=reason)


def _state():
    from annulus.audit.models import AuditEvent
    from annulus.visits.models import Visit

    return list(Visit.objects.values_list("id", "visit_date")), AuditEvent.objects.count()


@pytest.mark.req("X-4.8", "X-7.3")
def test_a_visit_date_is_corrected_with_its_reason_in_the_audit_trail(w1, users):
    import json

    from annulus.audit.models import AuditEvent
    from annulus.audit.selectors import verify_chain

    p, v, tx = w1
    new = tx + timedelta(days=8)
    corrected = _correct(users, p, new, reason="Visit was on the 8th day; the 7th was typed")
    assert corrected.visit_date == new
    event = AuditEvent.objects.filter(object_type="visit", object_id=str(v.pk)).order_by("-id").first()
    assert event.reason == "Visit was on the 8th day; the 7th was typed"
    assert json.loads(event.payload)["changes"]["visit_date"] == [(tx + timedelta(days=7)).isoformat(), new.isoformat()]
    assert verify_chain().ok


@pytest.mark.req("X-4.8", "P-4.4")
@pytest.mark.parametrize("days, field, words", [
    (0, "visit_date", "not after the transplantation"),  # the 1-week visit follows transplantation
    (120, "visit_date", "window of the"),  # would lie in a later visit's window
])
def test_a_date_breaking_the_schedule_is_refused(w1, users, days, field, words):
    p, _v, tx = w1
    before = _state()
    with pytest.raises(RuleViolation) as e:
        _correct(users, p, tx + timedelta(days=days))
    assert e.value.field == field and words in e.value.message
    assert _state() == before


@pytest.mark.req("X-4.8")
def test_reason_future_date_and_same_date_are_refused(w1, users):
    p, v, tx = w1
    before = _state()
    for day, reason, field in [(tx + timedelta(days=8), "", "reason"),
                               (timezone.localdate() + timedelta(days=1), "x", "visit_date"),
                               (v.visit_date, "x", "visit_date")]:
        with pytest.raises(RuleViolation) as e:
            _correct(users, p, day, reason=reason)
        assert e.value.field == field
    assert _state() == before


@pytest.mark.req("P-4.7", "X-4.8")
def test_forms_collected_far_from_the_new_date_block_the_correction(w1, users):
    from annulus.visits import services as vs

    p, _v, _tx = w1
    today = timezone.localdate()
    u = vs.add_unscheduled_visit(actor=users["coordinator"], participant_id=p.pk, visit_date=today - timedelta(days=1),
                                 reason="back pain flare", forms=["vas", "vitals"])
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key=u.key, form_id="vas", items=GOOD["vas"],
                 complete=True, collected_at=aware(today - timedelta(days=1)))
    before = _state()
    with pytest.raises(RuleViolation) as e:
        _correct(users, p, today - timedelta(days=20), key=u.key)
    assert e.value.field == "visit_date" and "VAS" in e.value.message and "collection time" in e.value.message
    assert _state() == before
    assert _correct(users, p, today - timedelta(days=3), key=u.key).visit_date == today - timedelta(days=3)


@pytest.mark.req("X-4.8")
def test_missed_visit_has_no_date_to_correct(trial_participant, transplant_dates, users):
    from annulus.visits import services as vs

    p = trial_participant(lipo_days_ago=40, transplant_days_ago=19)
    vs.record_missed(actor=users["coordinator"], participant_id=p.pk, visit_id="baseline", reason="did not come")
    with pytest.raises(RuleViolation) as e:
        _correct(users, p, timezone.localdate() - timedelta(days=20), key="baseline")
    assert e.value.field == "visit"


@pytest.mark.req("X-4.8")
def test_visit_page_and_api_correct_the_date(w1, client_for):
    p, v, tx = w1
    c = client_for("coordinator")
    page = c.get(f"/participants/{p.pk}/visits/w1/").content.decode()
    assert "Correct the visit date" in page
    r = c.post(f"/participants/{p.pk}/visits/w1/", {"action": "correct_date", "visit_date": tx.isoformat(),
                                                     "reason": "wrong day"})
    assert r.status_code == 200 and "not after the transplantation" in r.content.decode()
    r = c.post(f"/participants/{p.pk}/visits/w1/", {"action": "correct_date",
                                                     "visit_date": (tx + timedelta(days=6)).isoformat(),
                                                     "reason": "wrong day"})
    assert r.status_code == 302
    url = f"/api/v1/visits/participants/{p.pk}/visits/w1"
    r = c.patch(url, {"visit_date": (tx + timedelta(days=8)).isoformat()}, content_type="application/json")
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "reason"
    r = c.patch(url, {"visit_date": (tx + timedelta(days=8)).isoformat(), "reason": "source document says the 8th"},
                content_type="application/json")
    assert r.status_code == 200 and r.json()["visit_date"] == (tx + timedelta(days=8)).isoformat()
    assert client_for("monitor").patch(url, {"visit_date": tx.isoformat(), "reason": "x"},
                                       content_type="application/json").status_code == 403
