"""Concealed allocation: opening the participant's envelope, and every refusal (P-3.2, X-3.9)."""


import pytest
from django.utils import timezone

from annulus.allocation import selectors, services, testing
from annulus.allocation.models import Envelope
from annulus.audit.models import AuditEvent
from annulus.errors import RuleViolation
from annulus.participants import services as ps
from annulus.participants.models import Participant, StatusChange


@pytest.mark.req("P-3.2")
def test_randomising_opens_the_envelope_of_the_case_number(users, make_participant):
    testing.generate(users)
    a, b = make_participant("enrolled"), make_participant("enrolled")
    eb = services.randomise(actor=users["coordinator"], participant_id=b.pk)
    ea = services.randomise(actor=users["investigator"], participant_id=a.pk)
    assert (ea.random_number, eb.random_number) == (a.case_number, b.case_number) == ("001", "002")
    assert Participant.objects.get(pk=a.pk).status == "randomised"
    assert StatusChange.objects.filter(participant=a, to_status="randomised").exists()
    assert selectors.randomised_participant_ids() == [a.pk, b.pk]
    # the audit trail is read by blinded roles: drug code yes, label never
    payload = AuditEvent.objects.filter(object_type="randomisation", participant_id=a.pk).get().payload
    assert ea.drug_code in payload and "group_label" not in payload


@pytest.mark.req("P-3.2")
@pytest.mark.parametrize("stage,message", [("screen_failed", "a screen failure cannot be randomised"),
                                           ("eligible", "only an enrolled participant"),
                                           ("consented", "only an enrolled participant")])
def test_only_enrolled_participants_are_randomised(users, make_participant, stage, message):
    testing.generate(users)
    p = make_participant(stage)
    with pytest.raises(RuleViolation) as exc:
        services.randomise(actor=users["investigator"], participant_id=p.pk)
    assert exc.value.field == "status" and message in exc.value.message
    assert not Envelope.objects.filter(participant__isnull=False).exists()


@pytest.mark.req("P-3.2", "X-3.9")
def test_a_withdrawn_participant_is_not_randomised_and_the_envelope_stays_sealed(users, make_participant):
    testing.generate(users)
    p = make_participant("enrolled")
    ps.withdraw(actor=users["coordinator"], participant_id=p.pk, withdrawn_on=timezone.localdate(),
                category="participant_request", details="Moved away")
    with pytest.raises(RuleViolation) as exc:
        services.randomise(actor=users["investigator"], participant_id=p.pk)
    assert "withdrawn" in exc.value.message
    assert Envelope.objects.get(random_number="001").participant_id is None
    # the next participant gets envelope 002: an envelope belongs to one case number for good
    q = make_participant("enrolled")
    assert services.randomise(actor=users["investigator"], participant_id=q.pk).random_number == "002"


@pytest.mark.req("P-3.2", "X-3.9")
def test_randomising_twice_is_refused_and_allocates_nothing(users, make_participant):
    testing.generate(users)
    p = make_participant("enrolled")
    first = services.randomise(actor=users["investigator"], participant_id=p.pk)
    with pytest.raises(RuleViolation) as exc:
        services.randomise(actor=users["coordinator"], participant_id=p.pk)
    assert exc.value.field == "participant" and "already randomised (random number 001)" in exc.value.message
    assert Envelope.objects.filter(participant__isnull=False).count() == 1
    assert Envelope.objects.get(participant=p).pk == first.pk


@pytest.mark.req("P-3.2")
def test_no_list_no_randomisation(users, make_participant):
    p = make_participant("enrolled")
    with pytest.raises(RuleViolation) as exc:
        services.randomise(actor=users["investigator"], participant_id=p.pk)
    assert exc.value.field == "allocation_list"
    assert Participant.objects.get(pk=p.pk).status == "enrolled"


@pytest.mark.req("P-3.2")
def test_randomisation_time_cannot_be_in_the_future_or_before_enrolment(users, make_participant):
    testing.generate(users)
    p = make_participant("enrolled")
    with pytest.raises(RuleViolation) as exc:
        services.randomise(actor=users["investigator"], participant_id=p.pk,
                           when=timezone.now() + timezone.timedelta(days=1))
    assert exc.value.field == "randomised_at"
    with pytest.raises(RuleViolation) as exc:
        services.randomise(actor=users["investigator"], participant_id=p.pk,
                           when=p.enrolled_at - timezone.timedelta(hours=1))
    assert exc.value.message == "is before enrolment"


@pytest.mark.req("P-3.2")
def test_randomise_button_on_the_participant_page(users, make_participant, client_for):
    testing.generate(users)
    p = make_participant("enrolled")
    c = client_for("coordinator")
    page = c.get(f"/participants/{p.pk}/")
    assert b"Randomise (open the next envelope)" in page.content
    r = c.post(f"/participants/{p.pk}/randomise/", {"confirm": "yes"}, follow=True)
    env = Envelope.objects.get(participant=p)
    assert env.drug_code.encode() in r.content and b"Randomised: random number 001" in r.content
    r = c.post(f"/participants/{p.pk}/randomise/", {"confirm": "yes"}, follow=True)
    assert b"already randomised" in r.content
    # blinded roles without the capability cannot randomise
    assert client_for("monitor").post(f"/participants/{p.pk}/randomise/").status_code == 403
    assert client_for("pharmacist").post(f"/participants/{p.pk}/randomise/").status_code == 403


@pytest.mark.req("P-3.2")
def test_randomise_through_the_api(users, make_participant, client_for):
    testing.generate(users)
    p = make_participant("enrolled")
    failed = make_participant("screen_failed")
    c = client_for("investigator")
    r = c.post(f"/api/v1/allocation/participants/{p.pk}/randomise")
    body = r.json()
    assert r.status_code == 201 and body["random_number"] == "001" and body["randomised"] is True
    assert body["group_label"] is None and body["arm"] is None
    r = c.post(f"/api/v1/allocation/participants/{p.pk}/randomise")
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "participant"
    r = c.post(f"/api/v1/allocation/participants/{failed.pk}/randomise")
    assert r.status_code == 400 and r.json()["detail"][0] == {"field": "status",
                                                              "message": "a screen failure cannot be randomised"}
    assert c.post("/api/v1/allocation/participants/999999/randomise").status_code == 404


@pytest.mark.req("P-3.2", "X-3.9")
def test_a_failed_request_allocates_nothing(users, make_participant, monkeypatch):
    testing.generate(users)
    p = make_participant("enrolled")

    def broken(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(services.ps, "advance", broken)
    with pytest.raises(RuntimeError):
        services.randomise(actor=users["investigator"], participant_id=p.pk)
    assert Envelope.objects.get(random_number="001").participant_id is None
    assert Participant.objects.get(pk=p.pk).status == "enrolled"


@pytest.mark.req("X-3.9")
def test_two_browsers_randomising_one_participant(users, make_participant, client_for):
    """Two sessions post the same randomisation: exactly one envelope is opened."""
    testing.generate(users)
    p = make_participant("enrolled")
    a, b = client_for("investigator"), client_for("coordinator")
    a.get(f"/participants/{p.pk}/"), b.get(f"/participants/{p.pk}/")
    ra = a.post(f"/api/v1/allocation/participants/{p.pk}/randomise")
    rb = b.post(f"/api/v1/allocation/participants/{p.pk}/randomise")
    assert sorted([ra.status_code, rb.status_code]) == [201, 400]
    assert Envelope.objects.filter(participant__isnull=False).count() == 1


@pytest.mark.req("P-3.2")
def test_locked_database_refuses_randomisation(users, make_participant):
    from annulus.trial.services import set_trial_state

    testing.generate(users)
    p = make_participant("enrolled")
    set_trial_state(actor=None, state="locked", reason="test")
    with pytest.raises(RuleViolation) as exc:
        services.randomise(actor=users["investigator"], participant_id=p.pk)
    assert exc.value.field == "trial"
