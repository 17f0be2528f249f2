"""CSV export: long, wide, participants and adverse events read back and compared with the
participants and the data dictionary (X-7.6); blind columns by the blinding (X-3.8)."""

from __future__ import annotations

import csv
import dataclasses
import gc
import io
import itertools
import tracemalloc

import pytest

from annulus.dictionary import build
from annulus.interchange import csvfiles, sample
from annulus.interchange.csvfiles import text
from annulus.interchange.scores import SCORES
from annulus.interchange.subject import Change, QueryNote, Record, Subject, VisitInfo
from annulus.protocol import default_protocol_path, load_protocol

pytestmark = pytest.mark.req("X-7.6")

LONG_TEXT = "腰痛" * 150 + " end"  # 304 characters, 904 bytes in UTF-8


@pytest.fixture(scope="module")
def protocol():
    return load_protocol(default_protocol_path())


@pytest.fixture(scope="module")
def dictionary(protocol):
    return build(protocol)


def edge_subjects(protocol, dictionary) -> list[Subject]:
    """Two hand-made participants with the values writers get wrong: missing, 0, negative, Chinese,
    long text, several codes, a corrected value, an unscheduled visit, a query."""
    at1, at2 = "2022-06-05T03:00:00+00:00", "2022-06-07T08:00:00+00:00"
    vas1 = {"vas_mm": 0}
    vas = Record(visit="baseline", form="vas", values={"vas_mm": 0.0}, computed={"vas_mm": 0.0}, state="complete",
                 changes=(Change(1, at1, "coordinator", "Coordinator", "", vas1),
                          Change(2, at2, "monitor", "Monitor", "typo", {"vas_mm": 0.0})),
                 verified=("vas_mm",), locked=True)
    odi_values = {f"s{i}": str(i % 6) for i in range(1, 11)}
    odi_values["s8"] = None  # sex life: not answered
    odi = Record(visit="baseline", form="odi", values=odi_values, computed={"odi_percent": 24.444444444444443},
                 state="draft", changes=(Change(1, at1, "coordinator", "Coordinator", "", dict(odi_values)),))
    imaging = Record(visit="baseline", form="imaging",
                     values={"modic_superior": "II", "modic_inferior": None, "pfirrmann": "IV", "height_index_mm": 7.25,
                             "height_above_mm": None, "height_below_mm": 9.0, "rom_flexion_deg": -12.5,
                             "rom_extension_deg": -0.1},
                     computed={"modic_score": 2, "pfirrmann_grade": 4, "disc_height_score": None, "rom_score": -12.4},
                     state="complete")
    unscheduled = Record(visit="unscheduled", visit_repeat=1, form="vas", values={"vas_mm": 100},
                         computed={"vas_mm": 100}, state="complete")
    sf36 = Record(visit="baseline", form="sf36", values={f"q{i}": None for i in range(1, 37)},
                  computed={"pcs": None, "mcs": None}, state="draft")
    screening = Record(visit="screening", form="screening",
                       values={"date_of_birth": "1980-02-29", "bmd_t_score": -2.4, "lbp_duration_months": 0,
                               "vas_mm": 55, "odi_percent": 40.0, "lbp_cough_sneeze": True, "lbp_posture": False},
                       state="complete")
    ae = Record(visit="", form="adverse_event", record=1,
                values={"term": "穿刺部位疼痛", "description": LONG_TEXT, "serious": True,
                        "serious_criteria": ["hospitalisation", "important_medical_event"], "grade": "3",
                        "onset_at": "2022-06-09T02:30:00+00:00", "end_at": None},
                state="complete")
    ae2 = Record(visit="", form="adverse_event", record=2, values={"term": "Headache, \"mild\"; 1,2", "serious": False,
                                                                    "grade": "1"}, state="draft")
    eos = Record(visit="", form="end_of_study", values={"status": "withdrawn", "withdrawn_on": "2023-01-02",
                                                         "category": "other", "details": "搬家\n第二行"})
    visits = (VisitInfo("baseline", 0, "attended", "2022-06-05", "", -1, "2022-06-05", "in"),
              VisitInfo("w1", 0, "missed", None, "could not travel", None, "2022-06-13", ""))
    one = Subject(subject="dlbp-admsc-901", screening_number="S0901", case_number="901", sex="F",
                  status="withdrawn", age=42, eligible=True, end_status="withdrawn", end_date="2023-01-02",
                  group_label="C", arm="high_dose", visits=visits,
                  records=(screening, vas, odi, sf36, imaging, unscheduled, ae, ae2, eos),
                  queries=(QueryNote(1, "baseline", "vas", 1, "vas_mm", "open", "Zero?", "monitor", at2),
                           QueryNote(2, "baseline", "vas", 1, "vas_mm", "closed", "Old", "monitor", at1),
                           QueryNote(3, "", "adverse_event", 2, "grade", "answered", "Grade?", "monitor", at2)),
                  identity={"initials": "ZWJ", "full_name": "张伟军", "phone": "13800000000"})
    two = Subject(subject="dlbp-admsc-902", screening_number="S0902", case_number="", sex="M", status="screen_failed",
                  eligible=False, failed_criteria=("I3", "E7"), group_label=None)
    return [one, two]


def without_drug_code(dictionary):
    """The dictionary as the exports app gives it to a role that may not see drug codes."""
    forms = tuple(dataclasses.replace(f, items=tuple(e for e in f.items if e.item != "drug_code_entered"))
                  for f in dictionary.forms)
    return type(dictionary)(forms=forms, protocol_version=dictionary.protocol_version)


def _read(path, bom=False):
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") == bom
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]


def _write(subjects, ctx, tmp_path, name="out"):
    out = tmp_path / name
    out.mkdir()
    paths = csvfiles.write(iter(subjects), ctx, out)
    return out, paths


def test_files_written(protocol, dictionary, tmp_path):
    ctx = sample.context(protocol, dictionary, "csv")
    out, paths = _write(sample.subjects(protocol, dictionary, 3), ctx, tmp_path)
    assert sorted(p.name for p in paths) == ["README.txt", "adverse_events.csv", "long.csv", "subjects.csv", "wide.csv"]
    readme = (out / "README.txt").read_text(encoding="utf-8")
    for value in ctx.stamp.values():
        assert str(value) in readme
    for p in paths:
        if p.suffix == ".csv":
            assert not p.read_text(encoding="utf-8").startswith("#")


def test_long_round_trip_of_sample_participants(protocol, dictionary, tmp_path):
    subjects = list(sample.subjects(protocol, dictionary, 12, seed=7))
    ctx = sample.context(protocol, dictionary, "csv", language="zh-hans")
    out, _ = _write(subjects, ctx, tmp_path)
    header, rows = _read(out / "long.csv")
    assert header[:3] == ["subject", "drug_code", "visit"]
    want = 0
    by_key = {(r["subject"], r["visit"], r["visit_repeat"], r["form"], r["record"], r["item"], r["derived"]): r
              for r in rows}
    for s in subjects:
        visits = {(v.visit, v.repeat): v for v in s.visits}
        for rec in s.records:
            form = dictionary.form(rec.form)
            items = [e for e in form.items if not (rec.form == "prescreening" and e.item in csvfiles.IDENTITY)]
            want += len(items) + len(rec.computed)
            for e in items:
                row = by_key[(s.subject, rec.visit, str(rec.visit_repeat), rec.form, str(rec.record), e.item, "false")]
                value = rec.values.get(e.item)
                assert row["value"] == text(value)
                assert row["item_label"] == e.label_zh
                assert row["unit"] == e.unit
                if e.codelist and value is not None:
                    assert row["value_label"] == dict(e.codes("zh"))[text(value)]
                assert row["verified"] == ("true" if e.item in rec.verified else "false")
                assert row["form_state"] == rec.state
                assert row["record_revisions"] == str(len(rec.changes))
                v = visits.get((rec.visit, rec.visit_repeat))
                assert row["visit_date"] == (v.date or "" if v else "")
            for sid, value in rec.computed.items():
                row = by_key[(s.subject, rec.visit, str(rec.visit_repeat), rec.form, str(rec.record), sid, "true")]
                assert row["value"] == text(value)
                label = next(sc.label_zh for sc in SCORES[rec.form] if sc.id == sid)
                assert row["item_label"] == label
    assert len(rows) == want


def test_wide_subjects_and_adverse_events_round_trip(protocol, dictionary, tmp_path):
    subjects = list(sample.subjects(protocol, dictionary, 12, seed=3))
    ctx = sample.context(protocol, dictionary, "csv")
    out, _ = _write(subjects, ctx, tmp_path)
    header, rows = _read(out / "wide.csv")
    # dictionary order of the visit forms' items
    expected = [f"{f.id}_{e.item}" for f in dictionary.forms if f.scope == "visit" for e in f.items]
    items_in_header = [c for c in header if c in set(expected)]
    assert items_in_header == expected
    assert "vas_vas_mm" in header and "odi_s1" in header and "odi_odi_percent" in header and "sf36_pcs" in header
    assert len(header) == len(set(header))
    for c in ("prescreening_sex", "screening_vas_mm", "adverse_event_term", "end_of_study_status"):
        assert c not in header
    assert len(rows) == sum(len(s.visits) for s in subjects)
    at = {(r["subject"], r["visit"]): r for r in rows}
    for s in subjects:
        for rec in s.records:
            if rec.visit in ("", "screening"):
                continue
            row = at[(s.subject, rec.visit)]
            for item, value in rec.values.items():
                assert row[f"{rec.form}_{item}"] == text(value)
        for v in s.visits:
            assert at[(s.subject, v.visit)]["visit_outcome"] == v.outcome
            assert at[(s.subject, v.visit)]["study_day"] == text(v.day)
    header, rows = _read(out / "subjects.csv")
    assert [r["subject"] for r in rows] == [s.subject for s in subjects]
    assert "screening_vas_mm" in header and "eligibility_outcome" in header and "consent_consent_version" in header
    for s, row in zip(subjects, rows):
        assert row["age"] == str(s.age) and row["sex"] == s.sex and row["status"] == s.status
        screening = next(r for r in s.records if r.form == "screening")
        assert row["screening_bmd_t_score"] == text(screening.values["bmd_t_score"])
    header, rows = _read(out / "adverse_events.csv")
    aes = [(s, r) for s in subjects for r in s.records if r.form == "adverse_event"]
    assert len(rows) == len(aes) > 0
    for (s, rec), row in zip(aes, rows):
        assert row["subject"] == s.subject and row["term"] == rec.values["term"]
        assert row["serious_criteria"] == ";".join(rec.values["serious_criteria"])


def test_edge_values(protocol, dictionary, tmp_path):
    ctx = sample.context(protocol, dictionary, "csv", blinding="arms")
    out, _ = _write(edge_subjects(protocol, dictionary), ctx, tmp_path)
    _, long = _read(out / "long.csv")
    got = {(r["subject"][-3:], r["visit"], r["form"], r["record"], r["item"], r["derived"]): r for r in long}
    vas = got[("901", "baseline", "vas", "1", "vas_mm", "false")]
    assert vas["value"] == "0" and vas["verified"] == "true" and vas["locked"] == "true"
    assert vas["open_queries"] == "1"  # the closed one is not counted
    assert (vas["changed_at"], vas["changed_by"], vas["item_revisions"]) == ("2022-06-05T03:00:00+00:00",
                                                                            "coordinator", "1")  # 0 -> 0.0 is no change
    assert got[("901", "baseline", "vas", "1", "vas_mm", "true")]["value"] == "0"
    assert got[("901", "baseline", "odi", "1", "s8", "false")]["value"] == ""
    assert got[("901", "baseline", "odi", "1", "odi_percent", "true")]["value"] == "24.444444444444443"
    assert got[("901", "baseline", "imaging", "1", "rom_flexion_deg", "false")]["value"] == "-12.5"
    assert got[("901", "baseline", "imaging", "1", "rom_extension_deg", "false")]["value"] == "-0.1"
    assert got[("901", "baseline", "imaging", "1", "height_below_mm", "false")]["value"] == "9"
    assert got[("901", "baseline", "imaging", "1", "modic_superior", "false")]["value_label"] != ""
    assert got[("901", "baseline", "imaging", "1", "disc_height_score", "true")]["value"] == ""
    assert got[("901", "unscheduled", "vas", "1", "vas_mm", "false")]["visit_repeat"] == "1"
    ae = got[("901", "", "adverse_event", "1", "serious_criteria", "false")]
    assert ae["value"] == "hospitalisation;important_medical_event"
    assert ae["value_label"] == "Hospitalisation;Important medical event" or ae["value_label"].count(";") == 1
    assert got[("901", "", "adverse_event", "1", "serious", "false")]["value"] == "true"
    assert got[("901", "", "adverse_event", "1", "term", "false")]["value"] == "穿刺部位疼痛"
    assert got[("901", "", "adverse_event", "1", "description", "false")]["value"] == LONG_TEXT
    assert got[("901", "", "adverse_event", "2", "grade", "false")]["open_queries"] == "1"
    assert got[("901", "", "end_of_study", "1", "details", "false")]["value"] == "搬家\n第二行"
    assert got[("901", "screening", "screening", "1", "lbp_posture", "false")]["value"] == "false"
    assert got[("901", "screening", "screening", "1", "lbp_duration_months", "false")]["value"] == "0"
    assert all(r["subject"] != "dlbp-admsc-902" for r in long)  # no records, no long rows
    _, wide = _read(out / "wide.csv")
    assert [(r["visit"], r["visit_repeat"], r["visit_outcome"]) for r in wide] == [
        ("baseline", "0", "attended"), ("w1", "0", "missed"), ("unscheduled", "1", "")]
    assert wide[0]["vas_vas_mm"] == "0" and wide[0]["imaging_rom_score"] == "-12.4" and wide[0]["odi_s8"] == ""
    assert wide[0]["arm"] == "high_dose" and wide[0]["group_label"] == "C"
    assert wide[2]["vas_vas_mm"] == "100" and wide[1]["vas_vas_mm"] == ""
    _, subjects = _read(out / "subjects.csv")
    assert subjects[0]["screening_bmd_t_score"] == "-2.4" and subjects[0]["screening_lbp_cough_sneeze"] == "true"
    assert subjects[0]["end_of_study_details"] == "搬家\n第二行"
    assert subjects[1]["failed_criteria"] == "I3;E7" and subjects[1]["eligible"] == "false"
    assert subjects[1]["group_label"] == "" and subjects[1]["screening_vas_mm"] == ""
    _, aes = _read(out / "adverse_events.csv")
    assert [a["ae_number"] for a in aes] == ["1", "2"]
    assert aes[1]["term"] == 'Headache, "mild"; 1,2' and aes[1]["open_queries"] == "1"
    assert aes[0]["description"] == LONG_TEXT and aes[0]["end_at"] == ""


@pytest.mark.req("X-3.8")
@pytest.mark.parametrize("blinding,present,absent", [
    ("blinded", (), ("group_label", "arm")),
    ("labels", ("group_label",), ("arm",)),
    ("arms", ("group_label", "arm"), ()),
])
def test_blind_columns(protocol, dictionary, tmp_path, blinding, present, absent):
    no_drug = without_drug_code(dictionary)
    ctx = sample.context(protocol, no_drug, "csv", blinding=blinding)
    subjects = edge_subjects(protocol, dictionary)
    out, _ = _write(subjects, ctx, tmp_path)
    for name in ("long.csv", "wide.csv", "subjects.csv", "adverse_events.csv"):
        header, rows = _read(out / name)
        for c in present:
            assert c in header, (name, c)
        for c in absent + ("drug_code", "transplant_drug_code_entered"):
            assert c not in header, (name, c)
        if "group_label" in present:
            assert {r["group_label"] for r in rows if r["subject"].endswith("901")} == {"C"}
        if "arm" in present:
            assert {r["arm"] for r in rows if r["subject"].endswith("901")} == {"high_dose"}
    body = b"".join((out / n).read_bytes() for n in ("long.csv", "wide.csv", "subjects.csv", "adverse_events.csv"))
    assert (b"high_dose" in body) == ("arm" in present)


def test_drug_code_column_only_with_the_dictionary_drug_code(protocol, dictionary, tmp_path):
    subjects = [dataclasses.replace(s, drug_code="DC-0042") for s in edge_subjects(protocol, dictionary)]
    out, _ = _write(subjects, sample.context(protocol, dictionary, "csv"), tmp_path)
    header, rows = _read(out / "subjects.csv")
    assert "drug_code" in header and rows[0]["drug_code"] == "DC-0042" and "group_label" not in header


def test_identity_only_in_the_identifiable_export(protocol, dictionary, tmp_path):
    subjects = edge_subjects(protocol, dictionary)
    out, _ = _write(subjects, sample.context(protocol, dictionary, "csv"), tmp_path, "pseudo")
    body = b"".join(p.read_bytes() for p in out.iterdir())
    assert "张伟军".encode() not in body and b"13800000000" not in body
    for name in ("subjects.csv", "long.csv"):
        header, _ = _read(out / name)
        assert "initials" not in header and "prescreening_full_name" not in header
    out, _ = _write(subjects, sample.context(protocol, dictionary, "csv", identifiable=True), tmp_path, "ident")
    header, rows = _read(out / "subjects.csv")
    assert (rows[0]["initials"], rows[0]["full_name"], rows[0]["phone"]) == ("ZWJ", "张伟军", "13800000000")


def test_bom_only_for_excel(protocol, dictionary, tmp_path):
    subjects = list(sample.subjects(protocol, dictionary, 2))
    out, paths = _write(subjects, sample.context(protocol, dictionary, "csv", excel_bom=True), tmp_path, "bom")
    for p in paths:
        if p.suffix == ".csv":
            _read(p, bom=True)
    out, paths = _write(subjects, sample.context(protocol, dictionary, "csv"), tmp_path, "plain")
    for p in paths:
        if p.suffix == ".csv":
            _read(p, bom=False)


def test_no_participants_gives_headers_only(protocol, dictionary, tmp_path):
    ctx = sample.context(protocol, dictionary, "csv", excel_bom=True)
    out, paths = _write([], ctx, tmp_path)
    assert len(paths) == 5
    for name in ("long.csv", "wide.csv", "subjects.csv", "adverse_events.csv"):
        header, rows = _read(out / name, bom=True)
        assert header[0] == "subject" and rows == []
    assert _read(out / "wide.csv", bom=True)[0] == csvfiles.wide_header(ctx)


def _renamed(base, n):
    """``n`` participants from a few sample ones, each under its own number, made one at a time.
    (Their screening, participant-level and baseline records only: enough to show the memory does
    not grow with the participants, in a test that runs in seconds under tracemalloc.)"""
    kept = ("", "screening", "baseline")
    for i, s in zip(range(n), itertools.cycle(base)):
        yield dataclasses.replace(s, subject=f"dlbp-admsc-{i + 1:05d}", screening_number=f"S{i + 1:05d}",
                                  records=tuple(r for r in s.records if r.visit in kept),
                                  visits=tuple(v for v in s.visits if v.visit in kept))


def warm_tuple_freelist():
    """Fill CPython's free lists of small tuples before tracing: the tuples the participants are
    made of (their records, visits) go back to those lists when freed, which tracemalloc would count
    as held (up to 2,000 of each size) although the writer holds nothing."""
    gc.collect()
    junk = [tuple(range(k)) for k in range(1, 20) for _ in range(2000)]
    del junk


def test_memory_stays_flat(protocol, dictionary, tmp_path):
    base = list(sample.subjects(protocol, dictionary, 10, seed=5))
    ctx = sample.context(protocol, dictionary, "csv")

    def peak(n):
        warm_tuple_freelist()
        out = tmp_path / f"m{n}"
        out.mkdir()
        tracemalloc.start()
        csvfiles.write(_renamed(base, n), ctx, out)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        with open(out / "subjects.csv", encoding="utf-8") as f:
            assert sum(1 for _ in f) == n + 1
        return top

    small, large = peak(200), peak(2000)
    # ten times the participants: memory about the same (well below 10x the 200-participant peak)
    assert large < small * 2, (small, large)


AWKWARD_TEXT = ["plain", "", "a,b", 'say "hi"', '"', '""', ",", "line\nbreak", "cr\rreturn", "crlf\r\nend",
                "=1+2", "=HYPERLINK(\"x\",\"y\")", "-3", "+3", "@sum", " lead", "trail ", "\ttab", "nul\x00byte",
                "sep\u2028line", "中文，逗号", "x" * 300, "semi;colon", "'quote'"]


def test_fields_are_quoted_as_the_csv_module_quotes_them():
    import io

    from annulus.interchange.csvfiles import _cell, _quoted, _text_cell

    values = [*AWKWARD_TEXT, None, 0, -0.0, 1.5, 1e16, 2.0, float("nan"), True, False, 12, ["a,b", 'c"d'],
              ("x", "y"), 1e-7]
    for v in values:
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerow([v, text(v), "z"])
        assert f"{_cell(v)},{_text_cell(v)},z\r\n" == out.getvalue(), v
        if isinstance(v, str):
            assert _quoted(v) == _cell(v)


def _awkward_subject(protocol, dictionary) -> Subject:
    """A participant whose every text is one of AWKWARD_TEXT: ids, allocation, visit fields, item
    values of every form, several codes, derived scores, history."""
    one = edge_subjects(protocol, dictionary)[0]
    texts = itertools.cycle(AWKWARD_TEXT)
    records = []
    for r in one.records:
        values = {k: (next(texts) if isinstance(v, str) else v) for k, v in r.values.items()}
        form = dictionary.form(r.form)
        for e in form.items if form is not None else ():
            values.setdefault(e.item, next(texts))
        changes = tuple(dataclasses.replace(c, by=next(texts), at=next(texts), values=dict(values))
                        for c in r.changes)
        records.append(dataclasses.replace(r, values=values, changes=changes,
                                           computed={k: next(texts) for k in r.computed}))
    records.append(Record(visit="w1", form="vas", values={"vas_mm": 'a,"b"\n'}, computed={"odd": "x,y"},
                          state='dr,"aft"', changes=(Change(1, "t,1", 'u"1', "U", "", {"vas_mm": 1}),
                                                      Change(2, "t\n2", "u,2", "U", "r", {"vas_mm": 'a,"b"\n'}))))
    visits = tuple(dataclasses.replace(v, outcome='att,"ended"', window="in\r\n") for v in one.visits)
    return dataclasses.replace(one, subject='dlbp-admsc-9,"01"', group_label="C,", arm='high "dose"',
                               visits=visits, records=tuple(records),
                               identity={"initials": "Z,W", "full_name": '张"伟', "phone": "138\n0000"})


@pytest.mark.parametrize("bom", [False, True])
def test_every_file_is_what_the_csv_module_writes(protocol, dictionary, tmp_path, bom):
    """Read back and written again by the csv module, each file is the same bytes: the lines this
    writer joins itself are quoted exactly as csv.writer quotes."""
    subjects = [_awkward_subject(protocol, dictionary), *edge_subjects(protocol, dictionary)[1:],
                *sample.subjects(protocol, dictionary, 3, seed=9)]
    ctx = sample.context(protocol, dictionary, "csv", blinding="arms", identifiable=True, excel_bom=bom,
                         language="zh-hans")
    out, _ = _write(subjects, ctx, tmp_path)
    for name in ("long.csv", "wide.csv", "subjects.csv", "adverse_events.csv"):
        raw = (out / name).read_bytes()
        with open(out / name, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
        again = io.StringIO()
        csv.writer(again, lineterminator="\r\n").writerows(rows)
        assert (b"\xef\xbb\xbf" if bom else b"") + again.getvalue().encode("utf-8") == raw, name
    header, rows = _read(out / "long.csv", bom=bom)
    mine = [r for r in rows if r["subject"] == 'dlbp-admsc-9,"01"']
    assert {r["value"] for r in mine} >= set(AWKWARD_TEXT) - {"nul\x00byte"} | {'a,"b"\n'}
    assert any(r["changed_at"] == "t\n2" and r["changed_by"] == "u,2" and r["item_revisions"] == "2"
               for r in mine if r["item"] == "vas_mm")
