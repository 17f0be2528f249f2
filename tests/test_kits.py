"""Kit supply of a kit product (the knee trial: identical numbered kits, 2:1 active:placebo): the
kit list made and sealed with the allocation list, shown to the level-2 key holder (the supply
manager) only; the first kit is the envelope's drug code, every later one allocated by
``assign_kit`` from the participant's arm, once per visit, never twice at once; and the
dispensing records of the visits accept only the kit allocated (X-1.3, P-3.4, X-3.8, X-3.9).

Run the PostgreSQL part with, for example:
ANNULUS_TEST_DB_NAME=test_kits DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
    .venv/bin/pytest tests/test_kits.py
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter
from datetime import timedelta

import pytest
import yaml
from django.test import Client
from django.utils import timezone

from annulus.allocation import selectors, services
from annulus.allocation.models import AllocationList, Envelope, Kit
from annulus.audit.models import AuditEvent
from annulus.audit.selectors import decoded
from annulus.errors import NotPermitted, RuleViolation
from annulus.participants.models import Participant
from annulus.protocol import default_protocol_path, load_protocol
from annulus.visits import procedures
from annulus.visits import services as vs

from .conftest import TEST_PASSWORD, make_users, postgres_url, race

KNEE = default_protocol_path().parent / "knee-oa-drug.yaml"
SEED = 731_224_905_117_3
KNEE_EVIDENCE = {
    "date_of_birth": "1960-03-01", "acr_knee_oa": True, "kl_grade": 2, "knee_pain_months": 12,
    "nrs_pain_screening": 5, "analgesic_inadequate": True, "inflammatory_arthritis": False,
    "knee_injection_3m": False, "knee_surgery": False, "egfr": 85, "alt_u_l": 30, "ast_u_l": 28, "bmi": 27.5,
    "pregnancy_or_lactation": False, "drug_allergy": False, "other_trial_30d": False,
}
RAW = yaml.safe_load(KNEE.read_text(encoding="utf-8"))
BLINDED = [r["id"] for r in RAW["roles"] if r["blinded"]]


def _knee_users():
    from annulus.trial.services import load_default_protocol

    load_default_protocol()
    return make_users()


@pytest.fixture
def knee(db, settings):
    """The knee trial in force, with one user per role."""
    settings.ANNULUS_PROTOCOL_FILE = str(KNEE)
    return _knee_users()


@pytest.fixture
def knee_committed(committed_db, settings):
    settings.ANNULUS_PROTOCOL_FILE = str(KNEE)
    return _knee_users()


def enrolled(users, site: str = "01", *, days_ago: int = 10, **evidence) -> Participant:
    """An enrolled knee participant through the services, consented ``days_ago - 1`` days ago."""
    from annulus.participants import services as ps

    coord, inv = users["coordinator"], users["investigator"]
    today = timezone.localdate()
    p = ps.prescreen(actor=coord, initials="KN", sex="F", recruitment_source="outpatient_clinic",
                     prescreened_on=today - timedelta(days=days_ago), site=site)
    ps.record_consent(actor=coord, participant_id=p.pk, consent_version="1.0",
                      consented_at=timezone.now() - timedelta(days=days_ago - 1), taken_by=inv)
    ps.enter_evidence(actor=coord, participant_id=p.pk, values={**KNEE_EVIDENCE, **evidence},
                      collected_on=today - timedelta(days=days_ago - 2))
    ps.decide_eligibility(actor=inv, participant_id=p.pk, password=TEST_PASSWORD)
    ps.enrol(actor=inv, participant_id=p.pk)
    return Participant.objects.get(pk=p.pk)


def randomised(users, site: str = "01", **kw) -> tuple[Participant, Envelope]:
    p = enrolled(users, site, **kw)
    env = services.randomise(actor=users["investigator"], participant_id=p.pk)
    return Participant.objects.get(pk=p.pk), env


def generate(users) -> AllocationList:
    return services.generate_list(actor=users["designer"], seed=SEED)


def arm_of_kit(kit_number: str) -> str:
    """The arm a kit holds, read from the sealed rows and the level-2 key (the test's own look-up)."""
    k = Kit.objects.select_related("allocation_list").get(kit_number=kit_number)
    return k.allocation_list.level2_key[k.group_label]


def arm_of(env: Envelope) -> str:
    return env.allocation_list.level2_key[env.group_label]


def logged_in(user, language: str = "en") -> Client:
    c = Client(HTTP_ACCEPT_LANGUAGE=language, enforce_csrf_checks=True)
    c.force_login(user)
    return c


def csrf_post(c: Client, url: str, data: dict | None = None, *, page: str):
    """POST as a browser does: the CSRF token taken from the page the form is on."""
    html = c.get(page).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    return c.post(url, {**(data or {}), "csrfmiddlewaretoken": token})


# ---- the kit list -------------------------------------------------------------------------------

@pytest.mark.req("X-1.3", "P-3.4")
def test_the_kit_list_has_the_arms_kits_for_every_dispensing_visit_unique_and_sealed(knee):
    lst = generate(knee)
    kits = list(Kit.objects.filter(allocation_list=lst).order_by("serial"))
    # dispensing visits: day 1 (first dose), week 4 and week 8 (kit dispensing), read from the file
    forms = {f["id"]: f.get("procedure") for f in RAW["schedule"]["forms"]}
    dispensing = {p["id"] for p in RAW["procedures"] if "dispensing" in p.get("checks", [])}
    visits = [v["id"] for v in RAW["schedule"]["visits"] if any(forms.get(f) in dispensing for f in v["forms"])]
    assert visits == ["day1", "w4", "w8"]
    per_unit = math.ceil(RAW["sample_size"]["per_arm"] * len(visits) * 1.10)  # 91 x 3 + 10 % -> 301
    assert per_unit == 301
    by_arm = Counter(lst.level2_key[k.group_label] for k in kits)
    assert by_arm == {"active": 2 * per_unit, "placebo": per_unit}
    assert by_arm["active"] >= 2 * 91 * 3 and by_arm["placebo"] >= 91 * 3
    numbers = [k.kit_number for k in kits]
    assert len(set(numbers)) == len(numbers) == 3 * per_unit
    assert all(re.fullmatch(r"KNEE-[0-9]{6}", n) for n in numbers)
    codes = set(Envelope.objects.filter(allocation_list=lst).values_list("drug_code", flat=True))
    assert not codes & set(numbers)
    # neither the numbers' order nor the serial order follows the arm: both arms are spread
    # over the list (a sorted list does not put one arm first)
    in_order = [lst.level2_key[k.group_label] for k in sorted(kits, key=lambda k: k.kit_number)]
    assert in_order[: per_unit].count("placebo") not in (0, per_unit)
    assert len({k.group_label for k in kits[:30]}) == 2
    assert lst.kits_sha256 and services.seal_problems(lst) == []
    # the audit event of the generation gives the total, never the kits per arm or a label
    event = decoded(AuditEvent.objects.get(object_type="allocation_list", object_id=str(lst.pk)))
    assert event["changes"]["kits"] == [None, 3 * per_unit]
    # the same seed gives the same kit list
    from annulus.randomisation.kits import generate_kits

    again = generate_kits({"active": 2 * per_unit, "placebo": per_unit},
                          {a: lbl for lbl, a in lst.level2_key.items()}, SEED, "KNEE-", exclude=codes)
    assert [(k.serial, k.kit_number, k.group_label) for k in kits] == \
        [(r["serial"], r["kit_number"], r["group_label"]) for r in again]


@pytest.mark.req("X-1.3", "P-3.4")
def test_a_changed_kit_row_breaks_the_seal(knee):
    lst = generate(knee)
    k = Kit.objects.filter(allocation_list=lst).order_by("serial").first()
    other = next(lbl for lbl in lst.level2_key if lbl != k.group_label)
    Kit.objects.filter(pk=k.pk).update(group_label=other)
    problems = services.seal_problems(lst)
    assert any(p.startswith("kit list: stored rows no longer match") for p in problems)
    assert not any(lbl in " ".join(problems).split() for lbl in lst.level2_key)


@pytest.mark.req("X-1.3", "P-3.1")
def test_the_first_trial_has_no_kit_list(users):
    lst = services.generate_list(actor=users["designer"], seed=SEED)
    assert not Kit.objects.exists() and lst.kits_sha256 == "" and lst.kit_settings == {}
    assert services.seal_problems(lst) == []


# ---- the kit of each visit ---------------------------------------------------------------------

@pytest.mark.req("X-1.3", "P-3.4")
def test_the_first_kit_is_the_drug_code_of_randomisation(knee):
    generate(knee)
    p, env = randomised(knee)
    assert procedures.allocated_kits(p.pk, "day1") == {env.drug_code}
    assert selectors.kits_allocated_for_system(p.pk, "day1") == {env.drug_code}
    assert procedures.allocated_kits(p.pk, "w4") == set()
    with pytest.raises(RuleViolation) as info:
        services.assign_kit(actor=knee["pharmacist"], participant_id=p.pk, visit_key="day1")
    assert info.value.field == "visit" and "drug code" in info.value.message


@pytest.mark.req("X-1.3", "P-3.4")
def test_assign_kit_gives_a_kit_of_the_participants_arm_once_per_visit(knee):
    generate(knee)
    people = [randomised(knee, site) for site in ("01", "01", "02", "03", "01", "02")]
    given = {}
    for p, env in people:
        for visit in ("w4", "w8"):
            kit = services.assign_kit(actor=knee["pharmacist"], participant_id=p.pk, visit_key=visit)
            assert arm_of_kit(kit.kit_number) == arm_of(env)
            assert (kit.participant_id, kit.visit_key, kit.assigned_by_id) == (p.pk, visit, knee["pharmacist"].pk)
            given[(p.pk, visit)] = kit.kit_number
            assert procedures.allocated_kits(p.pk, visit) == {kit.kit_number}
    assert len(set(given.values())) == len(given) == 12
    # asked again: the same kit, nothing written
    events = AuditEvent.objects.filter(object_type="kit_allocation").count()
    p, _env = people[0]
    again = services.assign_kit(actor=knee["investigator"], participant_id=p.pk, visit_key="w4")
    assert again.kit_number == given[(p.pk, "w4")]
    assert AuditEvent.objects.filter(object_type="kit_allocation").count() == events == 12
    # each arm's kits are given in the kit list's order
    lst = services.current_list()
    for label in lst.level2_key:
        used = list(Kit.objects.filter(group_label=label, participant__isnull=False).values_list("serial", flat=True))
        first = list(Kit.objects.filter(group_label=label).order_by("serial").values_list("serial", flat=True))
        assert sorted(used) == first[: len(used)]
    # the audit event: who, the kit and the visit; never a label or an arm
    kit = Kit.objects.get(kit_number=given[(p.pk, "w4")])
    event = AuditEvent.objects.get(object_type="kit_allocation", object_id=str(kit.pk))
    changes = decoded(event)["changes"]
    assert changes == {"kit_number": [None, kit.kit_number], "visit": [None, "w4"]}
    assert event.actor_id == knee["pharmacist"].pk and event.participant_id == p.pk
    text = str(decoded(event))
    for word in ("active", "placebo", "group_label", *[f"'{lbl}'" for lbl in lst.level2_key]):
        assert word not in text


def _refused(call, field: str, words: str):
    with pytest.raises(RuleViolation) as info:
        call()
    assert info.value.field == field, info.value
    assert words in info.value.message, info.value.message


@pytest.mark.req("X-1.3", "P-3.4")
def test_assign_kit_refusals(knee):
    ph = knee["pharmacist"]
    p = enrolled(knee)
    _refused(lambda: services.assign_kit(actor=ph, participant_id=p.pk, visit_key="w4"), "allocation_list",
             "no allocation list")
    generate(knee)
    _refused(lambda: services.assign_kit(actor=ph, participant_id=p.pk, visit_key="w4"), "participant",
             "not randomised")
    _refused(lambda: services.assign_kit(actor=ph, participant_id=p.pk, visit_key="w2"), "visit",
             "not a visit at which a kit is dispensed")
    _refused(lambda: services.assign_kit(actor=ph, participant_id=p.pk, visit_key="w12"), "visit",
             "not a visit at which a kit is dispensed")
    _refused(lambda: services.assign_kit(actor=ph, participant_id=999_999, visit_key="w4"), "participant",
             "no such participant")
    q, _env = randomised(knee)
    from annulus.participants import services as ps

    ps.withdraw(actor=knee["investigator"], participant_id=q.pk, withdrawn_on=timezone.localdate(),
                category="participant_request", details="moved away from the area")
    _refused(lambda: services.assign_kit(actor=ph, participant_id=q.pk, visit_key="w4"), "status", "withdrawn")
    assert not Kit.objects.filter(participant__isnull=False).exists()


@pytest.mark.req("X-1.3", "P-3.4")
def test_an_arm_whose_kits_are_used_up_refuses_with_a_clear_message(knee):
    generate(knee)
    p, env = randomised(knee)
    from django.db.models import CharField, Value
    from django.db.models.functions import Cast, Concat

    # every kit of the arm already given (to this participant, at made-up visits)
    Kit.objects.filter(group_label=env.group_label).update(
        participant=p, visit_key=Concat(Value("x"), Cast("serial", CharField())))
    assert Kit.objects.filter(participant__isnull=True).exists()  # the other arm's are left
    _refused(lambda: services.assign_kit(actor=knee["pharmacist"], participant_id=p.pk, visit_key="w4"),
             "kit_list", "no unused kit for this participant is left")


@pytest.mark.req("X-1.3", "P-3.4")
def test_assign_kit_honours_the_trial_and_record_locks(knee):
    from annulus.participants.locks import RecordLocked
    from annulus.participants.models import RecordLock
    from annulus.trial.lock import TrialLocked
    from annulus.trial.models import TrialState

    generate(knee)
    p, _env = randomised(knee)
    RecordLock.objects.create(participant=p, visit="w4", form="", locked_by=knee["data_manager"],
                              locked_at=timezone.now())
    with pytest.raises(RecordLocked):
        services.assign_kit(actor=knee["pharmacist"], participant_id=p.pk, visit_key="w4")
    TrialState.objects.update_or_create(id=1, defaults={"state": "locked"})
    with pytest.raises(TrialLocked):
        services.assign_kit(actor=knee["pharmacist"], participant_id=p.pk, visit_key="w8")
    assert not Kit.objects.filter(participant__isnull=False).exists()


# ---- through the visits services ---------------------------------------------------------------

KIT_CHECKS_PASSED = {f"kit_check__{c['id']}": ("yes" if c["kind"] == "confirmed" else c["max"] - 3)
                     for c in RAW["product"]["kit_checks"]}


@pytest.mark.req("X-1.3", "P-3.4")
def test_dispensing_records_accept_only_the_kit_allocated_for_the_visit(knee):
    generate(knee)
    today = timezone.localdate()
    p, env = randomised(knee, days_ago=45)
    day1 = today - timedelta(days=28)
    inv, ph = knee["investigator"], knee["pharmacist"]
    vs.open_visit(actor=inv, participant_id=p.pk, visit_id="day1", visit_date=day1)
    first = {"dosed_at": f"{day1.isoformat()}T09:30", "tablets_dispensed": 35, "dose_observed": "yes",
             **KIT_CHECKS_PASSED}
    # a kit number that is not the drug code is refused naming the kit number field
    other = Envelope.objects.exclude(pk=env.pk).first().drug_code
    with pytest.raises(RuleViolation) as info:
        vs.save_form(actor=inv, participant_id=p.pk, visit_key="day1", form_id="first_dose",
                     items={**first, "kit_number": other}, complete=True)
    assert info.value.field == "kit_number"
    assert Participant.objects.get(pk=p.pk).status == "randomised"
    # the drug code, typed in lower case with spaces, is the kit allocated: the participant is treated
    vs.save_form(actor=inv, participant_id=p.pk, visit_key="day1", form_id="first_dose",
                 items={**first, "kit_number": f" {env.drug_code.lower()} "}, complete=True)
    assert Participant.objects.get(pk=p.pk).status == "treated"
    # week 4: no kit is allocated yet, so the dispensing record (the pharmacist's) is refused
    vs.open_visit(actor=inv, participant_id=p.pk, visit_id="w4", visit_date=today)
    record = {"dispensed_on": today.isoformat(), "tablets_dispensed": 35, **KIT_CHECKS_PASSED}
    spare = Kit.objects.filter(participant__isnull=True, group_label=env.group_label).order_by("serial").first()
    with pytest.raises(RuleViolation) as info:
        vs.save_form(actor=ph, participant_id=p.pk, visit_key="w4", form_id="kit_dispensing",
                     items={**record, "kit_number": spare.kit_number}, complete=True)
    assert info.value.field == "kit_number" and "no kit has been allocated" in info.value.message
    kit = services.assign_kit(actor=ph, participant_id=p.pk, visit_key="w4")
    assert kit.kit_number == spare.kit_number and arm_of_kit(kit.kit_number) == arm_of(env)
    wrong = Kit.objects.filter(participant__isnull=True).order_by("serial").first().kit_number
    with pytest.raises(RuleViolation) as info:
        vs.save_form(actor=ph, participant_id=p.pk, visit_key="w4", form_id="kit_dispensing",
                     items={**record, "kit_number": wrong}, complete=True)
    assert info.value.field == "kit_number" and "not the kit allocated" in info.value.message
    # the day-1 kit is not the week-4 kit
    with pytest.raises(RuleViolation) as info:
        vs.save_form(actor=ph, participant_id=p.pk, visit_key="w4", form_id="kit_dispensing",
                     items={**record, "kit_number": env.drug_code}, complete=True)
    assert info.value.field == "kit_number"
    rec = vs.save_form(actor=ph, participant_id=p.pk, visit_key="w4", form_id="kit_dispensing",
                       items={**record, "kit_number": kit.kit_number}, complete=True)
    assert rec.state == "complete" and rec.items["kit_number"] == kit.kit_number


# ---- concurrency (PostgreSQL) -------------------------------------------------------------------

@pytest.mark.req("X-3.9", "P-3.4")
@pytest.mark.postgres
@pytest.mark.skipif(postgres_url() is None, reason="needs DATABASE_URL=postgres://...")
def test_concurrent_kit_allocations_give_distinct_kits(knee_committed):
    users = knee_committed
    generate(users)
    people = [randomised(users, site) for site in ("01", "02", "03", "01", "02", "03", "01", "02")]
    actors = [users["pharmacist"], users["investigator"]]
    calls = [lambda p=p, i=i, v=v: services.assign_kit(actor=actors[i % 2], participant_id=p.pk, visit_key=v)
             for i, (p, _env) in enumerate(people) for v in ("w4", "w8")]
    # and the same participant's week-4 kit asked for by two pharmacists at once, twice each
    target = people[0][0]
    calls += [lambda: services.assign_kit(actor=users["pharmacist"], participant_id=target.pk, visit_key="w4")] * 4
    results = race(calls)
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors[:3]
    given = list(Kit.objects.filter(participant__isnull=False).values_list("kit_number", "participant_id",
                                                                           "visit_key"))
    assert len(given) == 16 and len({k for k, *_ in given}) == 16
    # the five asks for the target's week-4 kit (the first call and the last four) got one kit
    assert len({r.kit_number for r in [results[0], *results[-4:]]}) == 1
    envs = {env.participant_id: env for _p, env in people}
    assert all(arm_of_kit(k) == arm_of(envs[pid]) for k, pid, _v in given)
    # each arm's kits were given in the list's order, none skipped
    for label in services.current_list().level2_key:
        used = sorted(Kit.objects.filter(group_label=label, participant__isnull=False).values_list("serial", flat=True))
        first = list(Kit.objects.filter(group_label=label).order_by("serial").values_list("serial", flat=True))
        assert used == first[: len(used)]
    assert AuditEvent.objects.filter(object_type="kit_allocation").count() == 16


def first_dose(users, p, env, days_ago: int = 28) -> None:
    """Day 1 opened ``days_ago`` days ago and its first-dose record complete with the drug code."""
    day1 = timezone.localdate() - timedelta(days=days_ago)
    vs.open_visit(actor=users["investigator"], participant_id=p.pk, visit_id="day1", visit_date=day1)
    vs.save_form(actor=users["investigator"], participant_id=p.pk, visit_key="day1", form_id="first_dose",
                 items={"dosed_at": f"{day1.isoformat()}T09:30", "tablets_dispensed": 35, "dose_observed": "yes",
                        "kit_number": env.drug_code, **KIT_CHECKS_PASSED}, complete=True)


# ---- pages and API: the kit list to the supply manager only; the kit to dispense ---------------

@pytest.mark.req("X-3.8", "P-3.4")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_kit_list_is_shown_to_the_supply_manager_only(knee, language):
    from tests.api_clients import Token

    lst = generate(knee)
    p, env = randomised(knee)
    kit = services.assign_kit(actor=knee["pharmacist"], participant_id=p.pk, visit_key="w4")
    kits = list(Kit.objects.filter(allocation_list=lst).order_by("serial"))
    sm = logged_in(knee["supply_manager"], language)
    page = sm.get("/pharmacy/kits/")
    assert page.status_code == 200
    text = page.content.decode()
    arms = {a["id"]: a for a in RAW["arms"]}
    lang = "zh" if language == "zh-hans" else "en"
    assert all(k.kit_number in text for k in kits)
    assert arms["active"]["name"][lang] in text and arms["placebo"]["kit"][lang] in text
    assert ("药盒清单" if lang == "zh" else "Kit list") in text
    # the CSV for the labels: every kit, its label, arm and contents in both languages; audited
    r = sm.get("/pharmacy/kits/kit-list.csv")
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.content.decode())))
    assert [(int(x["serial_number"]), x["kit_number"], x["group_label"]) for x in rows] == \
        [(k.serial, k.kit_number, k.group_label) for k in kits]
    assert all(x["arm"] == lst.level2_key[x["group_label"]] for x in rows)
    assert {x["contents_zh"] for x in rows} == {a["kit"]["zh"] for a in RAW["arms"]}
    assert [x["kit_number"] for x in rows if x["allocated"] == "yes"] == [kit.kit_number]
    assert AuditEvent.objects.filter(object_type="allocation_list", action="export").exists()
    api = Token(knee["supply_manager"]).get("/api/v1/allocation/pharmacy/kits")
    assert api.status_code == 200 and len(api.json()["kits"]) == len(kits)
    # every blinded role: refused on the page, the CSV and the API, and no kit number of the
    # list that was not allocated to the participant shows on the pages they read
    for role in BLINDED:
        c = logged_in(knee[role], language)
        assert c.get("/pharmacy/kits/").status_code in (403, 404), role
        assert c.get("/pharmacy/kits/kit-list.csv").status_code in (403, 404), role
        assert Token(knee[role]).get("/api/v1/allocation/pharmacy/kits").status_code == 403, role
        with pytest.raises(NotPermitted):
            selectors.kit_list(knee[role])
        for url in ("/", f"/participants/{p.pk}/", f"/participants/{p.pk}/visits/w4/",
                    f"/participants/{p.pk}/kits/w4/"):
            body = c.get(url).content.decode()
            for word in ("Group label", "组别代码", *[a["name"][lang] for a in RAW["arms"]],
                         *[a["kit"][lang] for a in RAW["arms"]]):
                assert word not in body, (role, url, word)
            assert not any(k.kit_number in body for k in kits if k.pk != kit.pk), (role, url)
    # the designer (level-1 key holder) does not hold the kit list either
    assert logged_in(knee["designer"]).get("/pharmacy/kits/").status_code == 403


@pytest.mark.req("X-1.3", "P-3.4")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_visit_page_allocates_the_kit_to_dispense(knee, language):
    generate(knee)
    today = timezone.localdate()
    p, env = randomised(knee, days_ago=45)
    inv = knee["investigator"]
    first_dose(knee, p, env)
    vs.open_visit(actor=inv, participant_id=p.pk, visit_id="w4", visit_date=today)
    c = logged_in(inv, language)
    allocate = f'>{"分配药盒" if language == "zh-hans" else "Allocate kit"}</button>'
    # day 1: the kit is the drug code, no button
    day1 = c.get(f"/participants/{p.pk}/visits/day1/").content.decode()
    assert env.drug_code in day1 and allocate not in day1
    # week 4: the investigator is not among the roles that record the kit dispensing (pharmacist)
    w4 = f"/participants/{p.pk}/visits/w4/"
    assert allocate not in c.get(w4).content.decode()
    assert c.get(f"/participants/{p.pk}/kits/w4/").status_code == 403
    # the pharmacist: the kit page, its button (CSRF enforced), then the kit allocated
    ph = logged_in(knee["pharmacist"], language)
    page = f"/participants/{p.pk}/kits/w4/"
    body = ph.get(page).content.decode()
    assert allocate in body
    assert ph.post(page, {}).status_code == 403  # no CSRF token
    assert not Kit.objects.filter(participant=p).exists()
    r = csrf_post(ph, page, page=page)
    assert r.status_code == 302
    kit = Kit.objects.get(participant=p, visit_key="w4")
    assert arm_of_kit(kit.kit_number) == arm_of(env)
    after = ph.get(page).content.decode()
    assert kit.kit_number in after and allocate not in after
    csrf_post(ph, page, page=page)  # again: the same kit
    assert list(Kit.objects.filter(participant=p).values_list("kit_number", flat=True)) == [kit.kit_number]
    # the coordinator records neither dispensing: no panel, refused
    assert logged_in(knee["coordinator"]).get(page).status_code == 403


@pytest.mark.req("X-1.3", "P-3.4")
def test_the_visit_page_button_for_a_role_that_records_the_dispensing(knee, settings, monkeypatch):
    """The panel on the visit page itself: shown to a role that both reads the visit page and
    records the dispensing (here the investigator, made a recorder of kit dispensing)."""
    from annulus.allocation import selectors as sel

    generate(knee)
    p, env = randomised(knee, days_ago=45)
    inv = knee["investigator"]
    first_dose(knee, p, env)
    vs.open_visit(actor=inv, participant_id=p.pk, visit_id="w4", visit_date=timezone.localdate())
    real = sel.may_allocate_kit
    monkeypatch.setattr(sel, "may_allocate_kit", lambda user, visit_id: real(knee["pharmacist"], visit_id)
                        if user.pk == inv.pk else real(user, visit_id))
    c = logged_in(inv)
    url = f"/participants/{p.pk}/visits/w4/"
    assert ">Allocate kit</button>" in c.get(url).content.decode()
    r = csrf_post(c, f"/participants/{p.pk}/kits/w4/", {"next": "visit"}, page=url)
    assert r.status_code == 302 and r["Location"] == url
    kit = Kit.objects.get(participant=p, visit_key="w4")
    body = c.get(url).content.decode()
    assert kit.kit_number in body and ">Allocate kit</button>" not in body


@pytest.mark.req("X-1.3", "P-3.4")
def test_the_api_allocates_the_kit_for_a_token_client(knee):
    from tests.api_clients import Token

    generate(knee)
    p, env = randomised(knee)
    ph = Token(knee["pharmacist"])
    url = f"/api/v1/allocation/participants/{p.pk}/visits/w4/kit"
    r = ph.get(url)
    assert r.status_code == 200 and r.json()["kit_number"] is None
    r = ph.post(url, {})
    assert r.status_code == 201, r.content
    number = r.json()["kit_number"]
    assert arm_of_kit(number) == arm_of(env) and set(r.json()) == {"participant_id", "visit", "kit_number",
                                                                    "first_kit", "allocated_at"}
    assert ph.post(url, {}).json()["kit_number"] == number
    assert ph.get(f"/api/v1/allocation/participants/{p.pk}/visits/day1/kit").json()["kit_number"] == env.drug_code
    bad = ph.post(f"/api/v1/allocation/participants/{p.pk}/visits/day1/kit", {})
    assert bad.status_code in (400, 422) and "visit" in bad.content.decode()
    for role in ("coordinator", "monitor", "statistician", "supply_manager"):
        assert Token(knee[role]).post(url, {}).status_code == 403, role
    assert Kit.objects.filter(participant=p).count() == 1


@pytest.mark.req("P-3.7", "P-3.4")
def test_after_the_lock_kit_allocation_is_refused_and_the_kit_list_only_reads(knee):
    """The kit trial's routes that test_lock_write_routes.py cannot reach on the first trial."""
    from annulus.trial.models import TrialState
    from tests.api_clients import Token

    from .lock_support import audit_head, row_counts

    generate(knee)
    p, _env = randomised(knee)
    TrialState.objects.update_or_create(id=1, defaults={"state": "locked"})
    token = Token(knee["pharmacist"])
    counts, head = row_counts(), audit_head()
    ph = logged_in(knee["pharmacist"])
    page = f"/participants/{p.pk}/kits/w4/"
    r = csrf_post(ph, page, page=page)
    assert r.status_code == 302
    assert "database is locked" in ph.get(page).content.decode()
    api = token.post(f"/api/v1/allocation/participants/{p.pk}/visits/w4/kit", {})
    assert api.status_code == 409 and api.json()["detail"][0]["field"] == "trial"
    sm = logged_in(knee["supply_manager"])
    assert csrf_post(sm, "/pharmacy/kits/", page="/pharmacy/kits/").status_code == 200
    assert row_counts() == counts and audit_head() == head
    assert not Kit.objects.filter(participant__isnull=False).exists()
