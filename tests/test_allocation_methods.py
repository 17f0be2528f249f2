"""Stratified permuted blocks and minimisation in the application: generation and seal,
the stratum or factor levels from the site and the eligibility evidence, refusals of a missing or
invalid value, the replay of minimisation from its seed, the pharmacy and emergency unblinding,
the blind, and (on PostgreSQL) concurrent randomisations.

Run the PostgreSQL part with, for example:
ANNULUS_TEST_DB_NAME=test_methods DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
    .venv/bin/pytest tests/test_allocation_methods.py
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
import yaml
from django.test import Client
from django.utils import timezone

from annulus.allocation import selectors, services, testing
from annulus.allocation.models import AllocationList, Envelope
from annulus.audit.models import AuditEvent
from annulus.audit.selectors import decoded
from annulus.errors import RuleViolation
from annulus.participants.models import Evidence, Participant
from annulus.randomisation import generate_stratified
from annulus.randomisation.documents import allocation_table_bytes, level1_key_bytes
from annulus.randomisation.minimisation import Minimiser, plan_minimisation
from annulus.trial.selectors import active_protocol

from .conftest import ELIGIBLE_EVIDENCE, TEST_PASSWORD, postgres_url, race

SHIPPED = open("protocols/dlbp-admsc.yaml", encoding="utf-8").read()
SITES = [{"id": "A", "name": {"en": "North Hospital", "zh": "北方医院"}},
         {"id": "B", "name": {"en": "South Hospital", "zh": "南方医院"}},
         {"id": "C", "name": {"en": "East Hospital", "zh": "东方医院"}}]
SEED = testing.SEED
ARMS = ("high", "mid", "low", "control")
# factor definitions shared by both methods: the site (its levels are the declared sites) and the
# VAS pain of the eligibility evidence cut at 70 mm
SITE = {"id": "site", "from": "site", "levels": ["A", "B", "C"]}
PAIN = {"id": "pain", "from": "vas_mm", "levels": ["moderate", "severe"], "cuts": [70]}


def variant(randomisation: dict, version: str) -> str:
    data = yaml.safe_load(SHIPPED)
    data["sites"] = SITES
    data["version"] = version
    data["randomisation"] = {"case_number_width": 3, "level1_key_holder": "designer",
                             "level2_key_holder": "pharmacist", **randomisation}
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def stratified(length: int = 24) -> str:
    return variant({"method": "stratified_blocks", "block_sizes": [4, 8], "strata": [SITE, PAIN],
                    "stratum_list_length": length}, "1.1")


def minimisation() -> str:
    return variant({"method": "minimisation", "factors": [{**SITE, "weight": 1}, {**PAIN, "weight": 2},
                                                          {"id": "modic", "from": "modic_type",
                                                           "levels": ["none", "I", "II", "III"]}],
                    "minimisation": {"p": 0.8, "measure": "range"}}, "1.2")


def load(text: str):
    from annulus.trial.services import load_protocol_version

    return load_protocol_version(actor=None, text=text)


@pytest.fixture
def strat(users):
    load(stratified())
    return users


@pytest.fixture
def mini(users):
    load(minimisation())
    return users


def enrolled(users, site: str, **evidence):
    """An enrolled participant of ``site`` through the services, with eligible evidence."""
    from annulus.participants import services as ps

    coord, inv = users["coordinator"], users["investigator"]
    today = timezone.localdate()
    p = ps.prescreen(actor=coord, initials="TP", sex="F", recruitment_source="inpatient_referral",
                     prescreened_on=today - timedelta(days=10), site=site)
    ps.record_consent(actor=coord, participant_id=p.pk, consent_version="1.0",
                      consented_at=timezone.now() - timedelta(days=9), taken_by=inv)
    ps.enter_evidence(actor=coord, participant_id=p.pk, values={**ELIGIBLE_EVIDENCE, **evidence},
                      collected_on=today - timedelta(days=8))
    ps.decide_eligibility(actor=inv, participant_id=p.pk, password=TEST_PASSWORD)
    ps.enrol(actor=inv, participant_id=p.pk)
    return Participant.objects.get(pk=p.pk)


def randomise(users, p) -> Envelope:
    return services.randomise(actor=users["investigator"], participant_id=p.pk)


def arm(env: Envelope) -> str:
    return env.allocation_list.level2_key[env.group_label]


def event_of(env: Envelope) -> dict:
    e = AuditEvent.objects.get(object_type="randomisation", object_id=str(env.pk))
    return decoded(e)["changes"]


# ---- stratified permuted blocks ---------------------------------------------------------------

@pytest.mark.req("P-3.1", "P-3.3")
def test_stratified_lists_are_generated_and_sealed_one_per_stratum(strat):
    lst = testing.generate(strat)
    assert lst.method == "stratified_blocks" and lst.n == 6 * 24
    strata = lst.method_settings["strata"]
    assert [(s["number"], s["label"]) for s in strata] == [
        (1, "site=A; pain=moderate"), (2, "site=A; pain=severe"), (3, "site=B; pain=moderate"),
        (4, "site=B; pain=severe"), (5, "site=C; pain=moderate"), (6, "site=C; pain=severe")]
    for number in (1, 2, 3, 4, 5, 6):
        rows = list(Envelope.objects.filter(allocation_list=lst, stratum=str(number)).order_by("serial"))
        assert [e.random_number for e in rows[:2]] == [f"{number}-001", f"{number}-002"]
        # complete blocks of 4 and 8 fill 24: every stratum's list is balanced
        assert Counter(lst.level2_key[e.group_label] for e in rows) == {a: 6 for a in ARMS}
    assert Envelope.objects.values("drug_code").distinct().count() == 6 * 24
    assert services.seal_problems(lst) == []
    # the holder documents carry the stratum and are the pure core's, byte for byte, from the seed
    docs = services.document_bytes(lst)
    seq = generate_stratified([(a, 1) for a in ARMS], [("site", ("A", "B", "C")), ("pain", ("moderate", "severe"))],
                              24, SEED, block_multipliers=(1, 2), number_width=3)
    assert docs["table"] == allocation_table_bytes(seq)
    assert docs["table"].decode().splitlines()[0] == ("stratum,stratum_levels,serial_number,random_number,drug_code,"
                                                       "group_label")
    assert docs["table"].decode().splitlines()[1].startswith("1,site=A; pain=moderate,1,1-001,")
    event = decoded(AuditEvent.objects.get(object_type="allocation_list"))
    assert event["changes"]["method"] == [None, "stratified_blocks"] and event["changes"]["strata"] == [None, 6]
    assert str(lst.seed) not in AuditEvent.objects.get(object_type="allocation_list").payload


@pytest.mark.req("P-3.2")
def test_the_stratum_comes_from_the_site_and_the_evidence(strat):
    lst = testing.generate(strat)
    a_moderate = [enrolled(strat, "A", vas_mm=65) for _ in range(3)]
    b_severe = enrolled(strat, "B", vas_mm=70)  # a value equal to the cut belongs to the level above
    a_severe = enrolled(strat, "A", vas_mm=88)
    opened = [randomise(strat, p) for p in a_moderate]
    assert [e.random_number for e in opened] == ["1-001", "1-002", "1-003"]
    assert randomise(strat, b_severe).random_number == "4-001"
    env = randomise(strat, a_severe)
    assert env.random_number == "2-001" and env.stratum == "2"
    assert env.levels == {"site": "A", "pain": "severe"}
    # the group label is the sealed list's, the random number is not the case number
    assert env.group_label == Envelope.objects.get(allocation_list=lst, random_number="2-001").group_label
    assert a_severe.case_number == "005" and env.random_number != a_severe.case_number
    assert event_of(env)["stratum"] == [None, 2]
    assert event_of(env)["levels"] == [None, {"site": "A", "pain": "severe"}]
    assert Participant.objects.get(pk=a_severe.pk).status == "randomised"
    summary = selectors.list_summary(strat["designer"])
    assert [(s["number"], s["opened"], s["envelopes"]) for s in summary["strata"]] == [
        (1, 3, 24), (2, 1, 24), (3, 0, 24), (4, 1, 24), (5, 0, 24), (6, 0, 24)]
    assert services.seal_problems(lst) == []


def _nothing_written(p):
    assert not Envelope.objects.filter(participant=p).exists()
    assert not AuditEvent.objects.filter(object_type="randomisation", participant_id=p.pk).exists()
    assert Participant.objects.get(pk=p.pk).status == "enrolled"


@pytest.mark.req("P-3.2")
def test_a_site_that_is_no_level_is_refused_naming_the_factor(strat):
    """The validator makes the declared sites the levels; a participant whose site is none of them
    (the row edited in the table) is refused, not put in some stratum."""
    testing.generate(strat)
    p = enrolled(strat, "C")
    Participant.objects.filter(pk=p.pk).update(site="Z")
    with pytest.raises(RuleViolation) as exc:
        randomise(strat, p)
    assert exc.value.field == "site" and "'Z'" in exc.value.message and "A, B, C" in exc.value.message
    _nothing_written(p)


@pytest.mark.req("P-3.2")
def test_a_missing_evidence_value_is_refused_naming_the_factor(strat):
    testing.generate(strat)
    p = enrolled(strat, "A")
    # the VAS value is gone from the current evidence (kept, superseded): nothing to take the level from
    Evidence.objects.filter(participant=p, field="vas_mm").update(superseded=True)
    with pytest.raises(RuleViolation) as exc:
        randomise(strat, p)
    assert exc.value.field == "pain" and "vas_mm" in exc.value.message
    _nothing_written(p)


@pytest.mark.req("P-3.2")
def test_a_stratum_whose_list_is_used_up_refuses(users):
    load(stratified(length=4))
    testing.generate(users)
    people = [enrolled(users, "B", vas_mm=50) for _ in range(5)]
    assert [randomise(users, p).random_number for p in people[:4]] == ["3-001", "3-002", "3-003", "3-004"]
    with pytest.raises(RuleViolation) as exc:
        randomise(users, people[4])
    assert exc.value.field == "stratum" and "site=B; pain=moderate" in exc.value.message
    _nothing_written(people[4])
    # another stratum still has envelopes
    assert randomise(users, enrolled(users, "A", vas_mm=50)).random_number == "1-001"


@pytest.mark.req("P-3.3")
def test_a_changed_stratified_row_breaks_the_seal(strat):
    lst = testing.generate(strat)
    env = randomise(strat, enrolled(strat, "A"))
    Envelope.objects.filter(pk=env.pk).update(levels={"site": "B", "pain": "moderate"})
    assert services.seal_problems(lst) == ["envelope 1-001: the levels recorded at randomisation are not those "
                                           "of stratum 1"]
    other = Envelope.objects.filter(allocation_list=lst, stratum="3").exclude(group_label=env.group_label).first()
    Envelope.objects.filter(pk=other.pk).update(group_label=env.group_label)
    assert "table: stored rows no longer match the checksum sealed at generation" in services.seal_problems(lst)


@pytest.mark.req("P-4.2", "P-3.5")
def test_pharmacy_and_emergency_unblinding_follow_the_stratified_envelope(strat, monkeypatch):
    testing.generate(strat)
    testing.liposuction_days_ago(monkeypatch, 21)
    p = enrolled(strat, "B", vas_mm=80)
    env = randomise(strat, p)
    testing.released_and_dispensed(strat, env)
    row = next(r for r in selectors.pharmacy_rows(strat["pharmacist"]) if r["envelope"].pk == env.pk)
    assert row["arm"].id == arm(env) and row["envelope"].random_number == "4-001"
    letter = _logged_in(strat["pharmacist"]).get(f"/pharmacy/envelopes/{env.pk}/letter/")
    assert letter.status_code == 200
    text = letter.content.decode()
    assert "Random number (case number)" not in text and "4-001" in text and p.case_number in text
    _rec, revealed = services.emergency_unblind(actor=strat["investigator"], participant_id=p.pk,
                                                password=TEST_PASSWORD, reason="anaphylaxis after injection")
    assert revealed == arm(env)


# ---- minimisation -----------------------------------------------------------------------------

def _replayed(lst) -> list[str]:
    envelopes = list(Envelope.objects.filter(allocation_list=lst).order_by("serial"))
    minimiser = Minimiser(list(ARMS), [1, 1, 1, 1], [("site", ("A", "B", "C")), ("pain", ("moderate", "severe")),
                                                     ("modic", ("none", "I", "II", "III"))],
                          [1, 2, 1], p=0.8, seed=SEED, measure="range")
    history = [(e.levels, lst.level2_key[e.group_label]) for e in envelopes]
    # each allocation as minimisation gives it after the allocations made before it
    return [minimiser.assign(levels, history[:k]) for k, (levels, _arm) in enumerate(history)], \
        [a for _levels, a in history]


@pytest.mark.req("P-3.1", "P-3.3")
def test_minimisation_seals_seed_settings_labels_and_a_drug_code_pool(mini):
    lst = testing.generate(mini)
    assert lst.method == "minimisation" and lst.n == 100
    assert not Envelope.objects.filter(allocation_list=lst).exists()  # no list: envelopes come with allocation
    assert len({e["drug_code"] for e in lst.pool}) == 100 and lst.pool[0]["random_number"] == "001"
    assert lst.method_settings["p"] == 0.8 and [f["weight"] for f in lst.method_settings["factors"]] == [1, 2, 1]
    plan = plan_minimisation([(a, 1) for a in ARMS], [("site", ("A", "B", "C")), ("pain", ("moderate", "severe")),
                                                     ("modic", ("none", "I", "II", "III"))], 100, SEED,
                             weights=[1, 2, 1], p=0.8, measure="range", number_width=3)
    docs = services.document_bytes(lst)
    assert docs["table"] == allocation_table_bytes(plan) and docs["level1"] == level1_key_bytes(plan)
    assert docs["table"].decode().splitlines()[0] == "serial_number,random_number,drug_code"
    assert f"seed,{SEED}" in docs["level1"].decode() and "factor.pain,levels=moderate|severe; weight=2.0" in \
        docs["level1"].decode()
    assert lst.level2_key == plan.label_to_arm
    assert services.seal_problems(lst) == []


@pytest.mark.req("P-3.2", "P-3.3")
def test_minimisation_allocates_from_the_levels_and_replays_from_the_seed(mini):
    lst = testing.generate(mini)
    specs = [("A", 65, "II"), ("A", 80, "I"), ("B", 65, "I"), ("B", 90, "II"), ("A", 65, "II"), ("A", 72, "I"),
             ("B", 45, "II"), ("B", 75, "I"), ("A", 55, "I"), ("B", 66, "II"), ("A", 95, "II"), ("B", 41, "I")]
    envelopes = [randomise(mini, enrolled(mini, site, vas_mm=vas, modic_type=modic)) for site, vas, modic in specs]
    assert [e.serial for e in envelopes] == list(range(1, 13))
    assert [e.drug_code for e in envelopes] == [s["drug_code"] for s in lst.pool[:12]]
    assert envelopes[1].levels == {"site": "A", "pain": "severe", "modic": "I"}
    expected, actual = _replayed(lst)
    assert actual == expected
    assert len(set(actual)) > 1
    changes = event_of(envelopes[3])
    assert changes["position"] == [None, 4] and changes["levels"] == [None, {"site": "B", "pain": "severe",
                                                                             "modic": "II"}]
    assert services.replay_problems(lst) == [] and services.seal_problems(lst) == []


@pytest.mark.req("P-3.3")
def test_a_changed_minimisation_allocation_fails_the_replay(mini, capsys):
    from annulus.cli import main

    lst = testing.generate(mini)
    envelopes = [randomise(mini, enrolled(mini, site, vas_mm=vas)) for site, vas in
                 [("A", 65), ("B", 80), ("A", 80), ("B", 65), ("A", 65)]]
    assert main(["unblinding", "seal"]) == 0
    assert "all 5 allocations replay" in capsys.readouterr().out
    changed = envelopes[2]
    other = next(lbl for lbl in lst.level2_key if lbl != changed.group_label)
    Envelope.objects.filter(pk=changed.pk).update(group_label=other)
    problems = services.seal_problems(lst)
    assert ("envelope 003: position 3 was not allocated as the replay from the seed and the recorded levels "
            "allocates it") in problems
    # the lines name positions, never a label or an arm
    assert not any(a in " ".join(problems) for a in ARMS) and f" {other}" not in " ".join(problems)
    assert main(["unblinding", "seal"]) == 1
    assert "BROKEN envelope 003" in capsys.readouterr().out


@pytest.mark.req("P-3.2")
def test_minimisation_refuses_a_missing_factor_value_and_a_site_that_is_no_level(mini):
    lst = testing.generate(mini)
    p = enrolled(mini, "C")
    Participant.objects.filter(pk=p.pk).update(site="Z")  # a site none of the levels (edited in the table)
    with pytest.raises(RuleViolation) as exc:
        randomise(mini, p)
    assert exc.value.field == "site"
    _nothing_written(p)
    q = enrolled(mini, "A")
    Evidence.objects.filter(participant=q, field="modic_type").update(superseded=True)
    with pytest.raises(RuleViolation) as exc:
        randomise(mini, q)
    assert exc.value.field == "modic" and "modic_type" in exc.value.message
    _nothing_written(q)
    assert not Envelope.objects.filter(allocation_list=lst).exists()
    # the refused ones took no position: the next participant gets the first
    assert randomise(mini, enrolled(mini, "B")).serial == 1


@pytest.mark.req("P-4.2", "P-3.5")
def test_pharmacy_and_emergency_unblinding_follow_the_minimised_envelope(mini, monkeypatch):
    testing.generate(mini)
    testing.liposuction_days_ago(monkeypatch, 21)
    p = enrolled(mini, "A")
    env = randomise(mini, p)
    testing.released_and_dispensed(mini, env)
    row = next(r for r in selectors.pharmacy_rows(mini["pharmacist"]) if r["envelope"].pk == env.pk)
    assert row["arm"].id == arm(env)
    _rec, revealed = services.emergency_unblind(actor=mini["investigator"], participant_id=p.pk,
                                                password=TEST_PASSWORD, reason="anaphylaxis after injection")
    assert revealed == arm(env)


# ---- the blind --------------------------------------------------------------------------------

def _logged_in(user, language: str = "en") -> Client:
    c = Client(HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(user)
    return c


BLINDED = ("investigator", "coordinator", "monitor", "statistician")


@pytest.mark.req("X-3.8")
@pytest.mark.parametrize("protocol", ["stratified", "minimisation"])
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_blinded_roles_see_no_count_by_arm_or_label(users, protocol, language):
    load(stratified() if protocol == "stratified" else minimisation())
    lst = testing.generate(users)
    people = [enrolled(users, site, vas_mm=vas) for site, vas in [("A", 65), ("A", 65), ("B", 80), ("A", 65)]]
    envelopes = [randomise(users, p) for p in people]
    assert all(e.participant_id for e in envelopes)
    arm_names = [name for a in active_protocol().arms for name in (a.name.en, a.name.zh)]
    for role in BLINDED:
        c = _logged_in(users[role], language)
        for url in ["/"] + ([f"/participants/{people[0].pk}/"] if role != "statistician" else []):
            page = c.get(url)
            assert page.status_code == 200, (role, url)
            text = page.content.decode()
            for word in ("Group label", "group label", "组别代码", *arm_names):
                assert word not in text, (role, url, word)
        allocation = selectors.participant_allocation(users[role], people[0])
        assert "group_label" not in allocation and "arm" not in allocation
        assert selectors.export_allocations(users[role], [p.pk for p in people])[people[0].pk]["group_label"] is None
    # the level-1 key holder's page counts envelopes per stratum over all arms, never by label
    page = _logged_in(users["designer"], language).get("/allocation/")
    if protocol == "stratified":
        assert page.status_code == 200 and "site=A; pain=moderate" in page.content.decode()


# ---- concurrency (PostgreSQL) -------------------------------------------------------------------

@pytest.mark.req("X-3.9")
@pytest.mark.postgres
@pytest.mark.skipif(postgres_url() is None, reason="needs DATABASE_URL=postgres://...")
@pytest.mark.parametrize("method", ["stratified", "minimisation"])
def test_concurrent_randomisations_in_one_stratum(committed_db, users, method):
    load(stratified() if method == "stratified" else minimisation())
    lst = testing.generate(users)
    people = [enrolled(users, "A", vas_mm=65) for _ in range(16)]
    actors = [users["investigator"], users["coordinator"]]
    results = race([lambda p=p, i=i: services.randomise(actor=actors[i % 2], participant_id=p.pk)
                     for i, p in enumerate(people)])
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors[:3]
    opened = list(Envelope.objects.filter(participant__isnull=False).values_list("serial", "participant_id", "pk"))
    assert len({pk for *_x, pk in opened}) == len({pid for _s, pid, _pk in opened}) == 16
    assert sorted(s for s, *_x in opened) == list(range(1, 17))  # no envelope shared or skipped
    if method == "stratified":
        assert set(Envelope.objects.filter(participant__isnull=False).values_list("stratum", flat=True)) == {"1"}
    else:
        expected, actual = _replayed(AllocationList.objects.get(pk=lst.pk))
        assert actual == expected
        assert services.replay_problems(lst) == []
    assert services.seal_problems(lst) == []
