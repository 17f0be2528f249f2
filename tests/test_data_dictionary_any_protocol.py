"""The data dictionary of any protocol: a procedure's record takes its SDTM hints from the
protocol's procedure fields (``sdtm``, else what a field means to the kit checks), an instrument's
items take theirs from the instruments library, and the SDV default comes from the protocol's
primary end point and treatment; built from the second shipped protocol (knee osteoarthritis, a
kit product) it holds that trial's forms and none of the first trial's (X-7.6, X-1.3)."""

from __future__ import annotations

import copy
import csv
import io
from pathlib import Path

import pytest
import yaml

from annulus.dictionary import build, records, to_csv
from annulus.instruments import koos, nrs
from annulus.instruments.forms import KIT_CHECK
from annulus.protocol import ProtocolError, default_protocol_path, parse_protocol

FIRST = default_protocol_path()
KNEE = FIRST.parent / "knee-oa-drug.yaml"
KNEE_PROCEDURE_FORMS = ("first_dose", "kit_dispensing", "kit_return")
# the first trial's own forms (its schedule's forms that the knee trial does not declare)
FIRST_TRIAL_FORMS = ("liposuction", "transplant", "vas", "odi", "joa", "sf36", "imaging", "blood_routine",
                     "liver_kidney", "immunology", "urinalysis")


def _raw(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _parse(data: dict):
    return parse_protocol(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


@pytest.fixture(scope="module")
def knee():
    return _parse(_raw(KNEE))


@pytest.fixture(scope="module")
def knee_dictionary(knee):
    return build(knee)


@pytest.mark.req("X-7.6")
@pytest.mark.req("X-1.3")
def test_the_knee_dictionary_holds_its_own_forms_and_none_of_the_first_trials(knee, knee_dictionary):
    ids = [f.id for f in knee_dictionary.forms]
    assert ids == [*records.BEFORE_SCHEDULE, *(sf.id for sf in knee.schedule.forms), *records.AFTER_SCHEDULE]
    assert not set(FIRST_TRIAL_FORMS) & set(ids)
    first = {f["id"] for f in _raw(FIRST)["schedule"]["forms"]}
    assert set(FIRST_TRIAL_FORMS) <= first  # the names looked for are the first trial's forms indeed
    for form_id in KNEE_PROCEDURE_FORMS:
        form = knee_dictionary.form(form_id)
        assert form.scope == "visit" and form.visits, form_id


@pytest.mark.req("X-7.6")
@pytest.mark.req("X-1.3")
def test_the_knee_procedure_forms_list_their_fields_with_their_hints(knee, knee_dictionary):
    for form_id in KNEE_PROCEDURE_FORMS:
        procedure = knee.procedure(next(sf.procedure for sf in knee.schedule.forms if sf.id == form_id))
        form = knee_dictionary.form(form_id)
        items = [e.item for e in form.items]
        assert items[: len(procedure.fields)] == [f.id for f in procedure.fields], form_id
        for f in procedure.fields:
            e = knee_dictionary.entry(form_id, f.id)
            assert (e.label_en, e.label_zh) == (f.label.en, f.label.zh)
            assert e.sdtm_domain and (e.sdtm_testcd or e.sdtm_variable), (form_id, f.id)
            assert len(e.sdtm_testcd) <= 8 and len(e.sdtm_variable) <= 8, (form_id, f.id)
            if f.sdtm is not None:  # declared in the file: the file's hint
                assert (e.sdtm_domain, e.sdtm_testcd, e.sdtm_variable) == (f.sdtm.domain, f.sdtm.testcd,
                                                                          f.sdtm.variable)
        # the dispensing's kit checks are qualifiers of the dispensing, one code each
        checks = [e for e in form.items if e.item.startswith(KIT_CHECK)]
        if "dispensing" in procedure.checks:
            assert len(checks) == len(knee.product.kit_checks)
            assert all(e.sdtm_domain == "DA" and e.sdtm_variable == "QVAL" for e in checks)
            assert len({e.sdtm_testcd for e in checks}) == len(checks)
        else:
            assert not checks
    entry = knee_dictionary.entry
    # the treatment's date is the exposure's start; a kit's fields are its accountability
    assert entry("first_dose", "dosed_at").sdtm == "EX/EXSTDTC"
    assert entry("first_dose", "kit_number").sdtm == "DA/DAREFID"
    assert entry("first_dose", "tablets_dispensed").sdtm == "DA/DISPAMT"
    assert entry("kit_dispensing", "dispensed_on").sdtm == "DA/DADTC"
    assert entry("kit_return", "tablets_returned").sdtm == "DA/RETAMT"
    assert entry("kit_return", "tablets_lost").sdtm == "DA/LOSTAMT"
    # declared in the knee file
    observed = entry("first_dose", "dose_observed")
    assert (observed.sdtm_domain, observed.sdtm_testcd, observed.sdtm_variable) == ("EX", "DOSEOBS", "QVAL")
    assert entry("kit_return", "missed_doses_reason").sdtm == "DA/MISSRSN"
    assert entry("first_dose", "notes").sdtm == "CO/COVAL"


@pytest.mark.req("X-7.6")
@pytest.mark.req("X-1.3")
def test_a_hint_declared_in_the_file_is_the_one_the_dictionary_gives(knee):
    data = _raw(KNEE)
    field = data["procedures"][0]["fields"][0]  # first_dose.dosed_at: EX/EXSTDTC by default
    field["sdtm"] = {"domain": "EX", "variable": "EXENDTC"}
    assert build(_parse(data)).entry("first_dose", field["id"]).sdtm == "EX/EXENDTC"
    # the first trial's procedure records read theirs from its file too
    first = _raw(FIRST)
    transplant = next(p for p in first["procedures"] if p["id"] == "transplant")
    gauge = next(f for f in transplant["fields"] if f["id"] == "needle_gauge")
    assert build(_parse(first)).entry("transplant", "needle_gauge").sdtm == "EX/NEEDLEG"
    gauge["sdtm"] = {"domain": "EX", "testcd": "NEEDLE", "variable": "QVAL"}
    drug = next(f for f in transplant["fields"] if f["id"] == "drug_code")
    drug["sdtm"] = {"domain": "EX", "testcd": "DRUGCD", "variable": "QVAL"}
    changed = build(_parse(first))
    assert changed.entry("transplant", "needle_gauge").sdtm == "EX/NEEDLE"
    assert changed.entry("transplant", "drug_code_entered").sdtm == "EX/DRUGCD"  # the item recording drug_code


@pytest.mark.req("X-7.6")
@pytest.mark.req("X-1.3")
def test_nrs_and_koos_items_have_their_qs_codes_from_the_instruments_library(knee_dictionary):
    assert knee_dictionary.entry("nrs", "nrs_pain").sdtm == "QS/NRS01"
    assert knee_dictionary.entry("nrs", "nrs_pain").sdtm_variable == "QSORRES"
    form = knee_dictionary.form("koos")
    assert [e.item for e in form.items] == [i.id for i in koos.FORM.items]
    codes = [e.sdtm_testcd for e in form.items]
    assert codes == [i.sdtm_code for i in koos.FORM.items]
    assert all(e.sdtm_domain == "QS" and e.sdtm_variable == "QSORRES" for e in form.items)
    assert len(set(codes)) == len(codes) and all(len(c) <= 8 for c in codes)
    assert knee_dictionary.entry("koos", "p1").sdtm_testcd == "KOOSP1"
    assert knee_dictionary.entry("koos", "sp5").sdtm_testcd == "KOOSSP5"
    assert knee_dictionary.entry("koos", "a17").sdtm_testcd == "KOOSA17"
    assert nrs.FORM.items[0].sdtm_code == "NRS01"
    # vital signs from the library's codes, laboratory values by analyte
    assert knee_dictionary.entry("vitals", "systolic_bp").sdtm == "VS/SYSBP"
    assert knee_dictionary.entry("haematology", "hgb").sdtm == "LB/HGB"
    # every item of the schedule's forms has a hint
    for e in knee_dictionary.entries:
        if e.form in {"nrs", "koos", "vitals", "haematology", "chemistry", "urine_hcg", *KNEE_PROCEDURE_FORMS}:
            assert e.sdtm_domain and (e.sdtm_testcd or e.sdtm_variable), (e.form, e.item)


@pytest.mark.req("X-7.6")
def test_the_knee_dictionary_csv_carries_the_hints(knee_dictionary):
    rows = list(csv.DictReader(io.StringIO(to_csv(knee_dictionary).lstrip("\ufeff"))))
    assert [(r["form"], r["item"]) for r in rows] == [(e.form, e.item) for e in knee_dictionary.entries]
    dose = next(r for r in rows if (r["form"], r["item"]) == ("first_dose", "dose_observed"))
    assert (dose["sdtm_domain"], dose["sdtm_testcd"], dose["sdtm_variable"]) == ("EX", "DOSEOBS", "QVAL")
    koos_p1 = next(r for r in rows if (r["form"], r["item"]) == ("koos", "p1"))
    assert (koos_p1["sdtm_domain"], koos_p1["sdtm_testcd"]) == ("QS", "KOOSP1")


@pytest.mark.req("P-7.1")
@pytest.mark.req("X-1.3")
def test_without_an_sdv_plan_the_primary_end_point_and_the_treatment_are_verified_in_full(knee):
    d = build(knee.model_copy(update={"sdv": None}))
    assert all(e.sdv_critical for e in d.form("nrs").items)  # analysis.primary.parameter NRS: the nrs form
    assert all(e.sdv_critical for e in d.form("first_dose").items)  # the treatment: true procedure's form
    for form_id in ("screening", "eligibility", "consent"):
        assert all(e.sdv_critical for e in d.form(form_id).items), form_id
    assert all(e.sdv_critical and e.sdv_when == "serious" for e in d.form("adverse_event").items)
    for form_id in ("koos", "vitals", "kit_dispensing", "kit_return", "haematology"):
        assert not any(e.sdv_critical for e in d.form(form_id).items), form_id


def _field_error(hint: dict) -> list[str]:
    data = _raw(KNEE)
    data["procedures"][2]["fields"][1]["sdtm"] = hint  # kit_return.kit_number
    with pytest.raises(ProtocolError) as info:
        _parse(copy.deepcopy(data))
    return info.value.errors


@pytest.mark.req("X-1.3")
@pytest.mark.parametrize("hint, says", [
    ({"domain": "da", "variable": "DAREFID"}, "domain"),
    ({"domain": "DA", "variable": "EXREFID"}, "not a variable of the DA domain"),
    ({"domain": "DA", "variable": "QVAL"}, "testcd"),
    ({"domain": "DA", "testcd": "KITNUMBER1", "variable": "QVAL"}, "testcd"),
    ({"domain": "DA", "variable": "DAREFIDENTIFIER"}, "variable"),
    ({"domain": "DA", "variable": "DAREFID", "label": "kit"}, "label"),
])
def test_a_field_with_a_bad_hint_is_refused_naming_the_field(hint, says):
    errors = _field_error(hint)
    assert errors, hint
    assert any(e.startswith("procedures[2].fields[1].sdtm") and says in e for e in errors), errors
