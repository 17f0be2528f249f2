"""CDISC ODM 1.3.2 with the audit trail, signatures and queries, streamed (no Django).

``write(subjects, ctx, out_dir)`` writes ``out_dir/odm.xml``; ``read(path)`` reads it back (the
tests' round trip; ``iter_subjects(path)`` one participant at a time). Every file validates
against the ODM 1.3.2 schema odmlib ships (``validate(path)``).

What goes where:

- ``ODM``: ``FileType="Transactional"`` (the file carries each data point's history: its first
  value and every change, each with its ``AuditRecord``; ODM's "Snapshot" allows one instruction
  per data point and so cannot hold a history), ``CreationDateTime`` = ``ctx.created_at``,
  ``AsOfDateTime`` = ``ctx.as_of``, ``Originator``/``SourceSystem`` "Annulus". The export's stamp
  (study, protocol version, as-of, creator, blinding, audit-chain count and head hash) is the
  root's ``Description`` as ``key=value; ...``: the 1.3.2 schema declares every extension group
  empty (no ``xs:any``), so a vendor namespace would not validate; ``FileOID`` ends with the head
  hash's first 16 characters.
- ``Study``: GlobalVariables (StudyName = trial id, StudyDescription = both titles, ProtocolName =
  registry number); BasicDefinitions (each unit of the dictionary and of the derived scores);
  one MetaDataVersion ``MDV.<protocol version>``: Protocol with a StudyEventRef for "screening",
  every scheduled visit, "unscheduled" (repeating) and "LOG" (participant-level records and the
  adverse-event log); StudyEventDefs with their FormRefs; one FormDef (names in English and
  Chinese) and one ItemGroupDef per dictionary form (``Repeating="Yes"`` for the adverse-event
  log, ``ItemGroupRepeatKey`` = the record number), plus ``IG.<form>.derived`` for a form's derived
  scores (``annulus.interchange.scores.SCORES``); ItemDefs (DataType from the dictionary type,
  Length for text and integers, Question in both languages, unit, RangeCheck for min/max, codelist,
  an ``SDTM`` alias); CodeLists with decodes in both languages; and the codelists the annotations'
  flags use (query status, signature state, annotation type).
- ``AdminData``: one ``User`` per person in the audit records, signatures and queries (login name
  and printed name, nothing else), one ``Location`` "site" (the trial's site), one ``SignatureDef``
  per signature meaning (``Methodology="Electronic"``).
- ``ClinicalData``: one ``SubjectData`` per participant, ``SubjectKey`` = the pseudonymous
  participant number. Identity (name, initials, phone) is never written to ODM, not even in the
  identifiable export. ``StudyEventData`` per visit (``StudyEventRepeatKey`` for unscheduled
  visits), ``FormData`` per form, ``ItemGroupData`` per record. A record's first saved state is
  ``TransactionType="Insert"`` ItemData under an ItemGroupData whose ``AuditRecord`` is that
  revision; each later revision adds ItemData for the items it changed (``Insert``/``Update``,
  ``Remove`` when cleared), each with its own ``AuditRecord`` (UserRef, LocationRef, DateTimeStamp,
  ReasonForChange, ``SourceID`` = the revision); a revision that changed no value is an
  ItemGroupData with ``TransactionType="Context"`` holding just its AuditRecord. Several codes (a
  list) are one Value, the codes separated by spaces (the ItemDef says so with the alias
  ``annulus:value-list``). The casebook signature is the SubjectData's ``Signature``, its state and
  content hash an annotation; each query is an ``Annotation`` (comment with its number, status,
  raiser, times and address, then its text; a flag with its status) on the ItemData it addresses,
  else on the FormData, else on the SubjectData. Group label, arm and drug code are a
  ``RANDOMISATION`` form in the LOG event, written only when ``ctx.blinding`` shows labels/arms
  (the drug code only when the reader gave one).

Memory and speed: the clinical data go one SubjectData at a time to a temporary file beside the
output while the users, signature meanings and observed value lengths are collected (each
SubjectData is written as escaped text: five times faster than building lxml elements for a large
trial's millions of ItemData, and the schema test proves the result); the metadata and admin data
(small, built with odmlib's model) are then written and the clinical data copied after them, so
memory is flat in the number of participants. Characters XML 1.0 cannot carry (C0 controls other
than tab and line breaks) are written as U+FFFD.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
from pathlib import Path

from lxml import etree

from .odmlib_ns import registered
from .subject import Change, QueryNote, Record, SignatureInfo

NS = "http://www.cdisc.org/ns/odm/v1.3"
XML_NS = "http://www.w3.org/XML/1998/namespace"
ZH = "zh-Hans"
LOG = "LOG"
RANDOMISATION = "RANDOMISATION"
LOCATION = "LOC.site"
VALUE_LIST = "annulus:value-list"
QUERY_STATUSES = (("open", "open", "未关闭"), ("answered", "answered", "已回复"), ("closed", "closed", "已关闭"))
SIGNATURE_STATES = (("signed", "signed", "已签名"),
                    ("invalidated", "invalidated (the casebook changed after signing)", "已失效（签名后病例报告已更改）"))
ANNOTATION_TYPES = (("query", "data query", "数据质疑"), ("signature", "casebook signature", "病例报告签名"))
CL_QUERY_STATUS, CL_SIGNATURE_STATE, CL_ANNOTATION_TYPE = "CL.QUERY_STATUS", "CL.SIGNATURE_STATE", "CL.ANNOTATION_TYPE"
DATA_TYPES = {"number": "float", "integer": "integer", "code": "text", "choice": "text", "text": "text",
              "date": "date", "datetime": "datetime", "bool": "boolean"}
# identity (the prescreening call list) never goes to ODM, not even in the identifiable export
IDENTITY_ITEMS = frozenset({("prescreening", "initials"), ("prescreening", "full_name"), ("prescreening", "phone")})
UNIT_NAMES = {"%": "percent", "°": "degree", "°C": "degC", "10^9/L": "10E9_L"}
STAMP_KEYS = ("study", "protocol_version", "as_of", "created_at", "created_by", "blinding", "audit_chain_count",
              "audit_chain_hash")


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


# ---- OIDs ------------------------------------------------------------------------------------
def event_oid(visit: str) -> str:
    return f"SE.{visit}" if visit else f"SE.{LOG}"


def form_oid(form: str) -> str:
    return f"F.{form}"


def group_oid(form: str, derived: bool = False) -> str:
    return f"IG.{form}.derived" if derived else f"IG.{form}"


def item_oid(form: str, item: str, derived: bool = False) -> str:
    return f"IT.{form}.derived.{item}" if derived else f"IT.{form}.{item}"


def user_oid(username: str) -> str:
    return f"USR.{username}"


def mdv_oid(ctx) -> str:
    return f"MDV.{ctx.protocol_version}"


def _unit_oid(unit: str, taken: dict) -> str:
    base = "MU." + (re.sub(r"[^A-Za-z0-9]+", "_", UNIT_NAMES.get(unit, unit)).strip("_") or "unit")
    oid, n = base, 2
    while oid in taken.values():
        oid, n = f"{base}_{n}", n + 1
    return oid


# ---- values ------------------------------------------------------------------------------------
def value_text(value) -> str:
    """A Python value as ODM text: ``true``/``false``, numbers as Python writes them (``repr`` of a
    float round-trips), several codes separated by spaces, text as it is."""
    if type(value) is str:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def parse_value(text: str, data_type: str, value_list: bool = False):
    """The inverse of ``value_text`` for an ItemDef's DataType."""
    if value_list:
        return text.split() if text else []
    if data_type == "boolean":
        return text in ("true", "1")
    if data_type == "integer":
        try:
            return int(text)
        except ValueError:
            return float(text)
    if data_type == "float":
        return float(text)
    return text


def _same(a, b) -> bool:
    return type(a) is type(b) and a == b if (isinstance(a, bool) or isinstance(b, bool)) else a == b


def _python_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    return "text"


# ---- what the clinical data showed (collected while streaming, written in the metadata) -----------
class _Seen:
    def __init__(self):
        self.users: dict[str, str] = {}  # username -> printed name ("" when unknown)
        self.meanings: dict[str, str] = {}  # signature meaning -> SignatureDef OID
        self.lengths: dict[str, int] = {}  # ItemOID -> longest value text
        self.value_lists: set[str] = set()  # ItemOIDs holding lists
        self.extra_items: dict[tuple, str] = {}  # (form, item, derived) not in the dictionary -> DataType
        self.extra_refs: dict[str, list] = {}  # event OID -> forms seen there that the schedule does not list
        self.drug_code = False

    def user(self, username: str, name: str = "") -> str:
        if name or username not in self.users:
            self.users[username] = name or self.users.get(username, "")
        return user_oid(username)

    def meaning(self, meaning: str) -> str:
        if meaning not in self.meanings:
            self.meanings[meaning] = f"SD.{len(self.meanings) + 1}"
        return self.meanings[meaning]


# ---- the clinical data -------------------------------------------------------------------------
_ATTR = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;",
                       "\t": "&#9;"})
_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
# characters XML 1.0 cannot carry at all (C0 controls except tab, newline and carriage return)
_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SPECIAL = re.compile('[&<>"\t\n\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]')


def _attr(value: str) -> str:
    if not _SPECIAL.search(value):
        return value
    if _INVALID.search(value):
        value = _INVALID.sub("\ufffd", value)
    return value.translate(_ATTR)


def _txt(value: str) -> str:
    if _INVALID.search(value):
        value = _INVALID.sub("\ufffd", value)
    return value.translate(_TEXT)


class _Clinical:
    """Writes each SubjectData as text (five times faster than building lxml elements for the
    million ItemData of a large trial); every name and value goes through ``_attr``/``_txt``."""

    def __init__(self, ctx, seen: _Seen):
        self.ctx = ctx
        self.seen = seen
        self.dictionary = ctx.dictionary
        self.schedule = _schedule(ctx)
        self.known = {(e.form, e.item) for e in ctx.dictionary.entries}
        self.scored = {(form, s.id) for form, scores in _scores().items() for s in scores}
        self.repeating = {f.id for f in ctx.dictionary.forms if f.scope == "log"}
        self.signatures = 0
        self._audits: dict = {}
        # (form, derived) -> item -> (ItemOID, escaped ItemOID, never written, not in the metadata):
        # bounded by the dictionary
        self._oids: dict = {}
        self._escaped: dict = {}  # value text -> as an attribute (bounded: emptied when full)
        self._groups: dict = {}  # form -> its ItemGroupOID attributes (data, derived scores)

    def _audit(self, change: Change) -> str:
        key = (change.revision, change.at, change.by, change.reason)
        cached = self._audits.get(key)
        if cached is not None:
            return cached
        parts = [f'<AuditRecord><UserRef UserOID="{_attr(self.seen.user(change.by, change.by_name))}"/>'
                 f'<LocationRef LocationOID="{LOCATION}"/><DateTimeStamp>{_txt(change.at)}</DateTimeStamp>']
        if change.reason:
            parts.append(f"<ReasonForChange>{_txt(change.reason)}</ReasonForChange>")
        parts.append(f"<SourceID>{change.revision}</SourceID></AuditRecord>")
        text = "".join(parts)
        if len(self._audits) > 256:  # a few recent ones: the same save covers a whole record
            self._audits.clear()
        self._audits[key] = text
        return text

    @staticmethod
    def _annotation(seq: int, kind: str, comment: str, flag_list: str, flag: str) -> str:
        return (f'<Annotation SeqNum="{seq}"><Comment>{_txt(comment)}</Comment><Flag>'
                f'<FlagValue CodeListOID="{flag_list}">{_txt(flag)}</FlagValue>'
                f'<FlagType CodeListOID="{CL_ANNOTATION_TYPE}">{kind}</FlagType></Flag></Annotation>')

    def _queries(self, queries, start: int = 1) -> str:
        out = []
        for n, q in enumerate(queries, start):
            self.seen.user(q.raised_by)
            out.append(self._annotation(n, "query", query_comment(q), CL_QUERY_STATUS, q.status))
        return "".join(out)

    def _meta(self, form: str, item: str, derived: bool) -> tuple:
        """(ItemOID, escaped ItemOID, never written (identity), not in the metadata) of an item."""
        items = self._oids.get((form, derived))
        if items is None:
            items = self._oids[(form, derived)] = {}
        meta = items.get(item)
        if meta is None:
            raw = item_oid(form, item, derived)
            meta = items[item] = (raw, _attr(raw), not derived and (form, item) in IDENTITY_ITEMS,
                                  (form, item) not in (self.scored if derived else self.known) and form != RANDOMISATION)
        return meta

    def _escape(self, text: str) -> str:
        """``_attr(text)``, kept for the next time (codes, dates and units repeat)."""
        escaped = self._escaped.get(text)
        if escaped is None:
            if len(self._escaped) >= 4096:
                self._escaped.clear()
            escaped = self._escaped[text] = _attr(text)
        return escaped

    def _item(self, form: str, item: str, tx: str, value, derived=False, change: Change | None = None,
              queries=()) -> str:
        raw, oid, hidden, extra = self._meta(form, item, derived)
        if hidden:
            return ""
        if extra:
            key = (form, item, derived)
            if self.seen.extra_items.get(key, "text") == "text":
                self.seen.extra_items[key] = _python_type(value) if value is not None else "text"
        if tx == "Remove":
            head = f'<ItemData ItemOID="{oid}" TransactionType="Remove"'
        else:
            text = value_text(value)
            if len(text) > self.seen.lengths.get(raw, 0):
                self.seen.lengths[raw] = len(text)
            if isinstance(value, (list, tuple)):
                self.seen.value_lists.add(raw)
            head = f'<ItemData ItemOID="{oid}" TransactionType="{tx}" Value="{self._escape(text)}"'
        if change is None and not queries:
            return head + "/>"
        return "".join((head, ">", self._audit(change) if change is not None else "", self._queries(queries),
                        "</ItemData>"))

    def _items(self, form: str, rows, last: dict, by_item: dict, out: list, derived: bool = False) -> None:
        """``out.append(self._item(...))`` for each of a record's rows (item, tx, value, change),
        the queries on an item with its last row; the plain case (an inserted or updated value
        without its own audit record or queries, of an item in the metadata) written here."""
        lengths = self.seen.lengths
        escaped = self._escaped
        items = self._oids.get((form, derived))
        if items is None:
            items = self._oids[(form, derived)] = {}
        for n, (item, tx, value, change) in enumerate(rows):
            meta = items.get(item) or self._meta(form, item, derived)
            if change is not None or meta[3] or tx == "Remove" or (last and last.get(item) == n):
                out.append(self._item(form, item, tx, value, derived=derived, change=change,
                                      queries=by_item[item] if last.get(item) == n else ()))
                continue
            raw, oid, hidden, _extra = meta
            if hidden:
                continue
            kind = type(value)
            if kind is str:
                text = value
                attr = escaped.get(value)
                if attr is None:
                    attr = self._escape(value)
            elif kind is int:
                text = attr = str(value)
            elif kind is float:
                text = attr = repr(value)
            else:
                text = value_text(value)
                attr = self._escape(text)
                if isinstance(value, (list, tuple)):
                    self.seen.value_lists.add(raw)
            if len(text) > lengths.get(raw, 0):
                lengths[raw] = len(text)
            out.append(f'<ItemData ItemOID="{oid}" TransactionType="{tx}" Value="{attr}"/>')

    def _record(self, record: Record, queries: dict) -> tuple[str, list]:
        """The ItemGroupData of one record, and the queries it could not place on an item."""
        form = record.form
        groups = self._groups.get(form)
        if groups is None:
            groups = self._groups[form] = (f'ItemGroupOID="{_attr(group_oid(form))}"',
                                           f'ItemGroupOID="{_attr(group_oid(form, True))}"')
        key = groups[0]
        repeat = ""
        if record.record != 1 or form in self.repeating:
            repeat = f' ItemGroupRepeatKey="{record.record}"'
        changes = record.changes
        rows = []  # (item, tx, value, change or None)
        empty = []
        if changes:
            state = {}
            for item, value in changes[0].values.items():
                if value is not None:
                    rows.append((item, "Insert", value, None))
                    state[item] = value
            for change in changes[1:]:
                diff = _diff(state, change.values)
                if not diff:
                    empty.append(change)
                rows.extend((item, tx, value, change) for item, tx, value in diff)
                state = {k: v for k, v in change.values.items() if v is not None}
            rows.extend((item, tx, value, None) for item, tx, value in _diff(state, record.values))
        else:
            rows = [(item, "Insert", value, None) for item, value in record.values.items() if value is not None]
        here = queries.pop((record.visit, record.visit_repeat, form, record.record), None)
        by_item: dict[str, list] = {}
        last: dict[str, int] = {}
        if here:
            for q in here:
                by_item.setdefault(q.item, []).append(q)
            for n, (item, _tx, _v, _c) in enumerate(rows):
                if item in by_item and (form, item) not in IDENTITY_ITEMS:
                    last[item] = n
        out = [f'<ItemGroupData {key}{repeat} TransactionType="Insert">']
        if changes:
            out.append(self._audit(changes[0]))
        self._items(form, rows, last, by_item, out)
        out.append("</ItemGroupData>")
        for change in empty:
            out.append(f'<ItemGroupData {key}{repeat} TransactionType="Context">{self._audit(change)}</ItemGroupData>')
        scores = [(k, "Insert", v, None) for k, v in (record.computed or {}).items() if v is not None]
        if scores:
            out.append(f'<ItemGroupData {groups[1]}{repeat} TransactionType="Insert">')
            self._items(form, scores, {}, {}, out, derived=True)
            out.append("</ItemGroupData>")
        unplaced = [q for item, qs in by_item.items() if item not in last for q in qs]
        return "".join(out), unplaced

    def subject(self, s) -> str:
        queries: dict[tuple, list] = {}
        for q in s.queries:
            queries.setdefault((q.visit, q.visit_repeat, q.form, q.record), []).append(q)
        events: dict[tuple, dict[str, list]] = {}
        for r in s.records:
            events.setdefault((r.visit, r.visit_repeat), {}).setdefault(r.form, []).append(r)
        randomisation = self._randomisation(s)
        if randomisation:
            events.setdefault(("", 0), {})[RANDOMISATION] = randomisation
        body = []
        for (visit, repeat), forms in events.items():
            ev_oid = event_oid(visit)
            repeat_key = f' StudyEventRepeatKey="{repeat}"' if repeat else ""
            body.append(f'<StudyEventData StudyEventOID="{_attr(ev_oid)}"{repeat_key} TransactionType="Upsert">')
            for form, records in forms.items():
                if form != RANDOMISATION and form not in self.schedule.get(ev_oid, ()):
                    extra = self.seen.extra_refs.setdefault(ev_oid, [])
                    if form not in extra:
                        extra.append(form)
                body.append(f'<FormData FormOID="{_attr(form_oid(form))}" TransactionType="Upsert">')
                if form == RANDOMISATION:
                    body.append(f'<ItemGroupData ItemGroupOID="{group_oid(form)}" TransactionType="Insert">')
                    body.extend(self._item(form, item, "Insert", value) for item, value in records)
                    body.append("</ItemGroupData></FormData>")
                    continue
                groups, unplaced = [], []
                for r in records:
                    text, left = self._record(r, queries)
                    groups.append(text)
                    unplaced.extend(left)
                if unplaced:  # annotations come before the ItemGroupData
                    body.append(self._queries(unplaced))
                body.extend(groups)
                body.append("</FormData>")
            body.append("</StudyEventData>")
        head = [f'<SubjectData SubjectKey="{_attr(s.subject)}" TransactionType="Upsert">']
        sig = s.signature
        if sig is not None:
            self.signatures += 1
            head.append(f'<Signature ID="SIG.{self.signatures}">'
                        f'<UserRef UserOID="{_attr(self.seen.user(sig.signed_by, sig.signed_by_name))}"/>'
                        f'<LocationRef LocationOID="{LOCATION}"/>'
                        f'<SignatureRef SignatureOID="{self.seen.meaning(sig.meaning)}"/>'
                        f"<DateTimeStamp>{_txt(sig.signed_at)}</DateTimeStamp></Signature>")
        head.append(f'<SiteRef LocationOID="{LOCATION}"/>')
        seq = 0
        if sig is not None:
            seq = 1
            head.append(self._annotation(1, "signature", signature_comment(sig), CL_SIGNATURE_STATE, sig.state))
        left = [q for qs in queries.values() for q in qs]  # addressed records not in the export
        if left:
            head.append(self._queries(left, seq + 1))
        head.extend(body)
        head.append("</SubjectData>")
        return "".join(head)

    def _randomisation(self, s) -> list:
        rows = []
        blinding = self.ctx.blinding
        if blinding in ("labels", "arms") and s.group_label is not None:
            rows.append(("GROUP_LABEL", s.group_label))
        if blinding == "arms" and s.arm is not None:
            rows.append(("ARM", s.arm))
        if s.drug_code is not None:
            self.seen.drug_code = True
            rows.append(("DRUG_CODE", s.drug_code))
        return rows


def _diff(old: dict, new: dict) -> list:
    """(item, TransactionType, value) for every item whose value differs between two states."""
    out = []
    for item, value in new.items():
        before = old.get(item)
        if value is None:
            if before is not None:
                out.append((item, "Remove", None))
        elif before is None:
            out.append((item, "Insert", value))
        elif type(value) is str and type(before) is str:
            if before != value:
                out.append((item, "Update", value))
        elif not _same(before, value):
            out.append((item, "Update", value))
    for item, before in old.items():
        if item not in new and before is not None:
            out.append((item, "Remove", None))
    return out


def query_comment(q: QueryNote) -> str:
    address = f"{q.visit}|{q.visit_repeat}|{q.form}|{q.record}|{q.item}"
    return (f"Query {q.id}; status={q.status}; raised_by={q.raised_by}; raised_at={q.raised_at}; "
            f"closed_at={q.closed_at or ''}; address={address}\n{q.text}")


def signature_comment(sig: SignatureInfo) -> str:
    return f"Casebook signature; state={sig.state}; content_hash={sig.content_hash}"


def _fields(header: str) -> dict:
    return dict(part.split("=", 1) for part in header.split("; ")[1:] if "=" in part)


@functools.lru_cache(maxsize=1)
def _declared_lists() -> frozenset:
    """(form, item) of the records' items that hold several codes."""
    try:
        from annulus.dictionary import records
    except ImportError:  # pragma: no cover
        return frozenset()
    return frozenset((f.id, i.id) for f in records.BY_ID.values() for i in f.items if getattr(i, "multiple", False))


def _scores() -> dict:
    try:
        from .scores import SCORES
    except ImportError:  # pragma: no cover - the scores module is part of the package
        return {}
    return SCORES


def _events(ctx) -> list:
    """(event OID, name en, name zh, type, repeating, [form ids]) in protocol order."""
    d = ctx.dictionary
    out = [(event_oid("screening"), "Screening", "筛选", "Scheduled", "No", [f.id for f in d.forms_at("screening")])]
    for v in ctx.protocol.schedule.visits:
        out.append((event_oid(v.id), v.name.en, v.name.zh, "Scheduled", "No", [f.id for f in d.forms_at(v.id)]))
    out.append((event_oid("unscheduled"), "Unscheduled visit", "计划外访视", "Unscheduled", "Yes",
                [f.id for f in d.forms if f.scope == "visit"]))
    out.append((event_oid(""), "Participant-level records and logs", "受试者层面记录和日志", "Common", "No",
                [f.id for f in d.forms if f.scope in ("participant", "log")]))
    return out


def _schedule(ctx) -> dict:
    return {oid: set(forms) for oid, _en, _zh, _t, _r, forms in _events(ctx)}


# ---- the metadata and admin data (odmlib's model) ----------------------------------------------
def _tt(M, en: str, zh: str) -> list:
    return [M.TranslatedText(_content=en, lang="en"), M.TranslatedText(_content=zh or en, lang=ZH)]


def _study(ctx, seen: _Seen):
    import odmlib.odm_1_3_2.model as M

    d = ctx.dictionary
    study = M.Study(OID=ctx.study_id)
    study.GlobalVariables = M.GlobalVariables(
        StudyName=M.StudyName(_content=ctx.study_id),
        StudyDescription=M.StudyDescription(_content=f"{ctx.title_en} / {ctx.title_zh}" if ctx.title_zh
                                            else ctx.title_en),
        ProtocolName=M.ProtocolName(_content=ctx.registry_number or ctx.study_id))
    units: dict[str, str] = {}
    score_defs = _scores()
    for unit in [e.unit for e in d.entries] + [s.unit for ss in score_defs.values() for s in ss]:
        if unit and unit not in units:
            units[unit] = _unit_oid(unit, units)
    study.BasicDefinitions = M.BasicDefinitions(MeasurementUnit=[
        M.MeasurementUnit(OID=oid, Name=unit, Symbol=M.Symbol(TranslatedText=[M.TranslatedText(_content=unit, lang="en")]))
        for unit, oid in units.items()])
    mdv = M.MetaDataVersion(OID=mdv_oid(ctx), Name=f"Protocol {ctx.protocol_version}",
                            Description=f"Data dictionary of protocol version {ctx.protocol_version}")
    events = _events(ctx)
    mdv.Protocol = M.Protocol(
        Description=M.Description(TranslatedText=_tt(M, ctx.title_en, ctx.title_zh)),
        StudyEventRef=[M.StudyEventRef(StudyEventOID=oid, OrderNumber=n, Mandatory="Yes" if t == "Scheduled" else "No")
                       for n, (oid, _en, _zh, t, _r, _f) in enumerate(events, 1)])
    randomisation_items = []
    if ctx.blinding in ("labels", "arms"):
        randomisation_items.append(("GROUP_LABEL", "Group label", "组别标签", "text", ()))
    if ctx.blinding == "arms":
        arms = tuple((a.id, a.name.en, a.name.zh) for a in getattr(ctx.protocol, "arms", ()))
        randomisation_items.append(("ARM", "Treatment arm", "治疗组", "text", arms))
    if seen.drug_code:
        randomisation_items.append(("DRUG_CODE", "Drug code", "药物编号", "text", ()))
    for oid, en, zh, typ, rep, forms in events:
        forms = list(forms) + seen.extra_refs.get(oid, [])
        if oid == event_oid("") and randomisation_items:
            forms.append(RANDOMISATION)
        mdv.StudyEventDef.append(M.StudyEventDef(
            OID=oid, Name=en, Repeating=rep, Type=typ, Description=M.Description(TranslatedText=_tt(M, en, zh)),
            FormRef=[M.FormRef(FormOID=form_oid(f), OrderNumber=n, Mandatory="Yes" if typ == "Scheduled" else "No")
                     for n, f in enumerate(forms, 1)]))
    extra_by_form: dict[str, list] = {}
    for (form, item, derived), dtype in seen.extra_items.items():
        extra_by_form.setdefault(form, []).append((item, derived, dtype))
    form_ids = [f.id for f in d.forms] + [f for f in extra_by_form if d.form(f) is None]
    item_defs, code_lists = [], []
    for fid in form_ids:
        f = d.form(fid)
        en, zh = (f.name_en, f.name_zh) if f is not None else (fid, fid)
        repeating = "Yes" if f is not None and f.scope == "log" else "No"
        scores = score_defs.get(fid, ())
        extra = extra_by_form.get(fid, [])
        has_derived = bool(scores) or any(derived for _i, derived, _t in extra)
        refs = [M.ItemGroupRef(ItemGroupOID=group_oid(fid), OrderNumber=1, Mandatory="Yes")]
        if has_derived:
            refs.append(M.ItemGroupRef(ItemGroupOID=group_oid(fid, True), OrderNumber=2, Mandatory="No"))
        mdv.FormDef.append(M.FormDef(OID=form_oid(fid), Name=en, Repeating="No",
                                     Description=M.Description(TranslatedText=_tt(M, en, zh)), ItemGroupRef=refs))
        entries = [e for e in (f.items if f is not None else ()) if (fid, e.item) not in IDENTITY_ITEMS]
        captured = [M.ItemRef(ItemOID=item_oid(fid, e.item), OrderNumber=n, Mandatory="Yes" if e.required else "No")
                    for n, e in enumerate(entries, 1)]
        for _item, derived, _t in extra:
            if not derived:
                captured.append(M.ItemRef(ItemOID=item_oid(fid, _item), OrderNumber=len(captured) + 1, Mandatory="No"))
        mdv.ItemGroupDef.append(M.ItemGroupDef(OID=group_oid(fid), Name=en, Repeating=repeating, ItemRef=captured,
                                               Description=M.Description(TranslatedText=_tt(M, en, zh))))
        if has_derived:
            drefs = [M.ItemRef(ItemOID=item_oid(fid, s.id, True), OrderNumber=n, Mandatory="No")
                     for n, s in enumerate(scores, 1)]
            for _item, derived, _t in extra:
                if derived:
                    drefs.append(M.ItemRef(ItemOID=item_oid(fid, _item, True), OrderNumber=len(drefs) + 1,
                                           Mandatory="No"))
            mdv.ItemGroupDef.append(M.ItemGroupDef(
                OID=group_oid(fid, True), Name=f"{en}: derived scores", Repeating=repeating, ItemRef=drefs,
                Origin="Derived", Description=M.Description(TranslatedText=_tt(M, f"{en}: derived scores",
                                                                               f"{zh}：派生评分"))))
        for e in entries:
            item_defs.append(_item_def(M, ctx, seen, units, e))
            if e.codelist:
                code_lists.append(_code_list(M, f"CL.{fid}.{e.item}", f"{fid}.{e.item}", e.codelist))
        for s in scores:
            oid = item_oid(fid, s.id, True)
            idef = M.ItemDef(OID=oid, Name=f"{fid}.{s.id}", DataType="float", Origin="Derived",
                             Question=M.Question(TranslatedText=_tt(M, s.label_en, s.label_zh)))
            if s.unit:
                idef.MeasurementUnitRef.append(M.MeasurementUnitRef(MeasurementUnitOID=units[s.unit]))
            item_defs.append(idef)
        for item, derived, dtype in extra:
            oid = item_oid(fid, item, derived)
            idef = M.ItemDef(OID=oid, Name=f"{fid}.{item}", DataType=dtype,
                             Comment="not in the data dictionary of this protocol version",
                             Question=M.Question(TranslatedText=_tt(M, item, item)))
            if derived:
                idef.Origin = "Derived"
            _length(idef, seen, oid, dtype, ())
            if oid in seen.value_lists:
                idef.Alias.append(M.Alias(Context=VALUE_LIST, Name="codes separated by spaces"))
            item_defs.append(idef)
    if randomisation_items:
        mdv.FormDef.append(M.FormDef(
            OID=form_oid(RANDOMISATION), Name="Randomisation", Repeating="No",
            Description=M.Description(TranslatedText=_tt(M, "Randomisation", "随机化")),
            ItemGroupRef=[M.ItemGroupRef(ItemGroupOID=group_oid(RANDOMISATION), OrderNumber=1, Mandatory="Yes")]))
        mdv.ItemGroupDef.append(M.ItemGroupDef(
            OID=group_oid(RANDOMISATION), Name="Randomisation", Repeating="No",
            ItemRef=[M.ItemRef(ItemOID=item_oid(RANDOMISATION, i), OrderNumber=n, Mandatory="No")
                     for n, (i, *_rest) in enumerate(randomisation_items, 1)]))
        for item, en, zh, dtype, codes in randomisation_items:
            oid = item_oid(RANDOMISATION, item)
            idef = M.ItemDef(OID=oid, Name=f"{RANDOMISATION}.{item}", DataType=dtype,
                             Question=M.Question(TranslatedText=_tt(M, en, zh)))
            _length(idef, seen, oid, dtype, codes)
            if codes:
                idef.CodeListRef = M.CodeListRef(CodeListOID=f"CL.{RANDOMISATION}.{item}")
                code_lists.append(_code_list(M, f"CL.{RANDOMISATION}.{item}", f"{RANDOMISATION}.{item}", codes))
            item_defs.append(idef)
    mdv.ItemDef = item_defs
    code_lists += [_code_list(M, CL_QUERY_STATUS, "Query status", QUERY_STATUSES),
                   _code_list(M, CL_SIGNATURE_STATE, "Signature state", SIGNATURE_STATES),
                   _code_list(M, CL_ANNOTATION_TYPE, "Annotation type", ANNOTATION_TYPES)]
    mdv.CodeList = code_lists
    study.MetaDataVersion.append(mdv)
    return study


def _length(idef, seen: _Seen, oid: str, dtype: str, codes) -> None:
    if dtype not in ("text", "integer"):
        return
    longest = max([seen.lengths.get(oid, 0)] + [len(str(c[0])) for c in codes])
    idef.Length = max(longest, 1)


def _item_def(M, ctx, seen: _Seen, units: dict, e):
    oid = item_oid(e.form, e.item)
    dtype = DATA_TYPES.get(e.type, "text")
    idef = M.ItemDef(OID=oid, Name=f"{e.form}.{e.item}", DataType=dtype,
                     Question=M.Question(TranslatedText=_tt(M, e.label_en, e.label_zh)))
    if dtype == "integer":
        bounds = [len(str(int(b))) for b in (e.min, e.max) if b is not None]
        idef.Length = max([seen.lengths.get(oid, 0), 1] + bounds)
    elif dtype == "text":
        _length(idef, seen, oid, dtype, e.codelist)
    if e.unit:
        idef.MeasurementUnitRef.append(M.MeasurementUnitRef(MeasurementUnitOID=units[e.unit]))
    for comparator, bound, en, zh in (("GE", e.min, "at least", "不得小于"), ("LE", e.max, "at most", "不得大于")):
        if bound is None or dtype not in ("integer", "float"):
            continue
        text = str(int(bound)) if dtype == "integer" or float(bound).is_integer() else repr(float(bound))
        idef.RangeCheck.append(M.RangeCheck(
            Comparator=comparator, SoftHard="Hard", CheckValue=[M.CheckValue(_content=text)],
            ErrorMessage=M.ErrorMessage(TranslatedText=_tt(M, f"{e.label_en}: {en} {text}",
                                                           f"{e.label_zh}：{zh} {text}"))))
    if e.codelist:
        idef.CodeListRef = M.CodeListRef(CodeListOID=f"CL.{e.form}.{e.item}")
    if (e.form, e.item) in _declared_lists() or oid in seen.value_lists:
        idef.Alias.append(M.Alias(Context=VALUE_LIST, Name="codes separated by spaces"))
    if e.sdtm:
        idef.Alias.append(M.Alias(Context="SDTM", Name=e.sdtm))
    return idef


def _code_list(M, oid: str, name: str, codes):
    return M.CodeList(OID=oid, Name=name, DataType="text", CodeListItem=[
        M.CodeListItem(CodedValue=str(value), OrderNumber=n, Decode=M.Decode(TranslatedText=_tt(M, en, zh)))
        for n, (value, en, zh) in enumerate(codes, 1)])


def _admin(ctx, seen: _Seen):
    import odmlib.odm_1_3_2.model as M

    admin = M.AdminData(StudyOID=ctx.study_id)
    for username, name in seen.users.items():
        user = M.User(OID=user_oid(username), LoginName=M.LoginName(_content=username))
        if name:
            user.FullName = M.FullName(_content=name)
        admin.User.append(user)
    site = getattr(getattr(ctx.protocol, "trial", None), "site", None)
    effective = getattr(ctx.protocol, "effective_date", None)
    admin.Location.append(M.Location(
        OID=LOCATION, Name=getattr(site, "en", None) or "site", LocationType="Site",
        MetaDataVersionRef=[M.MetaDataVersionRef(StudyOID=ctx.study_id, MetaDataVersionOID=mdv_oid(ctx),
                                                 EffectiveDate=str(effective or ctx.as_of[:10]))]))
    for meaning, oid in seen.meanings.items():
        admin.SignatureDef.append(M.SignatureDef(
            OID=oid, Methodology="Electronic", Meaning=M.Meaning(_content=meaning),
            LegalReason=M.LegalReason(_content="The investigator's electronic signature of the casebook")))
    return admin


def stamp_text(ctx) -> str:
    stamp = ctx.stamp
    return "Annulus export; " + "; ".join(f"{k}={stamp[k]}" for k in STAMP_KEYS)


def _root_attributes(ctx) -> dict:
    compact = re.sub(r"[^0-9A-Za-z]", "", ctx.created_at)
    try:
        from annulus import __version__ as version
    except ImportError:  # pragma: no cover
        version = ""
    attrs = {"Description": stamp_text(ctx), "FileType": "Transactional", "Granularity": "All",
             "FileOID": f"Annulus.{ctx.study_id}.{compact}.{(ctx.chain_hash or '')[:16]}".rstrip("."),
             "CreationDateTime": ctx.created_at, "AsOfDateTime": ctx.as_of, "ODMVersion": "1.3.2",
             "Originator": "Annulus", "SourceSystem": "Annulus"}
    if version:
        attrs["SourceSystemVersion"] = version
    return attrs


def _from_odmlib(obj) -> etree._Element:
    return etree.fromstring(obj.to_xml_string().encode("utf-8"))


def write(subjects, ctx, out_dir) -> list[Path]:
    out_dir = Path(out_dir)
    path = out_dir / "odm.xml"
    seen = _Seen()
    clinical = _Clinical(ctx, seen)
    fd, tmp_name = tempfile.mkstemp(prefix=".odm-clinical-", suffix=".xml", dir=out_dir)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(f'<ClinicalData StudyOID="{_attr(ctx.study_id)}" '
                      f'MetaDataVersionOID="{_attr(mdv_oid(ctx))}">'.encode())
            for s in subjects:
                tmp.write(clinical.subject(s).encode("utf-8"))
            tmp.write(b"</ClinicalData>")
        root = etree.Element(_q("ODM"), _root_attributes(ctx), nsmap={None: NS})
        # odmlib's ODM 1.3.2 namespaces, whatever an earlier define.xml left in its registry
        with registered(NS, {"xs": "http://www.w3.org/2001/XMLSchema-instance", "xml": XML_NS,
                             "xlink": "http://www.w3.org/1999/xlink"}):
            root.append(_from_odmlib(_study(ctx, seen)))
            root.append(_from_odmlib(_admin(ctx, seen)))
        head = etree.tostring(root, encoding="utf-8", xml_declaration=True)
        closing = b"</ODM>"
        if not head.endswith(closing):  # pragma: no cover - lxml always closes a root with children
            raise RuntimeError("unexpected serialisation of the ODM root")
        with open(path, "wb") as out:
            out.write(head[: -len(closing)])
            with open(tmp_name, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
            out.write(closing + b"\n")
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return [path]


# ---- validation and reading back ---------------------------------------------------------------
def schema_path() -> Path:
    """The ODM 1.3.2 schema odmlib ships (imports xml.xsd and xmldsig beside it: works offline)."""
    from odmlib import schema_manager

    return Path(schema_manager.get_schema_path("odm", "1.3.2"))


_SCHEMA = None


def schema() -> etree.XMLSchema:
    global _SCHEMA
    if _SCHEMA is None:
        parser = etree.XMLParser(no_network=True, resolve_entities=False)
        _SCHEMA = etree.XMLSchema(etree.parse(str(schema_path()), parser))
    return _SCHEMA


def validate(path) -> list[str]:
    """The schema errors of a file (empty when it validates against ODM 1.3.2)."""
    parser = etree.XMLParser(no_network=True, resolve_entities=False, huge_tree=True)
    s = schema()
    ok = s.validate(etree.parse(str(path), parser))
    return [] if ok else [f"line {e.line}: {e.message}" for e in s.error_log]


def _local(tag) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _text(el, tag: str) -> str | None:
    child = el.find(_q(tag))
    return child.text if child is not None else None


def _metadata(study) -> dict:
    items = {}
    for idef in study.iter(_q("ItemDef")):
        aliases = {a.get("Context"): a.get("Name") for a in idef.findall(_q("Alias"))}
        question = {t.get(f"{{{XML_NS}}}lang"): t.text for t in idef.findall(f"{_q('Question')}/{_q('TranslatedText')}")}
        items[idef.get("OID")] = {"name": idef.get("Name"), "data_type": idef.get("DataType"),
                                  "value_list": VALUE_LIST in aliases, "question": question,
                                  "codelist": (idef.find(_q("CodeListRef")).get("CodeListOID")
                                               if idef.find(_q("CodeListRef")) is not None else None)}
    forms = {}
    for fdef in study.iter(_q("FormDef")):
        forms[fdef.get("OID")] = {t.get(f"{{{XML_NS}}}lang"): t.text
                                  for t in fdef.findall(f"{_q('Description')}/{_q('TranslatedText')}")}
    code_lists = {}
    for cl in study.iter(_q("CodeList")):
        code_lists[cl.get("OID")] = [
            (cli.get("CodedValue"), *[t.text for t in cli.findall(f"{_q('Decode')}/{_q('TranslatedText')}")])
            for cli in cl.findall(_q("CodeListItem"))]
    events = {e.get("OID"): [r.get("FormOID") for r in e.findall(_q("FormRef"))]
              for e in study.iter(_q("StudyEventDef"))}
    units = {u.get("OID"): u.get("Name") for u in study.iter(_q("MeasurementUnit"))}
    return {"items": items, "forms": forms, "code_lists": code_lists, "events": events, "units": units,
            "study_name": _text(study.find(_q("GlobalVariables")), "StudyName"),
            "study_description": _text(study.find(_q("GlobalVariables")), "StudyDescription"),
            "protocol_name": _text(study.find(_q("GlobalVariables")), "ProtocolName"),
            "metadata_version": study.find(_q("MetaDataVersion")).get("OID")}


def _audit(el, users: dict):
    a = el.find(_q("AuditRecord"))
    if a is None:
        return None
    login = users.get(a.find(_q("UserRef")).get("UserOID"), {})
    return (int(_text(a, "SourceID")), _text(a, "DateTimeStamp"), login.get("login", ""), login.get("name", ""),
            _text(a, "ReasonForChange") or "")


def _annotations(el) -> list:
    out = []
    for ann in el.findall(_q("Annotation")):
        comment = _text(ann, "Comment") or ""
        flag_type = ann.findtext(f"{_q('Flag')}/{_q('FlagType')}")
        out.append((flag_type, comment))
    return out


def _query(comment: str) -> QueryNote:
    header, _, text = comment.partition("\n")
    number = int(header.split(";", 1)[0].split()[1])
    f = _fields(header)
    visit, repeat, form, record, item = f["address"].split("|")
    return QueryNote(id=number, visit=visit, form=form, record=int(record), item=item, status=f["status"], text=text,
                     raised_by=f["raised_by"], raised_at=f["raised_at"], closed_at=f["closed_at"] or None,
                     visit_repeat=int(repeat))


def _subject(sd, meta: dict, users: dict, signature_defs: dict) -> dict:
    items = meta["items"]
    out = {"subject": sd.get("SubjectKey"), "records": [], "queries": [], "signature": None, "group_label": None,
           "arm": None, "drug_code": None}
    sig_state = {}
    for kind, comment in _annotations(sd):
        if kind == "signature":
            sig_state = _fields(comment)
        elif kind == "query":
            out["queries"].append(_query(comment))
    sig = sd.find(_q("Signature"))
    if sig is not None:
        who = users.get(sig.find(_q("UserRef")).get("UserOID"), {})
        out["signature"] = SignatureInfo(
            signed_by=who.get("login", ""), signed_by_name=who.get("name", ""), signed_at=_text(sig, "DateTimeStamp"),
            meaning=signature_defs.get(sig.find(_q("SignatureRef")).get("SignatureOID"), ""),
            content_hash=sig_state.get("content_hash", ""), state=sig_state.get("state", ""))
    for ev in sd.findall(_q("StudyEventData")):
        visit = ev.get("StudyEventOID")[3:]
        visit = "" if visit == LOG else visit
        repeat = int(ev.get("StudyEventRepeatKey") or 0)
        for fd in ev.findall(_q("FormData")):
            form = fd.get("FormOID")[2:]
            for kind, comment in _annotations(fd):
                if kind == "query":
                    out["queries"].append(_query(comment))
            if form == RANDOMISATION:
                for idata in fd.iter(_q("ItemData")):
                    out[idata.get("ItemOID").rsplit(".", 1)[1].lower()] = idata.get("Value")
                continue
            records: dict[int, dict] = {}
            for group in fd.findall(_q("ItemGroupData")):
                number = int(group.get("ItemGroupRepeatKey") or 1)
                rec = records.setdefault(number, {"rows": [], "audits": {}, "computed": {}})
                derived = group.get("ItemGroupOID").endswith(".derived")
                group_audit = _audit(group, users)
                if group_audit:
                    rec["audits"][group_audit[0]] = group_audit
                for idata in group.findall(_q("ItemData")):
                    oid = idata.get("ItemOID")
                    definition = items.get(oid, {"data_type": "text", "value_list": False})
                    item = oid.rsplit(".", 1)[1]
                    tx = idata.get("TransactionType")
                    value = None if tx == "Remove" else parse_value(idata.get("Value") or "", definition["data_type"],
                                                                     definition["value_list"])
                    if derived:
                        rec["computed"][item] = value
                        continue
                    own = _audit(idata, users)
                    if own:
                        rec["audits"][own[0]] = own
                    rev = own[0] if own else (group_audit[0] if group_audit else None)
                    rec["rows"].append((rev, item, value))
                    for kind, comment in _annotations(idata):
                        if kind == "query":
                            out["queries"].append(_query(comment))
            for number, rec in records.items():
                changes = []
                for rev in sorted(rec["audits"]):
                    _r, at, by, by_name, reason = rec["audits"][rev]
                    state = {}
                    for row_rev, item, value in rec["rows"]:
                        if row_rev is not None and row_rev <= rev:
                            state[item] = value
                    changes.append(Change(revision=rev, at=at, by=by, by_name=by_name, reason=reason,
                                          values={k: v for k, v in state.items() if v is not None}))
                values = {}
                for _rev, item, value in rec["rows"]:
                    values[item] = value
                out["records"].append(Record(visit=visit, form=form, visit_repeat=repeat, record=number,
                                             values={k: v for k, v in values.items() if v is not None},
                                             computed=rec["computed"], changes=tuple(changes)))
    out["queries"].sort(key=lambda q: q.id)
    return out


def iter_subjects(path, meta: dict | None = None):
    """Each SubjectData of a file as a dict (``subject``, ``records`` as ``Record`` with their
    ``changes``, ``queries``, ``signature``, ``group_label``, ``arm``, ``drug_code``), one at a time."""
    meta_box = {"meta": meta, "users": {}, "signature_defs": {}}
    for _event, el in etree.iterparse(str(path), events=("end",), tag=(_q("Study"), _q("AdminData"), _q("SubjectData")),
                                      huge_tree=True, resolve_entities=False, no_network=True):
        name = _local(el.tag)
        if name == "Study":
            meta_box["meta"] = _metadata(el)
        elif name == "AdminData":
            for u in el.findall(_q("User")):
                meta_box["users"][u.get("OID")] = {"login": _text(u, "LoginName") or "",
                                                   "name": _text(u, "FullName") or ""}
            for sd in el.findall(_q("SignatureDef")):
                meta_box["signature_defs"][sd.get("OID")] = _text(sd, "Meaning")
        else:
            yield _subject(el, meta_box["meta"], meta_box["users"], meta_box["signature_defs"])
        el.clear()
        while el.getprevious() is not None:
            del el.getparent()[0]


def read(path) -> dict:
    """The whole file: root attributes, the stamp, the metadata, the users and every subject."""
    with open(path, "rb") as fh:
        for _event, root in etree.iterparse(fh, events=("start",), no_network=True, resolve_entities=False):
            attributes = dict(root.attrib)
            break
    parser = etree.XMLParser(no_network=True, resolve_entities=False, huge_tree=True)
    head = {"attributes": attributes, "stamp": parse_stamp(attributes.get("Description", ""))}
    tree = etree.parse(str(path), parser)
    study = tree.getroot().find(_q("Study"))
    head["metadata"] = _metadata(study)
    admin = tree.getroot().find(_q("AdminData"))
    head["users"] = {u.get("OID"): {"login": _text(u, "LoginName"), "name": _text(u, "FullName")}
                     for u in admin.findall(_q("User"))}
    head["signature_defs"] = {s.get("OID"): {"meaning": _text(s, "Meaning"), "methodology": s.get("Methodology")}
                              for s in admin.findall(_q("SignatureDef"))}
    head["locations"] = [loc.get("OID") for loc in admin.findall(_q("Location"))]
    clinical = tree.getroot().find(_q("ClinicalData"))
    head["clinical"] = dict(clinical.attrib) if clinical is not None else None
    del tree
    head["subjects"] = list(iter_subjects(path))
    return head


def parse_stamp(description: str) -> dict:
    """The export stamp from the root's Description (numbers back as int)."""
    fields = _fields(description)
    if "audit_chain_count" in fields:
        fields["audit_chain_count"] = int(fields["audit_chain_count"])
    return fields
