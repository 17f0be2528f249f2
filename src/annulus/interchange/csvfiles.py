"""CSV export: long, wide, participants and adverse events, streamed one participant at a time
(no Django).

``write(subjects, ctx, out_dir)`` writes, UTF-8 (with a byte-order mark for Excel when
``ctx.excel_bom``), a header row first and no comment line:

- ``long.csv``: one row per participant × visit × form × record × item of the dictionary (the
  value empty when not entered), then one row per derived score of the record (``derived`` true,
  labels from ``annulus.interchange.scores.SCORES``). Values are text: numbers without a trailing
  ``.0``, dates ISO, yes/no as the codes ``true``/``false``, several codes joined by ``;``;
  ``value_label`` the codelist's words in ``ctx.language``. Status columns: ``form_state``
  (draft/complete), ``verified`` (the item source-verified at the record's current revision),
  ``locked``, ``open_queries`` (open or answered queries on the item), ``changed_at``/``changed_by``
  (the last saved state that changed the item), ``item_revisions`` (how many saved states changed
  the item, its first entry included) and ``record_revisions`` (the record's saved states).
- ``wide.csv``: one row per participant × visit (× unscheduled repeat), missed visits included
  (with ``visit_outcome``), one column ``<form>_<item>`` per item of the forms the schedule
  collects at visits, in dictionary order, each form's derived scores after its items.
- ``subjects.csv``: one row per participant: the participant's summary (status, dates,
  eligibility, end of study, signature) and the items of the participant-level and screening
  forms (pre-screening, consent, screening, eligibility, end of study) as ``<form>_<item>``; of
  several consents, the last signed.
- ``adverse_events.csv``: one row per adverse event (log record).
- ``README.txt``: what the files are and the export's provenance (``ctx.stamp``) in plain words.

Blind and privacy (decided upstream; this writer only follows ``ctx``): ``group_label`` when
``ctx.blinding`` is "labels", ``group_label`` and ``arm`` when "arms", neither column otherwise;
``drug_code`` only when the dictionary carries the transplant's drug code (it is removed for
every role that may not see drug codes); ``initials``, ``full_name`` and ``phone`` only when
``ctx.identifiable``.

Every header is known from the dictionary before the first participant, so each participant's
rows are written as soon as it is read: memory stays flat in the number of participants.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from .scores import SCORES, Score
from .subject import ExportContext, Record, Subject, VisitInfo

LONG = "long.csv"
WIDE = "wide.csv"
SUBJECTS = "subjects.csv"
ADVERSE_EVENTS = "adverse_events.csv"
README = "README.txt"

IDENTITY = ("initials", "full_name", "phone")
DRUG_CODE_ITEM = ("transplant", "drug_code_entered")
# forms of one participant rather than of a visit: the participants' table
SUBJECT_FORMS = ("prescreening", "consent", "screening", "eligibility", "end_of_study")
AE_FORM = "adverse_event"

SUMMARY = ("subject", "screening_number", "case_number", "sex", "status", "age", "prescreened_on", "consented_at",
           "randomised_at", "liposuction_on", "transplanted_at", "eligible", "failed_criteria", "end_status",
           "end_date", "end_reason", "emergency_unblinded", "signature_state", "signed_at", "signed_by")
VISIT_COLUMNS = ("visit", "visit_repeat", "visit_outcome", "visit_date", "study_day", "visit_window")
LONG_COLUMNS = ("visit", "visit_repeat", "visit_date", "study_day", "form", "record", "item", "item_label", "derived",
                "value", "value_label", "unit", "form_state", "verified", "locked", "open_queries", "changed_at",
                "changed_by", "item_revisions", "record_revisions")


# ---- what every tabular writer shares (statfiles uses these too) ---------------------------------

def text(value) -> str:
    """A value as CSV text: ``42`` not ``42.0``, ``true``/``false``, ``a;b`` for several codes."""
    kind = type(value)
    if kind is str:
        return value
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        if value != value:  # NaN
            return ""
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if kind is list or kind is tuple:
        return ";".join(text(v) for v in value)
    return str(value)


def code_label(entry, value, language: str) -> str:
    """The codelist's words for a coded value (``;``-joined for several codes); '' when uncoded."""
    if entry is None or not entry.codelist or value is None:
        return ""
    words = dict(entry.codes(language))
    values = value if isinstance(value, (list, tuple)) else [value]
    return ";".join(words.get(text(v), "") for v in values)


def blind_columns(ctx: ExportContext) -> tuple:
    """The allocation columns this export may carry, by ``ctx.blinding`` and the dictionary."""
    cols = {"labels": ("group_label",), "arms": ("group_label", "arm")}.get(ctx.blinding, ())
    if drug_codes(ctx):
        cols += ("drug_code",)
    return cols


def drug_codes(ctx: ExportContext) -> bool:
    """Whether this export carries drug codes: the exports app leaves the transplant's drug code in
    the dictionary only for a role that may see drug codes."""
    return ctx.dictionary.entry(*DRUG_CODE_ITEM) is not None


def blind_values(subject: Subject, cols: tuple) -> list:
    return [getattr(subject, c) for c in cols]


def identity_columns(ctx: ExportContext) -> tuple:
    return IDENTITY if ctx.identifiable else ()


def scores_of(form_id: str) -> tuple[Score, ...]:
    return SCORES.get(form_id, ())


def wide_scores(form) -> tuple[Score, ...]:
    """The form's derived scores that get a column of their own in the wide layouts: all but a
    score named like one of the form's items (VAS: the score ``vas_mm`` is the item ``vas_mm``)."""
    items = {e.item for e in form.items}
    return tuple(s for s in scores_of(form.id) if s.id not in items)


def score_label(form_id: str, score_id: str, language: str) -> str:
    s = next((s for s in scores_of(form_id) if s.id == score_id), None)
    return s.label(language) if s is not None else score_id


def visit_forms(dictionary) -> tuple:
    """The forms collected at visits (one wide column block each), in dictionary order."""
    return tuple(f for f in dictionary.forms if f.scope == "visit")


def subject_forms(dictionary) -> tuple:
    return tuple(f for f in dictionary.forms if f.id in SUBJECT_FORMS)


def items_of(form, ctx: ExportContext) -> tuple:
    """The form's items an export writes (identity items only in the identifiable export, where
    they come from ``Subject.identity``)."""
    if form.id == "prescreening" and not ctx.identifiable:
        return tuple(e for e in form.items if e.item not in IDENTITY)
    return form.items


def value_of(subject: Subject, record: Record, item: str):
    if record.form == "prescreening" and item in IDENTITY:
        return (subject.identity or {}).get(item)
    return record.values.get(item)


def summary(subject: Subject) -> list:
    sig = subject.signature
    return [subject.subject, subject.screening_number, subject.case_number, subject.sex, subject.status, subject.age,
            subject.prescreened_on, subject.consented_at, subject.randomised_at, subject.liposuction_on,
            subject.transplanted_at, subject.eligible, list(subject.failed_criteria), subject.end_status,
            subject.end_date, subject.end_reason, subject.emergency_unblinded,
            sig.state if sig else None, sig.signed_at if sig else None, sig.signed_by if sig else None]


def last_records(subject: Subject, forms: Iterable[str]) -> dict:
    """form id -> the participant's last record of each participant-level form."""
    wanted = set(forms)
    out = {}
    for r in subject.records:
        if r.form in wanted and (r.form not in out or r.record >= out[r.form].record):
            out[r.form] = r
    return out


def visit_rows(subject: Subject) -> list:
    """The participant's visits: ``VisitInfo`` of the schedule, then any visit that has records
    but no ``VisitInfo`` (as a bare key)."""
    seen = {(v.visit, v.repeat) for v in subject.visits}
    rows = list(subject.visits)
    for r in subject.records:
        key = (r.visit, r.visit_repeat)
        if r.visit not in ("", "screening") and key not in seen:
            seen.add(key)
            rows.append(VisitInfo(visit=r.visit, repeat=r.visit_repeat))
    return rows


def stamp_text(ctx: ExportContext) -> str:
    s = ctx.stamp
    blind = {"blinded": "blinded (no group labels, arms or anything that differs by arm)",
             "labels": "group labels A-D shown (first-level unblinding)",
             "arms": "treatment arms shown (second-level unblinding)"}.get(s["blinding"], s["blinding"])
    return (f"Study {s['study']}, protocol version {s['protocol_version']}.\n"
            f"Data as they stood at {s['as_of']}.\n"
            f"Exported at {s['created_at']} by {s['created_by']}.\n"
            f"Blinding: {blind}.\n"
            f"Audit trail at that time: {s['audit_chain_count']} events; hash of the last one:\n"
            f"{s['audit_chain_hash']}\n")


def write_readme(ctx: ExportContext, out_dir: Path, files: list[str], notes: str = "") -> Path:
    path = Path(out_dir) / README
    body = (f"{ctx.title_en}\n{ctx.title_zh}\nRegistry number: {ctx.registry_number}\n\n" + stamp_text(ctx)
            + ("Identifiable export: participant identities included.\n" if ctx.identifiable
               else "Pseudonymised: participants by number only.\n")
            + f"\nFiles ({ctx.format}):\n" + "".join(f"- {f}\n" for f in files) + (f"\n{notes}" if notes else ""))
    path.write_text(body, encoding="utf-8")
    return path


# ---- CSV -----------------------------------------------------------------------------------------

class _Table:
    def __init__(self, path: Path, header, bom: bool):
        self.path = path
        self.file = open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="")  # noqa: SIM115
        self.csv = csv.writer(self.file, lineterminator="\r\n")
        self.csv.writerow(header)
        self.width = len(header)

    def row(self, values) -> None:
        assert len(values) == self.width, (self.path.name, len(values), self.width)
        self.csv.writerow([text(v) for v in values])

    def close(self) -> None:
        self.file.close()


# ---- fields as csv.writer writes them: long.csv and wide.csv join their lines themselves ---------

def _quoted(field: str) -> str:
    """``field`` as ``csv.writer`` (excel dialect, ``\\r\\n`` line ends) writes it: in double
    quotes, its quotes doubled, when it holds a comma, a quote or a line break; else as it is."""
    if '"' in field:
        return '"' + field.replace('"', '""') + '"'
    if "," in field or "\n" in field or "\r" in field:
        return '"' + field + '"'
    return field


def _cell(value) -> str:
    """A value as ``csv.writer`` writes it: ``None`` empty, a float its ``repr``, else ``str``."""
    if type(value) is str:
        return _quoted(value)
    if value is None:
        return ""
    return _quoted(repr(value) if isinstance(value, float) else str(value))


def _text_cell(value) -> str:
    """``_cell(text(value))``; numbers and yes/no never need quotes."""
    kind = type(value)
    if kind is str:
        return _quoted(value)
    if value is None:
        return ""
    if kind is int or kind is float or kind is bool:
        return text(value)
    return _quoted(text(value))


_NO_HISTORY = ("", "", "0")


def _histories(record: Record) -> dict:
    """item -> (changed_at, changed_by, item_revisions) from the record's saved states: the last
    state that changed the item, and how many states changed it (its first entry included)."""
    out: dict = {}
    previous: dict = {}
    for change in record.changes:
        for item, value in change.values.items():
            if value != previous.get(item) and (value is not None or item in previous):
                at, by, count = out.get(item, _NO_HISTORY)
                out[item] = (change.at, change.by, str(int(count) + 1))
        for item in previous.keys() - change.values.keys():
            if previous[item] is not None:  # an item gone from a later state counts as cleared
                at, by, count = out.get(item, _NO_HISTORY)
                out[item] = (change.at, change.by, str(int(count) + 1))
        previous = change.values
    return out


def _history_cells(record: Record) -> dict:
    """``_histories`` as long.csv writes it: item -> its ``changed_at,changed_by,item_revisions``
    cells. (A record saved once, as most are: every item it holds was changed by that save.)"""
    changes = record.changes
    if not changes:
        return {}
    if len(changes) == 1:
        first = changes[0]
        cells = f"{_cell(first.at)},{_cell(first.by)},1"
        return {item: cells for item, value in first.values.items() if value is not None}
    return {item: f"{_cell(at)},{_cell(by)},{count}" for item, (at, by, count) in _histories(record).items()}


def wide_header(ctx: ExportContext) -> list:
    cols = ["subject", *blind_columns(ctx), *VISIT_COLUMNS]
    for form in visit_forms(ctx.dictionary):
        cols += [f"{form.id}_{e.item}" for e in items_of(form, ctx)]
        cols += [f"{form.id}_{s.id}" for s in wide_scores(form)]
    return cols


def subjects_header(ctx: ExportContext) -> list:
    cols = [SUMMARY[0], *blind_columns(ctx), *identity_columns(ctx), *SUMMARY[1:]]
    for form in subject_forms(ctx.dictionary):
        cols += [f"{form.id}_{e.item}" for e in items_of(form, ctx) if not (form.id == "prescreening"
                                                                              and e.item in IDENTITY)]
    return cols


def ae_header(ctx: ExportContext) -> list:
    form = ctx.dictionary.form(AE_FORM)
    items = [e.item for e in form.items] if form is not None else []
    return ["subject", *blind_columns(ctx), "ae_number", *items, "form_state", "locked", "open_queries"]


def _open_queries(subject: Subject) -> dict:
    counts: dict = {}
    for q in subject.queries:
        if q.status != "closed":
            key = (q.visit, q.visit_repeat, q.form, q.record, q.item)
            counts[key] = counts.get(key, 0) + 1
    return counts


def write(subjects: Iterable[Subject], ctx: ExportContext, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    d = ctx.dictionary
    lang = ctx.language
    blind = blind_columns(ctx)
    vforms = visit_forms(d)
    sforms = subject_forms(d)
    ae_form = d.form(AE_FORM)
    wide_cols = wide_header(ctx)
    wide_index = {c: i for i, c in enumerate(wide_cols)}
    wide_start = len(wide_cols) - sum(len(items_of(f, ctx)) + len(wide_scores(f)) for f in vforms)
    tables = {
        LONG: _Table(out_dir / LONG, ["subject", *blind, *LONG_COLUMNS], ctx.excel_bom),
        WIDE: _Table(out_dir / WIDE, wide_cols, ctx.excel_bom),
        SUBJECTS: _Table(out_dir / SUBJECTS, subjects_header(ctx), ctx.excel_bom),
        ADVERSE_EVENTS: _Table(out_dir / ADVERSE_EVENTS, ae_header(ctx), ctx.excel_bom),
    }
    tables["meta"] = {}  # form id -> its items as long.csv writes them (_long_items)
    tables["wide"] = {}  # form id -> where its items and scores go in wide.csv
    tables["scores"] = {}  # form id -> its scores as long.csv writes them (_long_scores)
    tables["floats"] = {}  # float -> text(float), kept (_float_text)
    try:
        for s in subjects:
            _write_subject(s, ctx, tables, blind, vforms, sforms, ae_form, wide_index, wide_start, lang)
    finally:
        tables.pop("meta").clear()
        tables.pop("wide").clear()
        tables.pop("scores").clear()
        tables.pop("floats").clear()
        for t in tables.values():
            t.close()
    paths = [t.path for t in tables.values()]
    paths.append(write_readme(ctx, out_dir, [p.name for p in paths], notes=(
        "long.csv: one row per participant, visit, form, record and item, with status columns.\n"
        "wide.csv: one row per participant and visit, one column <form>_<item> per item.\n"
        "subjects.csv: one row per participant (screening, eligibility, consent, end of study).\n"
        "adverse_events.csv: one row per adverse event.\n"
        "data_dictionary.csv (beside these files) describes every item, its labels and codes.\n")))
    return paths


def _long_items(form, ctx, lang) -> list:
    """The form's items as long.csv writes them: (item, its cells up to the value, the unit's cell,
    its codes, its codes' quoted labels, and for a coded item the value and label cells of each code
    met, kept)."""
    out = []
    for e in items_of(form, ctx):
        codes = dict(e.codes(lang)) if e.codelist else None
        out.append((e.item, f"{_cell(e.item)},{_cell(e.label(lang))},false,", _cell(e.unit), codes,
                    {k: _cell(v) for k, v in codes.items()} if codes is not None else None,
                    {} if codes is not None else None))
    return out


def _float_text(value: float, kept: dict) -> str:
    """``text(value)`` of a float, kept in ``kept`` (measurements repeat; at most 4,096 kept)."""
    out = text(value)
    if len(kept) < 4096 and value == value:
        kept[value] = out
    return out


def _long_scores(form_id: str, lang: str) -> tuple:
    """The form's declared score ids (``scores_of``), and score id -> the cells of its id and label,
    and of its unit, as long.csv writes them."""
    cells: dict = {}
    for sc in scores_of(form_id):
        if sc.id not in cells:
            cells[sc.id] = (f"{_cell(sc.id)},{_cell(score_label(form_id, sc.id, lang))}", _cell(sc.unit))
    return [sc.id for sc in scores_of(form_id)], cells


def _write_subject(s: Subject, ctx, tables, blind, vforms, sforms, ae_form, wide_index, wide_start, lang) -> None:
    d = ctx.dictionary
    bv = blind_values(s, blind)
    visits = {(v.visit, v.repeat): v for v in s.visits}
    queries = _open_queries(s)
    meta, scores, floats = tables["meta"], tables["scores"], tables["floats"]
    lead = [_text_cell(x) for x in (s.subject, *bv)]
    heads: dict = {}  # (visit, repeat) -> the cells from the participant to the study day
    lines = []
    add = lines.append
    for r in s.records:
        items = meta.get(r.form)
        if items is None:
            form = d.form(r.form)
            if form is None:
                continue
            items = meta[r.form] = _long_items(form, ctx, lang)
        key = (r.visit, r.visit_repeat)
        head = heads.get(key)
        if head is None:
            v = visits.get(key)
            vdate, vday = (v.date, v.day) if v is not None else (None, None)
            head = heads[key] = ",".join(lead + [_text_cell(x) for x in (r.visit, r.visit_repeat, vdate, vday)])
        head = f"{head},{_text_cell(r.form)},{_text_cell(r.record)}"
        verified = set(r.verified)
        revisions = str(len(r.changes))
        state, locked = _cell(r.state), _text_cell(r.locked)
        changes = r.changes
        if len(changes) == 1:  # as most records: every item it holds was changed by its one save
            first = changes[0]
            saved, once, history = first.values, f"{_cell(first.at)},{_cell(first.by)},1", None
        else:
            history = _history_cells(r)
        values = r.values
        identity = r.form == "prescreening"
        for item, cells, unit, codes, labels, known in items:
            value = value_of(s, r, item) if identity else values.get(item)
            kind = type(value)
            if kind is str:
                both = known.get(value) if known is not None else None
                if both is None:
                    both = f"{_quoted(value)},{labels.get(value, '') if codes is not None else ''}"
                    if known is not None and len(known) < 256:
                        known[value] = both
            elif value is None:
                both = ","
            elif kind is int:
                both = f"{value},{labels.get(str(value), '')}" if codes is not None else f"{value},"
            elif kind is float:
                vtext = floats.get(value)
                if vtext is None:
                    vtext = _float_text(value, floats)
                both = f"{vtext},{labels.get(vtext, '')}" if codes is not None else f"{vtext},"
            else:
                vtext = text(value)
                vcell = vtext if kind is float or kind is bool else _quoted(vtext)
                if codes is None:
                    lcell = ""
                elif kind is list:
                    lcell = _quoted(";".join(codes.get(text(x), "") for x in value))
                else:
                    lcell = labels.get(vtext, "")
                both = f"{vcell},{lcell}"
            open_q = str(queries.get((r.visit, r.visit_repeat, r.form, r.record, item), 0)) if queries else "0"
            if history is None:
                changed = once if saved.get(item) is not None else ",,0"
            else:
                changed = history.get(item, ",,0")
            add(f"{head},{cells}{both},{unit},{state},{'true' if item in verified else 'false'},{locked},"
                f"{open_q},{changed},{revisions}\r\n")
        if r.computed:
            declared, named = scores.get(r.form) or scores.setdefault(r.form, _long_scores(r.form, lang))
            for sid in declared + [k for k in r.computed if k not in declared]:
                if sid not in r.computed:
                    continue
                label, unit = named.get(sid) or (f"{_cell(sid)},{_cell(sid)}", "")  # undeclared: named by its id
                add(f"{head},{label},true,{_text_cell(r.computed[sid])},,{unit},{state},,{locked},0,,,,"
                    f"{revisions}\r\n")
    tables[LONG].file.write("".join(lines))

    # wide: one row per visit
    by_visit: dict = {}
    for r in s.records:
        if r.visit not in ("", "screening"):
            by_visit.setdefault((r.visit, r.visit_repeat), []).append(r)
    width = tables[WIDE].width
    columns = tables["wide"]  # form id -> ({item: its column or None}, [(score id, column name)])
    lines = []
    for v in visit_rows(s):
        row = [""] * width
        row[:wide_start] = lead + [_text_cell(x) for x in (v.visit, v.repeat, v.outcome, v.date, v.day, v.window)]
        for r in by_visit.get((v.visit, v.repeat), ()):
            known = columns.get(r.form)
            if known is None:
                form = d.form(r.form)
                known = columns[r.form] = ({}, [(sc.id, f"{r.form}_{sc.id}") for sc in wide_scores(form)]
                                           if form is not None else [])
            at = known[0]
            for item, value in r.values.items():
                i = at.get(item, -1)
                if i == -1:
                    i = wide_index.get(f"{r.form}_{item}")
                    if i is not None and i < wide_start:
                        i = None
                    if len(at) < 10_000:
                        at[item] = i
                if i is None:
                    continue
                kind = type(value)
                if kind is str:  # _text_cell, inline for plain text and whole numbers
                    row[i] = value if not ('"' in value or "," in value or "\n" in value or "\r" in value) \
                        else _quoted(value)
                elif kind is int:
                    row[i] = str(value)
                elif kind is float:
                    row[i] = floats.get(value) or _float_text(value, floats)
                else:
                    row[i] = _text_cell(value)
            if r.computed:
                for sid, name in known[1]:
                    if sid in r.computed:
                        row[wide_index[name]] = _text_cell(r.computed[sid])
        lines.append(",".join(row) + "\r\n")
    tables[WIDE].file.write("".join(lines))

    # participants
    last = last_records(s, SUBJECT_FORMS)
    ident = [(s.identity or {}).get(k) for k in identity_columns(ctx)]
    srow = [s.subject, *bv, *ident, *summary(s)[1:]]
    for form in sforms:
        r = last.get(form.id)
        for e in items_of(form, ctx):
            if form.id == "prescreening" and e.item in IDENTITY:
                continue
            srow.append(r.values.get(e.item) if r is not None else None)
    tables[SUBJECTS].row(srow)

    # adverse events
    if ae_form is not None:
        for r in s.records:
            if r.form == AE_FORM:
                open_q = sum(n for k, n in queries.items() if k[2] == AE_FORM and k[3] == r.record)
                tables[ADVERSE_EVENTS].row([s.subject, *bv, r.record, *(r.values.get(e.item) for e in ae_form.items),
                                            r.state, r.locked, open_q])
