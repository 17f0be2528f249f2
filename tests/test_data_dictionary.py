"""The data dictionary built from the protocol file and the instruments' forms (pure, no database)."""

from pathlib import Path

import pytest

from annulus.dictionary import TYPES, build, records
from annulus.instruments import imaging, joa, odi, sf36, vas
from annulus.instruments.forms import AE_REVIEW, spec_for
from annulus.protocol import parse_protocol

PROTOCOL_FILE = Path(__file__).resolve().parents[1] / "protocols" / "dlbp-admsc.yaml"


@pytest.fixture(scope="module")
def protocol():
    return parse_protocol(PROTOCOL_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def dictionary(protocol):
    return build(protocol)


def test_every_schedule_form_is_in_the_dictionary_once(protocol, dictionary):
    ids = [f.id for f in dictionary.forms]
    assert len(ids) == len(set(ids))
    for sf in protocol.schedule.forms:
        assert ids.count(sf.id) == 1, sf.id
        assert dictionary.form(sf.id).name_en == sf.name.en
        assert dictionary.form(sf.id).name_zh == sf.name.zh


def test_every_item_of_each_ecrf_spec_is_present_once_in_order(protocol, dictionary):
    for sf in protocol.schedule.forms:
        if sf.procedure in protocol.page_procedures:
            continue
        spec = spec_for(protocol, sf.id)
        form = dictionary.form(sf.id)
        assert form.scope == "visit"
        assert [e.item for e in form.items] == [i.id for i in spec.items], sf.id


def test_entries_are_unique_and_addressable(dictionary):
    addresses = [(e.form, e.item) for e in dictionary.entries]
    assert len(addresses) == len(set(addresses))
    for form, item in addresses:
        assert dictionary.entry(form, item).item == item
    assert dictionary.entry("vas", "no_such_item") is None
    assert dictionary.entry("no_such_form", "vas_mm") is None
    assert dictionary.form("no_such_form") is None


def test_labels_in_both_languages_and_types_known(dictionary):
    for f in dictionary.forms:
        assert f.name_en.strip() and f.name_zh.strip(), f.id
        assert f.scope in ("visit", "screening", "log", "participant")
    for e in dictionary.entries:
        assert e.label_en.strip() and e.label_zh.strip(), (e.form, e.item)
        assert e.type in TYPES, (e.form, e.item, e.type)
        for value, en, zh in e.codelist:
            assert value != "" and en.strip() and zh.strip(), (e.form, e.item)


def test_codelists_are_the_instruments_codes(protocol, dictionary):
    for module in (vas, odi, joa, sf36, imaging):
        form = dictionary.form(module.FORM.id)
        for item in module.FORM.items:
            assert dictionary.entry(form.id, item.id).codelist == tuple(item.choices), item.id
    # ODI section 1 offers the six statements scored 0-5; JOA bladder 0/-3/-6; SF-36 item 1 codes 1-5
    assert [v for v, _, _ in dictionary.entry("odi", "s1").codelist] == ["0", "1", "2", "3", "4", "5"]
    assert [v for v, _, _ in dictionary.entry("joa", "bladder").codelist] == ["0", "-3", "-6"]
    assert [v for v, _, _ in dictionary.entry("sf36", "q1").codelist] == ["1", "2", "3", "4", "5"]
    assert dictionary.entry("odi", "s1").codelist[0][1].startswith("0 – I have no pain")
    assert [v for v, _, _ in dictionary.entry("adverse_events", "new_events").codelist] == \
        [c[0] for c in AE_REVIEW.item("new_events").choices]
    # the lab judgement's codelist has no blank choice
    assert [v for v, _, _ in dictionary.entry("blood_routine", "hgb__cs").codelist] == ["no", "yes"]


def test_ranges_units_and_required_follow_the_specs(protocol, dictionary):
    vas_mm = dictionary.entry("vas", "vas_mm")
    assert (vas_mm.min, vas_mm.max, vas_mm.unit, vas_mm.type, vas_mm.required) == (0, 100, "mm", "number", True)
    for v in protocol.vital_signs:
        e = dictionary.entry("vitals", v.id)
        assert (e.min, e.max, e.unit) == (v.min, v.max, v.unit)
    hgb = next(a for p in protocol.lab_panels for a in p.analytes if a.id == "hgb")
    assert dictionary.entry("blood_routine", "hgb").unit == hgb.unit
    assert (dictionary.entry("blood_routine", "hgb").ref_low, dictionary.entry("blood_routine", "hgb").ref_high) == \
        (hgb.low, hgb.high)
    assert dictionary.entry("blood_routine", "hgb__cs").ref_low is None  # the judgement has no range
    assert dictionary.entry("urinalysis", "u_protein").ref_low is None  # qualitative
    assert dictionary.entry("blood_routine", "hgb__unit").required is False
    assert dictionary.entry("imaging", "height_above_mm").required is False


def test_visits_match_the_schedule(protocol, dictionary):
    for sf in protocol.schedule.forms:
        expected = tuple(v.id for v in protocol.schedule.visits if sf.id in v.forms)
        assert expected, sf.id
        form = dictionary.form(sf.id)
        assert form.visits == expected
        assert all(e.visits == expected for e in form.items)
    assert dictionary.form("liposuction").visits == ("liposuction",)
    assert dictionary.form("transplant").visits == ("transplant",)
    for form_id in ("consent", "screening", "eligibility"):
        assert dictionary.form(form_id).scope == "screening"
        assert dictionary.form(form_id).visits == ("screening",)
    assert dictionary.form("adverse_event").scope == "log"
    assert dictionary.form("adverse_event").visits == ()
    assert dictionary.form("end_of_study").scope == "participant"
    assert [f.id for f in dictionary.forms_at("m6")] == [sf.id for sf in protocol.schedule.forms
                                                         if sf.id in protocol.schedule.visit("m6").forms]


def test_screening_evidence_is_the_protocols_fields(protocol, dictionary):
    form = dictionary.form("screening")
    ids = [e.item for e in form.items]
    assert ids[: len(protocol.eligibility.fields)] == [f.id for f in protocol.eligibility.fields]
    assert "collected_on" in ids
    dob = dictionary.entry("screening", "date_of_birth")
    assert (dob.type, dob.sdtm_domain, dob.sdtm_variable) == ("date", "DM", "BRTHDTC")
    hbsag = dictionary.entry("screening", "hbsag")
    assert hbsag.codes("zh") == [("negative", "阴性"), ("positive", "阳性")]
    assert dictionary.entry("screening", "lbp_duration_months").type == "integer"
    assert dictionary.entry("screening", "odi_percent").type == "number"


def test_sdv_critical_on_the_plans_items(dictionary):
    critical = {(e.form, e.item) for e in dictionary.entries if e.sdv_critical}
    for form_id in ("consent", "screening", "eligibility", "transplant", "adverse_event"):
        assert all(e.sdv_critical for e in dictionary.form(form_id).items), form_id
    assert ("vas", "vas_mm") in critical
    assert all(e.sdv_when == "serious" for e in dictionary.form("adverse_event").items)
    assert dictionary.entry("consent", "consented_at").sdv_when == ""
    # the rest is sampled, not verified in full
    for form_id in ("odi", "joa", "sf36", "imaging", "vitals", "blood_routine", "liposuction", "prescreening"):
        assert not any(e.sdv_critical for e in dictionary.form(form_id).items), form_id


def test_sdv_flags_follow_the_protocols_plan(protocol):
    plan = protocol.sdv.model_copy(update={"critical": [
        type(protocol.sdv.critical[0])(form="odi", items=["s1"])]})
    d = build(protocol.model_copy(update={"sdv": plan}))
    assert d.entry("odi", "s1").sdv_critical and not d.entry("odi", "s2").sdv_critical
    assert not d.entry("vas", "vas_mm").sdv_critical
    without = build(protocol.model_copy(update={"sdv": None}))
    assert without.entry("vas", "vas_mm").sdv_critical and without.entry("transplant", "volume_ml").sdv_critical


def test_sdtm_hints_for_every_ecrf_item(protocol, dictionary):
    for sf in protocol.schedule.forms:
        for e in dictionary.form(sf.id).items:
            assert e.sdtm_domain and (e.sdtm_testcd or e.sdtm_variable), (e.form, e.item)
            assert len(e.sdtm_testcd) <= 8, e.sdtm_testcd
    assert dictionary.entry("vas", "vas_mm").sdtm == "QS/VAS"
    assert dictionary.entry("blood_routine", "hgb").sdtm == "LB/HGB"
    assert dictionary.entry("blood_routine", "hgb__unit").sdtm_variable == "LBORRESU"
    assert dictionary.entry("vitals", "systolic_bp").sdtm == "VS/SYSBP"
    assert dictionary.entry("adverse_event", "term").sdtm == "AE/AETERM"
    assert dictionary.entry("prescreening", "sex").sdtm == "DM/SEX"
    assert dictionary.entry("end_of_study", "category").sdtm_domain == "DS"
    assert dictionary.entry("odi", "s10").sdtm_testcd == "ODI10"
    assert dictionary.entry("sf36", "q36").sdtm_testcd == "SF3636"
    # names and phone numbers are not exported
    assert dictionary.entry("prescreening", "full_name").sdtm_domain == ""


def test_consent_versions_and_sources_come_from_the_protocol(protocol, dictionary):
    assert [v for v, _, _ in dictionary.entry("consent", "consent_version").codelist] == \
        [v.version for v in protocol.consent.icf_versions]
    assert [v for v, _, _ in dictionary.entry("prescreening", "recruitment_source").codelist] == \
        list(protocol.recruitment_sources)


def test_the_dictionary_imports_no_django():
    import subprocess
    import sys

    code = ("import sys; from annulus.dictionary import build; from annulus.protocol import parse_protocol; "
            f"build(parse_protocol(open({str(PROTOCOL_FILE)!r}, encoding='utf-8').read())); "
            "print(any(m == 'django' or m.startswith('django.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
