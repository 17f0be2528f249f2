"""The second protocol's schedule runs through the visits services: its visits count from the
events it names (the consent for screening and day 1, the first dose for the follow-up), the
day 1 visit is opened like any visit and holds the first-dose record as an eCRF form built from
the procedure's fields, that record's checks run (the kit allocated to the participant, the
product's kit checks, no date in the future), completing it makes the participant treated and
fixes the follow-up windows, and a kit return gets its compliance (X-1.3)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annulus.errors import RuleViolation, RuleViolations
from annulus.participants import states
from annulus.participants.models import Participant
from annulus.trial.selectors import active_protocol
from annulus.visits import procedures, selectors
from annulus.visits import services as vs
from annulus.visits.events import events_of
from annulus.visits.models import FormRecord

from .knee_support import URINE_HCG, VITALS, at, knee_enrolled, knee_list, koos, nrs
from .knee_support import protocol_version  # noqa: F401

KIT = "KOA-TEST-0001"


@pytest.fixture
def kits(monkeypatch):
    """The kits the system allocates, per (participant, visit key): a stand-in for the
    allocation app's kit source, which this file does not test."""
    allocated: dict = {}
    monkeypatch.setattr(procedures, "_kit_sources", [lambda pid, key: allocated.get((pid, key), set())])
    return allocated


@pytest.fixture
def randomised(users):
    from annulus.allocation import services as allocation

    knee_list(users)
    p = knee_enrolled(users, consent_days_ago=16)
    allocation.randomise(actor=users["investigator"], participant_id=p.pk)
    return Participant.objects.get(pk=p.pk)


def first_dose(day, kit=KIT, **over) -> dict:
    values = {"dosed_at": at(day, 9).isoformat(), "kit_number": kit, "tablets_dispensed": 35, "dose_observed": "yes",
              "kit_check__kit_number_matches": "yes", "kit_check__seal_intact": "yes",
              "kit_check__expiry_after_next_visit": "yes", "kit_check__storage_temperature": 22}
    return {**values, **over}


def slots(p) -> dict:
    return {s.visit_id: s for s in selectors.schedule(Participant.objects.get(pk=p.pk))}


@pytest.mark.req("X-1.3", "P-4.4")
def test_visits_count_from_the_consent_until_the_first_dose_then_from_it(randomised, users, kits):
    p = randomised
    consented = timezone.localdate() - timedelta(days=16)
    ev = events_of(p.pk)
    assert ev.recorded("consent") == consented and ev.recorded("first_dose") is None
    # day 1 is planned 14 days after the consent (window 14 days either side); the follow-up
    # counts from that plan until the first dose is recorded
    assert ev.get("first_dose") == consented + timedelta(days=14) and "first_dose" in ev.planned
    s = slots(p)
    assert (s["screening_visit"].target, s["screening_visit"].window_end) == (consented, consented + timedelta(days=7))
    assert (s["day1"].window_start, s["day1"].window_end) == (consented, consented + timedelta(days=28))
    assert s["day1"].state == "open" and s["w2"].planned and s["w2"].target == consented + timedelta(days=28)

    # day 1 is opened as a visit (it is not one of a cell product's pages) and its forms saved
    day1 = timezone.localdate() - timedelta(days=2)
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="day1", visit_date=day1)
    vs.save_visit_forms(actor=users["coordinator"], participant_id=p.pk, visit_key="day1", complete=True,
                        collected_at=at(day1, 8),
                        forms={"nrs": nrs(7), "koos": koos(2), "vitals": VITALS, "urine_hcg": URINE_HCG})
    assert Participant.objects.get(pk=p.pk).status == states.RANDOMISED  # no dose recorded yet
    assert "first_dose" in events_of(p.pk).planned

    kits[(p.pk, "day1")] = {KIT}
    vs.save_form(actor=users["pharmacist"], participant_id=p.pk, visit_key="day1", form_id="first_dose",
                 items=first_dose(day1), complete=True, collected_at=at(day1, 9))
    assert Participant.objects.get(pk=p.pk).status == states.TREATED
    ev = events_of(p.pk)
    assert ev.recorded("first_dose") == day1
    s = slots(p)
    assert s["day1"].state == "completed" and not s["w2"].planned
    assert (s["w2"].target, s["w12"].target, s["w26"].target) == (
        day1 + timedelta(days=14), day1 + timedelta(days=84), day1 + timedelta(days=182))
    # the lists across participants see the same dates as the one participant's schedule
    (_p, bulk), = selectors.active_schedules(people=Participant.objects.filter(pk=p.pk))
    assert [(x.visit_id, x.target, x.state) for x in bulk] == [(x.visit_id, x.target, x.state) for x in s.values()]

    # the week-2 visit follows the first dose: not before it, and in its window
    with pytest.raises(RuleViolation) as info:
        vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w2", visit_date=day1)
    assert info.value.field == "visit_date" and "first dose" in info.value.message


@pytest.mark.req("X-1.3", "P-4.3")
def test_the_first_dose_record_checks_the_kit_and_the_products_checks(randomised, users, kits):
    p = randomised
    day1 = timezone.localdate() - timedelta(days=1)
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="day1", visit_date=day1)

    def save(**over):
        return vs.save_form(actor=users["pharmacist"], participant_id=p.pk, visit_key="day1", form_id="first_dose",
                            items=first_dose(day1, **over), complete=True, collected_at=at(day1, 9))

    def refused(field, **over):
        with pytest.raises((RuleViolation, RuleViolations)) as info:
            save(**over)
        fields = [v.field for v in getattr(info.value, "violations", [info.value])]
        assert field in fields, fields
        assert not FormRecord.objects.filter(participant=p, form_id="first_dose").exists()
        assert Participant.objects.get(pk=p.pk).status == states.RANDOMISED
        return info.value

    # no kit allocated yet, then a kit that is not the one allocated
    assert "allocate" in refused("kit_number").message
    kits[(p.pk, "day1")] = {KIT}
    assert "not the kit allocated" in refused("kit_number", kit_number="KOA-TEST-0002").message
    # a check of the product not passed; a temperature above the protocol's maximum
    refused("kit_check__seal_intact", kit_check__seal_intact="no")
    refused("kit_check__storage_temperature", kit_check__storage_temperature=27)
    # more tablets than a kit holds; a first dose in the future; a date that is no date
    refused("tablets_dispensed", tablets_dispensed=36)
    refused("dosed_at", dosed_at=at(timezone.localdate() + timedelta(days=2)).isoformat())
    refused("dosed_at", dosed_at="yesterday morning")
    # the kit number as scanned, in lower case with spaces, is the kit allocated
    rec = save(kit_number=" koa-test-0001 ")
    assert rec.state == "complete" and rec.items["kit_number"] == "koa-test-0001"
    assert rec.items["dosed_at"].startswith(day1.isoformat() + "T09:00")
    assert Participant.objects.get(pk=p.pk).status == states.TREATED


@pytest.mark.req("X-1.3")
def test_a_kit_return_gets_its_compliance(randomised, users, kits):
    p = randomised
    protocol = active_protocol()
    # the kit comes back 10 days after it was dispensed at day 1
    day1 = timezone.localdate() - timedelta(days=10)
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="day1", visit_date=day1)
    kits[(p.pk, "day1")] = {KIT}
    vs.save_form(actor=users["pharmacist"], participant_id=p.pk, visit_key="day1", form_id="first_dose",
                 items=first_dose(day1), complete=True, collected_at=at(day1, 9))
    today = timezone.localdate()
    visit = vs.add_unscheduled_visit(actor=users["coordinator"], participant_id=p.pk, visit_date=today,
                                     reason="kit brought back early", forms=["kit_return"])

    def ret(**over):
        items = {"returned_on": today.isoformat(), "kit_number": KIT, "tablets_returned": 26, **over}
        return vs.save_form(actor=users["pharmacist"], participant_id=p.pk, visit_key=visit.key, form_id="kit_return",
                            items=items, complete=True)

    with pytest.raises(RuleViolation) as info:
        ret(kit_number="KOA-TEST-0099")
    assert info.value.field == "kit_number" and "not a kit dispensed" in info.value.message
    with pytest.raises(RuleViolation) as info:
        ret(tablets_returned=30, tablets_lost=6)
    assert info.value.field == "tablets_returned"
    rec = ret(tablets_lost=1)
    # 35 dispensed, 1 lost, 26 back: 8 taken in 10 days at one a day
    rule = protocol.product.compliance
    expected = 100.0 * (35 - 1 - 26) / (rule.units_per_day * 10)
    c = rec.computed["compliance"]
    assert (c["dispensed"], c["returned"], c["lost"], c["days"]) == (35, 26, 1, 10)
    assert c["percent"] == round(expected, 1) == 80.0 and c["acceptable"] is True
    # the same kit cannot come back twice
    second = vs.add_unscheduled_visit(actor=users["coordinator"], participant_id=p.pk, visit_date=today,
                                      reason="again", forms=["kit_return"])
    with pytest.raises(RuleViolation) as info:
        vs.save_form(actor=users["pharmacist"], participant_id=p.pk, visit_key=second.key, form_id="kit_return",
                     items={"returned_on": today.isoformat(), "kit_number": KIT, "tablets_returned": 26},
                     complete=True)
    assert "already recorded" in info.value.message


@pytest.mark.req("X-1.3", "P-4.4")
def test_a_visit_before_the_consent_or_a_follow_up_before_the_dose_is_refused(randomised, users, kits):
    p = randomised
    consented = timezone.localdate() - timedelta(days=16)
    with pytest.raises(RuleViolation) as info:
        vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="screening_visit",
                      visit_date=consented - timedelta(days=1))
    assert info.value.field == "visit_date" and "consent" in info.value.message
    with pytest.raises(RuleViolation) as info:
        vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="w2", visit_date=timezone.localdate())
    assert info.value.field == "visit" and "not recorded yet" in info.value.message
    with pytest.raises(RuleViolation) as info:
        vs.add_unscheduled_visit(actor=users["coordinator"], participant_id=p.pk,
                                 visit_date=consented - timedelta(days=3), reason="pain", forms=["nrs"])
    assert "after the consent" in info.value.message


# ---- the pages: who records a procedure ---------------------------------------------------------

def browser(user, language: str = "en"):
    from django.test import Client

    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(user)
    c.get("/")
    return c


def post(c, url: str, data: dict):
    page = c.get(url)
    assert page.status_code == 200, (url, page.status_code)
    return c.post(url, {**data, "csrfmiddlewaretoken": c.cookies["csrftoken"].value})


@pytest.mark.req("X-1.3", "X-2.4")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_pharmacist_records_the_first_dose_on_its_page_and_the_coordinator_may_not(randomised, users, kits,
                                                                                          language):
    p = randomised
    day1 = timezone.localdate() - timedelta(days=1)
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="day1", visit_date=day1)
    kits[(p.pk, "day1")] = {KIT}
    url = f"/participants/{p.pk}/visits/day1/first_dose/"
    # the coordinator edits the visit's other forms but does not record the first dose: the page
    # shows it without controls, and a post is refused
    coord = browser(users["coordinator"], language)
    page = coord.get(url)
    assert page.status_code == 200 and 'name="complete"' not in page.content.decode()
    assert coord.post(url, {"csrfmiddlewaretoken": coord.cookies["csrftoken"].value}).status_code == 403
    # the blinded site pharmacist, who records it (recorded_by), finds the participant and saves it;
    # the browser's pickers send ISO dates and times in both languages
    pharm = browser(users["pharmacist"], language)
    assert pharm.get(f"/participants/{p.pk}/").status_code == 200
    items = first_dose(day1)
    items["dosed_at"] = f"{day1.isoformat()}T09:15"
    r = post(pharm, url, {**{k: str(v) for k, v in items.items()}, "collected_at": f"{day1.isoformat()}T09:20",
                          "complete": "1"})
    assert r.status_code == 302, r.content.decode()[-2000:]
    rec = FormRecord.objects.get(participant=p, form_id="first_dose")
    assert rec.state == "complete" and rec.items["dosed_at"].startswith(f"{day1.isoformat()}T09:15")
    assert rec.items["tablets_dispensed"] == 35 and rec.items["kit_check__storage_temperature"] == 22
    assert Participant.objects.get(pk=p.pk).status == states.TREATED
    # the form page shows the time in the picker as it was typed
    assert f'value="{day1.isoformat()}T09:15"' in pharm.get(url).content.decode()
    # a wrong kit through the page names the field, and writes nothing
    other = knee_enrolled(users, consent_days_ago=15)
    from annulus.allocation import services as allocation

    allocation.randomise(actor=users["investigator"], participant_id=other.pk)
    vs.open_visit(actor=users["coordinator"], participant_id=other.pk, visit_id="day1", visit_date=day1)
    kits[(other.pk, "day1")] = {"KOA-TEST-0002"}
    r = post(pharm, f"/participants/{other.pk}/visits/day1/first_dose/",
             {**{k: str(v) for k, v in first_dose(day1).items()}, "dosed_at": f"{day1.isoformat()}T09:15",
              "complete": "1"})
    assert r.status_code == 200 and "kit_number" in r.content.decode()
    assert not FormRecord.objects.filter(participant=other, form_id="first_dose").exists()


@pytest.mark.req("X-1.3", "X-2.4")
def test_the_api_refuses_a_procedure_record_from_a_role_that_does_not_record_it(randomised, users, kits):
    import json

    from .api_clients import Token

    def put(user, path, body):
        t = Token(user)
        return t.client.put(path, json.dumps(body), content_type="application/json",
                            HTTP_AUTHORIZATION=f"Bearer {t.key}")

    p = randomised
    day1 = timezone.localdate() - timedelta(days=1)
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="day1", visit_date=day1)
    kits[(p.pk, "day1")] = {KIT}
    body = {"items": first_dose(day1), "complete": True}
    r = put(users["coordinator"], f"/api/v1/visits/participants/{p.pk}/visits/day1/forms/first_dose", body)
    assert r.status_code == 403
    r = put(users["pharmacist"], f"/api/v1/visits/participants/{p.pk}/visits/day1/forms/first_dose", body)
    assert r.status_code == 200, r.content
    assert r.json()["state"] == "complete"


@pytest.mark.req("X-1.3")
def test_one_trial_per_database_another_trials_file_is_refused(users):
    from annulus.trial.models import ProtocolVersion
    from annulus.trial.services import load_protocol_version

    from .knee_support import KNEE

    first = KNEE.parent / "dlbp-admsc.yaml"
    before = list(ProtocolVersion.objects.values_list("pk", flat=True))
    with pytest.raises(RuleViolation) as info:
        load_protocol_version(actor=None, text=first.read_bytes(), activate=False)
    assert info.value.field == "protocol" and "EXAMPLE-KOA-0001" in info.value.message
    assert "own database" in info.value.message
    assert list(ProtocolVersion.objects.values_list("pk", flat=True)) == before
    assert active_protocol().trial.id == "knee-oa-drug"


# ---- the second trial through its pages ---------------------------------------------------------

@pytest.mark.req("X-1.3", "P-3.2", "P-4.4", "X-2.4")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_second_trial_through_its_pages_from_randomisation_to_the_kit_return(users, language):
    """The site staff's pages with CSRF enforced: the investigator randomises from the stratified
    list, the coordinator records day 1 and its questionnaires on the visit entry page, the
    pharmacist records the first dose with the drug code given, and at week 4 allocates the next
    kit, records its dispensing and the return of the first kit with its compliance."""
    from annulus.allocation.models import Envelope

    knee_list(users)
    p = knee_enrolled(users, consent_days_ago=40)
    inv = browser(users["investigator"], language)
    r = inv.post(f"/participants/{p.pk}/randomise/", {"confirm": "yes",
                                                       "csrfmiddlewaretoken": inv.cookies["csrftoken"].value})
    assert r.status_code == 302
    env = Envelope.objects.get(participant=p)
    assert Participant.objects.get(pk=p.pk).status == states.RANDOMISED

    day1 = timezone.localdate() - timedelta(days=30)
    coord = browser(users["coordinator"], language)
    r = post(coord, f"/participants/{p.pk}/visits/day1/", {"action": "open", "visit_date": day1.isoformat()})
    assert r.status_code == 302, r.content.decode()[-1500:]
    entry = {f"nrs-{k}": str(v) for k, v in nrs(6).items()}
    entry.update({f"koos-{k}": str(v) for k, v in koos(2).items()})
    entry.update({f"vitals-{k}": str(v) for k, v in VITALS.items()})
    entry.update({f"urine_hcg-{k}": str(v) for k, v in URINE_HCG.items()})
    r = post(coord, f"/participants/{p.pk}/visits/day1/entry/",
             {**entry, "collected_at": f"{day1.isoformat()}T09:00", "complete": "1"})
    assert r.status_code == 302, r.content.decode()[-3000:]
    assert set(FormRecord.objects.filter(participant=p, state="complete").values_list("form_id", flat=True)) == {
        "nrs", "koos", "vitals", "urine_hcg"}
    # the first dose is not the coordinator's: it was left out of the entry page's save
    assert not FormRecord.objects.filter(participant=p, form_id="first_dose").exists()

    pharm = browser(users["pharmacist"], language)
    dose = {k: str(v) for k, v in first_dose(day1, kit=env.drug_code).items()}
    dose["dosed_at"] = f"{day1.isoformat()}T09:30"
    r = post(pharm, f"/participants/{p.pk}/visits/day1/first_dose/",
             {**dose, "collected_at": f"{day1.isoformat()}T09:35", "complete": "1"})
    assert r.status_code == 302, r.content.decode()[-3000:]
    assert Participant.objects.get(pk=p.pk).status == states.TREATED

    w4 = day1 + timedelta(days=28)
    r = post(coord, f"/participants/{p.pk}/visits/w4/", {"action": "open", "visit_date": w4.isoformat()})
    assert r.status_code == 302, r.content.decode()[-1500:]
    # the pharmacist allocates the week-4 kit on its page and sees only its number
    r = post(pharm, f"/participants/{p.pk}/kits/w4/", {})
    assert r.status_code in (200, 302)
    page = pharm.get(f"/participants/{p.pk}/kits/w4/").content.decode()
    from annulus.allocation.models import Kit

    kit = Kit.objects.get(participant=p, visit_key="w4")
    assert kit.kit_number in page and "active" not in page and "placebo" not in page.lower()
    # the page leads on to the dispensing record the pharmacist fills in, and back to the visit
    assert f'href="/participants/{p.pk}/visits/w4/kit_dispensing/"' in page
    assert f'href="/participants/{p.pk}/visits/w4/"' in page
    r = post(pharm, f"/participants/{p.pk}/visits/w4/kit_dispensing/", {
        "dispensed_on": w4.isoformat(), "kit_number": kit.kit_number, "tablets_dispensed": "35",
        "kit_check__kit_number_matches": "yes", "kit_check__seal_intact": "yes",
        "kit_check__expiry_after_next_visit": "yes", "kit_check__storage_temperature": "21",
        "collected_at": f"{w4.isoformat()}T10:00", "complete": "1"})
    assert r.status_code == 302, r.content.decode()[-3000:]
    r = post(pharm, f"/participants/{p.pk}/visits/w4/kit_return/", {
        "returned_on": w4.isoformat(), "kit_number": env.drug_code, "tablets_returned": "9",
        "collected_at": f"{w4.isoformat()}T10:05", "complete": "1"})
    assert r.status_code == 302, r.content.decode()[-3000:]
    ret = FormRecord.objects.get(participant=p, form_id="kit_return")
    # 35 given at day 1, 9 back at day 29: 26 taken in 28 days at one a day
    assert ret.computed["compliance"]["percent"] == round(100 * 26 / 28, 1)
    shown = pharm.get(f"/participants/{p.pk}/visits/w4/kit_return/").content.decode()
    assert f"{round(100 * 26 / 28, 1):g}" in shown


@pytest.mark.req("X-1.3", "P-3.5")
def test_a_kit_trial_participant_is_unblinded_in_an_emergency_once_the_first_dose_is_given(randomised, users):
    from annulus.allocation import services as allocation
    from annulus.allocation.models import EmergencyUnblinding, Envelope

    from .conftest import TEST_PASSWORD

    p = randomised
    env = Envelope.objects.get(participant=p)
    with pytest.raises(RuleViolation) as info:
        allocation.emergency_unblind(actor=users["pi"], participant_id=p.pk, password=TEST_PASSWORD,
                                     reason="Anaphylaxis in the emergency department")
    assert "nothing has been given" in info.value.message and not EmergencyUnblinding.objects.exists()
    day1 = timezone.localdate() - timedelta(days=1)
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="day1", visit_date=day1)
    vs.save_form(actor=users["pharmacist"], participant_id=p.pk, visit_key="day1", form_id="first_dose",
                 items=first_dose(day1, kit=env.drug_code), complete=True, collected_at=at(day1, 9))
    page = browser(users["pi"]).get(f"/participants/{p.pk}/").content.decode()
    assert f"/participants/{p.pk}/emergency-unblinding/" in page
    # the investigator's page: the form, then the treatment shown once
    pi = browser(users["pi"])
    r = post(pi, f"/participants/{p.pk}/emergency-unblinding/",
             {"password": TEST_PASSWORD, "reason": "Anaphylaxis in the emergency department"})
    arm = active_protocol().arm(env.allocation_list.level2_key[env.group_label])
    assert r.status_code == 200 and arm.name.en in r.content.decode(), r.content.decode()[-2000:]
    assert EmergencyUnblinding.objects.get().participant_id == p.pk


@pytest.mark.req("X-7.4", "X-1.3")
def test_an_adverse_event_before_the_first_dose_related_to_the_drug_is_queried(randomised, users, kits):
    """The protocol's ``ae_before_treatment`` check counts from the treatment procedure, here the
    first-dose record: nothing to query before the dose is recorded; saving the record raises the
    query on the onset of an earlier event assessed as related; re-assessing it closes the query."""
    from annulus.queries.models import Query
    from annulus.safety import services as ss

    p = randomised
    day1 = timezone.localdate() - timedelta(days=3)
    ae = ss.record_adverse_event(
        actor=users["investigator"], participant_id=p.pk, term="Nausea", serious=False, grade=1,
        onset_at=at(day1 - timedelta(days=2)),
        causality_product="possible", expectedness="expected",
        action_taken="none", outcome="recovering")
    check = "ae_before_first_dose_related"
    assert not Query.objects.filter(participant=p, check_id=check).exists()
    vs.open_visit(actor=users["coordinator"], participant_id=p.pk, visit_id="day1", visit_date=day1)
    kits[(p.pk, "day1")] = {KIT}
    vs.save_form(actor=users["pharmacist"], participant_id=p.pk, visit_key="day1", form_id="first_dose",
                 items=first_dose(day1), complete=True, collected_at=at(day1, 9))
    (q,) = Query.objects.filter(participant=p, check_id=check, status="open")
    assert (q.visit, q.form, q.record, q.item) == ("", "adverse_event", ae.pk, "onset_at")
    assert day1.isoformat() in q.fingerprint
    ss.update_adverse_event(actor=users["investigator"], adverse_event_id=ae.pk, reason="re-assessed",
                            causality_product="unlikely")
    assert Query.objects.get(pk=q.pk).status == "closed"
    # an event after the dose, related, is no finding
    ss.record_adverse_event(
        actor=users["investigator"], participant_id=p.pk, term="Headache", serious=False, grade=1,
        onset_at=at(day1 + timedelta(days=1)),
        causality_product="probable", expectedness="expected",
        action_taken="none", outcome="recovering")
    assert not Query.objects.filter(participant=p, check_id=check).exclude(pk=q.pk).exists()
