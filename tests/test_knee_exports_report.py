"""The second protocol's exports, analysis datasets and trial report (X-1.3): a small knee trial
taken through the services (three sites, randomised 2:1, the first dose recorded as an eCRF form
for all but one participant, NRS and KOOS at day 1 and the follow-up visits). The export dates
the treatment by its first-dose record, so the treated and safety flags, the study days and the
windows follow it; ADEFF has one parameter per declaration of ``analysis.parameters`` with the
baseline of the visit marked ``baseline: true``; the report builds blinded and by treatment with
its primary end point (NRS), each number checked against the stored forms."""

from __future__ import annotations

import csv
import dataclasses
import json
from datetime import timedelta
from statistics import mean

import pytest
from django.test.utils import override_settings
from django.utils import timezone

from annulus.visits import procedures
from annulus.visits import services as vs
from annulus.visits.models import FormRecord

from .conftest import fresh, make_users, shared_rows
from .knee_support import KNEE, URINE_HCG, VITALS, at, knee_enrolled, knee_list, koos, nrs

CONSENT_DAYS_AGO = 120
# per participant: (site, NRS at day 1, w2, w4, w12; KOOS code at day 1, w4, w12; first dose recorded)
PEOPLE = [
    ("01", (8, 7, 5, 3), (3, 2, 1), True),
    ("02", (7, 7, 6, 6), (2, 2, 2), True),
    ("03", (6, 4, 4, 2), (3, 1, 1), True),
    ("01", (9, 8, 7, 5), (4, 3, 2), True),
    ("02", (5, 5, 4, 4), (2, 2, 1), True),
    ("03", (7, 6, 6, 5), (3, 3, 3), True),
    ("01", (8, None, None, None), (3, None, None), False),  # randomised, never dosed
]


def _first_dose(day, kit) -> dict:
    return {"dosed_at": at(day, 9).isoformat(), "kit_number": kit, "tablets_dispensed": 35, "dose_observed": "yes",
            "kit_check__kit_number_matches": "yes", "kit_check__seal_intact": "yes",
            "kit_check__expiry_after_next_visit": "yes", "kit_check__storage_temperature": 22}


@pytest.fixture(scope="module")
def knee_trial(request, django_db_setup, django_db_blocker):
    """The trial of ``PEOPLE``, built once for the module (every test only reads it; what a test
    writes is undone after it). The kits the system allocates are stood in for (the allocation
    app's kit source is tested in test_kits.py)."""
    from annulus.allocation import services as allocation
    from annulus.trial.services import load_default_protocol

    with override_settings(ANNULUS_PROTOCOL_FILE=str(KNEE)), shared_rows(request, django_db_blocker) as shared:
        with shared.build():
            load_default_protocol()
            users = make_users()
            allocated: dict = {}
            shared.patch.setattr(procedures, "_kit_sources", [lambda pid, key: allocated.get((pid, key), set())])
            knee_list(users)
            coord, pharm = users["coordinator"], users["pharmacist"]
            out = []
            for i, (site, pain, function, dosed) in enumerate(PEOPLE):
                p = knee_enrolled(users, site=site, consent_days_ago=CONSENT_DAYS_AGO)
                allocation.randomise(actor=users["investigator"], participant_id=p.pk)
                day1 = timezone.localdate() - timedelta(days=CONSENT_DAYS_AGO - 14)
                vs.open_visit(actor=coord, participant_id=p.pk, visit_id="day1", visit_date=day1)
                vs.save_visit_forms(actor=coord, participant_id=p.pk, visit_key="day1", complete=True,
                                    collected_at=at(day1, 8),
                                    forms={"nrs": nrs(pain[0]), "koos": koos(function[0]), "vitals": VITALS,
                                           "urine_hcg": URINE_HCG})
                if dosed:
                    kit = f"KOA-TEST-{i:04d}"
                    allocated[(p.pk, "day1")] = {kit}
                    vs.save_form(actor=pharm, participant_id=p.pk, visit_key="day1", form_id="first_dose",
                                 items=_first_dose(day1, kit), complete=True, collected_at=at(day1, 9))
                    for visit, offset, forms in (("w2", 14, {"nrs": nrs(pain[1])}),
                                                 ("w4", 29, {"nrs": nrs(pain[2]), "koos": koos(function[1])}),
                                                 ("w12", 84, {"nrs": nrs(pain[3]), "koos": koos(function[2])})):
                        day = day1 + timedelta(days=offset)
                        vs.open_visit(actor=coord, participant_id=p.pk, visit_id=visit, visit_date=day)
                        vs.save_visit_forms(actor=coord, participant_id=p.pk, visit_key=visit, complete=True,
                                            collected_at=at(day, 10), forms=forms)
                out.append((p, day1, dosed))
        yield users, out


@pytest.fixture
def users(knee_trial, db):
    return {role: fresh(user) for role, user in knee_trial[0].items()}


@pytest.fixture
def trial(knee_trial, db):
    return [(fresh(p), day1, dosed) for p, day1, dosed in knee_trial[1]]


def _export(users, tmp_path, name="adam", **kw):
    from annulus.exports import services as exports

    exports.run_export(actor=users["statistician"], fmt="adam", out_dir=tmp_path / name, transport=False, **kw)
    return tmp_path / name


def _read(path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [r for r in csv.DictReader(line for line in fh if not line.startswith("#"))]


def _stored(participant, form_id) -> dict:
    """visit id -> the form's stored computed results, read from the database."""
    return {f.visit.visit_id: f.computed for f in FormRecord.objects.filter(participant=participant, form_id=form_id,
                                                                            state="complete").select_related("visit")}


@pytest.mark.req("X-1.3")
def test_adeff_has_the_declared_parameters_with_baseline_and_change_from_the_stored_forms(trial, users, tmp_path):
    from annulus.trial.selectors import active_protocol

    folder = _export(users, tmp_path)
    declared = active_protocol().analysis.parameters
    for d in declared:
        assert (folder / f"adeff_{d.code.lower()}.csv").is_file()
    assert not (folder / "adeff_vas.csv").exists()  # the first trial's parameters are not this trial's
    adeff = _read(folder / "adeff.csv")
    subjects = {r["SCRNID"]: r["USUBJID"] for r in _read(folder / "adsl.csv")}
    checked = 0
    for p, day1, dosed in trial:
        usubjid = subjects[p.screening_number]
        for d in declared:
            stored = _stored(p, d.form)
            base = stored["day1"][d.score]
            mine = {r["AVISIT"]: r for r in adeff if r["USUBJID"] == usubjid and r["PARAMCD"] == d.code}
            assert set(mine) == set(stored)
            for visit, computed in stored.items():
                row = mine[visit]
                value = computed[d.score]
                assert float(row["AVAL"]) == pytest.approx(value)
                assert float(row["BASE"]) == pytest.approx(base)
                if visit == "day1":
                    assert row["ABLFL"] == "Y" and row["CHG"] == ""
                else:
                    assert row["ABLFL"] == "" and float(row["CHG"]) == pytest.approx(value - base)
                    checked += 1
                assert row["PARAM"] == d.name.en
    assert checked == 6 * (3 + 5 * 2)  # NRS at three follow-up visits, each KOOS subscale at two
    # the analysis visits are the schedule's days from the first dose: week 2 is day 14, week 4 day 28
    first = next(r for r in adeff if r["PARAMCD"] == "NRS" and r["AVISIT"] == "w4")
    assert (first["AVISITN"], first["ADY"], first["AWSTAT"]) == ("28", "29", "IN")
    # the per-parameter file: post-baseline rows of the ITT population
    nrs_rows = _read(folder / "adeff_nrs.csv")
    assert len(nrs_rows) == 6 * 3 and all(r["ABLFL"] == "" and r["ITTFL"] == "Y" for r in nrs_rows)


@pytest.mark.req("X-1.3")
def test_treated_and_safety_follow_the_first_dose_records(trial, users, tmp_path):
    folder = _export(users, tmp_path)
    adsl = {r["SCRNID"]: r for r in _read(folder / "adsl.csv")}
    dosed = set(FormRecord.objects.filter(form_id="first_dose", state="complete")
                .values_list("participant__screening_number", flat=True))
    assert len(dosed) == 6
    for p, day1, _dosed in trial:
        row = adsl[p.screening_number]
        treated = p.screening_number in dosed
        assert row["RANDFL"] == "Y" and row["ITTFL"] == "Y"
        assert row["SAFFL"] == ("Y" if treated else "N")
        assert row["TRTSDT"] == (day1.isoformat() if treated else "")
        assert row["SITEID"] == p.site
        assert row["PPEXREAS"] != "NOT TREATED" if treated else row["PPEXREAS"] == "NOT TREATED"
        assert float(row["BLNRS"]) == _stored(p, "nrs")["day1"]["score"]
    assert "LIPODT" not in next(iter(adsl.values())) and "BASEVAS" not in next(iter(adsl.values()))
    # the first-dose, vital-signs and kit records are exported as forms: the long CSV holds them
    csv_folder = tmp_path / "csv"
    from annulus.exports import services as exports

    exports.run_export(actor=users["statistician"], fmt="csv", out_dir=csv_folder)
    long = _read(csv_folder / "long.csv")
    forms = {r["form"] for r in long}
    assert {"first_dose", "nrs", "koos"} <= forms
    wide = _read(csv_folder / "wide.csv")
    w4 = [r for r in wide if r["visit"] == "w4"]
    assert len(w4) == 6 and {r["study_day"] for r in w4} == {"29"} and {r["visit_window"] for r in w4} == {"in"}


@pytest.mark.req("X-1.3")
def test_a_kit_return_is_exported_with_its_compliance(trial, users, tmp_path):
    p, day1, _ = trial[0]
    visit = vs.add_unscheduled_visit(actor=users["coordinator"], participant_id=p.pk,
                                     visit_date=day1 + timedelta(days=10), reason="kit back early",
                                     forms=["kit_return"])
    rec = vs.save_form(actor=users["pharmacist"], participant_id=p.pk, visit_key=visit.key, form_id="kit_return",
                       items={"returned_on": (day1 + timedelta(days=10)).isoformat(), "kit_number": "KOA-TEST-0000",
                              "tablets_returned": 25}, complete=True)
    from annulus.exports import services as exports

    exports.run_export(actor=users["statistician"], fmt="csv", out_dir=tmp_path / "csv")
    long = [r for r in _read(tmp_path / "csv" / "long.csv") if r["form"] == "kit_return"]
    cells = {r["item"]: r["value"] for r in long}
    assert cells["tablets_returned"] == "25"
    assert float(cells["compliance_percent"]) == rec.computed["compliance"]["percent"] == 100.0
    assert cells["compliance_days"] == "10" and cells["compliance_acceptable"] == "true"


def _nrs_by_visit(trial) -> dict:
    """visit -> the NRS changes from day 1, from the stored forms (the ITT population: all randomised)."""
    out: dict = {}
    for p, _day1, _ in trial:
        stored = _stored(p, "nrs")
        for visit, computed in stored.items():
            if visit != "day1":
                out.setdefault(visit, []).append(computed["score"] - stored["day1"]["score"])
    return out


@pytest.mark.req("X-1.3")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_blinded_report_builds_with_the_primary_end_point(trial, users, language):
    from annulus.reports import services as reports

    seen = []
    report = reports.build(actor=users["statistician"], language=language, unblinded=False, fmt="html",
                           results_sink=seen.append)
    assert report.status == "done" and report.blinding == "blinded"
    (results,) = seen
    primary = next(e for e in results["endpoints"] if e["role"] == "primary")
    assert primary["parameter"] == "NRS"
    expected = _nrs_by_visit(trial)
    per_visit = _per_visit(primary)
    for visit, changes in expected.items():
        n, m = per_visit[(None, visit)]
        assert n == len(changes) and m == pytest.approx(mean(changes))
    page = open(report.path, encoding="utf-8").read()
    name = "NRS knee pain" if language == "en" else "NRS膝痛评分"
    assert name in page
    # the treatment is named as the protocol names it, never as the first trial's
    after = "Visit after the first dose" if language == "en" else "首次服药后访视"
    assert after in page
    assert "transplant" not in page.lower() and "移植" not in page
    assert results["consort"]["arms"][0]["allocated"] == len(trial)


def _per_visit(endpoint) -> dict:
    """(arm, visit) -> (n, mean change) from an end point's descriptive table."""
    out = {}
    for row in endpoint["observed"]:
        out[(row["arm"], row["visit"])] = (row["n"], row["mean"])
    return out


@pytest.mark.req("X-1.3")
def test_the_report_by_treatment_has_both_arms_and_their_numbers(trial, users, tmp_path):
    from annulus.allocation.selectors import arm_of_for_system
    from annulus.exports import context, source
    from annulus.interchange import adam
    from annulus.report import document
    from annulus.trial.selectors import active_protocol

    protocol = active_protocol()
    now = timezone.now()
    ctx = context.build_context(actor=users["statistician"], fmt="adam", as_of=now, created_at=now,
                                identifiable=False, excel_bom=False, language="en", transport=False)
    ctx = dataclasses.replace(ctx, blinding="arms")
    arms = {p.screening_number: arm_of_for_system(p.pk) for p, _, _ in trial}
    subjects = [dataclasses.replace(s, arm=arms[s.screening_number]) for s in
                source.subjects(users["statistician"], as_of=now)]
    folder = tmp_path / "adam"
    folder.mkdir()
    adam.write(subjects, ctx, folder)
    (folder / document.MANIFEST).write_text(json.dumps({"format": "adam", "stamp": ctx.stamp,
                                                        "scope": {"blinding": "arms"}}))
    adsl = _read(folder / "adsl.csv")
    names = {a.id: a.name.en for a in protocol.arms}
    assert {r["TRT01P"] for r in adsl} <= set(names.values())
    assert {r["TRT01PN"] for r in adsl} <= {"100", "0"}
    results = document.compute(folder, protocol, language="en")
    assert results["control"] == names["placebo"]
    primary = next(e for e in results["endpoints"] if e["role"] == "primary")
    per_visit = _per_visit(primary)
    by_arm: dict = {}
    for p, _day1, _ in trial:
        stored = _stored(p, "nrs")
        for visit, computed in stored.items():
            if visit != "day1":
                by_arm.setdefault((names[arms[p.screening_number]], visit), []).append(
                    computed["score"] - stored["day1"]["score"])
    assert by_arm
    for key, changes in by_arm.items():
        n, m = per_visit[key]
        assert n == len(changes) and m == pytest.approx(mean(changes))
    html = document.render(results)
    assert names["active"] in html and names["placebo"] in html


@pytest.mark.req("X-1.3")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_report_page_names_this_trials_group_labels(trial, users, language):
    """Two arms are labelled A and B: the report page says so, not the first trial's A–D."""
    from django.test import Client

    c = Client(HTTP_ACCEPT_LANGUAGE=language)
    c.force_login(users["statistician"])
    page = c.get("/reports/").content.decode()
    assert ("group label A–B" if language == "en" else "组别标签 A–B") in page
    assert "A–D" not in page
