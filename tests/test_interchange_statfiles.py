"""SPSS, Stata and SAS transport exports read back with pyreadstat (and pandas) and compared with
the participants and the data dictionary: values, counts, variable labels, value labels and
measurement levels (X-7.6); allocation variables by the blinding (X-3.8)."""

from __future__ import annotations

import csv
import math
import tracemalloc
from dataclasses import replace
from datetime import datetime, timezone

import pandas as pd
import pyreadstat
import pytest

from annulus.dictionary import build
from annulus.interchange import sample, statfiles
from annulus.interchange.scores import SCORES
from annulus.protocol import default_protocol_path, load_protocol

from .test_interchange_csv import LONG_TEXT, _renamed, edge_subjects, warm_tuple_freelist, without_drug_code

pytestmark = pytest.mark.req("X-7.6")

READ = {"sav": pyreadstat.read_sav, "dta": pyreadstat.read_dta,
        "xpt": lambda path: pyreadstat.read_xport(path, encoding="utf-8")}


@pytest.fixture(scope="module")
def protocol():
    return load_protocol(default_protocol_path())


@pytest.fixture(scope="module")
def dictionary(protocol):
    return build(protocol)


@pytest.fixture(scope="module")
def subjects(protocol, dictionary):
    return list(sample.subjects(protocol, dictionary, 8, seed=11, labels=True)) + edge_subjects(protocol, dictionary)


def _export(subjects, ctx, tmp_path, name="out"):
    out = tmp_path / name
    out.mkdir()
    return out, statfiles.write(iter(subjects), ctx, out)


def _names(out, fmt):
    """dataset -> (file, {column -> name in the file})."""
    if fmt == "xpt":
        with open(out / statfiles.XPT_NAMES, encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        files = {r["dataset"]: out / f"{r['xpt_dataset'].lower()}.xpt" for r in rows if not r["column"]}
        cols: dict = {}
        for r in rows:
            if r["column"]:
                cols.setdefault(r["dataset"], {})[r["column"]] = r["xpt_column"]
        return {d: (files[d], cols[d]) for d in files}
    renamed: dict = {}
    if (out / statfiles.DTA_NAMES).exists():
        with open(out / statfiles.DTA_NAMES, encoding="utf-8") as f:
            for r in csv.DictReader(f):
                renamed.setdefault(r["dataset"], {})[r["column"]] = r["dta_column"]
    return {p.stem: (p, renamed.get(p.stem, {})) for p in out.glob(f"*.{fmt}")}


def _num(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, list):
        v = v[0]
    if v in ("true", "false"):  # yes/no as its codes (the sample data write them so)
        return 1.0 if v == "true" else 0.0
    return float(v)


def _check_value(e, want, got, fmt, col):
    if e is None or e.type in ("number", "integer") or (e.codelist and all(
            c.lstrip("-").replace(".", "", 1).isdigit() for c, _a, _b in e.codelist) and e.item != "serious_criteria") \
            or e.type == "bool":
        w = _num(want)
        if w is None:
            assert got is None or (isinstance(got, float) and math.isnan(got)), (col, want, got)
        else:
            assert got == pytest.approx(w, rel=1e-12), (col, want, got)
        return
    from annulus.interchange.csvfiles import text

    expected = text(want)
    if fmt == "xpt" and len(expected.encode()) > 200:
        expected = expected.encode()[:200].decode("utf-8", "ignore")
    assert (got or "") == expected, (col, want, got)


@pytest.mark.parametrize("fmt", ["sav", "dta", "xpt"])
def test_round_trip(protocol, dictionary, subjects, tmp_path, fmt):
    ctx = sample.context(protocol, dictionary, fmt, blinding="labels")
    out, paths = _export(subjects, ctx, tmp_path)
    names = _names(out, fmt)
    visit_forms = [f for f in dictionary.forms if f.scope == "visit"]
    assert set(names) == {f.id for f in visit_forms} | {"subjects", "adverse_event"}
    assert (out / "README.txt").exists() and ctx.as_of in (out / "README.txt").read_text(encoding="utf-8")
    for form in visit_forms:
        path, renamed = names[form.id]
        df, meta = READ[fmt](str(path))
        col = lambda name: renamed.get(name, name)  # noqa: E731
        records = [(s, r) for s in subjects for r in s.records if r.form == form.id]
        assert len(df) == len(records), form.id
        if fmt != "xpt":
            assert ctx.as_of in meta.file_label
        labels = dict(zip(meta.column_names, meta.column_labels))
        for e in form.items:
            want = e.label(ctx.language)
            assert labels[col(e.item)] == (want if fmt != "xpt" else want.encode()[:40].decode("utf-8", "ignore"))
        for score in SCORES.get(form.id, ()):
            if form.item(score.id) is None:
                assert labels[col(score.id)].startswith(score.label_en[:30])
        for (s, r), row in zip(records, df.to_dict("records")):
            assert row[col("subject")] == s.subject and row[col("visit")] == r.visit
            assert row[col("group_label")] == (s.group_label or "")
            for e in form.items:
                _check_value(e, r.values.get(e.item), row[col(e.item)], fmt, f"{form.id}.{e.item}")
            for sid, value in r.computed.items():
                if form.item(sid) is None:
                    _check_value(None, value, row[col(sid)], fmt, f"{form.id}.{sid}")
    path, renamed = names["subjects"]
    df, _ = READ[fmt](str(path))
    assert list(df[renamed.get("subject", "subject")]) == [s.subject for s in subjects]
    path, renamed = names["adverse_event"]
    df, _ = READ[fmt](str(path))
    aes = [(s, r) for s in subjects for r in s.records if r.form == "adverse_event"]
    assert len(df) == len(aes)
    ae_form = dictionary.form("adverse_event")
    for (s, r), row in zip(aes, df.to_dict("records")):
        for e in ae_form.items:
            _check_value(e, r.values.get(e.item), row[renamed.get(e.item, e.item)], fmt, f"ae.{e.item}")


def test_sav_labels_value_labels_and_measures(protocol, dictionary, subjects, tmp_path):
    ctx = sample.context(protocol, dictionary, "sav", language="zh-hans")
    out, _ = _export(subjects, ctx, tmp_path)
    df, meta = pyreadstat.read_sav(str(out / "odi.sav"))
    odi = dictionary.form("odi")
    assert meta.column_names_to_labels["s1"] == odi.item("s1").label_zh
    assert meta.variable_value_labels["s1"] == {float(c): zh for c, _en, zh in odi.item("s1").codelist}
    assert meta.variable_measure["s1"] == "ordinal"
    assert meta.variable_measure["odi_percent"] == "scale"
    assert meta.column_names_to_labels["odi_percent"] == "Oswestry 功能障碍指数"
    assert meta.variable_measure["subject"] == "nominal"
    assert df["s1"].dtype.kind == "f"  # numeric codes stay numeric
    assert ctx.as_of in meta.file_label and ctx.chain_hash in meta.notes
    _df, meta = pyreadstat.read_sav(str(out / "joa.sav"))
    assert meta.variable_value_labels["bladder"] == {0.0: dictionary.entry("joa", "bladder").codelist[0][2],
                                                    -3.0: dictionary.entry("joa", "bladder").codelist[1][2],
                                                    -6.0: dictionary.entry("joa", "bladder").codelist[2][2]}
    df, meta = pyreadstat.read_sav(str(out / "imaging.sav"))
    modic = dictionary.entry("imaging", "modic_superior")
    assert meta.variable_measure["modic_superior"] == "nominal"
    assert meta.variable_value_labels["modic_superior"] == {c: zh for c, _en, zh in modic.codelist}
    assert meta.variable_measure["height_index_mm"] == "scale"
    edge = df[df["subject"] == "dlbp-admsc-901"].iloc[0]
    assert edge["rom_flexion_deg"] == -12.5 and edge["modic_superior"] == "II" and edge["modic_inferior"] == ""
    assert math.isnan(edge["height_above_mm"]) and edge["rom_score"] == pytest.approx(-12.4)
    df, meta = pyreadstat.read_sav(str(out / "adverse_event.sav"))
    assert meta.variable_value_labels["serious"] == {1.0: "是", 0.0: "否"} or set(
        meta.variable_value_labels["serious"]) == {0.0, 1.0}
    assert meta.variable_measure["grade"] == "ordinal"
    edge = df[df["subject"] == "dlbp-admsc-901"]
    assert list(edge["term"]) == ["穿刺部位疼痛", 'Headache, "mild"; 1,2']
    assert edge["description"].iloc[0] == LONG_TEXT
    assert edge["serious_criteria"].iloc[0] == "hospitalisation;important_medical_event"
    assert list(edge["open_queries"]) == [0.0, 1.0]
    df, _ = pyreadstat.read_sav(str(out / "vas.sav"))
    zero = df[(df["subject"] == "dlbp-admsc-901") & (df["visit"] == "baseline")]
    assert zero["vas_mm"].iloc[0] == 0.0
    unscheduled = df[df["visit"] == "unscheduled"]
    assert list(unscheduled["visit_repeat"]) == [1.0] and list(unscheduled["vas_mm"]) == [100.0]
    df, _ = pyreadstat.read_sav(str(out / "subjects.sav"))
    row = df[df["subject"] == "dlbp-admsc-902"].iloc[0]
    assert row["failed_criteria"] == "I3;E7" and row["eligible"] == 0.0 and math.isnan(row["age"])
    row = df[df["subject"] == "dlbp-admsc-901"].iloc[0]
    assert row["screening_bmd_t_score"] == -2.4 and row["end_of_study_details"] == "搬家\n第二行"


def test_dta_value_labels_only_on_numbers_and_short_names(protocol, dictionary, subjects, tmp_path):
    ctx = sample.context(protocol, dictionary, "dta")
    out, paths = _export(subjects, ctx, tmp_path)
    df, meta = pyreadstat.read_dta(str(out / "odi.dta"))
    assert meta.variable_value_labels["s1"] == {int(c): en for c, en, _zh in dictionary.entry("odi", "s1").codelist}
    _df, meta = pyreadstat.read_dta(str(out / "imaging.dta"))
    assert "modic_superior" not in meta.variable_value_labels  # text codes: no Stata value labels
    df, meta = pyreadstat.read_dta(str(out / "subjects.dta"))
    assert all(len(c) <= 32 for c in meta.column_names)
    with open(out / statfiles.DTA_NAMES, encoding="utf-8") as f:
        renamed = {(r["dataset"], r["column"]): r["dta_column"] for r in csv.DictReader(f)}
    long_name = renamed[("subjects", "screening_allergy_ha_contrast_anaesthetic")]
    assert long_name in meta.column_names and len(long_name) <= 32
    assert ctx.as_of in meta.file_label


def test_xpt_names_labels_and_cut_text(protocol, dictionary, subjects, tmp_path):
    ctx = sample.context(protocol, dictionary, "xpt")
    out, paths = _export(subjects, ctx, tmp_path)
    names = {p.name for p in paths}
    assert {"xpt_names.csv", "xpt_truncated.csv", "vas.xpt", "subjects.xpt", "bloodrt.xpt", "ae.xpt"} <= names
    with open(out / statfiles.XPT_NAMES, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    shorts = [r["xpt_dataset"] for r in rows if not r["column"]]
    assert len(shorts) == len(set(shorts)) and all(len(x) <= 8 and x == x.upper() for x in shorts)
    for ds in {r["dataset"] for r in rows}:
        cols = [r["xpt_column"] for r in rows if r["dataset"] == ds and r["column"]]
        assert len(cols) == len(set(cols)) and all(len(c) <= 8 for c in cols)
    with open(out / statfiles.XPT_TRUNCATED, encoding="utf-8") as f:
        cuts = list(csv.DictReader(f))
    assert [(c["dataset"], c["subject"], c["record"], c["column"], c["bytes"]) for c in cuts] == [
        ("adverse_event", "dlbp-admsc-901", "1", "description", str(len(LONG_TEXT.encode())))]
    ae_file = next(out / f"{r['xpt_dataset'].lower()}.xpt" for r in rows if r["dataset"] == "adverse_event")
    df, meta = pyreadstat.read_xport(str(ae_file), encoding="utf-8")
    desc = df[df["SUBJECT"] == "dlbp-admsc-901"]["DESCRIPT"].iloc[0]
    assert LONG_TEXT.startswith(desc) and len(desc.encode()) <= 200 and len(desc) == 66
    # pandas reads the same dataset (rows longer than 80 bytes)
    frame = pd.read_sas(out / "vas.xpt", format="xport", encoding="utf-8")
    mine, _ = pyreadstat.read_xport(str(out / "vas.xpt"), encoding="utf-8")
    assert len(frame) == len(mine) and list(frame["SUBJECT"]) == list(mine["SUBJECT"])


@pytest.mark.req("X-3.8")
@pytest.mark.parametrize("fmt", ["sav", "dta", "xpt"])
@pytest.mark.parametrize("blinding,present,absent", [
    ("blinded", (), ("group_label", "arm")),
    ("labels", ("group_label",), ("arm",)),
    ("arms", ("group_label", "arm"), ()),
])
def test_blind_variables(protocol, dictionary, tmp_path, fmt, blinding, present, absent):
    ctx = sample.context(protocol, without_drug_code(dictionary), fmt, blinding=blinding)
    out, _ = _export(edge_subjects(protocol, dictionary), ctx, tmp_path)
    xpt = {"group_label": "GRPLABEL", "arm": "ARM", "drug_code": "DRUGCODE", "drug_code_entered": "DRUG_COD"}
    for path, _renamed in _names(out, fmt).values():
        _df, meta = READ[fmt](str(path))
        cols = set(meta.column_names)
        for c in present:
            assert (xpt[c] if fmt == "xpt" else c) in cols, (path.name, c)
        for c in absent + ("drug_code", "drug_code_entered"):
            assert (xpt[c] if fmt == "xpt" else c) not in cols, (path.name, c)
    body = b"".join(p.read_bytes() for p in out.iterdir())
    assert (b"high_dose" in body) == ("arm" in present)


@pytest.mark.parametrize("fmt", ["sav", "dta", "xpt"])
def test_no_participants_gives_empty_datasets(protocol, dictionary, tmp_path, fmt):
    ctx = sample.context(protocol, dictionary, fmt)
    out, paths = _export([], ctx, tmp_path)
    datasets = _names(out, fmt)
    assert len(datasets) == len([f for f in dictionary.forms if f.scope == "visit"]) + 2
    for path, renamed in datasets.values():
        df, meta = READ[fmt](str(path))
        assert len(df) == 0 and renamed.get("subject", "SUBJECT" if fmt == "xpt" else "subject") in meta.column_names


def test_xpt_memory_stays_flat(protocol, dictionary, tmp_path):
    base = list(sample.subjects(protocol, dictionary, 10, seed=5))
    ctx = sample.context(protocol, dictionary, "xpt")

    def peak(n):
        warm_tuple_freelist()
        out = tmp_path / f"m{n}"
        out.mkdir()
        tracemalloc.start()
        statfiles.write(_renamed(base, n), ctx, out)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        df, _ = pyreadstat.read_xport(str(out / "subjects.xpt"))
        assert len(df) == n
        return top

    small, large = peak(200), peak(2000)
    assert large < small * 2, (small, large)


def _long_texts(protocol, dictionary, n):
    """Participants with text longer than its xpt column in several datasets (every free-text item)."""
    out = []
    for i, s in enumerate(sample.subjects(protocol, dictionary, n, seed=13)):
        records = []
        for r in s.records:
            form = dictionary.form(r.form)
            free = {e.item for e in form.items if e.type == "text" and not e.codelist} if form else set()
            records.append(replace(r, values={k: (f"{i}:" + LONG_TEXT if k in free else v)
                                              for k, v in r.values.items()}))
        out.append(replace(s, records=tuple(records)))
    return out


@pytest.mark.parametrize("fmt", ["xpt", "sav", "dta"])
def test_the_files_do_not_depend_on_the_batch_size(protocol, dictionary, tmp_path, monkeypatch, fmt):
    """Rows are converted and written (xpt) or spooled (sav, dta) in batches: one row at a time
    gives the same datasets, and the same list of cut texts, in the order of the participants."""
    from annulus.interchange import xpt

    class Now(datetime):  # xpt files carry their creation time
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

    monkeypatch.setattr(xpt, "datetime", Now)
    subjects = _long_texts(protocol, dictionary, 6) + edge_subjects(protocol, dictionary)
    ctx = sample.context(protocol, dictionary, fmt, blinding="arms")
    monkeypatch.setattr(statfiles, "BATCH_ROWS", 1)
    small, _ = _export(subjects, ctx, tmp_path, "one")
    monkeypatch.setattr(statfiles, "BATCH_ROWS", 10**6)
    whole, _ = _export(subjects, ctx, tmp_path, "all")
    names = sorted(p.name for p in whole.iterdir())
    assert sorted(p.name for p in small.iterdir()) == names
    for name in names:
        if fmt == "xpt" or name.endswith(".csv"):
            assert (small / name).read_bytes() == (whole / name).read_bytes(), name
        elif not name.endswith(".txt"):  # (sav and dta files carry the time they were written)
            (a, meta_a), (b, meta_b) = READ[fmt](str(small / name)), READ[fmt](str(whole / name))
            assert a.equals(b) and meta_a.column_labels == meta_b.column_labels, name
    if fmt == "xpt":
        with open(whole / statfiles.XPT_TRUNCATED, encoding="utf-8") as f:
            cuts = list(csv.DictReader(f))
        assert len({c["dataset"] for c in cuts}) > 2
        order = [s.subject for s in subjects]
        assert [order.index(c["subject"]) for c in cuts] == sorted(order.index(c["subject"]) for c in cuts)


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_sav_and_dta_hold_one_dataset_at_a_time(protocol, dictionary, tmp_path, fmt):
    """pyreadstat writes a whole DataFrame, so each dataset is whole in memory while it is written;
    the others wait on disk: five times the participants in a few datasets (screening, baseline,
    participant-level) is well under twice the memory."""
    base = list(sample.subjects(protocol, dictionary, 10, seed=5))
    ctx = sample.context(protocol, dictionary, fmt)

    def peak(n):
        warm_tuple_freelist()
        out = tmp_path / f"m{n}"
        out.mkdir()
        tracemalloc.start()
        statfiles.write(_renamed(base, n), ctx, out)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert len(READ[fmt](str(out / f"subjects.{fmt}"))[0]) == n
        return top

    peak(50)  # pandas and pyreadstat imported before measuring
    small, large = peak(200), peak(1000)
    assert large < small * 2, (small, large)
