"""DSMB safety thresholds from the protocol: evaluated on every AE save, the DSMB notified at
once (on every death; count thresholds at each new multiple, see test_dsmb_realert.py); per-arm thresholds use the allocation system reading and show nothing to the
blinded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.audit.models import AuditEvent
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


def dsmb_notes(users):
    return list(Notification.objects.filter(user=users["dsmb"], kind="dsmb_alert"))


@pytest.mark.req("P-6.4")
def test_every_death_notifies_the_dsmb(users, make_participant, arms):
    p, q = make_participant("enrolled"), make_participant("enrolled")
    now = timezone.now()
    death = dict(term="Sudden cardiac death", grade=5, outcome="fatal", end_at=now - timedelta(hours=5), serious=True,
                 serious_criteria=["death"], first_knowledge_at=now - timedelta(hours=4), causality_product="unlikely")
    event(users, p, **death)
    notes = dsmb_notes(users)
    assert len(notes) == 1 and "Any death" in notes[0].subject
    assert DsmbAlert.objects.filter(threshold_id="any_death").count() == 1
    event(users, q, **death)  # a second death alerts again
    assert len(dsmb_notes(users)) == 2
    assert not Notification.objects.filter(kind="dsmb_alert").exclude(user=users["dsmb"]).exists()


@pytest.mark.req("P-6.4")
def test_related_sae_crosses_on_a_follow_up_save(users, make_participant, arms):
    p = make_participant("enrolled")
    now = timezone.now()
    ae = event(users, p, serious=True, serious_criteria=["hospitalisation"], first_knowledge_at=now - timedelta(hours=2),
               causality_product="unlikely", term="Discitis")
    assert not DsmbAlert.objects.filter(threshold_id="related_sae").exists()
    services.update_adverse_event(actor=users["investigator"], adverse_event_id=ae.pk, reason="causality reassessed",
                                  causality_product="possible")
    alert = DsmbAlert.objects.get(threshold_id="related_sae")
    assert alert.triggered_by_ae_id == ae.pk and alert.arm == ""
    services.update_adverse_event(actor=users["investigator"], adverse_event_id=ae.pk, reason="more detail",
                                  description="MRI confirmed")
    assert DsmbAlert.objects.filter(threshold_id="related_sae").count() == 1


@pytest.mark.req("P-6.4", "X-3.8")
def test_per_arm_threshold_counts_within_one_arm_and_hides_the_arm(users, make_participant, arms, client_for):
    people = [make_participant("enrolled") for _ in range(4)]
    arms.update({people[0].pk: "high", people[1].pk: "high", people[2].pk: "low", people[3].pk: "high"})
    event(users, people[0])
    event(users, people[1])
    event(users, people[2])  # three grade-3 events, but only two in one arm
    assert not DsmbAlert.objects.filter(threshold_id="grade3_in_one_arm").exists()
    event(users, people[3])
    alert = DsmbAlert.objects.get(threshold_id="grade3_in_one_arm")
    assert alert.arm == "high" and alert.count == 3
    note = Notification.objects.get(user=users["dsmb"], kind="dsmb_alert")
    # the notification (also mailed) names neither the arm nor the events; the alert's page does
    assert "High dose" not in note.body and "High dose" not in note.subject and "high" not in note.subject.lower().split()
    assert "High dose" in client_for("dsmb").get(note.link).content.decode()
    # the audit trail, readable by blinded roles, does not name the arm
    for ev in AuditEvent.objects.filter(object_type__in=["dsmb_alert", "notification"]):
        assert "high" not in ev.payload.lower().replace("threshold", "")
    # blinded roles see no alert; the DSMB sees it with its arm
    inv_page = client_for("investigator").get("/safety/dsmb/").content.decode()
    assert "Threshold alerts" not in inv_page and "High dose" not in inv_page
    dsmb_page = client_for("dsmb").get("/safety/dsmb/").content.decode()
    assert "Threshold alerts" in dsmb_page and "High dose" in dsmb_page
    assert not Notification.objects.filter(kind="dsmb_alert").exclude(user=users["dsmb"]).exists()


@pytest.mark.req("P-6.4")
def test_unallocated_participants_do_not_count_per_arm(users, make_participant, arms):
    people = [make_participant("enrolled") for _ in range(3)]
    for p in people:
        event(users, p)
    assert not DsmbAlert.objects.filter(threshold_id="grade3_in_one_arm").exists()
