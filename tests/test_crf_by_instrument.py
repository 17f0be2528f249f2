"""A form is scored by its instrument (the protocol's ``instrument`` of the form, else its id),
whatever the form is called: the knee trial's NRS and KOOS forms store the scores of the
instrument core, saved through the eCRF service and through the eCRF page, with the NRS change
from the baseline visit; KOOS completes only when its own missing-item rule scores every subscale;
on the first trial a VAS form named otherwise is still the VAS (X-1.3, X-5.7).

The knee trial's visits are anchored on its first dose, which the visits services do not record
yet (a knee visit cannot be opened through them), so the visits here are rows created as
``open_visit`` creates them; every form is then saved through the services or the page."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.test import Client
from django.utils import timezone

from annulus.instruments import score
from annulus.instruments.koos import ITEM_IDS as KOOS_ITEMS
from annulus.instruments.koos import SUBSCALES
from annulus.protocol import parse_protocol

from .test_visits_support import GOOD, aware, transplant_dates, trial_participant  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
KNEE = ROOT / "protocols" / "knee-oa-drug.yaml"
FIRST = ROOT / "protocols" / "dlbp-admsc.yaml"

# one answer (0-4) per KOOS item, in the questionnaire's order
KOOS_DAY1 = dict(zip(KOOS_ITEMS, [2, 1, 0, 1, 2, 3, 2,  2, 3, 2, 1, 2, 3, 2, 1, 2,
                                  2, 3, 2, 1, 2, 1, 1, 2, 2, 1, 2, 1, 2, 1, 2, 3, 1,
                                  3, 4, 4, 3, 4,  3, 2, 3, 2]))
KOOS_W4 = dict(zip(KOOS_ITEMS, [1, 1, 0, 0, 1, 2, 1,  1, 2, 1, 0, 1, 2, 1, 0, 1,
                                1, 2, 1, 0, 1, 0, 0, 1, 1, 0, 1, 0, 1, 0, 1, 2, 0,
                                2, 3, 3, 2, 3,  2, 1, 2, 1]))


def koos_core(answers: dict) -> dict:
    """The KOOS core's result for the same answers, item ids in place of list positions."""
    d = score("koos", [answers.get(i) for i in KOOS_ITEMS]).to_dict()
    d["missing"] = [KOOS_ITEMS[int(m[6:-1])] for m in d["missing"]]
    return d


def by_hand(codes: list[int]) -> float:
    """A KOOS subscale as the user's guide computes it: 100 - mean x 100 / 4."""
    return 100 - sum(codes) / len(codes) * 25


# ---- the knee trial, its participant and visits ----------------------------------------------------

@pytest.fixture
def protocol_version(db, settings):
    """The knee trial in force (``users`` and every page read it)."""
    from annulus.trial.services import load_default_protocol

    settings.ANNULUS_PROTOCOL_FILE = str(KNEE)
    return load_default_protocol()


@pytest.fixture
def knee(users):
    """A consented knee participant with the day 1 (baseline), week 2 and week 4 visits taken place."""
    from annulus.participants import services as ps
    from annulus.trial.selectors import active_protocol, active_version
    from annulus.visits.models import Visit

    protocol = active_protocol()
    assert protocol.trial.id == "knee-oa-drug"
    coord = users["coordinator"]
    today = timezone.localdate()
    p = ps.prescreen(actor=coord, initials="KN", sex="F", recruitment_source="outpatient_clinic",
                     prescreened_on=today - timedelta(days=40), site="01")
    ps.record_consent(actor=coord, participant_id=p.pk, consent_version="1.0",
                      consented_at=timezone.now() - timedelta(days=39), taken_by=users["investigator"])
    days = {"day1": 30, "w2": 16, "w4": 2}
    for visit_id, ago in days.items():
        Visit.objects.create(participant=p, visit_id=visit_id, visit_date=today - timedelta(days=ago),
                             forms=list(protocol.schedule.visit(visit_id).forms), protocol_version=active_version(),
                             created_by=coord, created_at=timezone.now())
    return p, {v: today - timedelta(days=ago) for v, ago in days.items()}


def browser(user, language: str = "en") -> Client:
    c = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(user)
    c.get("/")
    return c


def post_form(c: Client, url: str, data: dict):
    """Post the form page as a browser does: the page first, then its fields with the CSRF token."""
    page = c.get(url)
    assert page.status_code == 200, url
    revision = re.search(r'name="revision" value="(\d+)"', page.content.decode())
    extra = {"revision": revision.group(1)} if revision else {}
    return c.post(url, {**extra, **data, "csrfmiddlewaretoken": c.cookies["csrftoken"].value})


# ---- through the service ------------------------------------------------------------------------

@pytest.mark.req("X-1.3", "X-5.7")
def test_nrs_and_koos_saved_through_the_service_store_the_cores_scores(knee, users):
    from annulus.visits import services as vs

    p, dates = knee
    coord = users["coordinator"]
    nrs1 = vs.save_form(actor=coord, participant_id=p.pk, visit_key="day1", form_id="nrs", items={"nrs_pain": "7"},
                        complete=True, collected_at=aware(dates["day1"]))
    koos1 = vs.save_form(actor=coord, participant_id=p.pk, visit_key="day1", form_id="koos",
                         items={k: str(v) for k, v in KOOS_DAY1.items()}, complete=True,
                         collected_at=aware(dates["day1"]))
    # day 1 is the baseline visit: its NRS has no change from baseline
    assert nrs1.state == "complete" and nrs1.computed == score("nrs", [7]).to_dict()
    assert "change_from_baseline" not in nrs1.computed
    assert koos1.state == "complete" and koos1.computed == koos_core(KOOS_DAY1)
    for key, (_label, ids) in SUBSCALES.items():
        assert koos1.computed[key] == pytest.approx(by_hand([KOOS_DAY1[i] for i in ids]))
    assert koos1.computed["pain"] == pytest.approx(100 - 18 / 9 * 25)  # P1-P9 sum to 18

    # week 2: the NRS against day 1's, 4 - 7 = -3 points
    nrs2 = vs.save_form(actor=coord, participant_id=p.pk, visit_key="w2", form_id="nrs", items={"nrs_pain": 4},
                        complete=True, collected_at=aware(dates["w2"]))
    assert nrs2.computed == {**score("nrs", [4]).to_dict(), "change_from_baseline": -3}

    # week 4: both saved at once (the visit entry page's and the API's batch route)
    saved = vs.save_visit_forms(actor=coord, participant_id=p.pk, visit_key="w4",
                                forms={"nrs": {"nrs_pain": 2}, "koos": KOOS_W4}, complete=True,
                                collected_at=aware(dates["w4"]))
    nrs4, koos4 = saved
    assert nrs4.computed == {**score("nrs", [2]).to_dict(), "change_from_baseline": -5}
    assert koos4.computed == koos_core(KOOS_W4)
    assert koos4.computed["qol"] == pytest.approx(100 - 6 / 4 * 25)  # Q1-Q4 sum to 6

    # a later change of the baseline NRS is taken by the next save of a follow-up NRS
    vs.save_form(actor=coord, participant_id=p.pk, visit_key="day1", form_id="nrs", items={"nrs_pain": 8},
                 complete=True, reason="transcription error")
    nrs2 = vs.save_form(actor=coord, participant_id=p.pk, visit_key="w2", form_id="nrs", items={"nrs_pain": 5},
                        complete=True, reason="transcription error")
    assert nrs2.computed["change_from_baseline"] == -3 and nrs2.state == "changed"


@pytest.mark.req("X-5.7")
def test_a_koos_with_missing_items_follows_koos_own_rule(knee, users):
    from annulus.errors import RuleViolation
    from annulus.visits import services as vs
    from annulus.visits.models import FormRecord

    p, dates = knee
    coord = users["coordinator"]
    answers = dict(KOOS_W4)
    for i in ("p5", "p6", "p7", "p8", "p9"):  # 4 of the 9 pain items: the pain subscale needs 5
        answers.pop(i)
    with pytest.raises(RuleViolation) as exc:
        vs.save_form(actor=coord, participant_id=p.pk, visit_key="w4", form_id="koos", items=answers, complete=True)
    assert exc.value.field == "p5"
    assert "Pain not scored: 4 of 9 items answered, 5 needed" in exc.value.message
    assert not FormRecord.objects.filter(participant=p, form_id="koos").exists()
    # as a draft it is kept, the other four subscales scored
    draft = vs.save_form(actor=coord, participant_id=p.pk, visit_key="w4", form_id="koos", items=answers)
    assert draft.state == "draft" and draft.computed == koos_core(answers)
    assert draft.computed["pain"] is None and draft.computed["missing"] == ["p5", "p6", "p7", "p8", "p9"]
    assert draft.computed["symptoms"] == pytest.approx(by_hand([KOOS_W4[i] for i in SUBSCALES["symptoms"][1]]))
    # a fifth pain item answered: half of them, so the form completes with the answered items' mean
    answers["p9"] = 3
    done = vs.save_form(actor=coord, participant_id=p.pk, visit_key="w4", form_id="koos", items=answers,
                        complete=True)
    assert done.state == "complete" and done.computed == koos_core(answers)
    assert done.computed["pain"] == pytest.approx(by_hand([1, 2, 1, 0, 3]))  # P1-P4 and P9
    assert done.computed["missing"] == ["p5", "p6", "p7", "p8"]
    # an NRS left blank cannot be completed, naming its item
    with pytest.raises(RuleViolation) as exc:
        vs.save_form(actor=coord, participant_id=p.pk, visit_key="w4", form_id="nrs", items={}, complete=True)
    assert exc.value.field == "nrs_pain"


# ---- through the eCRF page ------------------------------------------------------------------------

@pytest.mark.req("X-1.3", "X-5.7")
@pytest.mark.parametrize("language, koos_pain, change", [("en", "KOOS pain", "change from baseline"),
                                                          ("zh-hans", "KOOS 疼痛", "较基线变化")])
def test_the_ecrf_page_saves_nrs_and_koos_with_the_cores_scores(knee, users, language, koos_pain, change):
    from annulus.visits.models import FormRecord

    p, dates = knee
    c = browser(users["coordinator"], language)
    base = f"/participants/{p.pk}/visits"
    when = {v: timezone.localtime(aware(d)).strftime("%Y-%m-%dT%H:%M") for v, d in dates.items()}
    for visit_id, form_id, data in (("day1", "nrs", {"nrs_pain": "6"}), ("day1", "koos", KOOS_DAY1),
                                    ("w2", "nrs", {"nrs_pain": "3"}), ("w4", "koos", KOOS_W4)):
        r = post_form(c, f"{base}/{visit_id}/{form_id}/",
                      {**{k: str(v) for k, v in data.items()}, "collected_at": when[visit_id], "complete": "1"})
        assert r.status_code == 302, r.content.decode()[:3000]
    records = {(r.visit.visit_id, r.form_id): r for r in FormRecord.objects.filter(participant=p)}
    assert records["day1", "nrs"].computed == score("nrs", [6]).to_dict()
    assert records["w2", "nrs"].computed == {**score("nrs", [3]).to_dict(), "change_from_baseline": -3}
    assert records["day1", "koos"].computed == koos_core(KOOS_DAY1)
    assert records["w4", "koos"].computed == koos_core(KOOS_W4)
    assert all(r.state == "complete" for r in records.values())
    assert timezone.localtime(records["w2", "nrs"].collected_at).strftime("%Y-%m-%dT%H:%M") == when["w2"]

    # the visit pages show the scores: the NRS and its change, the five KOOS subscales
    def shown(html: str, label: str, value) -> bool:
        return f'<span class="muted">{label}</span> <b>{value}</b>' in html

    w2 = c.get(f"{base}/w2/").content.decode()
    assert shown(w2, "NRS (0–10)", 3) and shown(w2, change, -3)
    w4 = c.get(f"{base}/w4/").content.decode()
    core = koos_core(KOOS_W4)
    assert shown(w4, koos_pain, round(core["pain"], 1))
    for key in SUBSCALES:
        assert f"<b>{round(core[key], 1)}</b>" in w4, key
    day1 = c.get(f"{base}/day1/").content.decode()
    assert shown(day1, "NRS (0–10)", 6) and change not in day1  # the baseline visit has no change
    # the form page itself shows them too
    page = c.get(f"{base}/day1/koos/").content.decode()
    assert f"<th>{koos_pain}</th><td><b>{round(koos_core(KOOS_DAY1)['pain'], 1)}</b></td>" in page


@pytest.mark.req("X-5.7")
def test_the_ecrf_page_refuses_an_unscorable_koos_naming_the_item(knee, users):
    from annulus.visits.models import FormRecord

    p, _dates = knee
    c = browser(users["coordinator"])
    answers = {k: str(v) for k, v in KOOS_W4.items() if k not in ("q2", "q3", "q4")}  # QOL: 1 of 4, 2 needed
    r = post_form(c, f"/participants/{p.pk}/visits/w4/koos/", {**answers, "complete": "1"})
    assert r.status_code == 200
    html = r.content.decode()
    assert "cannot be scored" in html and "QOL) not scored: 1 of 4 items answered, 2 needed" in html
    assert not FormRecord.objects.filter(participant=p, form_id="koos").exists()


# ---- the form's id is not its instrument ---------------------------------------------------------

def renamed(path: Path, old: str, new: str) -> dict:
    """The protocol file with form ``old`` called ``new`` everywhere it is named. Without its
    analysis plan: the analysis datasets read the first trial's VAS from the form called vas."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data.pop("analysis", None)

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "form" and v == old:
                    node[k] = new
                elif k == "forms" and isinstance(v, list):
                    node[k] = [new if x == old else x for x in v]
                    for x in node[k]:
                        if isinstance(x, dict) and x.get("id") == old:
                            x["id"] = new
                walk(node[k])
        elif isinstance(node, list):
            for x in node:
                walk(x)

    walk(data)
    return data


@pytest.mark.req("X-1.3")
def test_a_vas_form_named_otherwise_is_scored_as_the_vas():
    from annulus.visits import crf

    data = renamed(FIRST, "vas", "pain_vas")
    protocol = parse_protocol(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    assert "vas" not in {f.id for f in protocol.schedule.forms}
    assert crf.instrument_of(protocol, "pain_vas") == "vas"
    computed = crf.compute(protocol, "pain_vas", {"vas_mm": 35}, baseline=62)
    assert computed == {**score("vas", [35]).to_dict(), "change_from_baseline": -27.0}
    assert crf.headline("pain_vas", computed, protocol=protocol) == [("VAS (mm)", 35.0),
                                                                       ("change from baseline", -27.0)]
    problem = crf.completion_problem(protocol, "pain_vas", {}, crf.compute(protocol, "pain_vas", {}))
    assert problem.field == "vas_mm"
    # a KOOS form of another name is the KOOS
    knee = renamed(KNEE, "koos", "knee_koos")
    knee_protocol = parse_protocol(yaml.safe_dump(knee, allow_unicode=True, sort_keys=False))
    assert crf.compute(knee_protocol, "knee_koos", KOOS_W4) == koos_core(KOOS_W4)
    assert [label for label, _v in crf.headline("knee_koos", koos_core(KOOS_W4), protocol=knee_protocol)] == [
        "KOOS symptoms", "KOOS pain", "KOOS daily living (ADL)", "KOOS sport and recreation", "KOOS quality of life"]


class TestFirstTrialWithARenamedVasForm:
    """The first trial, its VAS form called ``pain_vas``: saved through the service at baseline and
    at week 1, the week-1 score carries its change from baseline."""

    @pytest.fixture
    def protocol_version(self, db):
        from annulus.trial.services import load_protocol_version

        text = yaml.safe_dump(renamed(FIRST, "vas", "pain_vas"), allow_unicode=True, sort_keys=False)
        return load_protocol_version(actor=None, text=text)

    @pytest.mark.req("X-1.3")
    def test_the_change_from_baseline_follows_the_instrument(self, trial_participant, users):  # noqa: F811
        from annulus.visits import services as vs

        p = trial_participant(lipo_days_ago=35, transplant_days_ago=8)
        coord = users["coordinator"]
        today = timezone.localdate()
        vs.open_visit(actor=coord, participant_id=p.pk, visit_id="baseline", visit_date=today - timedelta(days=10))
        base = vs.save_form(actor=coord, participant_id=p.pk, visit_key="baseline", form_id="pain_vas",
                            items={"vas_mm": 64}, complete=True)
        assert base.computed == score("vas", [64]).to_dict()
        vs.open_visit(actor=coord, participant_id=p.pk, visit_id="w1", visit_date=today - timedelta(days=1))
        w1 = vs.save_form(actor=coord, participant_id=p.pk, visit_key="w1", form_id="pain_vas",
                          items={"vas_mm": "41"}, complete=True)
        assert w1.computed == {**score("vas", [41]).to_dict(), "change_from_baseline": -23.0}
        odi = vs.save_form(actor=coord, participant_id=p.pk, visit_key="w1", form_id="odi", items=GOOD["odi"],
                           complete=True)
        assert "change_from_baseline" not in odi.computed
