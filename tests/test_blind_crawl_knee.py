"""X-3.8 for the kit trial (tests/test_blind_crawl.py's crawl, on the second shipped protocol):
every page and API route requested as each blinded role of the knee protocol, the site
pharmacist among them, on a trial whose participants of both arms at two sites were randomised,
took their first dose from the kit the system gave, and came back at week 4 with that kit (its
tablets counted) for a new one. No arm, no dose text, no kit number the participants were not
given (the kit list is the level-2 key), no group label with a participant, and the pages of
participants of different arms at one site read the same once ids, codes and dates are set
aside."""

from __future__ import annotations

import inspect
import re
from collections import defaultdict
from datetime import timedelta

import pytest
import yaml
from django.test import Client
from django.test.utils import override_settings
from django.utils import timezone

from annulus.allocation import selectors
from annulus.allocation import services as allocation
from annulus.allocation.models import Envelope, Kit
from annulus.errors import NotPermitted, RuleViolation
from annulus.trial.selectors import active_protocol
from annulus.visits import services as vs
from tests.conftest import TEST_PASSWORD, fresh, make_users, shared_rows
from tests.test_blind_crawl import PARTICIPANT_ROUTE, Blind, _crawl, _leaks

from .knee_support import KNEE, URINE_HCG, VITALS, at, knee_enrolled, knee_list, koos, nrs

RAW = yaml.safe_load(KNEE.read_text(encoding="utf-8"))
BLINDED = [r["id"] for r in RAW["roles"] if r["blinded"]]
ARM_IDS = tuple(a["id"] for a in RAW["arms"])
SITES = ("01", "02")
KIT_CHECKS_PASSED = {f"kit_check__{c['id']}": ("yes" if c["kind"] == "confirmed" else c["max"] - 3)
                     for c in RAW["product"]["kit_checks"]}
# the title and the product name name both arms at once (public, on every page): set aside
# before the look, so that what is left of the dose text can only come from one arm
# before the look; so are the statuses of accounts, tokens and queries that read "active"
ALLOWED = tuple(sorted({*RAW["trial"]["title"].values(), *RAW["product"]["name"].values()}, key=len, reverse=True)) + (
    '<span class="status ok">active</span>', '<option value="active" ')


def _forbidden(protocol) -> list[str]:
    words = []
    for arm in RAW["arms"]:
        words += [*arm["name"].values(), *arm["kit"].values()]
    assert {a.name.en for a in protocol.arms} <= set(words)
    # the dose, the level-2 key and a group label column
    return words + ["KX-0217 100 mg", "100 mg", "dose_score", "Level-2 key", "Group label</th>", "组别代码</th>",
                    "35 matching", "35 tablets of"]


def _kit_numbers_check(given: set[str], prefix: str):
    """A response may name the kits the participants were given (their drug codes and the kits
    allocated), never another kit of the list: which numbers the list holds is its secret."""
    number = re.compile(re.escape(prefix) + r"[A-Z0-9]{6}")

    def check(text: str) -> list[str]:
        return [f"kit {n} of the list" for n in sorted(set(number.findall(text)) - given)]

    return check


@pytest.fixture(scope="module")
def knee_crawl_trial(request, django_db_setup, django_db_blocker):
    """Participants of both arms at two sites randomised, first dose recorded by the site
    pharmacist with the drug code, at week 4 the day-1 kit returned (compliance) and the kit
    allocated by the system dispensed; one more participant randomised at site 01, one enrolled
    at site 02. Built once for the module; every test only reads it."""
    from annulus.trial.services import load_default_protocol

    with override_settings(ANNULUS_PROTOCOL_FILE=str(KNEE)), shared_rows(request, django_db_blocker) as shared:
        with shared.build():
            load_default_protocol()
            users = make_users()
            knee_list(users)
            today = timezone.localdate()
            day1 = today - timedelta(days=28)
            by_site = defaultdict(list)
            for site in SITES:
                while len({arm for _p, _e, arm in by_site[site]}) < 2 or len(by_site[site]) < 3:
                    assert len(by_site[site]) < 12, "the stratified list gave one arm only"
                    p = knee_enrolled(users, site=site, consent_days_ago=40)
                    env = allocation.randomise(actor=users["investigator"], participant_id=p.pk)
                    by_site[site].append((p, env, selectors.arm_of_for_system(p.pk)))
            people = [row for rows in by_site.values() for row in rows]
            for p, env, _arm in people:
                _to_week4(users, p, env, day1, today)
            reps, cohort = {}, {}
            for site, rows in by_site.items():
                for arm in ARM_IDS:
                    p, env, _ = next(row for row in rows if row[2] == arm)
                    reps[f"{arm}@{site}"] = (p, env)
                    cohort[f"{arm}@{site}"] = site
            # emergency unblinding of a participant who is not compared (their pages say so)
            spare = next(p for p, _e, _a in by_site["01"] if all(p.pk != q.pk for q, _ in reps.values()))
            try:
                record, _arm = allocation.emergency_unblind(
                    actor=users["pi"], participant_id=spare.pk, password=TEST_PASSWORD,
                    reason="Suspected hepatotoxicity; treating physician must know the treatment")
            except RuleViolation as refused:
                # a kit product has no pharmacy dispensing record: the first dose is its eCRF form
                assert "not been dispensed" in refused.message, refused
                record = None
            knee_enrolled(users, site="02", consent_days_ago=5)
            sealed = Envelope.objects.filter(participant__isnull=True).order_by("serial").first()
            given = {e.drug_code for e in Envelope.objects.filter(participant__isnull=False)}
            given |= set(Kit.objects.filter(participant__isnull=False).values_list("kit_number", flat=True))
            prefix = allocation.kit_prefix(active_protocol())
        yield users, {"reps": reps, "cohort": cohort, "sealed": sealed, "record": record, "also": [spare],
                      "given": given, "prefix": prefix, "people": [p for p, _e, _a in people]}


def _to_week4(users, p, env, day1, today):
    coord, ph = users["coordinator"], users["pharmacist"]
    vs.open_visit(actor=coord, participant_id=p.pk, visit_id="day1", visit_date=day1)
    vs.save_visit_forms(actor=coord, participant_id=p.pk, visit_key="day1", complete=True, collected_at=at(day1, 8),
                        forms={"nrs": nrs(7), "koos": koos(2), "vitals": VITALS, "urine_hcg": URINE_HCG})
    vs.save_form(actor=ph, participant_id=p.pk, visit_key="day1", form_id="first_dose", complete=True,
                 collected_at=at(day1, 9),
                 items={"dosed_at": at(day1, 9).isoformat(), "kit_number": env.drug_code, "tablets_dispensed": 35,
                        "dose_observed": "yes", **KIT_CHECKS_PASSED})
    vs.open_visit(actor=coord, participant_id=p.pk, visit_id="w4", visit_date=today)
    kit = allocation.assign_kit(actor=ph, participant_id=p.pk, visit_key="w4")
    # 35 dispensed, 7 back after 28 days at one a day: 100 %
    ret = vs.save_form(actor=ph, participant_id=p.pk, visit_key="w4", form_id="kit_return", complete=True,
                       items={"returned_on": today.isoformat(), "kit_number": env.drug_code, "tablets_returned": 7})
    assert ret.computed["compliance"]["percent"] == 100.0
    vs.save_form(actor=ph, participant_id=p.pk, visit_key="w4", form_id="kit_dispensing", complete=True,
                 items={"dispensed_on": today.isoformat(), "kit_number": kit.kit_number, "tablets_dispensed": 35,
                        **KIT_CHECKS_PASSED})


@pytest.fixture
def users(knee_crawl_trial, db):
    return {role: fresh(user) for role, user in knee_crawl_trial[0].items()}


@pytest.fixture
def trial(knee_crawl_trial, db):
    rows = knee_crawl_trial[1]
    return {**rows, "reps": {k: (fresh(p), fresh(env)) for k, (p, env) in rows["reps"].items()},
            "others": [fresh(o) for o in (rows["sealed"], rows["record"]) if o is not None],
            "also": [fresh(p) for p in rows["also"]]}


@pytest.fixture
def blind(trial):
    return Blind(
        ARM_IDS, _forbidden,
        protocol_words=["Level-2 key", "Group label</th>", "组别代码</th>"],
        strings={"name": ["kit-list.csv", "allocation-table-pharmacy.csv", "level1-key.csv"],
                 "holder": ["pharmacy", "designer"], "key": ["day1", "w4"],
                 "form_id": ["first_dose", "kit_dispensing", "kit_return"]},
        combos=6, allowed=ALLOWED, check=_kit_numbers_check(trial["given"], trial["prefix"]))


@pytest.mark.req("X-3.8", "P-3.2", "P-3.4")
def test_the_knee_trial_built_for_the_crawl(users, trial):
    """Both arms at both sites, each treated and at week 4 with a kit of their arm."""
    arms = {k: selectors.arm_of_for_system(p.pk) for k, (p, _e) in trial["reps"].items()}
    assert arms == {f"{a}@{s}": a for a in ARM_IDS for s in SITES}
    for _p, env in trial["reps"].values():
        kit = Kit.objects.get(participant=env.participant, visit_key="w4")
        assert kit.group_label == env.group_label
    assert len(trial["given"]) == 2 * len(trial["people"])
    assert Kit.objects.filter(participant__isnull=True).exists()


@pytest.fixture
def same_sdv_sample(monkeypatch):
    """The monitoring plan samples forms from SHA-256(seed|case number|visit|form): which forms
    are in the plan changes with the case number, as the numbers shown do, and the crawl sets
    case numbers aside. Here every participant is sampled as one case is."""
    from annulus.monitoring import plan

    assert list(inspect.signature(plan.sampled).parameters) == ["plan", "participant", "visit", "form"]
    real = plan.sampled
    monkeypatch.setattr(plan, "sampled", lambda p, participant, visit, form: real(p, "001", visit, form))


@pytest.mark.req("X-3.8", "P-3.2", "P-3.3", "P-3.4")
@pytest.mark.parametrize("role", BLINDED)
def test_blinded_role_cannot_learn_an_allocation_in_the_kit_trial(role, users, trial, blind, same_sdv_sample):
    problems, requests = _crawl(role, users, trial, blind)
    assert requests > 100
    assert not problems, "\n".join(problems[:40])


@pytest.mark.req("X-3.8", "P-3.2")
@pytest.mark.parametrize("role", ["pharmacist", "investigator"])
def test_the_kit_trial_crawled_in_chinese(role, users, trial, blind, same_sdv_sample):
    """The pages in Chinese: the arms' Chinese names, kits and the dose text do not show either."""
    problems, requests = _crawl(role, users, trial, blind, language="zh-hans")
    assert requests > 100
    assert not problems, "\n".join(problems[:40])


@pytest.mark.req("X-3.8")
def test_the_knee_crawl_catches_a_leak(users, trial, blind, same_sdv_sample, monkeypatch):
    """The crawl fails when the blind breaks: a role shown the arms, an unallocated kit number."""
    real = selectors.can_see_arms
    monkeypatch.setattr(selectors, "can_see_arms", lambda user: True if user == users["monitor"] else real(user))
    problems, _ = _crawl("monitor", users, trial, blind, only=PARTICIPANT_ROUTE.search)
    assert any("differ by arm" in p or "reveals" in p for p in problems)
    spare = Kit.objects.filter(participant__isnull=True).order_by("serial").first().kit_number
    given = sorted(trial["given"])[0]
    assert _leaks({}, [], f"<td>{given}</td>", blind=blind) == []
    assert _leaks({}, [], f"<td>{spare}</td>", blind=blind) == [f"kit {spare} of the list"]


@pytest.mark.req("X-3.8", "P-3.4")
@pytest.mark.parametrize("role", BLINDED)
def test_the_kit_list_and_the_keys_are_refused_to_every_blinded_role(role, users, trial):
    c = Client()
    c.force_login(users[role])
    for url in ("/pharmacy/kits/", "/pharmacy/kits/kit-list.csv", "/pharmacy/level2-key.csv", "/allocation/",
                "/allocation/documents/level1-key.csv", "/api/v1/allocation/pharmacy/kits",
                "/api/v1/allocation/level2", "/api/v1/allocation/level1", "/api/v1/allocation/list",
                "/api/v1/allocation/unblinded"):
        assert c.get(url).status_code in (403, 404), (role, url)
    with pytest.raises(NotPermitted):
        selectors.kit_list(users[role])


@pytest.mark.req("X-1.3", "P-4.3")
def test_a_kit_trial_has_no_transplantation_record(users, trial):
    """The transplantation record is the cell product's: in the kit trial its page is not found
    (it was a server error) and the API refuses it naming the product, writing nothing."""
    from annulus.allocation.models import Transplant
    from tests.api_clients import Token

    p, env = trial["reps"]["active@01"]
    c = Client()
    c.force_login(users["investigator"])
    assert c.get(f"/participants/{p.pk}/transplant/").status_code == 404
    r = Token(users["investigator"]).post(f"/api/v1/allocation/participants/{p.pk}/transplant",
                                          {"transplanted_at": timezone.now().isoformat(), "drug_code": env.drug_code})
    assert r.status_code == 400 and r.json()["detail"][0]["field"] == "product", r.content
    assert not Transplant.objects.filter(participant=p).exists()
    with pytest.raises(RuleViolation) as refused:
        allocation.record_transplant(actor=users["investigator"], participant_id=p.pk,
                                     transplanted_at=timezone.now(), drug_code=env.drug_code)
    assert refused.value.field == "product"
