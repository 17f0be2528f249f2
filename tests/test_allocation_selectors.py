"""The selectors other apps call, and the one place the blind is decided."""

import pytest
from django.utils import timezone

from annulus.allocation import selectors, services, testing
from annulus.allocation.models import Envelope
from annulus.errors import NotPermitted, RuleViolation
from annulus.participants import services as ps
from tests.conftest import TEST_PASSWORD


@pytest.mark.req("X-3.8")
def test_closed_report_arms_for_the_dsmb_only(users, make_participant):
    people = testing.randomised(users, make_participant, 4)
    arms = selectors.arms_for_closed_report(users["dsmb"])
    assert set(arms) == {p.pk for p in people} and set(arms.values()) <= {"high", "mid", "low", "control"}
    assert arms == {p.pk: selectors.arm_of_for_system(p.pk) for p in people}
    for role in ("investigator", "coordinator", "statistician", "monitor", "auditor", "ethics", "admin", "pharmacist"):
        with pytest.raises(NotPermitted):
            selectors.arms_for_closed_report(users[role])


@pytest.mark.req("X-3.8")
def test_the_blind_by_role(users, make_participant):
    p = testing.randomised(users, make_participant, 1)[0]
    for role in ("investigator", "coordinator", "statistician", "monitor", "auditor", "ethics", "admin", "dsmb"):
        view = selectors.participant_allocation(users[role], p)
        assert "group_label" not in view and "arm" not in view, role
    assert "group_label" in selectors.participant_allocation(users["designer"], p)
    assert "arm" not in selectors.participant_allocation(users["designer"], p)
    assert "arm" in selectors.participant_allocation(users["pharmacist"], p)
    assert "group_label" not in selectors.participant_allocation(users["pharmacist"], p)


@pytest.mark.req("P-3.2")
def test_helpers_for_other_apps(users, make_participant, monkeypatch):
    testing.liposuction_days_ago(monkeypatch, 21)
    a, b = testing.randomised(users, make_participant, 2)
    assert selectors.randomised_participant_ids() == [a.pk, b.pk]
    assert selectors.arm_of_for_system(make_participant("enrolled").pk) is None
    assert selectors.transplant_date(a.pk) is None
    testing.transplanted(users, a, Envelope.objects.get(participant=a))
    assert selectors.transplant_date(a.pk) == timezone.localdate()
    testing.released_and_dispensed(users, Envelope.objects.get(participant=b))
    services.emergency_unblind(actor=users["investigator"], participant_id=b.pk, password=TEST_PASSWORD,
                               reason="Emergency surgery, anaesthetist must know")
    assert selectors.emergency_unblinded_participant_ids() == [b.pk]


@pytest.mark.req("P-4.2")
def test_nothing_is_dispensed_for_a_withdrawn_participant(users, make_participant, monkeypatch):
    testing.liposuction_days_ago(monkeypatch, 21)  # the lot is tested after the liposuction
    p = testing.randomised(users, make_participant, 1)[0]
    env = Envelope.objects.get(participant=p)
    services.record_release(actor=users["pharmacist"], envelope_id=env.pk, lot_number="L",
                            tested_on=timezone.localdate(), results=testing.PASSING)
    ps.withdraw(actor=users["coordinator"], participant_id=p.pk, withdrawn_on=timezone.localdate(),
                category="participant_request", details="Changed mind before the injection")
    with pytest.raises(RuleViolation) as exc:
        services.dispense(actor=users["pharmacist"], envelope_id=env.pk)
    assert exc.value.field == "participant"
