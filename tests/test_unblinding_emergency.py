"""Emergency unblinding of one participant (P-3.5, P-3.7)."""

import pytest
from django.utils import timezone

from annulus.allocation import selectors, services, testing
from annulus.allocation.models import EmergencyUnblinding
from annulus.audit.models import AuditEvent
from annulus.errors import NotPermitted, RuleViolation
from annulus.trial.models import Notification
from annulus.trial.selectors import active_protocol
from tests.conftest import TEST_PASSWORD

REASON = "Anaphylaxis in the emergency department; treatment must be known"


@pytest.mark.req("P-3.5", "P-3.7")
def test_investigator_unblinds_one_participant_and_the_pi_is_notified(users, make_participant, monkeypatch):
    p, q = testing.dispensed(users, make_participant, 2, monkeypatch)
    rec, arm = services.emergency_unblind(actor=users["investigator"], participant_id=p.pk,
                                          password=TEST_PASSWORD, reason=REASON)
    assert arm == selectors.arm_of_for_system(p.pk)
    assert rec.label == "EU-001" and rec.scope == "participant 001 only" and rec.reason == REASON
    n = Notification.objects.get(user=users["pi"])
    assert "001" in n.subject and n.kind == "emergency_unblinding"
    assert arm not in n.body and arm not in n.subject
    event = AuditEvent.objects.get(object_type="emergency_unblinding")
    assert event.participant_id == p.pk and arm not in event.payload
    # the other participant stays blind
    assert selectors.participant_allocation(users["investigator"], q)["emergency_unblindings"] == []
    assert len(selectors.participant_allocation(users["coordinator"], p)["emergency_unblindings"]) == 1


@pytest.mark.req("P-3.7")
@pytest.mark.parametrize("password,reason,field,message", [
    (TEST_PASSWORD, "", "reason", "is required"),
    (TEST_PASSWORD, "urgent", "reason", "at least 10"),
    ("wrong-password", REASON, "password", "is not correct"),
    ("", REASON, "password", "is required"),
])
def test_refused_without_reason_or_with_a_wrong_password(users, make_participant, password, reason, field, message,
                                                         monkeypatch):
    p = testing.dispensed(users, make_participant, 1, monkeypatch)[0]
    with pytest.raises(RuleViolation) as exc:
        services.emergency_unblind(actor=users["investigator"], participant_id=p.pk, password=password, reason=reason)
    assert exc.value.field == field and message in exc.value.message
    assert not EmergencyUnblinding.objects.exists() and not Notification.objects.exists()


@pytest.mark.req("P-3.7", "X-3.8")
@pytest.mark.parametrize("role", ["coordinator", "statistician", "monitor", "admin", "pharmacist", "designer"])
def test_only_an_investigator_may_unblind(users, make_participant, client_for, role, monkeypatch):
    p = testing.dispensed(users, make_participant, 1, monkeypatch)[0]
    with pytest.raises(NotPermitted):
        services.emergency_unblind(actor=users[role], participant_id=p.pk, password=TEST_PASSWORD, reason=REASON)
    c = client_for(role)
    assert c.post(f"/participants/{p.pk}/emergency-unblinding/", {"password": TEST_PASSWORD,
                                                                   "reason": REASON}).status_code == 403
    assert c.post(f"/api/v1/allocation/participants/{p.pk}/emergency-unblinding",
                  {"password": TEST_PASSWORD, "reason": REASON}, content_type="application/json").status_code == 403


@pytest.mark.req("P-3.7")
def test_unrandomised_participant_cannot_be_unblinded(users, make_participant):
    testing.generate(users)
    p = make_participant("enrolled")
    with pytest.raises(RuleViolation) as exc:
        services.emergency_unblind(actor=users["investigator"], participant_id=p.pk, password=TEST_PASSWORD,
                                   reason=REASON)
    assert exc.value.field == "participant"


@pytest.mark.req("P-3.5", "P-3.7")
def test_pages_reveal_once_then_list_without_treatment(users, make_participant, client_for, monkeypatch):
    p = testing.dispensed(users, make_participant, 1, monkeypatch)[0]
    names = [a.name.en for a in active_protocol().arms]
    c = client_for("investigator")
    r = c.post(f"/participants/{p.pk}/emergency-unblinding/", {"password": "nope", "reason": REASON})
    assert b"is not correct" in r.content and not EmergencyUnblinding.objects.exists()
    r = c.post(f"/participants/{p.pk}/emergency-unblinding/", {"password": TEST_PASSWORD, "reason": ""})
    assert b"is required" in r.content and not EmergencyUnblinding.objects.exists()
    r = c.post(f"/participants/{p.pk}/emergency-unblinding/", {"password": TEST_PASSWORD, "reason": REASON})
    own = active_protocol().arm(selectors.arm_of_for_system(p.pk)).name.en
    assert r.status_code == 200 and own.encode() in r.content and b"EU-001" in r.content
    rec = EmergencyUnblinding.objects.get()
    for role in ("investigator", "coordinator", "monitor", "statistician"):
        for url in ("/unblinding/emergency/", f"/unblinding/emergency/{rec.pk}/", f"/participants/{p.pk}/"):
            page = client_for(role).get(url)
            if page.status_code == 200:
                assert not any(n.encode() in page.content for n in names), (role, url)
    listing = c.get("/unblinding/emergency/").content
    assert b"EU-001" in listing and REASON.encode() in listing and b"participant 001 only" in listing
    api = c.get("/api/v1/allocation/emergency-unblindings").json()
    assert api[0]["number"] == "EU-001" and "arm" not in api[0]


@pytest.mark.req("P-3.7")
def test_emergency_unblinding_api_reveals_to_the_caller(users, make_participant, client_for, monkeypatch):
    p = testing.dispensed(users, make_participant, 1, monkeypatch)[0]
    c = client_for("investigator")
    url = f"/api/v1/allocation/participants/{p.pk}/emergency-unblinding"
    r = c.post(url, {"password": "bad", "reason": REASON}, content_type="application/json")
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "password"
    r = c.post(url, {"password": TEST_PASSWORD, "reason": REASON}, content_type="application/json")
    assert r.status_code == 201 and r.json()["arm"] == selectors.arm_of_for_system(p.pk)


@pytest.mark.req("P-3.7")
def test_emergency_unblinding_is_noted_on_the_crf_pages(users, make_participant, client_for, monkeypatch):
    """P-3.7: the record form is noted on the CRF: every visit and form page of that participant
    names it (number, who, when, scope), without the treatment."""
    from annulus.visits import services as vs

    p = testing.dispensed(users, make_participant, 1, monkeypatch)[0]
    services.emergency_unblind(actor=users["pi"], participant_id=p.pk, password=TEST_PASSWORD,
                               reason="Severe allergic reaction; the treating physician must know")
    vs.record_liposuction(actor=users["coordinator"], participant_id=p.pk,
                          performed_on=timezone.localdate(), fat_volume_ml=150, observation_hours=4)
    c = client_for("coordinator")
    page = c.get(f"/participants/{p.pk}/visits/baseline/").content.decode()
    assert "Emergency unblinding EU-001</span>" in page and "Severe allergic reaction" in page
    assert "Placebo" not in page and "High dose" not in page
