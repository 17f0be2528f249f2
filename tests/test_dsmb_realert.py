"""DSMB alerts are not once per threshold: "any death" and "any SAE possibly related to the
product" alert on every qualifying event (once per event), and a count threshold (three grade >= 3
events in one arm) alerts again at each new multiple of its count: 3, 6, 9 ..."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.safety import services
from annulus.safety.models import DsmbAlert
from annulus.trial.models import Notification

pytestmark = pytest.mark.django_db


def event(users, p, **over):
    now = timezone.now()
    fields = dict(term="Back pain flare", onset_at=now - timedelta(days=1), serious=False, serious_criteria=[], grade=3,
                  causality_liposuction="not_related", causality_injection="possible", causality_product="unlikely",
                  expectedness="expected", action_taken="treatment", outcome="recovering")
    fields.update(over)
    return services.record_adverse_event(actor=users["investigator"], participant_id=p.pk, **fields)


def death(users, p):
    now = timezone.now()
    return event(users, p, term="Sudden cardiac death", grade=5, outcome="fatal", end_at=now - timedelta(hours=5),
                 serious=True, serious_criteria=["death"], first_knowledge_at=now - timedelta(hours=4))


def alerts(threshold: str) -> list[DsmbAlert]:
    return list(DsmbAlert.objects.filter(threshold_id=threshold).order_by("id"))


def dsmb_notes(users) -> int:
    return Notification.objects.filter(user=users["dsmb"], kind="dsmb_alert").count()


@pytest.mark.req("P-6.4")
def test_every_death_alerts_once_per_death(users, make_participant, arms):
    people = [make_participant("enrolled") for _ in range(3)]
    deaths = [death(users, p) for p in people]
    got = alerts("any_death")
    assert [a.event_id for a in got] == [d.pk for d in deaths]
    assert [a.adverse_event_ids for a in got] == [[d.pk] for d in deaths]
    # a follow-up of a death already alerted is not a new alert
    services.update_adverse_event(actor=users["investigator"], adverse_event_id=deaths[0].pk, reason="autopsy",
                                  description="Autopsy: myocardial infarction")
    assert len(alerts("any_death")) == 3
    # each death is told once to the DSMB; other events tell nothing new about deaths
    event(users, people[0], grade=1)
    assert len(alerts("any_death")) == 3


@pytest.mark.req("P-6.4")
def test_every_related_sae_alerts_including_after_a_downgrade(users, make_participant, arms):
    p, q = make_participant("enrolled"), make_participant("enrolled")
    now = timezone.now()
    sae = dict(serious=True, serious_criteria=["hospitalisation"], first_knowledge_at=now - timedelta(hours=2),
               causality_product="possible", term="Discitis")
    first = event(users, p, **sae)
    assert [a.event_id for a in alerts("related_sae")] == [first.pk]
    # the first is reassessed as unrelated; a second related SAE still alerts (the count stays at one)
    services.update_adverse_event(actor=users["investigator"], adverse_event_id=first.pk, reason="reassessed",
                                  causality_product="unlikely")
    second = event(users, q, **sae)
    assert [a.event_id for a in alerts("related_sae")] == [first.pk, second.pk]
    # the first becoming related again was already told: no second alert for it
    services.update_adverse_event(actor=users["investigator"], adverse_event_id=first.pk, reason="reassessed again",
                                  causality_product="probable")
    assert [a.event_id for a in alerts("related_sae")] == [first.pk, second.pk]


@pytest.mark.req("P-6.4")
def test_count_threshold_realerts_at_each_new_multiple(users, make_participant, arms):
    high = [make_participant("enrolled") for _ in range(9)]
    low = make_participant("enrolled")
    arms.update({p.pk: "high" for p in high})
    arms[low.pk] = "low"
    levels = []
    for i, p in enumerate(high, start=1):
        event(users, p)
        levels.append([a.level for a in alerts("grade3_in_one_arm")])
        if i == 4:
            event(users, low)  # another arm's event changes nothing in this arm
    assert levels == [[], [], [3], [3], [3], [3, 6], [3, 6], [3, 6], [3, 6, 9]]
    got = alerts("grade3_in_one_arm")
    assert {a.arm for a in got} == {"high"} and [a.count for a in got] == [3, 6, 9]
    assert [len(a.adverse_event_ids) for a in got] == [3, 6, 9]
    assert dsmb_notes(users) == 3


@pytest.mark.req("P-6.4")
def test_an_alert_from_before_realerting_is_not_repeated(users, make_participant, arms):
    """An alert stored when alerts were once per threshold stands for the count it was raised at
    (the migration sets its level to that count): the next alert comes at the next multiple."""
    people = [make_participant("enrolled") for _ in range(6)]
    arms.update({p.pk: "mid" for p in people})
    for p in people[:3]:
        event(users, p)
    old = DsmbAlert.objects.get(threshold_id="grade3_in_one_arm")
    DsmbAlert.objects.filter(pk=old.pk).update(level=4, count=4)  # raised at 4 events, as an old row may be
    event(users, people[3])
    event(users, people[4])
    assert len(alerts("grade3_in_one_arm")) == 1
    event(users, people[5])
    assert [a.level for a in alerts("grade3_in_one_arm")] == [4, 6]
