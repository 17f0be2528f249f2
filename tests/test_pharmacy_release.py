"""ADMSC product release, dispensing, sachet labels and emergency letters (P-3.4, P-1.2, P-4.2)."""

import re

import pytest
from django.utils import timezone

from annulus.allocation import selectors, services, testing
from annulus.allocation.models import Dispensing, Envelope, ProductRelease
from annulus.errors import RuleViolation
from annulus.trial.selectors import active_protocol
from tests.conftest import without_nonce


@pytest.fixture(autouse=True)
def _liposuction_three_weeks_ago(monkeypatch):
    # the lot is tested after the liposuction and dispensed in the transplantation window
    testing.liposuction_days_ago(monkeypatch, 21)


def _one(users, make_participant):
    p = testing.randomised(users, make_participant, 1)[0]
    return p, Envelope.objects.get(participant=p)


def _release(users, env, lot_number="LOT-7", **changes):
    return services.record_release(actor=users["pharmacist"], envelope_id=env.pk, lot_number=lot_number,
                                   tested_on=timezone.localdate(), results={**testing.PASSING, **changes})


@pytest.mark.req("P-4.2")
def test_a_product_that_meets_every_criterion_passes(users, make_participant):
    _, env = _one(users, make_participant)
    rel = _release(users, env)
    assert rel.passed and rel.failing == []
    assert set(rel.results) == {"passage", "cd44", "cd73", "cd29", "cd45", "sterility_aerobic", "sterility_anaerobic",
                                "mycoplasma", "karyotype", "concentration", "viability", "transport_temperature"}


@pytest.mark.req("P-4.2")
@pytest.mark.parametrize("changes,failing", [
    ({"passage": 4}, ["passage"]),
    ({"cd44": 90}, ["cd44"]), ({"cd73": 94.9}, ["cd73"]), ({"cd29": 80}, ["cd29"]),
    ({"cd45": 5}, ["cd45"]),
    ({"sterility_aerobic": "positive"}, ["sterility_aerobic"]),
    ({"sterility_anaerobic": "positive"}, ["sterility_anaerobic"]),
    ({"mycoplasma": "positive"}, ["mycoplasma"]),
    ({"karyotype": "abnormal"}, ["karyotype"]),
    ({"concentration": 15}, ["concentration"]), ({"concentration": 25}, ["concentration"]),
    ({"viability": 85}, ["viability"]),
    ({"transport_temperature": 12}, ["transport_temperature"]),
])
def test_each_failed_criterion_fails_release(users, make_participant, changes, failing):
    _, env = _one(users, make_participant)
    rel = _release(users, env, **changes)
    assert not rel.passed and rel.failing == failing


@pytest.mark.req("P-4.2")
@pytest.mark.parametrize("changes,field,message", [
    ({"cd44": "lots"}, "results.cd44", "must be a number"),
    ({"cd44": 120}, "results.cd44", "percentage"),
    ({"mycoplasma": "maybe"}, "results.mycoplasma", "negative or positive"),
    ({"karyotype": ""}, "results.karyotype", "is required"),
    ({"colour": "blue"}, "results.colour", "not a release criterion"),
])
def test_bad_release_input_names_the_field(users, make_participant, changes, field, message):
    _, env = _one(users, make_participant)
    with pytest.raises(RuleViolation) as exc:
        _release(users, env, **changes)
    assert exc.value.field == field and message in exc.value.message
    assert not ProductRelease.objects.exists()


@pytest.mark.req("P-4.2")
def test_a_failed_product_cannot_be_dispensed_until_a_retest_passes(users, make_participant):
    _, env = _one(users, make_participant)
    with pytest.raises(RuleViolation) as exc:
        services.dispense(actor=users["pharmacist"], envelope_id=env.pk)
    assert exc.value.field == "release" and "unreleased" in exc.value.message
    _release(users, env, mycoplasma="positive")
    with pytest.raises(RuleViolation) as exc:
        services.dispense(actor=users["pharmacist"], envelope_id=env.pk)
    assert exc.value.message == "the product failed release (mycoplasma); a failed product cannot be dispensed"
    assert not Dispensing.objects.exists()
    _release(users, env, lot_number="LOT-8")  # a new lot: the failed one stays quarantined
    assert ProductRelease.objects.filter(superseded=True).count() == 1
    d = services.dispense(actor=users["pharmacist"], envelope_id=env.pk)
    assert d.release.passed
    with pytest.raises(RuleViolation) as exc:
        services.dispense(actor=users["pharmacist"], envelope_id=env.pk)
    assert "already dispensed" in exc.value.message
    with pytest.raises(RuleViolation):
        _release(users, env)


@pytest.mark.req("P-3.2", "P-4.2")
def test_the_pharmacy_cannot_reach_a_sealed_envelope(users, make_participant):
    testing.randomised(users, make_participant, 1)
    sealed = Envelope.objects.get(random_number="002")
    with pytest.raises(RuleViolation) as exc:
        services.record_release(actor=users["pharmacist"], envelope_id=sealed.pk, lot_number="L",
                                tested_on=timezone.localdate(), results=testing.PASSING)
    assert exc.value.field == "envelope"
    assert selectors.envelope_for_pharmacy(users["pharmacist"], sealed.pk) is None
    assert [r["envelope"].random_number for r in selectors.pharmacy_rows(users["pharmacist"])] == ["001"]


@pytest.mark.req("P-3.4", "P-1.2", "P-4.2")
def test_pharmacist_pages_show_recipes_release_form_and_dispense(users, make_participant, client_for):
    _, env = _one(users, make_participant)
    c = client_for("pharmacist")
    arm = selectors.arm_of_for_system(env.participant_id)
    recipe = active_protocol().arm(arm).recipe
    page = c.get("/pharmacy/")
    assert page.status_code == 200 and env.drug_code.encode() in page.content
    assert f"{recipe.saline_ml} / {recipe.ha_hydrogel_ml}".encode() in page.content
    page = c.get(f"/pharmacy/envelopes/{env.pk}/")
    assert b"Preparation recipe" in page.content and b"ADMSC lot number" in page.content
    data = {"lot_number": "L-1", "tested_on": timezone.localdate().isoformat(),
            **{f"results.{k}": v for k, v in testing.PASSING.items()}, "results.cd45": "7"}
    r = c.post(f"/pharmacy/envelopes/{env.pk}/", data, follow=True)
    assert b"failed" in r.content
    r = c.post(f"/pharmacy/envelopes/{env.pk}/dispense/", {"confirm": "yes"}, follow=True)
    assert b"a failed product cannot be dispensed" in r.content
    data["results.cd45"] = "1"
    data["lot_number"] = "L-2"  # the failed lot L-1 is quarantined
    c.post(f"/pharmacy/envelopes/{env.pk}/", data)
    r = c.post(f"/pharmacy/envelopes/{env.pk}/dispense/", {"confirm": "yes"}, follow=True)
    assert b"Dispensed" in r.content and Dispensing.objects.count() == 1
    r = c.post(f"/pharmacy/envelopes/{env.pk}/", data)
    assert b"already dispensed" in r.content


@pytest.mark.req("P-4.2")
def test_release_api(users, make_participant, client_for):
    _, env = _one(users, make_participant)
    c = client_for("pharmacist")
    url = f"/api/v1/allocation/pharmacy/envelopes/{env.pk}"
    r = c.post(url + "/release", {"lot_number": "L", "tested_on": timezone.localdate().isoformat(),
                                  "results": {**testing.PASSING, "cd45": 9}}, content_type="application/json")
    assert r.status_code == 201 and r.json()["failing"] == ["cd45"]
    r = c.post(url + "/dispense")
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "release"
    r = c.post(url + "/release", {"lot_number": "L2", "tested_on": timezone.localdate().isoformat(),
                                  "results": testing.PASSING}, content_type="application/json")
    assert r.status_code == 201 and r.json()["passed"] is True
    assert c.post(url + "/dispense").status_code == 201
    assert c.get(url).json()["dispensed_at"] is not None


def _normalise(html: bytes) -> str:
    return re.sub(r"DLBP-[A-Z0-9]{6}", "CODE", re.sub(r"\d", "0", without_nonce(html.decode())))


@pytest.mark.req("P-3.4")
def test_sachet_labels_are_identical_for_every_arm(users, make_participant, client_for):
    testing.randomised(users, make_participant, 8)
    c = client_for("pharmacist")
    by_arm = {}
    for env in Envelope.objects.filter(participant__isnull=False):
        r = c.get(f"/pharmacy/envelopes/{env.pk}/label/")
        assert r.status_code == 200 and env.drug_code.encode() in r.content
        by_arm.setdefault(selectors.arm_of_for_system(env.participant_id), set()).add(_normalise(r.content))
    assert len(by_arm) == 4
    labels = set().union(*by_arm.values())
    assert len(labels) == 1, "a sachet label differs between arms"
    text = labels.pop()
    for leak in ("cells", "saline", "High", "Placebo", "control", "0.00 mL", "HA hydrogel"):
        assert leak not in text


@pytest.mark.req("P-3.5")
def test_emergency_letter_reveals_one_treatment_only(users, make_participant, client_for):
    testing.randomised(users, make_participant, 4)
    c = client_for("pharmacist")
    from annulus.notation import scientific

    names = {a.id: scientific(a.name.en) for a in active_protocol().arms}  # "20×10⁶", as printed
    for env in Envelope.objects.filter(participant__isnull=False):
        html = c.get(f"/pharmacy/envelopes/{env.pk}/letter/").content.decode()
        own = names[selectors.arm_of_for_system(env.participant_id)]
        assert own in html and env.random_number in html
        assert [n for n in names.values() if n in html] == [own]
    pdf = c.get(f"/pharmacy/envelopes/{env.pk}/letter/?format=pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert env.drug_code in pdf["Content-Disposition"]
