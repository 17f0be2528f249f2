"""The SDTM export of the second shipped protocol (X-1.3, X-7.6): a small knee trial taken through
the services at its three sites (randomised 2:1 from the stratified list, the first dose recorded
with the kit given at randomisation, NRS and KOOS at day 1 and week 4, at week 4 the day-1 kit
returned and a new kit dispensed; one participant randomised and never dosed). The export takes
its reference start from the first-dose record, its sites from the participants, its exposures
from the dispensing records, its procedures, questionnaires and trial design from the protocol;
the blinded export names no arm anywhere, the one by arms names both. Built once for the module."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from django.test.utils import override_settings
from django.utils import timezone

from annulus.interchange import define, sdtm, sdtm_checks
from annulus.visits import services as vs
from tests.conftest import make_users, shared_rows

from .knee_support import KNEE, URINE_HCG, VITALS, at, knee_enrolled, knee_list, koos, nrs

RAW = yaml.safe_load(KNEE.read_text(encoding="utf-8"))
KIT_CHECKS_PASSED = {f"kit_check__{c['id']}": ("yes" if c["kind"] == "confirmed" else c["max"] - 3)
                     for c in RAW["product"]["kit_checks"]}
CT = Path(__file__).parent / "fixtures" / "cdisc_ct_subset.json"
# per participant: site, NRS at day 1 and week 4, KOOS code at day 1 and week 4, dosed
PEOPLE = [("01", (8, 5), (3, 2), True), ("02", (7, 6), (2, 2), True), ("03", (6, 3), (3, 1), True),
          ("01", (9, 7), (4, 3), True), ("02", (5, 4), (2, 1), True), ("03", (7, 7), (1, 1), False)]
DAYS_SINCE_DAY1 = 28

pytestmark = pytest.mark.req("X-7.6", "X-1.3")


def _build(users, today):
    """The participants, through the services; returns [(participant, day 1, dosed, day-1 kit, week-4 kit)]."""
    from annulus.allocation import services as allocation

    coord, ph = users["coordinator"], users["pharmacist"]
    knee_list(users)
    day1 = today - timedelta(days=DAYS_SINCE_DAY1)
    out = []
    for site, pain, function, dosed in PEOPLE:
        p = knee_enrolled(users, site=site, consent_days_ago=DAYS_SINCE_DAY1 + 10)
        env = allocation.randomise(actor=users["investigator"], participant_id=p.pk)
        vs.open_visit(actor=coord, participant_id=p.pk, visit_id="day1", visit_date=day1)
        vs.save_visit_forms(actor=coord, participant_id=p.pk, visit_key="day1", complete=True,
                            collected_at=at(day1, 8), forms={"nrs": nrs(pain[0]), "koos": koos(function[0]),
                                                             "vitals": VITALS, "urine_hcg": URINE_HCG})
        if not dosed:
            out.append((p, day1, False, None, None))
            continue
        vs.save_form(actor=ph, participant_id=p.pk, visit_key="day1", form_id="first_dose", complete=True,
                     collected_at=at(day1, 9),
                     items={"dosed_at": at(day1, 9).isoformat(), "kit_number": env.drug_code,
                            "tablets_dispensed": 35, "dose_observed": "yes", **KIT_CHECKS_PASSED})
        vs.open_visit(actor=coord, participant_id=p.pk, visit_id="w4", visit_date=today)
        vs.save_visit_forms(actor=coord, participant_id=p.pk, visit_key="w4", complete=True, collected_at=at(today, 8),
                            forms={"nrs": nrs(pain[1]), "koos": koos(function[1])})
        kit = allocation.assign_kit(actor=ph, participant_id=p.pk, visit_key="w4")
        vs.save_form(actor=ph, participant_id=p.pk, visit_key="w4", form_id="kit_return", complete=True,
                     items={"returned_on": today.isoformat(), "kit_number": env.drug_code, "tablets_returned": 7})
        vs.save_form(actor=ph, participant_id=p.pk, visit_key="w4", form_id="kit_dispensing", complete=True,
                     items={"dispensed_on": today.isoformat(), "kit_number": kit.kit_number, "tablets_dispensed": 35,
                            **KIT_CHECKS_PASSED})
        out.append((p, day1, True, env.drug_code, kit.kit_number))
    return out


def _by_arms(users, trial, out: Path, fmt: str, blinding: str = "arms"):
    """The export as it is written once the first level of the blind is broken (``labels``: the
    group labels) or the second (``arms``)."""
    from annulus.allocation.models import Envelope
    from annulus.allocation.selectors import arm_of_for_system
    from annulus.exports import context, source

    now = timezone.now()
    ctx = context.build_context(actor=users["statistician"], fmt=fmt, as_of=now, created_at=now,
                                identifiable=False, excel_bom=False, language="en")
    ctx = dataclasses.replace(ctx, blinding=blinding)
    arms = {p.screening_number: arm_of_for_system(p.pk) for p, *_ in trial}
    labels = {e.participant.screening_number: e.group_label for e in Envelope.objects.filter(participant__isnull=False)}
    subjects = [dataclasses.replace(s, arm=arms[s.screening_number] if blinding == "arms" else None,
                                    group_label=labels[s.screening_number])
                for s in source.subjects(users["statistician"], as_of=now)]
    out.mkdir()
    sdtm.write(iter(subjects), ctx, out)
    return arms


@pytest.fixture(scope="module")
def knee_sdtm(request, django_db_setup, django_db_blocker, tmp_path_factory):
    """The knee trial built once, exported blinded (as the statistician, SAS transport and
    Dataset-JSON, through the export service) and by arms (Dataset-JSON and SAS transport)."""
    from annulus.exports import services as exports
    from annulus.trial.selectors import active_protocol
    from annulus.trial.services import load_default_protocol

    base = tmp_path_factory.mktemp("knee_sdtm")
    with override_settings(ANNULUS_PROTOCOL_FILE=str(KNEE)), shared_rows(request, django_db_blocker) as shared:
        with shared.build():
            load_default_protocol()
            users = make_users()
            today = timezone.localdate()
            trial = _build(users, today)
            for fmt, name in (("sdtm", "blinded_xpt"), ("dataset-json", "blinded")):
                run = exports.run_export(actor=users["statistician"], fmt=fmt, out_dir=base / name)
                assert run.blinding == "blinded"
            arms = _by_arms(users, trial, base / "arms", "dataset-json")
            _by_arms(users, trial, base / "arms_xpt", "sdtm")
            _by_arms(users, trial, base / "labels", "dataset-json", blinding="labels")
            protocol = active_protocol()
        yield {"trial": trial, "arms": arms, "base": base, "protocol": protocol, "today": today}


def _rows(folder: Path, name: str) -> list[dict]:
    data = json.loads((folder / f"{name.lower()}.json").read_text(encoding="utf-8"))
    cols = [c["name"] for c in data["columns"]]
    return [dict(zip(cols, r)) for r in data["rows"]]


def _subjects(knee_sdtm) -> dict:
    """screening number -> USUBJID, from the blinded DM (SUBJID is the case number)."""
    from annulus.participants.models import Participant

    dm = _rows(knee_sdtm["base"] / "blinded", "DM")
    by_case = {r["SUBJID"]: r["USUBJID"] for r in dm}
    return {p.screening_number: by_case[Participant.objects.get(pk=p.pk).case_number]
            for p, *_ in knee_sdtm["trial"]}


def _stored(participant, form_id) -> dict:
    from annulus.visits.models import FormRecord

    return {f.visit.visit_id: f for f in FormRecord.objects.filter(participant=participant, form_id=form_id,
                                                                    state="complete").select_related("visit")}


def _tz(knee_sdtm) -> ZoneInfo:
    return ZoneInfo(knee_sdtm["protocol"].trial.timezone)


def test_dm_starts_at_the_first_dose_with_each_participants_site(knee_sdtm, db):
    dm = {r["USUBJID"]: r for r in _rows(knee_sdtm["base"] / "blinded", "DM")}
    ids = _subjects(knee_sdtm)
    tz = _tz(knee_sdtm)
    assert len(dm) == len(PEOPLE)
    for p, day1, dosed, _kit, _kit4 in knee_sdtm["trial"]:
        row = dm[ids[p.screening_number]]
        assert row["SITEID"] == p.site
        if dosed:
            stored = _stored(p, "first_dose")["day1"].items["dosed_at"]
            expected = sdtm.dtc(at(day1, 9).isoformat(), tz)
            assert row["RFSTDTC"] == row["RFXSTDTC"] == expected == sdtm.dtc(str(stored), tz)
            assert expected.startswith(day1.isoformat()) and len(expected) == 16  # the date and time
            assert row["RFXENDTC"] == knee_sdtm["today"].isoformat()  # the last kit is still out: its dispensing
            assert row["ARMNRS"] is None
        else:
            assert row["RFSTDTC"] is None and row["ARMNRS"] == "ASSIGNED, NOT TREATED"
    assert {r["SITEID"] for r in dm.values()} == {"01", "02", "03"}


def test_ex_has_the_first_dose_and_the_dispensing_and_no_kit_number(knee_sdtm, db):
    tz = _tz(knee_sdtm)
    ids = _subjects(knee_sdtm)
    today = knee_sdtm["today"]
    for folder in ("blinded", "arms"):
        ex = _rows(knee_sdtm["base"] / folder, "EX")
        assert len(ex) == 2 * sum(1 for _p, _day1, dosed, *_kits in knee_sdtm["trial"] if dosed)
        text = (knee_sdtm["base"] / folder / "ex.json").read_text(encoding="utf-8")
        for p, day1, dosed, kit, kit4 in knee_sdtm["trial"]:
            mine = [r for r in ex if r["USUBJID"] == ids[p.screening_number]]
            if not dosed:
                assert mine == []
                continue
            assert kit not in text and kit4 not in text
            first, second = sorted(mine, key=lambda r: r["EXSTDTC"])
            assert first["EXSTDTC"] == sdtm.dtc(at(day1, 9).isoformat(), tz) and first["EXSTDY"] == 1
            assert first["EXENDTC"] == today.isoformat() and first["EXENDY"] == DAYS_SINCE_DAY1 + 1
            assert first["VISIT"] == "Day 1 (baseline, randomisation, first dose)" and first["EPOCH"] == "TREATMENT"
            assert second["EXSTDTC"] == today.isoformat() and second["EXENDTC"] is None
            assert second["EXSTDY"] == DAYS_SINCE_DAY1 + 1 and second["VISITNUM"] == 4
            assert {first["EXROUTE"], second["EXROUTE"]} == {"ORAL"}


def test_ex_by_arms_names_the_arms_product_and_its_dose(knee_sdtm, db):
    protocol = knee_sdtm["protocol"]
    arms = {a.id: a for a in protocol.arms}
    by_case = {r["USUBJID"]: r for r in _rows(knee_sdtm["base"] / "arms", "DM")}
    ex = _rows(knee_sdtm["base"] / "arms", "EX")
    assert ex
    for r in ex:
        arm = arms[by_case[r["USUBJID"]]["ARMCD"].lower()]
        assert r["EXDOSE"] == arm.dose_score
        assert r["EXTRT"] == ("PLACEBO" if arm.control else arm.name.en.upper())
        assert r["EXDOSU"] == "mg"
    assert {by_case[r["USUBJID"]]["ARMCD"] for r in ex} <= {a.upper() for a in arms}
    ta = _rows(knee_sdtm["base"] / "arms", "TA")
    assert {r["ARMCD"] for r in ta} == {a.upper() for a in arms}
    assert {r["ARM"] for r in ta} == {a.name.en for a in protocol.arms}
    assert [r["EPOCH"] for r in ta if r["ARMCD"] == "ACTIVE"] == ["SCREENING", "TREATMENT", "FOLLOW-UP"]


def test_pr_names_each_recorded_procedure_as_the_protocol_does(knee_sdtm, db):
    protocol = knee_sdtm["protocol"]
    names = {p.id: p.name.en for p in protocol.procedure_list}
    pr = _rows(knee_sdtm["base"] / "blinded", "PR")
    ids = _subjects(knee_sdtm)
    for p, _day1, dosed, *_k in knee_sdtm["trial"]:
        mine = sorted((r["VISIT"], r["PRTRT"]) for r in pr if r["USUBJID"] == ids[p.screening_number])
        expected = sorted((protocol.schedule.visit(visit).name.en, names[form])
                          for form in ("first_dose", "kit_return", "kit_dispensing")
                          for visit in _stored(p, form))
        assert mine == expected
        assert bool(mine) == dosed
    assert {r["PRTRT"] for r in pr} == set(names.values())


def test_qs_has_nrs_and_koos_with_their_scores_baseline_and_study_days(knee_sdtm, db):
    protocol = knee_sdtm["protocol"]
    qs = _rows(knee_sdtm["base"] / "blinded", "QS")
    ids = _subjects(knee_sdtm)
    declared = {(d.form, d.score): d.code for d in protocol.analysis.parameters}
    from annulus.trial.selectors import data_dictionary

    dictionary = data_dictionary()
    n_koos = len(dictionary.form("koos").items)
    for p, day1, dosed, *_k in knee_sdtm["trial"]:
        mine = [r for r in qs if r["USUBJID"] == ids[p.screening_number]]
        for form_id in ("nrs", "koos"):
            for visit, record in _stored(p, form_id).items():
                rows = [r for r in mine if r["VISIT"] == protocol.schedule.visit(visit).name.en
                        and r["QSCAT"] == sdtm.QS_FORMS[form_id]]
                items = [r for r in rows if r["QSDRVFL"] is None]
                scores = {r["QSTESTCD"]: r for r in rows if r["QSDRVFL"] == "Y"}
                assert len(items) == (1 if form_id == "nrs" else n_koos)
                assert sorted(r["QSSTRESN"] for r in items) == sorted(float(v) for v in record.items.values())
                for (form, score), code in declared.items():
                    if form == form_id:
                        assert scores[code]["QSSTRESN"] == pytest.approx(record.computed[score]), (code, visit)
                assert len(scores) == sum(1 for form, _s in declared if form == form_id)
                assert {r["QSBLFL"] for r in rows} == ({"Y"} if visit == "day1" else {None})
                day = (1 if visit == "day1" else DAYS_SINCE_DAY1 + 1) if dosed else None  # no first dose: no day 1
                assert {r["QSDY"] for r in rows} == {day}
        assert any(r["QSCAT"] == sdtm.QS_FORMS["koos"] for r in mine)
    codes = {r["QSTESTCD"] for r in qs}
    assert all(len(c) <= 8 and re.match(r"^[A-Z][A-Z0-9_]*$", c) for c in codes)
    by_test: dict = {}
    for r in qs:
        by_test.setdefault(r["QSTESTCD"], set()).add(r["QSTEST"])
    assert all(len(tests) == 1 for tests in by_test.values())  # one test per code
    assert {"NRS", "KOOSPAIN", "KOOSQOL"} <= codes  # the protocol's parameter codes for the derived scores


def test_the_study_days_count_day_1_from_the_first_dose(knee_sdtm, db):
    sv = _rows(knee_sdtm["base"] / "blinded", "SV")
    tv = {r["VISIT"]: r for r in _rows(knee_sdtm["base"] / "blinded", "TV")}
    protocol = knee_sdtm["protocol"]
    dm = {r["USUBJID"]: r for r in _rows(knee_sdtm["base"] / "blinded", "DM")}
    for r in sv:
        day = 1 if r["VISIT"] == protocol.schedule.visit("day1").name.en else DAYS_SINCE_DAY1 + 1
        assert r["SVSTDY"] == (day if dm[r["USUBJID"]]["RFSTDTC"] else None)
        assert r["EPOCH"] == "TREATMENT"  # day 1 and week 4 (kits returned and dispensed) are on treatment
    assert sum(1 for r in sv if r["SVSTDY"] == DAYS_SINCE_DAY1 + 1) == sum(1 for *_r, dosed, _k, _k4 in
                                                                          knee_sdtm["trial"] if dosed)
    for v in protocol.schedule.visits:
        day1 = protocol.schedule.visit("day1")
        offset = v.offset_days if v.anchor == day1.procedure else v.offset_days - day1.offset_days
        assert tv[v.name.en]["VISITDY"] == (offset + 1 if offset >= 0 else offset)
    vitals = _rows(knee_sdtm["base"] / "blinded", "VS")  # taken at day 1 only
    assert vitals and all(r["VSDY"] == (1 if dm[r["USUBJID"]]["RFSTDTC"] else None) for r in vitals)
    assert {r["VSBLFL"] for r in vitals} == {"Y"}
    # the pregnancy test of the protocol's urine panel, under the panel's name
    lb = _rows(knee_sdtm["base"] / "blinded", "LB")
    panel = protocol.lab_panel("urine_hcg")
    assert len(lb) == len(PEOPLE) and {r["LBCAT"] for r in lb} == {panel.name.en.upper()[:40]}
    assert {(r["LBTEST"], r["LBSTRESC"], r["LBSPEC"], r["LBBLFL"]) for r in lb} == {
        (panel.analytes[0].name.en, URINE_HCG["u_hcg"].upper(), "URINE", "Y")}


def test_trial_design_comes_from_the_knee_protocol(knee_sdtm, db):
    protocol = knee_sdtm["protocol"]
    folder = knee_sdtm["base"] / "blinded"
    ts = {}
    for r in _rows(folder, "TS"):
        ts.setdefault(r["TSPARMCD"], []).append(r["TSVAL"])
    assert ts["TITLE"] == [protocol.trial.title.en[:200]]
    assert ts["INDIC"] == [protocol.trial.indication.en] == ["Osteoarthritis of the knee"]
    assert ts["NARMS"] == [str(len(protocol.arms))] and ts["PLANSUB"] == [str(protocol.sample_size.total)]
    ratio = sum(a.ratio for a in protocol.arms if not a.control) / sum(a.ratio for a in protocol.arms)
    assert float(ts["RANDQT"][0]) == pytest.approx(ratio, abs=0.01)
    assert ts["AGEMIN"] == ["P40Y"] and ts["TPHASE"] == ["PHASE II TRIAL"] and ts["ACTSUB"] == [str(len(PEOPLE))]
    assert ts["LENGTH"] == [f"P{max(v.offset_days for v in protocol.schedule.visits if v.anchor == 'first_dose')}D"]
    assert "DOSE RESPONSE" not in ts["TTYPE"]
    ti = _rows(folder, "TI")
    criteria = protocol.eligibility.inclusion + protocol.eligibility.exclusion
    assert [r["IETESTCD"] for r in ti] == [c.id for c in criteria]
    tv = _rows(folder, "TV")
    assert [r["VISIT"] for r in tv] == [v.name.en for v in protocol.schedule.visits]
    te = {r["ETCD"]: r for r in _rows(folder, "TE")}
    assert set(te) == {"SCRN", "TRT", "FU"}
    assert protocol.treatment_procedure.name.en in te["TRT"]["TESTRL"]
    arms_te = {r["ETCD"] for r in _rows(knee_sdtm["base"] / "arms", "TE")}
    assert arms_te == {"SCRN", "FU", *(a.id.upper() for a in protocol.arms)}


def _forbidden(protocol) -> list[str]:
    words = []
    for arm in protocol.arms:
        words += [arm.name.en, arm.name.zh, arm.kit.en, arm.kit.zh]
    return words


@pytest.mark.req("X-3.8")
@pytest.mark.parametrize("folder", ["blinded", "blinded_xpt"])
def test_the_blinded_export_has_no_arm_anywhere(knee_sdtm, db, folder):
    protocol = knee_sdtm["protocol"]
    out = knee_sdtm["base"] / folder
    assert not list(out.glob("ta.*"))
    text = "\n".join(p.read_bytes().decode("utf-8", "replace") for p in sorted(out.iterdir()))
    # the title and the product's name are public and name both arms at once: set aside before the look
    assert protocol.trial.title.en in text
    for public in (protocol.trial.title.en, protocol.product.name.en):
        text = text.replace(public, "")
    for word in _forbidden(protocol):
        assert word not in text, word
    data = "\n".join(p.read_bytes().decode("utf-8", "replace") for p in sorted(out.iterdir())
                     if p.name not in ("define.xml", "manifest.json"))
    for word in ("ARMCD", "ARM", "ACTARM", "EXDOSE", "EXDOSU", "EXDOSFRM", "GROUP A", "PLACEBO ONCE"):
        assert not re.search(rf"(?<![A-Z]){word}(?![A-Z])", data), word
    for _p, _day1, _dosed, *kits in knee_sdtm["trial"]:
        assert all(kit is None or kit not in text for kit in kits)
    definition = (out / "define.xml").read_text(encoding="utf-8")
    for oid in ("IT.DM.ARMCD", "IT.DM.ARM", "IT.EX.EXDOSE", "IG.TA"):
        assert f'OID="{oid}"' not in definition, oid
    if folder == "blinded":
        assert {r["EXTRT"] for r in _rows(out, "EX")} == {sdtm.BLINDED_PRODUCT}
    # the arms export of the same trial does name them (the check above can fail)
    arms_text = "\n".join(p.read_text(encoding="utf-8") for p in sorted((knee_sdtm["base"] / "arms").glob("*.json")))
    assert all(a.name.en in arms_text for a in protocol.arms)


@pytest.mark.parametrize("folder", ["blinded", "blinded_xpt", "arms", "arms_xpt"])
def test_define_xml_is_valid_and_the_checks_find_no_error(knee_sdtm, db, folder, tmp_path):
    out = knee_sdtm["base"] / folder
    path = out / "define.xml"
    assert define.validate(path) == []
    text = path.read_text(encoding="utf-8")
    assert 'def:Structure="One record per subject"' in text and 'KeySequence="1"' in text
    # the items' QS codes are the data dictionary's (the instruments library's): named, none derived
    assert "derived by the export" not in text and "KOOSS1" in text and "NRS01" in text
    datasets = tmp_path / folder  # the data files alone (the export service adds its manifest)
    datasets.mkdir()
    for p in out.iterdir():
        if p.suffix in (".xpt", ".json") and p.name != "manifest.json":
            shutil.copy(p, datasets / p.name)
    findings = sdtm_checks.check(datasets, json.loads(CT.read_text(encoding="utf-8")))
    assert [f for f in findings if f.severity == "error"] == []


def test_a_derived_code_is_short_unique_and_the_same_each_time():
    used: set = set()
    codes = [sdtm._derive("koos", item, n, used) for n, item in enumerate(["p1", "sp1", "a17"], start=1)]
    assert codes == ["KOOSP1", "KOOSSP1", "KOOSA17"]
    taken = {"KOOSSP1", "KOOS02"}
    assert sdtm._derive("koos", "sp1", 2, taken) == "KOOS002"  # the name and the position both taken
    long = sdtm._derive("questionnaire", "a_very_long_item_id", 7, set())
    assert long == "QUESTI07" and long == sdtm._derive("questionnaire", "a_very_long_item_id", 7, set())
    assert sdtm._derive("5d", "x", 1, set())[0].isalpha()


@pytest.mark.req("X-3.8")
def test_the_labels_export_shows_groups_and_no_treatment(knee_sdtm, db):
    protocol = knee_sdtm["protocol"]
    folder = knee_sdtm["base"] / "labels"
    dm = _rows(folder, "DM")
    labels = {r["ARMCD"] for r in dm}
    assert labels == {"A", "B"} and {r["ARM"] for r in dm} == {"GROUP A", "GROUP B"}
    assert {r["EXTRT"] for r in _rows(folder, "EX")} == {sdtm.BLINDED_PRODUCT}
    assert {(r["ARMCD"], r["ETCD"]) for r in _rows(folder, "TA")} == {
        (g, e) for g in labels for e in ("SCRN", "TRT", "FU")}
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(folder.iterdir()))
    for public in (protocol.trial.title.en, protocol.product.name.en):
        text = text.replace(public, "")
    assert not any(word in text for word in _forbidden(protocol))
    assert not re.search(r"(?<![A-Z])EXDOSE(?![A-Z])", text)
