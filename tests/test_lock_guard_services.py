"""After the database lock nothing changes trial data: the three cases found by trying the
product (a completed CRF changed, a new AE, a new pre-screening) refused by the one guard, with
the lock's date in the message, nothing written and the audit chain untouched (P-3.7)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.errors import RuleViolation
from annulus.trial.lock import TrialLocked, assert_writable

from .lock_support import audit_head, row_counts, sign_lock
from .test_visits_support import GOOD, at_w1, aware, transplant_dates, trial_participant  # noqa: F401

AE = dict(term="Back pain", onset_at=None, serious=False, grade=1, causality_liposuction="not_related",
          causality_injection="not_related", causality_product="not_related", expectedness="expected",
          action_taken="none", outcome="recovering")


@pytest.fixture
def locked_w1(at_w1, users):
    """A participant whose completed 1-week VAS form exists when the database is locked."""
    from annulus.visits import services as vs

    p, v = at_w1
    vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="vas", items=GOOD["vas"],
                 complete=True, collected_at=aware(v.visit_date))
    sign_lock(users)
    return p, v


def _refused(call):
    counts, head = row_counts(), audit_head()
    with pytest.raises(TrialLocked) as exc:
        call()
    assert exc.value.field == "trial" and exc.value.status == 409
    day = timezone.localdate().isoformat()
    assert exc.value.message == f"the database is locked (signed on {day}); trial data can no longer be changed"
    assert row_counts() == counts and audit_head() == head


@pytest.mark.req("P-3.7")
def test_a_completed_crf_cannot_change_after_the_lock(locked_w1, users):
    from annulus.visits import services as vs
    from annulus.visits.models import FormRecord

    p, _v = locked_w1
    _refused(lambda: vs.save_form(actor=users["coordinator"], participant_id=p.pk, visit_key="w1", form_id="vas",
                                  items={"vas_mm": 20}, complete=True, reason="typing error in the VAS"))
    rec = FormRecord.objects.get(participant=p, form_id="vas")
    assert rec.items == {"vas_mm": 62} and rec.state == FormRecord.COMPLETE and rec.revision == 1


@pytest.mark.req("P-3.7")
def test_no_adverse_event_is_recorded_after_the_lock(locked_w1, users):
    from annulus.safety import services as ss

    p, _v = locked_w1
    _refused(lambda: ss.record_adverse_event(actor=users["coordinator"], participant_id=p.pk,
                                             **{**AE, "onset_at": timezone.now() - timedelta(hours=2)}))


@pytest.mark.req("P-3.7")
def test_no_one_is_prescreened_after_the_lock(locked_w1, users):
    from annulus.participants import services as ps

    _refused(lambda: ps.prescreen(actor=users["coordinator"], initials="NEW", sex="F",
                                  recruitment_source="inpatient_referral", prescreened_on=timezone.localdate()))


@pytest.mark.req("P-3.7")
def test_the_guard_passes_before_the_lock_and_is_a_rule_violation_after(users, make_participant):
    from annulus.trial.services import set_trial_state

    assert assert_writable("test").state in ("setup", "recruiting")
    for state in ("locked", "unblinded_1", "unblinded_2"):
        set_trial_state(actor=None, state=state, reason="test")
        with pytest.raises(RuleViolation) as exc:
            assert_writable("test")
        assert exc.value.field == "trial"
        assert exc.value.message.startswith("the database is locked (signed on ")
