"""Reads for monitoring: the data points a participant's casebook holds, what the SDV plan asks to
verify, whether each verification still holds, the status grid and the review findings.

A data point is addressed as (participant, visit, form, record, item): visit "screening" for the
consent, the screening evidence and the eligibility decision; the visit key of a visit ("baseline",
"w1", "u1", and "liposuction"/"transplant" for the procedure records); "" for the adverse-event log,
whose record is the adverse event's id. Nothing here reads allocation: the transplant record is
read field by field, never its envelope.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import datetime, timezone as dt_timezone

from django.utils.translation import gettext as _

from annulus.participants.models import Participant
from annulus.participants.selectors import scoped
from annulus.trial.selectors import active_protocol

from . import plan as sdv_plan
from .models import ReviewFinding, SdvMark

SCREENING = "screening"
AE_FORM = "adverse_event"
RECORD_FORMS = ("consent", "screening", "eligibility", AE_FORM)
LIPOSUCTION_ITEMS = ("performed_on", "fat_volume_ml", "anaesthesia", "observation_hours", "complications")
TRANSPLANT_ITEMS = ("transplanted_at", "drug_code_entered", "disc_level", "needle_gauge", "approach", "imaging",
                    "volume_ml", "notes")
CONSENT_ITEMS = ("consent_version", "consented_at", "taken_by")


@dataclass
class Point:
    """One data point as it is now."""

    visit: str
    form: str
    record: int
    item: str
    value: object
    revision: str
    changed_at: datetime | None = None  # when the record was last saved
    changed_by: str = ""
    serious: bool = False
    required: bool = False
    critical: bool = False
    mark: SdvMark | None = None
    state: str = "pending"  # pending | verified | cleared | not_required
    cleared_at: datetime | None = None
    cleared_by: str = ""
    label: str = ""

    @property
    def address(self) -> tuple:
        return (self.visit, self.form, self.record, self.item)


def _json(v):
    if isinstance(v, datetime):
        return v.astimezone(dt_timezone.utc).isoformat()
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if v is not None and type(v).__name__ == "Decimal":
        return str(v)
    return v


def _optional(module: str, name: str):
    """A function of another app that may not exist yet (queries, locks, signatures, the data
    dictionary): None until it does."""
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


# ---- the plan ------------------------------------------------------------------------------

def current_plan(protocol=None) -> sdv_plan.Plan | None:
    if protocol is None:
        protocol = active_protocol()
    return sdv_plan.Plan.from_protocol(getattr(protocol, "sdv", None))


def _dictionary():
    fn = _optional("annulus.trial.selectors", "data_dictionary")
    return fn() if fn is not None else None


def _critical(plan: sdv_plan.Plan, dictionary, form: str, item: str, serious: bool) -> bool:
    """The data dictionary's ``sdv_critical`` flag (narrowed by ``sdv_when`` "serious" to serious
    events); the plan's own critical list for an item the dictionary does not know."""
    entry = dictionary.entry(form, item) if dictionary is not None else None
    if entry is None:
        return plan.is_critical(form, item, serious=serious)
    return bool(entry.sdv_critical) and (entry.sdv_when != "serious" or serious)


# ---- the data points ------------------------------------------------------------------------

def data_points(participant_ids) -> dict[int, list[Point]]:
    """Every data point of these participants as it is now (a handful of queries whatever their
    number): screening records, procedure records, completed eCRF forms, adverse events."""
    from annulus.allocation.models import Transplant
    from annulus.participants.models import Consent, EligibilityDecision, Evidence
    from annulus.safety.models import AdverseEvent
    from annulus.safety.services import snapshot
    from annulus.visits.models import FormRecord, Liposuction

    ids = list(participant_ids)
    out: dict[int, list[Point]] = {pid: [] for pid in ids}
    latest_consent = {}
    for c in Consent.objects.filter(participant_id__in=ids).select_related("taken_by", "recorded_by").order_by("id"):
        latest_consent[c.participant_id] = c
    for pid, c in latest_consent.items():
        values = {"consent_version": c.consent_version, "consented_at": _json(c.consented_at),
                  "taken_by": c.taken_by.username}
        for item in CONSENT_ITEMS:
            out[pid].append(Point(SCREENING, "consent", 0, item, values[item], str(c.pk), c.recorded_at,
                                  c.recorded_by.username))
    for e in Evidence.objects.filter(participant_id__in=ids, superseded=False).select_related("entered_by").order_by("id"):
        out[e.participant_id].append(Point(SCREENING, "screening", 0, e.field, e.value, str(e.pk), e.entered_at,
                                           e.entered_by.username))
    decisions = {}
    for d in EligibilityDecision.objects.filter(participant_id__in=ids, superseded=False).select_related(
            "decided_by").order_by("id"):
        decisions[d.participant_id] = d
    for pid, d in decisions.items():
        out[pid].append(Point(SCREENING, "eligibility", 0, "outcome", d.outcome, str(d.pk), d.decided_at,
                              d.decided_by.username))
    for lip in Liposuction.objects.filter(participant_id__in=ids, superseded=False).select_related("recorded_by"):
        for item in LIPOSUCTION_ITEMS:
            out[lip.participant_id].append(Point("liposuction", "liposuction", 0, item, _json(getattr(lip, item)),
                                                 str(lip.pk), lip.recorded_at, lip.recorded_by.username))
    for t in Transplant.objects.filter(participant_id__in=ids).select_related("recorded_by").only(
            "participant_id", "recorded_at", "recorded_by__username", *TRANSPLANT_ITEMS):
        for item in TRANSPLANT_ITEMS:
            out[t.participant_id].append(Point("transplant", "transplant", 0, item, _json(getattr(t, item)),
                                               str(t.pk), t.recorded_at, t.recorded_by.username))
    for fr in (FormRecord.objects.filter(participant_id__in=ids, state__in=(FormRecord.COMPLETE, FormRecord.CHANGED))
               .select_related("visit").order_by("participant_id", "visit__visit_date", "visit_id", "id")):
        for item, value in fr.items.items():
            out[fr.participant_id].append(Point(fr.visit.key, fr.form_id, 0, item, value, str(fr.revision),
                                                fr.updated_at))
    for ae in AdverseEvent.objects.filter(participant_id__in=ids).select_related("created_by").order_by("participant_id",
                                                                                                         "number"):
        snap = snapshot(ae)
        for item, value in snap.items():
            out[ae.participant_id].append(Point("", AE_FORM, ae.pk, item, value, str(ae.revision), ae.updated_at,
                                                serious=ae.serious))
    return out


def _latest_marks(participant_ids) -> dict[int, dict[tuple, SdvMark]]:
    marks: dict[int, dict[tuple, SdvMark]] = {}
    for m in SdvMark.objects.filter(participant_id__in=list(participant_ids)).select_related("verified_by").order_by("id"):
        marks.setdefault(m.participant_id, {})[(m.visit, m.form, m.record, m.item)] = m
    return marks


def evaluate(participant_ids, *, plan: sdv_plan.Plan | None = None) -> dict[int, list[Point]]:
    """The data points with what the plan asks and the state of each one's verification:
    verified (the current value is the one verified), cleared (it changed since), pending,
    or not_required (not in the plan and not verified). Computed on read; nothing is written."""
    ids = list(participant_ids)
    plan = plan if plan is not None else current_plan()
    dictionary = _dictionary()
    numbers = dict(Participant.objects.filter(pk__in=ids).values_list("pk", "screening_number"))
    points = data_points(ids)
    marks = _latest_marks(ids)
    critical: dict[tuple, bool] = {}
    for pid, plist in points.items():
        mine = marks.get(pid, {})
        for p in plist:
            if plan is not None:
                key = (p.form, p.item, p.serious)
                if key not in critical:
                    critical[key] = _critical(plan, dictionary, p.form, p.item, p.serious)
                p.critical = critical[key]
                p.required = p.critical or sdv_plan.sampled(plan, numbers.get(pid, str(pid)), p.visit, p.form)
            p.mark = mine.get(p.address)
            if p.mark is None:
                p.state = "pending" if p.required else "not_required"
            elif p.mark.value_hash == sdv_plan.value_hash(p.value):
                p.state = "verified"
            else:
                p.state = "cleared"
    return points


def sdv_status(participant_ids=None, user=None) -> dict[tuple[int, str, str], dict[str, int]]:
    """Progress of the plan per (participant, visit, form): {"required", "verified", "cleared"},
    counting the items the plan asks to verify (of the participants ``user`` may see)."""
    people = scoped(user, Participant.objects, "")
    participant_ids = (people.values_list("pk", flat=True) if participant_ids is None
                       else people.filter(pk__in=list(participant_ids)).values_list("pk", flat=True))
    return _progress(evaluate(participant_ids))


def _progress(points: dict[int, list[Point]]) -> dict[tuple[int, str, str], dict[str, int]]:
    out: dict[tuple[int, str, str], dict[str, int]] = {}
    for pid, plist in points.items():
        for p in plist:
            if not p.required:
                continue
            row = out.setdefault((pid, p.visit, p.form), {"required": 0, "verified": 0, "cleared": 0})
            row["required"] += 1
            if p.state == "verified":
                row["verified"] += 1
            elif p.state == "cleared":
                row["cleared"] += 1
    return out


def explain_cleared(participant_id: int, points: list[Point]) -> None:
    """Who changed a verified item and when: the first saved revision after the verified one whose
    value differs (eCRF forms and adverse events keep revisions; the other records are replaced by a
    new row, whose author and time are the change)."""
    from annulus.safety.models import AdverseEventRevision
    from annulus.visits.models import FormRevision

    for p in points:
        if p.state != "cleared":
            continue
        p.cleared_at, p.cleared_by = p.changed_at, p.changed_by
        try:
            since = int(p.mark.revision)
        except (TypeError, ValueError):
            since = None
        if p.form == AE_FORM and since is not None:
            revs = (AdverseEventRevision.objects.filter(adverse_event_id=p.record, revision__gt=since)
                    .select_related("saved_by").order_by("revision"))
            for r in revs:
                if sdv_plan.value_hash(r.data.get(p.item)) != p.mark.value_hash:
                    p.cleared_at, p.cleared_by = r.saved_at, r.saved_by.username
                    break
        elif p.form not in RECORD_FORMS and p.visit not in active_protocol().page_procedures and since is not None:
            from annulus.visits.models import parse_visit_key

            visit_id, number = parse_visit_key(p.visit)
            revs = (FormRevision.objects.filter(form__participant_id=participant_id, form__visit__visit_id=visit_id,
                                                form__visit__number=number, form__form_id=p.form, number__gt=since)
                    .select_related("saved_by").order_by("number"))
            for r in revs:
                if sdv_plan.value_hash(r.items.get(p.item)) != p.mark.value_hash:
                    p.cleared_at, p.cleared_by = r.saved_at, r.saved_by.username
                    break


# ---- names --------------------------------------------------------------------------------

def visit_name(protocol, key: str, language: str | None) -> str:
    if key == SCREENING:
        return _("Screening")
    if key == "":
        return _("Adverse-event log")
    from annulus.visits.models import UNSCHEDULED, parse_visit_key

    visit_id, number = parse_visit_key(key)
    if visit_id == UNSCHEDULED:
        return _("Unscheduled") + f" {number}"
    pv = next((v for v in protocol.schedule.visits if v.id == visit_id), None)
    return pv.name.get(language) if pv else key


def form_name(protocol, form_id: str, language: str | None, dictionary=None) -> str:
    dictionary = dictionary if dictionary is not None else _dictionary()
    form = dictionary.form(form_id) if dictionary is not None else None
    if form is not None:
        return form.name_zh if (language or "").lower().startswith("zh") else form.name_en
    pf = next((f for f in protocol.schedule.forms if f.id == form_id), None)
    return pf.name.get(language) if pf else form_id


def item_labels(protocol, language: str | None) -> dict[tuple[str, str], str]:
    """Readable item names per (form, item), from the data dictionary."""
    dictionary = _dictionary()
    out: dict[tuple[str, str], str] = {}
    if dictionary is not None:
        for e in dictionary.entries:
            out[(e.form, e.item)] = e.label(language)
    return out


# ---- the grid ------------------------------------------------------------------------------

CELL_STATES = ("not_entered", "open_queries", "sdv_pending", "sdv_cleared", "sdv_done", "locked")


@dataclass
class Cell:
    visit: str
    forms_total: int = 0
    forms_entered: int = 0
    queries: int = 0
    sdv_required: int = 0
    sdv_verified: int = 0
    sdv_cleared: int = 0
    locked: bool = False
    present: bool = False  # the visit (or record) exists

    @property
    def sdv_done(self) -> bool:
        return self.sdv_required > 0 and self.sdv_verified == self.sdv_required

    @property
    def status(self) -> str:
        """The one colour of the cell, most urgent first."""
        if not self.present:
            return "empty"
        if self.locked:
            return "locked"
        if self.queries:
            return "open_queries"
        if self.sdv_cleared:
            return "sdv_cleared"
        if self.forms_entered < self.forms_total:
            return "not_entered"
        if self.sdv_required and not self.sdv_done:
            return "sdv_pending"
        return "sdv_done" if self.sdv_required else "entered"


@dataclass
class Row:
    participant: Participant
    cells: list[Cell] = field(default_factory=list)
    signature: str | None = None  # "signed" | "invalidated" | "unsigned" | None when unknown
    casebook_locked: bool = False

    def matches(self, status: str) -> bool:
        if not status:
            return True
        if status == "unsigned":
            return self.signature in ("unsigned", "invalidated")
        if status == "signed":
            return self.signature == "signed"
        if status == "locked":
            return self.casebook_locked or any(c.locked for c in self.cells)
        return any(c.status == status or (status == "sdv_done" and c.sdv_done) for c in self.cells if c.present)


def grid_columns(protocol) -> list[str]:
    return [SCREENING] + [v.id for v in protocol.schedule.visits] + [""]


def columns_available() -> dict[str, bool]:
    """Which of the other apps' columns exist yet (their selectors are imported guarded)."""
    return {"queries": _optional("annulus.queries.selectors", "open_query_counts") is not None,
            "locks": _optional("annulus.participants.selectors", "locked_records") is not None,
            "signatures": _optional("annulus.casebooks.selectors", "signature_status") is not None}


def status_grid(participants, *, protocol=None) -> list[Row]:
    """One row per participant, one cell per visit column (screening, each protocol visit, the
    adverse-event log): forms entered / expected, open queries, SDV progress, locks; the casebook's
    signature per row. Columns whose app is not installed yet stay empty."""
    from annulus.visits.models import UNSCHEDULED, FormRecord, Visit

    if protocol is None:
        protocol = active_protocol()
    people = list(participants)
    ids = [p.pk for p in people]
    columns = grid_columns(protocol)
    evaluated = evaluate(ids) if ids else {}
    status = _progress(evaluated)
    counts_fn = _optional("annulus.queries.selectors", "open_query_counts")
    locks_fn = _optional("annulus.participants.selectors", "locked_records")
    sign_fn = _optional("annulus.casebooks.selectors", "signature_status")
    queries = counts_fn(participant_ids=ids) if counts_fn and ids else {}
    locks = locks_fn(participant_ids=ids) if locks_fn and ids else {}
    signatures = sign_fn(participant_ids=ids) if sign_fn and ids else {}
    visits: dict[tuple[int, str], Visit] = {}
    for v in Visit.objects.filter(participant_id__in=ids).exclude(visit_id=UNSCHEDULED):
        visits[(v.participant_id, v.visit_id)] = v
    entered: dict[tuple[int, str], int] = {}
    for pid, vid in (FormRecord.objects.filter(participant_id__in=ids, state__in=(FormRecord.COMPLETE, FormRecord.CHANGED))
                     .exclude(visit__visit_id=UNSCHEDULED).values_list("participant_id", "visit__visit_id")):
        entered[(pid, vid)] = entered.get((pid, vid), 0) + 1
    # the other apps' counts by (participant, visit), so each cell is a dictionary look-up
    by_visit: dict[tuple[int, str], dict[str, int]] = {}
    for (pid, vk, _form), s in status.items():
        acc = by_visit.setdefault((pid, vk), {"required": 0, "verified": 0, "cleared": 0})
        for k in acc:
            acc[k] += s[k]
    query_by_visit: dict[tuple[int, str], int] = {}
    for (pid, vk, _form), n in queries.items():
        query_by_visit[(pid, vk)] = query_by_visit.get((pid, vk), 0) + n
    locked_visits = {(pid, vk) for (pid, vk, _form) in locks}
    points_present = set(by_visit)
    # a record with no item in the plan still counts as recorded
    for pid, plist in evaluated.items():
        points_present.update((pid, pt.visit) for pt in plist)
    page_forms = {f.id for f in protocol.schedule.forms if f.procedure in protocol.page_procedures}
    rows = []
    for p in people:
        row = Row(p, signature=signatures.get(p.pk) if sign_fn else None,
                  casebook_locked=(p.pk, "", "") in locks)
        for col in columns:
            cell = Cell(col)
            v = visits.get((p.pk, col))
            pv = next((x for x in protocol.schedule.visits if x.id == col), None)
            if v is not None:
                cell.present = True
                expected = [f for f in (v.forms or []) if f not in page_forms]
                cell.forms_total = len(expected)
                cell.forms_entered = entered.get((p.pk, col), 0) if v.outcome == "attended" else 0
                if v.outcome == "missed":
                    cell.forms_total = 0
            if pv is not None and pv.procedure in protocol.page_procedures:
                # the cell product's procedure record (its own page) is the visit's one form
                cell.forms_total = 1
                cell.forms_entered = 1 if (p.pk, col) in points_present else 0
                cell.present = cell.present or cell.forms_entered == 1
            if col in (SCREENING, "") and (p.pk, col) in points_present:
                cell.present = True
            s = by_visit.get((p.pk, col))
            if s:
                cell.sdv_required, cell.sdv_verified, cell.sdv_cleared = s["required"], s["verified"], s["cleared"]
            cell.queries = query_by_visit.get((p.pk, col), 0)
            if cell.queries:
                cell.present = True
            cell.locked = row.casebook_locked or (p.pk, col) in locked_visits
            row.cells.append(cell)
        rows.append(row)
    return rows


def grid_totals(rows: list[Row]) -> dict[str, int]:
    totals = {"participants": len(rows), "open_queries": 0, "sdv_required": 0, "sdv_verified": 0,
              "sdv_cleared": 0, "signed": 0, "locked": 0}
    for r in rows:
        totals["signed"] += r.signature == "signed"
        totals["locked"] += r.casebook_locked
        for c in r.cells:
            totals["open_queries"] += c.queries
            totals["sdv_required"] += c.sdv_required
            totals["sdv_verified"] += c.sdv_verified
            totals["sdv_cleared"] += c.sdv_cleared
    return totals


# ---- findings --------------------------------------------------------------------------------

def findings(*, participant_id: int | None = None, status: str = "", user=None):
    qs = scoped(user, ReviewFinding.objects).select_related("participant", "raised_by", "resolved_by")
    if participant_id is not None:
        qs = qs.filter(participant_id=participant_id)
    if status in (ReviewFinding.OPEN, ReviewFinding.RESOLVED):
        qs = qs.filter(status=status)
    return qs.order_by("-raised_at", "-id")


def get_finding(pk: int, user=None) -> ReviewFinding | None:
    return scoped(user, ReviewFinding.objects).select_related("participant", "raised_by", "resolved_by").filter(pk=pk).first()


# ---- the data against the audit trail (``annulus audit verify --data``) -------------------------

FINDING_FIELDS = ("visit", "form", "record", "item", "category", "text", "status", "resolution")


def audit_mismatches(participant_ids) -> list[str]:
    """The source-data verification marks and review findings of ``participant_ids`` against the
    audit trail, one line each (``annulus audit verify --data``). Each SDV event lists the items it
    verified with the record's revision and the value's hash: the marks in the database must be
    exactly those (a mark added, removed or re-pointed by hand shows). A finding holds where it
    points, its category, text, status and resolution as its events left them. Not compared: who
    verified or raised what and when (the events' own actor and time)."""
    from collections import Counter

    from annulus.audit.selectors import differences, new_value, screening_numbers, trail

    ids = list(participant_ids)
    numbers = screening_numbers(ids)
    verified: Counter = Counter()
    findings: dict[str, dict] = {}
    for otype, object_id, pid, changes, _reason in trail(["sdv_mark", "review_finding"], ids):
        if otype == "sdv_mark":
            visit, form, record = changes.get("visit") or "", changes.get("form") or "", int(changes.get("record") or 0)
            for item, mark in (changes.get("items") or {}).items():
                verified[(pid, visit, form, record, item, str(mark.get("revision")), mark.get("value_hash"))] += 1
            continue
        mine = findings.setdefault(object_id, {})
        for name, change in changes.items():
            mine[name] = new_value(change)
    marks: Counter = Counter()
    for pid, visit, form, record, item, revision, value_hash in SdvMark.objects.filter(
            participant_id__in=ids).order_by("pk").values_list("participant_id", "visit", "form", "record", "item",
                                                               "revision", "value_hash"):
        marks[(pid, visit or "", form or "", int(record or 0), item, str(revision), value_hash)] += 1
    out = []
    for (pid, visit, form, record, item, revision, value_hash), n in sorted((marks - verified).items()):
        where = f"participant {numbers.get(pid, pid)}, SDV mark {visit or '-'}/{form}" + (
            f"/{record}" if record else "") + f" {item} (revision {revision})"
        out += [f"{where}: in the database (value hash {value_hash[:12]}) but not in the audit trail"] * n
    for (pid, visit, form, record, item, revision, value_hash), n in sorted((verified - marks).items()):
        where = f"participant {numbers.get(pid, pid)}, SDV mark {visit or '-'}/{form}" + (
            f"/{record}" if record else "") + f" {item} (revision {revision})"
        out += [f"{where}: in the audit trail (value hash {str(value_hash)[:12]}) but not in the database"] * n
    for row in ReviewFinding.objects.filter(participant_id__in=ids).order_by("pk").values("pk", "participant_id",
                                                                                         *FINDING_FIELDS):
        where = f"participant {numbers.get(row['participant_id'], row['participant_id'])}, review finding {row['pk']}"
        audited = findings.pop(str(row["pk"]), None)
        if audited is None:
            out.append(f"{where}: in the database but never in the audit trail")
            continue
        out += differences(where, [(name, row[name], audited.get(name)) for name in FINDING_FIELDS])
    out += [f"review finding {pk}: in the audit trail but no longer in the database" for pk in findings]
    return out
