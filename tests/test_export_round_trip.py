"""Every export read back and compared with the database (X-7.6): a trial filled with participants
who completed follow-up (``annulus.bench.fill``) is exported in every format as the statistician,
then each file is read with the reader its users would use (csv, pyreadstat for SPSS, Stata and
SAS transport, the ODM parser, json for Dataset-JSON) and its values, labels and counts are held
against the eCRF forms in the database - not against what the writer was given."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter, defaultdict

import pyreadstat
import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.req("X-7.6")]

N = 4  # participants through every visit (the fill adds about one screen failure in twenty)
TABLE_FORMS = ("vas", "odi", "joa", "sf36", "vitals")


@pytest.fixture
def exported(db, settings, tmp_path):
    from django.contrib.auth import get_user_model

    from annulus.bench.fill import fill
    from annulus.exports import services

    settings.VAR_DIR = tmp_path / "var"
    fill(N, seed=11, chunk=8, pool=6)
    statistician = get_user_model().objects.get(username="statistician")
    out = {}
    for fmt in ("csv", "sav", "dta", "xpt", "odm", "sdtm", "dataset-json", "adam"):
        out[fmt] = tmp_path / fmt
        services.run_export(actor=statistician, fmt=fmt, out_dir=out[fmt])
    return out


def _database():
    """{(subject, visit, form): items} of every eCRF form, and the subject keys of the consented."""
    from annulus.participants.models import Participant
    from annulus.trial.selectors import active_protocol
    from annulus.visits.models import FormRecord

    trial = active_protocol().trial.id
    forms = {}
    for r in FormRecord.objects.select_related("visit", "participant"):
        p = r.participant
        key = f"{trial}-{p.case_number or p.screening_number}"
        forms[(key, r.visit.visit_id, r.form_id)] = {k: v for k, v in r.items.items() if v is not None}
    subjects = {f"{trial}-{p.case_number or p.screening_number}"
                for p in Participant.objects.filter(consents__isnull=False).distinct()}
    return forms, subjects


def _text(value) -> str:
    """A value as the CSV export writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(_text(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _same_number(a, b) -> bool:
    return a is not None and b is not None and not (isinstance(a, float) and math.isnan(a)) \
        and math.isclose(float(a), float(b), rel_tol=0, abs_tol=1e-9)


def test_csv_long_holds_every_value_of_the_database(exported):
    forms, subjects = _database()
    with open(exported["csv"] / "long.csv", encoding="utf-8", newline="") as fh:
        rows = {(r["subject"], r["visit"], r["form"], r["item"]): r for r in csv.DictReader(fh)
                if r["derived"] == "false"}
    checked = 0
    for (subject, visit, form), items in forms.items():
        for item, value in items.items():
            row = rows.get((subject, visit, form, item))
            assert row is not None, f"{subject} {visit} {form}.{item} is not in long.csv"
            assert row["value"] == _text(value), (subject, visit, form, item)
            checked += 1
    assert checked > N * 80 * 3
    with open(exported["csv"] / "subjects.csv", encoding="utf-8", newline="") as fh:
        assert {r["subject"] for r in csv.DictReader(fh)} == subjects


def _dataset_rows(df) -> dict:
    return {(r["subject"], r["visit"]): r for r in df.to_dict("records")}


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_spss_and_stata_files_hold_the_values_labels_and_counts(exported, fmt):
    from annulus.trial.selectors import data_dictionary

    forms, _ = _database()
    dictionary = data_dictionary()
    read = pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta
    for form in TABLE_FORMS:
        df, meta = read(str(exported[fmt] / f"{form}.{fmt}"))
        in_db = {k: v for k, v in forms.items() if k[2] == form}
        assert len(df) == len(in_db), form
        rows = _dataset_rows(df)
        labels = meta.column_names_to_labels
        for (subject, visit, _form), items in in_db.items():
            row = rows[(subject, visit)]
            for item, value in items.items():
                entry = dictionary.entry(form, item)
                assert labels[item] == entry.label_en, (form, item)
                if entry.type in ("integer", "number") or (entry.codelist and isinstance(value, int)):
                    assert _same_number(row[item], value), (fmt, subject, visit, form, item, row[item], value)
                    if entry.codelist and fmt == "sav":
                        # SPSS keeps 120 bytes of a value label (the whole words are in data_dictionary.csv)
                        words = {float(c[0]): c[1].encode()[:120].decode("utf-8", "ignore").rstrip()
                                 for c in entry.codelist}
                        assert meta.variable_value_labels[item] == words, (form, item)
                elif isinstance(value, bool):
                    assert _same_number(row[item], int(value)), (fmt, subject, visit, form, item)
                else:
                    assert row[item] == _text(value), (fmt, subject, visit, form, item)


def test_sas_transport_files_hold_the_values_under_their_short_names(exported):
    forms, _ = _database()
    with open(exported["xpt"] / "xpt_names.csv", encoding="utf-8", newline="") as fh:
        names = list(csv.DictReader(fh))
    member = {r["dataset"]: r["xpt_dataset"] for r in names if not r["column"]}
    column = {(r["dataset"], r["column"]): r["xpt_column"] for r in names if r["column"]}
    for form in TABLE_FORMS:
        df, meta = pyreadstat.read_xport(str(exported["xpt"] / f"{member[form].lower()}.xpt"))
        in_db = {k: v for k, v in forms.items() if k[2] == form}
        assert len(df) == len(in_db), form
        rows = {(r[column[(form, "subject")]], r[column[(form, "visit")]]): r for r in df.to_dict("records")}
        for (subject, visit, _form), items in in_db.items():
            row = rows[(subject, visit)]
            for item, value in items.items():
                got = row[column[(form, item)]]
                if isinstance(value, bool):
                    assert _same_number(got, int(value)), (subject, visit, form, item)
                elif isinstance(value, (int, float)):
                    assert _same_number(got, value), (subject, visit, form, item, got, value)
                else:
                    assert got == _text(value), (subject, visit, form, item)


def test_odm_holds_every_value_of_the_database(exported):
    from annulus.interchange import odm
    from annulus.trial.selectors import data_dictionary

    dictionary = data_dictionary()

    forms, subjects = _database()
    seen = set()
    checked = 0
    for s in odm.iter_subjects(exported["odm"] / "odm.xml"):
        seen.add(s["subject"])
        for r in s["records"]:
            items = forms.get((s["subject"], r.visit, r.form))
            if items is None:
                continue
            # a laboratory value entered without its unit is exported with the protocol's unit
            filled = {k for k, v in r.values.items() if k.endswith("__unit") and k not in items
                      and v == dictionary.entry(r.form, k).unit and items.get(k[:-len("__unit")]) is not None}
            assert {k: _text(v) for k, v in r.values.items() if k not in filled} == \
                {k: _text(v) for k, v in items.items()}, (s["subject"], r.visit, r.form)
            checked += 1
    assert seen == subjects
    assert checked == len(forms)


def _vas_by_subject(forms) -> dict:
    out = defaultdict(list)
    for (subject, _visit, form), items in forms.items():
        if form == "vas" and "vas_mm" in items:
            out[subject].append(float(items["vas_mm"]))
    return {k: sorted(v) for k, v in out.items()}


def test_sdtm_domains_as_sas_transport_and_dataset_json_hold_the_primary_end_point(exported):
    forms, subjects = _database()
    expected = _vas_by_subject(forms)
    # SAS transport
    qs, _ = pyreadstat.read_xport(str(exported["sdtm"] / "qs.xpt"))
    dm, _ = pyreadstat.read_xport(str(exported["sdtm"] / "dm.xpt"))
    assert set(dm["USUBJID"]) == subjects and len(dm) == len(subjects)
    vas = qs[(qs["QSTESTCD"] == "VAS") & (qs["QSDRVFL"] != "Y")]
    got = defaultdict(list)
    for r in vas.to_dict("records"):
        got[r["USUBJID"]].append(float(r["QSSTRESN"]))
    assert {k: sorted(v) for k, v in got.items()} == expected
    # Dataset-JSON: the same rows
    doc = json.loads((exported["dataset-json"] / "qs.json").read_text(encoding="utf-8"))
    cols = [c["name"] for c in doc["columns"]]
    assert doc["records"] == len(doc["rows"]) == len(qs)
    got = defaultdict(list)
    for row in doc["rows"]:
        r = dict(zip(cols, row))
        if r["QSTESTCD"] == "VAS" and r["QSDRVFL"] != "Y":
            got[r["USUBJID"]].append(float(r["QSSTRESN"]))
    assert {k: sorted(v) for k, v in got.items()} == expected
    dm_json = json.loads((exported["dataset-json"] / "dm.json").read_text(encoding="utf-8"))
    assert dm_json["records"] == len(subjects)


def test_analysis_datasets_hold_the_primary_end_point_and_every_participant(exported):
    forms, subjects = _database()
    with open(exported["adam"] / "adsl.csv", encoding="utf-8", newline="") as fh:
        assert Counter(r["USUBJID"] for r in csv.DictReader(fh)) == Counter(subjects)
    with open(exported["adam"] / "adeff.csv", encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["PARAMCD"] == "VAS"]
    got = defaultdict(list)
    for r in rows:
        got[r["USUBJID"]].append(float(r["AVAL"]))
    assert {k: sorted(v) for k, v in got.items()} == _vas_by_subject(forms)


LAB_FORMS = ("blood_routine", "liver_kidney", "immunology", "urinalysis")


@pytest.mark.req("X-8.5", "P-8.4")
def test_safety_and_conduct_datasets_hold_the_database(exported):
    from annulus.participants.models import Participant
    from annulus.safety.models import AdverseEvent
    from annulus.trial.selectors import active_protocol

    protocol = active_protocol()
    trial = protocol.trial.id
    forms, subjects = _database()

    def read(name):
        with open(exported["adam"] / f"{name}.csv", encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))

    # ADLB: every analyte value of every laboratory form, flagged against the protocol's range
    expected = {(s, a.id, v): items[a.id] for (s, v, form), items in forms.items() if form in LAB_FORMS
                for a in protocol.lab_panel(form).analytes if a.id in items}
    adlb = read("adlb")
    got = {(r["USUBJID"], r["PARAMCD"], r["AVISIT"]): r for r in adlb}
    assert len(got) == len(adlb) == len(expected) >= N * 8 * 18 and set(got) == set(expected)
    analytes = {a.id: a for p in protocol.lab_panels for a in p.analytes}
    for key, r in got.items():
        a, value = analytes[key[1]], expected[key]
        if a.kind == "qualitative":
            assert r["AVALC"] == value and r["ANRIND"] == ("NORMAL" if value == a.normal else "ABNORMAL")
        else:
            assert _same_number(float(r["AVAL"]), value), key
            assert r["ANRIND"] == ("LOW" if value < a.low else "HIGH" if value > a.high else "NORMAL"), key
        base = got.get((key[0], key[1], "baseline"))
        assert r["BNRIND"] == (base["ANRIND"] if base else "") and r["ABLFL"] == ("Y" if key[2] == "baseline" else "")
    # ADAE: every adverse event once, with its term and study day
    events = {(f"{trial}-{ae.participant.case_number or ae.participant.screening_number}", ae.number): ae
              for ae in AdverseEvent.objects.select_related("participant")}
    adae = read("adae")
    assert {(r["USUBJID"], int(r["AESEQ"])): r["AETERM"] for r in adae} == {k: e.term for k, e in events.items()}
    # ADSV: each randomised participant's every scheduled visit, done with its forms complete
    randomised = {f"{trial}-{p.case_number}" for p in Participant.objects.exclude(case_number="")}
    schedule = [v for v in protocol.schedule.visits]
    adsv = read("adsv")
    assert Counter(r["USUBJID"] for r in adsv) == Counter({s: len(schedule) for s in randomised})
    per_visit = Counter((s, v) for (s, v, _form) in forms)
    for r in adsv:
        assert r["SVSTAT"] == "DONE" and r["AWSTAT"] in ("IN", "EARLY", "LATE"), r
        procedure = r["AVISIT"] in ("liposuction", "transplant")
        assert int(r["FORMS"]) == (1 if procedure else per_visit[(r["USUBJID"], r["AVISIT"])]), r
        assert (r["SDVFORMS"], r["QRYOPEN"], r["QRYTOT"]) == ("0", "0", "0")  # no monitoring in the fill
    assert read("addv") == []  # no protocol deviation recorded
