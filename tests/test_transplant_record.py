"""The transplantation record (P-4.3): the kit must be the participant's own, in the window."""

from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.allocation import selectors, services, testing
from annulus.allocation.models import Envelope, Transplant
from annulus.errors import RuleViolation
from annulus.participants.models import Participant


@pytest.fixture
def ready(users, make_participant, monkeypatch):
    testing.liposuction_days_ago(monkeypatch, 21)
    a, b = testing.randomised(users, make_participant, 2)
    ea, eb = Envelope.objects.get(participant=a), Envelope.objects.get(participant=b)
    testing.released_and_dispensed(users, ea)
    testing.released_and_dispensed(users, eb)
    return a, ea, eb


def _record(users, p, code, **kw):
    args = dict(transplanted_at=testing.earlier_today(0.9), drug_code=code,  # today, after the dispensing
                activity_restriction_explained=True)
    args.update(kw)
    return services.record_transplant(actor=users["investigator"], participant_id=p.pk, **args)


@pytest.mark.req("P-4.3")
def test_transplant_is_recorded_and_the_participant_is_treated(users, ready):
    p, ea, _ = ready
    t = _record(users, p, " " + ea.drug_code.lower() + " ")
    assert (t.disc_level, t.needle_gauge, t.approach, t.imaging, float(t.volume_ml)) == (
        "L4-5", 22, "posterolateral", "C-arm fluoroscopy", 2.0)
    assert t.activity_restriction_until == timezone.localdate() + timedelta(days=14)
    assert Participant.objects.get(pk=p.pk).status == "treated"
    assert selectors.transplant_date(p.pk) == timezone.localdate()
    with pytest.raises(RuleViolation) as exc:
        _record(users, p, ea.drug_code)
    assert "already recorded" in exc.value.message


@pytest.mark.req("P-4.3", "X-3.8")
def test_a_wrong_kit_is_refused_without_naming_its_arm(users, ready):
    p, ea, eb = ready
    for code in (eb.drug_code, "DLBP-ZZZZZZ"):
        with pytest.raises(RuleViolation) as exc:
            _record(users, p, code)
        assert exc.value.field == "drug_code"
        assert exc.value.message == "does not match this participant's allocation; do not use this kit"
    assert not Transplant.objects.exists()


@pytest.mark.req("P-4.3")
@pytest.mark.parametrize("changes,field", [
    ({"disc_level": "L5-S1"}, "disc_level"), ({"needle_gauge": 18}, "needle_gauge"),
    ({"approach": "transdural"}, "approach"), ({"imaging": "CT"}, "imaging"),
    ({"volume_ml": 1.5}, "volume_ml"), ({"activity_restriction_explained": False}, "activity_restriction_explained"),
    ({"drug_code": ""}, "drug_code"),
    ({"transplanted_at": timezone.now() + timedelta(days=1)}, "transplanted_at"),
])
def test_protocol_deviations_are_refused(users, ready, changes, field):
    p, ea, _ = ready
    kw = {"drug_code": ea.drug_code, **changes}
    with pytest.raises(RuleViolation) as exc:
        _record(users, p, kw.pop("drug_code"), **kw)
    assert exc.value.field == field
    assert not Transplant.objects.exists()


@pytest.mark.req("P-4.3", "P-4.1")
@pytest.mark.parametrize("days,ok", [(13, False), (14, True), (21, True), (22, False)])
def test_the_transplant_window_after_liposuction(users, ready, monkeypatch, days, ok):
    p, ea, _ = ready
    testing.liposuction_days_ago(monkeypatch, days)
    if ok:
        _record(users, p, ea.drug_code)
    else:
        with pytest.raises(RuleViolation) as exc:
            _record(users, p, ea.drug_code)
        assert exc.value.field == "transplanted_at" and "must be between" in exc.value.message


@pytest.mark.req("P-4.3")
def test_no_liposuction_no_transplant(users, ready, monkeypatch):
    p, ea, _ = ready
    monkeypatch.setattr("annulus.visits.selectors.liposuction_date", lambda pid: None)
    with pytest.raises(RuleViolation) as exc:
        _record(users, p, ea.drug_code)
    assert (exc.value.field, exc.value.message) == ("transplanted_at", "no liposuction recorded")


@pytest.mark.req("P-4.3", "P-4.2")
def test_an_undispensed_kit_is_refused(users, make_participant, monkeypatch):
    testing.liposuction_days_ago(monkeypatch, 21)
    p = testing.randomised(users, make_participant, 1)[0]
    env = Envelope.objects.get(participant=p)
    with pytest.raises(RuleViolation) as exc:
        _record(users, p, env.drug_code)
    assert exc.value.message == "this kit has not been dispensed by the pharmacy"


@pytest.mark.req("P-4.3")
def test_a_past_transplant_is_accepted_in_its_window(users, make_participant, monkeypatch):
    lipo = testing.liposuction_days_ago(monkeypatch, 60)
    p = testing.randomised(users, make_participant, 1)[0]
    env = Envelope.objects.get(participant=p)
    when = timezone.make_aware(timezone.datetime.combine(lipo + timedelta(days=20), timezone.datetime.min.time())) \
        + timedelta(hours=10)
    services.record_release(actor=users["pharmacist"], envelope_id=env.pk, lot_number="L",
                            tested_on=lipo + timedelta(days=17), results=testing.PASSING,
                            checked_at=when - timedelta(days=3))
    services.dispense(actor=users["pharmacist"], envelope_id=env.pk, dispensed_at=when - timedelta(hours=2))
    _record(users, p, env.drug_code, transplanted_at=when)
    assert selectors.transplant_date(p.pk) == lipo + timedelta(days=20)


@pytest.mark.req("P-4.3")
def test_transplant_form_and_api(users, ready, client_for):
    p, ea, eb = ready
    c = client_for("investigator")
    page = c.get(f"/participants/{p.pk}/transplant/")
    assert page.status_code == 200 and b"22" in page.content and b"posterolateral" in page.content
    form = {"transplanted_at": timezone.localtime(testing.earlier_today(0.9)).strftime("%Y-%m-%dT%H:%M"),
            "drug_code": eb.drug_code, "disc_level": "L4-5", "needle_gauge": "22", "approach": "posterolateral",
            "imaging": "C-arm fluoroscopy", "volume_ml": "2.00", "activity_restriction_explained": "on"}
    r = c.post(f"/participants/{p.pk}/transplant/", form)
    assert r.status_code == 200 and b"does not match this participant&#x27;s allocation" in r.content
    assert client_for("coordinator").get(f"/participants/{p.pk}/transplant/").status_code == 403
    r = c.post(f"/api/v1/allocation/participants/{p.pk}/transplant",
               {"transplanted_at": testing.earlier_today(0.9).isoformat(), "drug_code": ea.drug_code,
                "activity_restriction_explained": True}, content_type="application/json")
    assert r.status_code == 201 and r.json()["needle_gauge"] == 22
