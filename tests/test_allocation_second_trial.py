"""The allocation of the second shipped protocol (knee OA, kit product, 2:1, stratified by site and
baseline pain): drug codes carry the protocol's prefix, not the first trial's, and the lists and
pages show stratified random numbers in their natural order (X-1.3, P-3.1)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
import yaml
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annulus.allocation import selectors, services
from annulus.allocation.models import Envelope
from annulus.cli import main
from annulus.errors import NotPermitted
from annulus.participants.models import Participant
from annulus.protocol import ProtocolError, default_protocol_path, load_protocol, parse_protocol
from annulus.randomisation import generate_sequence, generate_stratified

from .conftest import TEST_PASSWORD, make_users

KNEE = default_protocol_path().parent / "knee-oa-drug.yaml"
SEED = 731_224_905_117_3
KNEE_EVIDENCE = {
    "date_of_birth": "1960-03-01", "acr_knee_oa": True, "kl_grade": 2, "knee_pain_months": 12,
    "nrs_pain_screening": 5, "analgesic_inadequate": True, "inflammatory_arthritis": False,
    "knee_injection_3m": False, "knee_surgery": False, "egfr": 85, "alt_u_l": 30, "ast_u_l": 28, "bmi": 27.5,
    "pregnancy_or_lactation": False, "drug_allergy": False, "other_trial_30d": False,
}


@pytest.fixture
def knee(db, settings):
    """The knee trial in force, with one user per role."""
    from annulus.trial.services import load_default_protocol

    settings.ANNULUS_PROTOCOL_FILE = str(KNEE)
    load_default_protocol()
    return make_users()


def enrolled(users, site: str, **evidence) -> Participant:
    from annulus.participants import services as ps

    coord, inv = users["coordinator"], users["investigator"]
    today = timezone.localdate()
    p = ps.prescreen(actor=coord, initials="KN", sex="F", recruitment_source="outpatient_clinic",
                     prescreened_on=today - timedelta(days=10), site=site)
    ps.record_consent(actor=coord, participant_id=p.pk, consent_version="1.0",
                      consented_at=timezone.now() - timedelta(days=9), taken_by=inv)
    ps.enter_evidence(actor=coord, participant_id=p.pk, values={**KNEE_EVIDENCE, **evidence},
                      collected_on=today - timedelta(days=8))
    ps.decide_eligibility(actor=inv, participant_id=p.pk, password=TEST_PASSWORD)
    ps.enrol(actor=inv, participant_id=p.pk)
    return Participant.objects.get(pk=p.pk)


def _knee_raw() -> dict:
    return yaml.safe_load(KNEE.read_text(encoding="utf-8"))


def _parse(data: dict):
    return parse_protocol(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


# ---- drug codes take the protocol's prefix ----------------------------------------------------

@pytest.mark.req("X-1.3", "P-3.4")
def test_the_drug_code_prefix_is_the_trial_id_or_the_declared_one():
    # derived: the trial id up to its first hyphen, in capitals, and a hyphen
    assert load_protocol(KNEE).drug_code_prefix == "KNEE-"
    assert load_protocol(default_protocol_path()).drug_code_prefix == "DLBP-"
    data = _knee_raw()
    data["randomisation"]["drug_code_prefix"] = "KOA-"
    assert _parse(data).drug_code_prefix == "KOA-"
    data["trial"]["id"] = "verylongtrialname-x"
    del data["randomisation"]["drug_code_prefix"]
    assert _parse(data).drug_code_prefix == "VERYLONG-"
    # typed codes are compared in capitals without spaces, so a prefix is capitals, digits, hyphens
    for bad in ("koa-", "K OA", "KOA-KOA-KOA-KOA"):
        data["randomisation"]["drug_code_prefix"] = bad
        with pytest.raises(ProtocolError) as info:
            _parse(data)
        assert [e.split(":")[0] for e in info.value.errors] == ["randomisation.drug_code_prefix"]


@pytest.mark.req("P-3.1", "P-3.4")
def test_the_kit_trial_list_carries_the_kit_trial_prefix(knee):
    lst = services.generate_list(actor=knee["designer"], seed=SEED)
    codes = list(Envelope.objects.filter(allocation_list=lst).order_by("pk").values_list("drug_code", flat=True))
    assert len(codes) == lst.n == 6 * 273
    assert all(c.startswith("KNEE-") and len(c) == len("KNEE-") + 6 for c in codes)
    assert not any(c.startswith("DLBP-") for c in codes)
    # the same codes as the pure generator gives for this seed with the prefix passed explicitly
    raw = _knee_raw()
    expected = generate_stratified([(a["id"], a["ratio"]) for a in raw["arms"]],
                                   [(f["id"], tuple(f["levels"])) for f in raw["randomisation"]["strata"]],
                                   raw["sample_size"]["total"], SEED, block_multipliers=(1, 2),
                                   number_width=3, drug_code_prefix="KNEE-")
    assert sorted(codes) == sorted(e["drug_code"] for e in expected.entries)
    assert services.seal_problems(lst) == []


@pytest.mark.req("P-3.1", "P-3.4")
def test_the_first_trial_codes_stay_as_sealed(users):
    lst = services.generate_list(actor=users["designer"], seed=SEED)
    stored = list(Envelope.objects.filter(allocation_list=lst).order_by("serial").values_list("drug_code", flat=True))
    # the generator's own default prefix, which the first trial's sealed lists were made with
    before = generate_sequence([("high", 1), ("mid", 1), ("low", 1), ("control", 1)], 100, SEED,
                               block_multipliers=(1, 2), number_width=3)
    assert stored == [e["drug_code"] for e in before.entries]
    assert stored[0].startswith("DLBP-")


@pytest.mark.req("P-3.1", "P-3.4")
def test_the_cli_generates_the_kit_trial_codes_with_its_prefix(capsys):
    assert main(["randomisation", "generate", "--protocol", str(KNEE), "--seed", "20260201", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    codes = [e["drug_code"] for e in data["sequence"]]
    assert len(codes) == 6 * 273 and len(set(codes)) == len(codes)
    assert all(c.startswith("KNEE-") for c in codes)
    assert main(["randomisation", "generate", "--protocol", str(default_protocol_path()), "--seed", "20260201",
                 "--json"]) == 0
    assert all(e["drug_code"].startswith("DLBP-") for e in json.loads(capsys.readouterr().out)["sequence"])


# ---- the kit trial's pharmacist is blinded ----------------------------------------------------

@pytest.mark.req("X-3.8")
def test_the_blinded_kit_pharmacist_sees_no_arm(knee):
    services.generate_list(actor=knee["designer"], seed=SEED)
    p = enrolled(knee, "01")
    env = services.randomise(actor=knee["investigator"], participant_id=p.pk)
    pharmacist = knee["pharmacist"]
    for read in (selectors.pharmacy_rows, selectors.level2_key):
        with pytest.raises(NotPermitted):
            read(pharmacist)
    with pytest.raises(NotPermitted):
        selectors.envelope_for_pharmacy(pharmacist, env.pk)
    c = Client()
    c.force_login(pharmacist)
    for url in (reverse("pharmacy"), reverse("pharmacy_level2"), reverse("pharmacy_envelope", args=[env.pk]),
                reverse("pharmacy_letter", args=[env.pk])):
        resp = c.get(url)
        assert resp.status_code == 403, url
        page = resp.content.decode()
        assert not any(a["name"]["en"] in page or a["kit"]["en"] in page for a in _knee_raw()["arms"])


@pytest.mark.req("X-1.3")
def test_the_kit_trial_participant_panel_has_no_transplantation(knee):
    services.generate_list(actor=knee["designer"], seed=SEED)
    p = enrolled(knee, "02")
    env = services.randomise(actor=knee["investigator"], participant_id=p.pk)
    c = Client()
    c.force_login(knee["investigator"])
    html = c.get(reverse("participant", args=[p.pk])).content.decode()
    assert env.drug_code in html and env.drug_code.startswith("KNEE-")
    assert "Transplantation" not in html and reverse("treatment-record", args=[p.pk]) not in html


# ---- stratified random numbers in their natural order -----------------------------------------

def _natural(number: str) -> tuple[int, int]:
    stratum, serial = number.split("-")
    return int(stratum), int(serial)


@pytest.mark.req("P-3.1", "X-1.3")
def test_stratified_random_numbers_are_listed_in_natural_order(knee):
    lst = services.generate_list(actor=knee["designer"], seed=SEED)
    # 12 participants in the stratum site 01 / moderate pain, 3 in site 01 / severe, 11 in site 02 /
    # moderate, randomised interleaved: more than 10 random numbers in a stratum
    plan = [("01", 5)] * 12 + [("01", 8)] * 3 + [("02", 4)] * 11
    order = [plan[i] for i in sorted(range(len(plan)), key=lambda i: (i % 3, i))]
    investigator = knee["investigator"]
    opened = [services.randomise(actor=investigator, participant_id=enrolled(knee, site, nrs_pain_screening=nrs).pk)
              for site, nrs in order]
    numbers = [e.random_number for e in opened]
    strata = {st["label"]: st["number"] for st in lst.method_settings["strata"]}
    one = [n for n in numbers if _natural(n)[0] == strata["site=01; pain=moderate"]]
    assert len(one) == 12 and [_natural(n)[1] for n in one] == list(range(1, 13))
    expected = sorted(numbers, key=_natural)

    designer = knee["designer"]
    assert [r["random_number"] for r in selectors.level1_rows(designer)] == expected
    c = Client()
    c.force_login(designer)
    html = c.get(reverse("allocation_designer")).content.decode()
    shown = [n for n in re.findall(r"\b\d-\d{3}\b", html) if n in set(numbers)]
    assert list(dict.fromkeys(shown)) == expected
    # the allocation table: stratum after stratum, each in serial order (1-001 ... 1-273, 2-001 ...)
    table = services.document_bytes(lst)["table"].decode().splitlines()[1:]
    listed = [row.split(",")[3] for row in table]
    assert listed == sorted(listed, key=_natural) and len(listed) == 6 * 273
