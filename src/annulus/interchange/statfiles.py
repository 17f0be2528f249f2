"""SPSS (.sav), Stata (.dta) and SAS transport (.xpt) export (no Django).

``write(subjects, ctx, out_dir)`` writes, for ``ctx.format`` in sav/dta/xpt, one dataset per form
collected at visits, in the forms' wide layout (one row per participant × visit × record: columns
``subject``, the allocation columns the blind allows, ``visit``, ``visit_repeat``, ``visit_date``,
``study_day``, then the form's items in dictionary order and its derived scores), plus:

- ``subjects``: one row per participant (the summary, the pre-screening, consent, screening,
  eligibility and end-of-study items as ``<form>_<item>``), as ``subjects.csv`` of the CSV export;
- ``adverse_event``: one row per adverse event (the log form's id; the visit form
  ``adverse_events`` asks whether there was a new one);
- ``README.txt`` with the provenance (``ctx.stamp``) in plain words.

File names: ``<dataset>.sav`` / ``<dataset>.dta``; for xpt ``<short>.xpt`` (lower case) with an
8-character member name, and ``xpt_names.csv`` mapping every dataset and column to its short
name. Stata names are at most 32 characters (28 here: pyreadstat names each value-label set after
its variable and a number): longer ones are shortened the same way and listed in ``dta_names.csv``.

Variables: numbers and integers are numeric (measure "scale"); coded answers with numeric codes
are numeric with value labels from the codelist in ``ctx.language`` (ordered instrument codes
"ordinal", choices "nominal"); yes/no is 1/0 with value labels; codes that are words stay text —
with SPSS value labels on the text codes in .sav, and without value labels in .dta (Stata labels
only numbers; the codelist is in ``data_dictionary.csv`` beside the files); several codes are
joined by ``;``; dates and times are ISO text; the variable label is the dictionary's label in
``ctx.language``. The .sav file label is the study and the as-of time and its note the whole
stamp; the .dta file label the same as the .sav's.

SAS transport: written through ``annulus.interchange.xpt`` a row at a time (memory flat). Text
columns are declared from the dictionary (codes: the longest code; dates 10, times 32; free text
200 bytes, the format's limit); text longer than its column (only free text over 200 bytes of
UTF-8 in practice) is cut at a character boundary and every cut is listed in
``xpt_truncated.csv`` (dataset, subject, visit, record, column, full length) — the whole text is
in the CSV and ODM exports.

Rows are converted column by column and written in batches of about ``BATCH_ROWS`` rows (each
batch ends with a participant); the files are the same as row by row.

Memory: pyreadstat writes a whole DataFrame, so sav and dta spool each dataset's converted values
(numbers as raw doubles, text marshalled, one unnamed temporary file per dataset beside the output)
and build and write one DataFrame at a time at the end: the peak is the largest dataset, not all of
them (tracemalloc peak of a .sav export of synthetic participants with every visit filled: 1.1 MB
for 100, 4.6 MB for 1,000, where holding every dataset took 2.7 and 17 MB), so it still grows with
the participants, by the largest dataset's share. The xpt format streams: its memory stays flat
(a test holds 2,000 participants to the peak of 200).
"""

from __future__ import annotations

import csv
import marshal
import math
import re
import tempfile
from array import array
from collections.abc import Iterable
from pathlib import Path

from . import csvfiles
from .csvfiles import (AE_FORM, IDENTITY, SUMMARY, blind_columns, blind_values, identity_columns, items_of,
                       last_records, subject_forms, summary, text, visit_forms, wide_scores)
from .subject import ExportContext, Subject
from .xpt import Column, XptWriter

SUBJECTS = "subjects"
XPT_NAMES = "xpt_names.csv"
DTA_NAMES = "dta_names.csv"
XPT_TRUNCATED = "xpt_truncated.csv"
FORMATS = ("sav", "dta", "xpt")
# Stata names hold 32 characters; pyreadstat names a value-label set after its variable plus a
# number, which must fit too
DTA_NAME = 28
_NUMERIC = re.compile(r"^-?\d+(\.\d+)?$")
XPT_FIXED = {"subject": "SUBJECT", "group_label": "GRPLABEL", "arm": "ARM", "drug_code": "DRUGCODE",
             "visit": "VISIT", "visit_repeat": "VISITREP", "visit_date": "VISITDT", "study_day": "STUDYDAY",
             "record": "RECORD", "ae_number": "AENUM", "form_state": "STATE", "locked": "LOCKED",
             "open_queries": "OPENQ", "screening_number": "SCRNUM", "case_number": "CASENUM"}
# member names of the datasets whose ids are longer than 8 characters (others: cut, numbered on a clash)
XPT_DATASETS = {"liposuction": "LIPO", "transplant": "TRANSPL", "blood_routine": "BLOODRT", "liver_kidney": "LIVERKID",
                "immunology": "IMMUNOL", "urinalysis": "URINE", "adverse_events": "AENEW", "adverse_event": "AE",
                "subjects": "SUBJECTS"}
SUMMARY_LABELS = {
    "subject": "Participant", "group_label": "Group label", "arm": "Treatment arm", "drug_code": "Drug code",
    "initials": "Initials", "full_name": "Full name", "phone": "Phone",
    "screening_number": "Screening number", "case_number": "Case number", "sex": "Sex", "status": "Status",
    "age": "Age at consent (years)", "prescreened_on": "Pre-screened on", "consented_at": "Consent signed at",
    "randomised_at": "Randomised at", "liposuction_on": "Liposuction date", "transplanted_at": "Transplanted at (day 0)",
    "eligible": "Eligible", "failed_criteria": "Failed criteria", "end_status": "End-of-study status",
    "end_date": "End-of-study date", "end_reason": "End-of-study reason",
    "emergency_unblinded": "Emergency unblinding", "signature_state": "Casebook signature",
    "signed_at": "Casebook signed at", "signed_by": "Casebook signed by",
    "visit": "Visit", "visit_repeat": "Unscheduled visit number", "visit_date": "Visit date",
    "study_day": "Study day", "record": "Record number", "ae_number": "Adverse event number",
    "form_state": "Form state", "locked": "Locked", "open_queries": "Open queries",
}
SUMMARY_LABELS_ZH = {
    "subject": "受试者", "group_label": "组别标签", "arm": "治疗组", "drug_code": "药物编号",
    "initials": "姓名缩写", "full_name": "姓名", "phone": "电话",
    "screening_number": "筛选号", "case_number": "病例号", "sex": "性别", "status": "状态",
    "age": "知情同意时年龄（岁）", "prescreened_on": "预筛选日期", "consented_at": "知情同意签署时间",
    "randomised_at": "随机时间", "liposuction_on": "吸脂日期", "transplanted_at": "移植时间（第0天）",
    "eligible": "符合入组", "failed_criteria": "未满足的标准", "end_status": "研究结束状态",
    "end_date": "研究结束日期", "end_reason": "研究结束原因",
    "emergency_unblinded": "紧急揭盲", "signature_state": "病例签名", "signed_at": "病例签名时间",
    "signed_by": "病例签名人",
    "visit": "访视", "visit_repeat": "计划外访视序号", "visit_date": "访视日期", "study_day": "研究日",
    "record": "记录序号", "ae_number": "不良事件序号", "form_state": "表单状态", "locked": "已锁定",
    "open_queries": "未关闭的质疑",
}
NAN = math.nan
# rows converted and written (xpt) or spooled (sav, dta) together, after the participant that reaches this many
BATCH_ROWS = 1024
_NUM_SUMMARY = {"age", "visit_repeat", "study_day", "record", "ae_number", "open_queries"}
_BOOL_SUMMARY = {"eligible", "emergency_unblinded", "locked"}


def _zh(language: str) -> bool:
    return (language or "").lower().startswith("zh")


def _code_number(code: str):
    f = float(code)
    return int(f) if f.is_integer() else f


class Var:
    """One variable of a dataset: how its values are stored and described."""

    __slots__ = ("name", "label", "kind", "measure", "labels", "length", "codes", "multi", "_numbers")

    def __init__(self, name, label, kind, measure="nominal", labels=None, length=200, codes=None):
        self.name = name
        self.label = label
        self.kind = kind  # "num" | "bool" | "code" (numeric codes) | "str"
        self.measure = measure
        self.labels = labels  # value -> label (numeric or text keys)
        self.length = length  # xpt: declared bytes of a text column
        self.codes = codes
        self._numbers = None

    @property
    def numeric(self) -> bool:
        return self.kind in ("num", "bool", "code")

    def convert(self, value, where: str):
        """The stored value: a float (NaN for missing) or text ('' for missing)."""
        if self.kind == "str":
            return csvfiles.text(value)
        if value is None or value == "":
            return math.nan
        if self.kind == "bool":
            if isinstance(value, str):
                value = value == "true"
            return 1.0 if value else 0.0
        if isinstance(value, (list, tuple)):
            if len(value) != 1:
                raise ValueError(f"{where}.{self.name}: several codes {value!r} in a single-code variable")
            value = value[0]
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}.{self.name}: {value!r} is not a number") from None

    def convert_column(self, values, where: str) -> list:
        """``convert`` of each value of a column: the common cases (text, a float or an int, None)
        inline, the others through ``convert``."""
        convert = self.convert
        if self.kind == "str":
            return [x if type(x) is str else text(x) for x in values]
        if self.kind == "bool":
            return [1.0 if x is True else 0.0 if x is False else NAN if x is None else convert(x, where) for x in values]
        codes = self._codes()
        return [x if type(x) is float else float(x) if type(x) is int else NAN if x is None
                else codes[x] if type(x) is str and x in codes else convert(x, where) for x in values]

    def _codes(self) -> dict:
        """The codelist's codes (text) -> what ``convert`` gives each (numeric codes only)."""
        if self._numbers is None:
            self._numbers = {c: self.convert(c, "") for c in self.codes or () if type(c) is str and c} \
                if self.kind == "code" else {}
        return self._numbers


def _entry_var(name: str, e, lang: str) -> Var:
    label = e.label(lang)
    if e.type in ("number", "integer"):
        return Var(name, label, "num", "scale")
    if e.type == "bool":
        words = dict(e.codes(lang)) if e.codelist else {}
        return Var(name, label, "bool", "nominal",
                   {1: words.get("true", "yes"), 0: words.get("false", "no")})
    if e.codelist:
        codes = [c for c, _en, _zh in e.codelist]
        measure = "ordinal" if e.type == "code" else "nominal"
        multi = e.type == "choice" and e.item == "serious_criteria"
        if all(_NUMERIC.match(c) for c in codes) and not multi:
            return Var(name, label, "code", measure, {_code_number(c): w for c, w in e.codes(lang)}, codes=codes)
        longest = sum(len(c.encode()) + 1 for c in codes) if multi else max(len(c.encode()) for c in codes)
        return Var(name, label, "str", measure, dict(e.codes(lang)), length=max(1, min(200, longest)), codes=codes)
    if e.type == "date":
        return Var(name, label, "str", "nominal", length=10)
    if e.type == "datetime":
        return Var(name, label, "str", "nominal", length=32)
    if e.type in ("code", "choice"):  # coded without a codelist (people): short text
        return Var(name, label, "str", "nominal", length=64)
    return Var(name, label, "str", "nominal", length=200)


def _fixed_var(name: str, lang: str) -> Var:
    label = (SUMMARY_LABELS_ZH if _zh(lang) else SUMMARY_LABELS).get(name, name)
    if name in _NUM_SUMMARY:
        return Var(name, label, "num", "scale")
    if name in _BOOL_SUMMARY:
        yes, no = ("是", "否") if _zh(lang) else ("yes", "no")
        return Var(name, label, "bool", "nominal", {1: yes, 0: no})
    length = {"subject": 40, "screening_number": 20, "case_number": 20, "sex": 1, "group_label": 8, "visit": 20,
              "arm": 64, "drug_code": 64, "status": 40, "end_status": 40, "end_reason": 64,
              "signature_state": 20, "signed_by": 64, "form_state": 10, "failed_criteria": 200,
              "prescreened_on": 10, "liposuction_on": 10, "end_date": 10, "visit_date": 10}.get(name, 64)
    if name in ("consented_at", "randomised_at", "transplanted_at", "signed_at"):
        length = 32
    return Var(name, label, "str", "nominal", length=length)


class Dataset:
    """One dataset's variables and, for sav/dta, its values column by column."""

    def __init__(self, name: str, label: str, variables: list[Var], scores=()):
        self.name = name
        self.scores = frozenset(scores)  # the variables holding derived scores (Record.computed)
        self.label = label
        self.vars = variables
        self.rows = 0
        names = [v.name for v in variables]
        assert len(names) == len(set(names)), (name, names)
        self._items: dict = {}

    def items_after(self, start: int) -> tuple:
        """The names of the variables from ``start`` on, and (position, name) of those holding
        derived scores (their values come from ``Record.computed``)."""
        cached = self._items.get(start)
        if cached is None:
            names = tuple(v.name for v in self.vars[start:])
            cached = self._items[start] = (names, tuple((start + i, n) for i, n in enumerate(names)
                                                        if n in self.scores))
        return cached

    def convert(self, row) -> list:
        return [v.convert(x, self.name) for v, x in zip(self.vars, row)]

    def convert_rows(self, rows: list) -> list:
        """The converted values of ``rows`` (each as long as ``vars``) column by column: what
        ``convert`` gives each row, transposed."""
        if not rows:
            return [[] for _ in self.vars]
        return [v.convert_column(values, self.name) for v, values in zip(self.vars, zip(*rows))]


def datasets(ctx: ExportContext) -> list[Dataset]:
    """Every dataset of the export with its variables, in dictionary order (known before the data)."""
    d = ctx.dictionary
    lang = ctx.language
    blind = blind_columns(ctx)
    out = []
    for form in visit_forms(d):
        variables = [_fixed_var(c, lang) for c in ("subject", *blind, "visit", "visit_repeat", "visit_date",
                                                   "study_day", "record")]
        variables += [_entry_var(e.item, e, lang) for e in items_of(form, ctx)]
        variables += [Var(s.id, s.label(lang), "num", "scale") for s in wide_scores(form)]
        out.append(Dataset(form.id, form.name(lang), variables, scores=[s.id for s in wide_scores(form)]))
    variables = [_fixed_var(c, lang) for c in (SUMMARY[0], *blind, *identity_columns(ctx), *SUMMARY[1:])]
    for form in subject_forms(d):
        for e in items_of(form, ctx):
            if form.id == "prescreening" and e.item in IDENTITY:
                continue
            var = _entry_var(f"{form.id}_{e.item}", e, lang)
            var.label = f"{form.name(lang)}: {var.label}"
            variables.append(var)
    out.append(Dataset(SUBJECTS, "参与者" if _zh(lang) else "Participants", variables))
    ae = d.form(AE_FORM)
    if ae is not None:
        variables = [_fixed_var(c, lang) for c in ("subject", *blind, "ae_number")]
        variables += [_entry_var(e.item, e, lang) for e in ae.items]
        variables += [_fixed_var(c, lang) for c in ("form_state", "locked", "open_queries")]
        out.append(Dataset(AE_FORM, ae.name(lang), variables))
    return out


def rows_of(s: Subject, ctx: ExportContext, sets: dict):
    """(dataset name, row values) for one participant, in the datasets' variable order."""
    bv = blind_values(s, blind_columns(ctx))
    visits = {(v.visit, v.repeat): v for v in s.visits}
    for r in s.records:
        ds = sets.get(r.form)
        if ds is None or r.form in (SUBJECTS, AE_FORM) or r.visit in ("", "screening"):
            continue
        v = visits.get((r.visit, r.visit_repeat))
        fixed = [s.subject, *bv, r.visit, r.visit_repeat, v.date if v else None, v.day if v else None, r.record]
        names, scored = ds.items_after(len(fixed))
        row = fixed + list(map(r.values.get, names))
        for i, name in scored:
            row[i] = r.computed.get(name)
        yield r.form, row
    last = last_records(s, csvfiles.SUBJECT_FORMS)
    ident = [(s.identity or {}).get(k) for k in identity_columns(ctx)]
    row = [s.subject, *bv, *ident, *summary(s)[1:]]
    for form in subject_forms(ctx.dictionary):
        rec = last.get(form.id)
        for e in items_of(form, ctx):
            if form.id == "prescreening" and e.item in IDENTITY:
                continue
            row.append(rec.values.get(e.item) if rec is not None else None)
    yield SUBJECTS, row
    ae = sets.get(AE_FORM)
    if ae is not None:
        form = ctx.dictionary.form(AE_FORM)
        open_q: dict = {}
        for q in s.queries:
            if q.form == AE_FORM and q.status != "closed":
                open_q[q.record] = open_q.get(q.record, 0) + 1
        for r in s.records:
            if r.form == AE_FORM:
                yield AE_FORM, [s.subject, *bv, r.record, *(r.values.get(e.item) for e in form.items), r.state,
                                r.locked, open_q.get(r.record, 0)]


def short_names(names: Iterable[str], limit: int, fixed: dict | None = None, upper: bool = False) -> dict:
    """Unique names of at most ``limit`` characters, deterministic in the order given: a name that
    fits is kept; a longer one is cut, and a clash ends in a number (``ADVERSE1``)."""
    out: dict = {}
    taken: set = set()
    for name in names:
        base = (fixed or {}).get(name) or re.sub(r"[^A-Za-z0-9_]", "_", name)
        if upper:
            base = base.upper()
        if base[0].isdigit():
            base = "_" + base
        candidate = base[:limit]
        n = 0
        while candidate.lower() in taken:
            n += 1
            suffix = str(n)
            candidate = base[:limit - len(suffix)] + suffix
        taken.add(candidate.lower())
        out[name] = candidate
    return out


def _file_label(ctx: ExportContext) -> str:
    return f"{ctx.study_id} v{ctx.protocol_version} as of {ctx.as_of}"


def _note(ctx: ExportContext) -> list[str]:
    """The stamp as SPSS document lines (at most 80 bytes each)."""
    lines = []
    for line in csvfiles.stamp_text(ctx).splitlines():
        while len(line.encode("utf-8")) > 80:
            cut = _cut(line, 80)
            lines.append(cut)
            line = line[len(cut):]
        lines.append(line)
    return lines


def write(subjects: Iterable[Subject], ctx: ExportContext, out_dir: Path) -> list[Path]:
    if ctx.format not in FORMATS:
        raise ValueError(f"unknown format {ctx.format!r} for statistics files: choose one of {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    sets = datasets(ctx)
    if ctx.format == "xpt":
        paths = _write_xpt(subjects, ctx, out_dir, sets)
    else:
        paths = _write_frames(subjects, ctx, out_dir, sets)
    paths.append(csvfiles.write_readme(ctx, out_dir, [p.name for p in paths], notes=(
        "One dataset per form collected at visits (one row per participant, visit and record), "
        "'subjects' (one row per participant) and 'adverse_event' (one row per adverse event).\n"
        "data_dictionary.csv (beside these files) describes every item, its labels and codes.\n")))
    return paths


def _batches(subjects, ctx, by_name: dict):
    """The participants' rows, a batch at a time: lists of (dataset name, row values, participant),
    in the order the participants and their rows come, each batch ending with a participant."""
    batch = []
    for s in subjects:
        batch.extend((name, row, s.subject) for name, row in rows_of(s, ctx, by_name))
        if len(batch) >= BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def _converted(batch: list, by_name: dict) -> dict:
    """dataset name -> (positions in ``batch``, its values converted column by column) for the
    datasets ``batch`` has rows of. A value that cannot be converted raises the error converting
    the rows one at a time, in order, raises first (the first bad value of the stream)."""
    positions: dict = {}
    for i, (name, _row, _subject) in enumerate(batch):
        positions.setdefault(name, []).append(i)
    out = {}
    try:
        for name, at in positions.items():
            ds = by_name[name]
            rows = [batch[i][1] for i in at]
            if any(len(row) != len(ds.vars) for row in rows):
                raise ValueError(f"{name}: a row does not have one value per variable")
            out[name] = (at, ds.convert_rows(rows))
    except Exception:
        converted = {}
        for name, row, _subject in batch:
            converted.setdefault(name, []).append(by_name[name].convert(row))
        out = {name: (positions[name], [list(col) for col in zip(*rows)]) for name, rows in converted.items()}
    return out


# ---- sav / dta -----------------------------------------------------------------------------------

def _write_frames(subjects, ctx, out_dir: Path, sets: list[Dataset]) -> list[Path]:
    import numpy as np
    import pandas as pd
    import pyreadstat

    by_name = {ds.name: ds for ds in sets}
    spools = {}  # dataset name -> an unnamed temporary file beside the output (gone when closed)
    paths = []
    try:
        for ds in sets:
            spools[ds.name] = tempfile.TemporaryFile(prefix=".statfiles-", dir=out_dir)  # noqa: SIM115
        for batch in _batches(subjects, ctx, by_name):
            shared: dict = {}  # equal texts as one object: marshal writes it once, and reads it back once
            for name, (at, columns) in _converted(batch, by_name).items():
                ds = by_name[name]
                marshal.dump([array("d", col).tobytes() if v.numeric else [shared.setdefault(x, x) for x in col]
                              for v, col in zip(ds.vars, columns)], spools[name])
                ds.rows += len(at)
        dta = ctx.format == "dta"
        renames = []
        for ds in sets:
            names = {v.name: v.name for v in ds.vars}
            if dta:
                names = short_names([v.name for v in ds.vars], DTA_NAME)
                renames += [(ds.name, v.name, names[v.name]) for v in ds.vars if names[v.name] != v.name]
            frame = _frame(ds, spools.pop(ds.name), names, np, pd)
            labels = [v.label for v in ds.vars]
            path = out_dir / f"{ds.name}.{ctx.format}"
            if dta:
                value_labels = {names[v.name]: v.labels for v in ds.vars if v.labels and v.numeric}
                pyreadstat.write_dta(frame, str(path), file_label=_file_label(ctx)[:80],
                                     column_labels=[lab[:80] for lab in labels],
                                     variable_value_labels=value_labels or None)
            else:
                value_labels = {v.name: v.labels for v in ds.vars if v.labels}
                pyreadstat.write_sav(frame, str(path), file_label=_file_label(ctx)[:64], column_labels=labels,
                                     note=_note(ctx), variable_value_labels=value_labels or None,
                                     variable_measure={v.name: v.measure for v in ds.vars})
            del frame
            paths.append(path)
    finally:
        for spool in spools.values():
            spool.close()
    if renames:
        path = out_dir / DTA_NAMES
        with open(path, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\r\n")
            w.writerow(["dataset", "column", "dta_column"])
            w.writerows(renames)
        paths.append(path)
    return paths


def _frame(ds: Dataset, spool, names: dict, np, pd):
    """The dataset's DataFrame from its spool (closed here): numbers as float64, text as objects."""
    numbers = {v.name: bytearray() for v in ds.vars if v.numeric}
    texts = {v.name: [] for v in ds.vars if not v.numeric}
    with spool:
        spool.seek(0)
        while True:
            try:
                chunk = marshal.load(spool)
            except EOFError:
                break
            for v, col in zip(ds.vars, chunk):
                if v.numeric:
                    numbers[v.name] += col
                else:
                    texts[v.name].extend(col)
    columns = {}
    for v in ds.vars:
        if v.numeric:
            raw = numbers.pop(v.name)
            columns[names[v.name]] = np.frombuffer(raw, dtype="float64") if raw else np.empty(0, dtype="float64")
        else:
            values = texts.pop(v.name)
            # kept as objects (not pandas' string dtype): pyreadstat writes the same bytes and reads them faster
            columns[names[v.name]] = pd.Series(values, dtype=object) if values else pd.array([], dtype=object)
    return pd.DataFrame(columns, copy=False)


# ---- xpt -----------------------------------------------------------------------------------------

def _cut(text: str, size: int) -> str:
    return text.encode("utf-8")[:size].decode("utf-8", "ignore")


def _write_xpt(subjects, ctx, out_dir: Path, sets: list[Dataset]) -> list[Path]:
    member = short_names([ds.name for ds in sets], 8, XPT_DATASETS, upper=True)
    names = {ds.name: short_names([v.name for v in ds.vars], 8, XPT_FIXED, upper=True) for ds in sets}
    paths = []
    map_path = out_dir / XPT_NAMES
    with open(map_path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(["dataset", "xpt_dataset", "column", "xpt_column", "label"])
        for ds in sets:
            w.writerow([ds.name, member[ds.name], "", "", ds.label])
            w.writerows([ds.name, member[ds.name], v.name, names[ds.name][v.name], v.label] for v in ds.vars)
    writers = {}
    cuts_file = cuts = None
    try:
        for ds in sets:
            columns = [Column(names[ds.name][v.name], v.label, "num" if v.numeric else "char",
                              8 if v.numeric else v.length) for v in ds.vars]
            path = out_dir / f"{member[ds.name].lower()}.xpt"
            writers[ds.name] = XptWriter(path, member[ds.name], ds.label, columns=columns)
            paths.append(path)
        by_name = {ds.name: ds for ds in sets}
        for batch in _batches(subjects, ctx, by_name):
            converted = _converted(batch, by_name)
            cut = []  # (position in the batch, variable, dataset, bytes) of each text longer than its column
            for name, (at, cols) in converted.items():
                ds = by_name[name]
                for j, v in enumerate(ds.vars):
                    if v.numeric:
                        continue
                    col, shortest = cols[j], v.length // 4  # a text of at most length/4 characters fits
                    for k in [k for k, x in enumerate(col) if len(x) > shortest and len(x.encode("utf-8")) > v.length]:
                        size = len(col[k].encode("utf-8"))
                        col[k] = _cut(col[k], v.length)
                        cut.append((at[k], j, ds, size, len(col[k].encode("utf-8"))))
                writer = writers[name].write_row
                for row in zip(*cols):
                    writer(row)
            if cut and cuts is None:
                cuts_file = open(out_dir / XPT_TRUNCATED, "w", encoding="utf-8", newline="")  # noqa: SIM115
                cuts = csv.writer(cuts_file, lineterminator="\r\n")
                cuts.writerow(["dataset", "subject", "visit", "record", "column", "bytes", "kept_bytes"])
            for i, j, ds, size, kept in sorted(cut, key=lambda c: (c[0], c[1])):
                _name, row, subject = batch[i]
                where = dict(zip((x.name for x in ds.vars), row))
                cuts.writerow([ds.name, subject, where.get("visit") or "",
                               where.get("record", where.get("ae_number", "")), ds.vars[j].name, size, kept])
    finally:
        for x in writers.values():
            x.close()
        if cuts_file is not None:
            cuts_file.close()
    paths.append(map_path)
    if cuts_file is not None:
        paths.append(out_dir / XPT_TRUNCATED)
    return paths
