"""The trial read for an export: one ``annulus.interchange.subject.Subject`` per participant who
gave informed consent, blinded and pseudonymised for the exporting user, with every record as it
stood at the export's as-of time.

Participants are read ``batch`` at a time in participant-number (screening number) order, in a
fixed number of queries per batch whatever its size (``tests/test_export_source.py`` counts
them); nothing holds the whole trial at once.

**Blind and privacy.** Group labels, arms and drug codes come from
``annulus.allocation.selectors.export_allocations``, which sets each to None unless the blind
allows it (``blinding_for``, ``may_see_drug_codes``): the blind is decided there, never here.
An export is narrower than a page: before first-level unblinding every export is "blinded" (the
key holders' too); after it the statistician gets labels, after the second arms (the level-2 key
holder arms too); drug codes only ever for the level-2 key holder (the pharmacist).
The transplant record's ``drug_code_entered`` is dropped from ``Record.values`` and its history
unless the user may see drug codes. The pre-screening's ``initials``, ``full_name`` and ``phone``
are never in ``Record.values`` or a change; they are in ``Subject.identity`` in the
identifiable export only.

**What "as of T" means for each record** (a record created after T is absent; a record's
``changes`` are its saved states up to T, oldest first, each with who, when, why and every
item's value after it; its values are the last of them):

- participants: included when their first informed consent was signed (``consented_at``) by T.
  Status at T: the last status change (``StatusChange.at``) by T; before the first change, the
  status it changed from. Case number: once enrolled (``enrolled_at``) by T.
- prescreening (visit ""): always present for an included participant (pre-screening precedes
  consent). NO HISTORY: the participant row is changed in place (corrections are in the audit
  trail only), so its values are the current ones and its one change is its creation.
- consent (visit "screening", record 1, 2, ... per consent signed): consents signed by T. A
  consent row is never changed.
- screening evidence (visit "screening"): the evidence rows entered (``entered_at``) by T, the
  last per field; rows entered together (same person, reason and collection date, within a
  second) form one change, with the reason for change the site gave.
- eligibility (visit "screening"): the last decision signed (``decided_at``) by T; each decision
  is a change (a decision superseded by changed evidence is followed by the next one).
- visits (``Subject.visits``): visits opened (``Visit.created_at``) by T. NO HISTORY of the visit
  date or of a missed visit's reason: a correction of the visit date overwrites it (the audit
  trail keeps the old date), so the date shown is the current one.
- eCRF forms (visit = visit id, ``visit_repeat`` = the unscheduled visit's number): each
  ``FormRevision`` saved (``saved_at``) by T; state, items, computed scores and collection time
  from the last of them (state "changed after completion" is "complete").
- the cell product's two procedures recorded on its own pages (``Protocol.page_procedures``), each
  under the visit that does it and the schedule form that records it (the first trial's
  "liposuction" and "transplant"), its items those of ``annulus.dictionary.records.PAGE_RECORDS``:
- the harvest (the liposuction): the rows recorded (``recorded_at``) by T, the last in force; each
  row is a change, with its reason for change.
- the treatment (the transplantation): present once recorded (``recorded_at``) by T. NO
  HISTORY: the transplantation record cannot be corrected in the application, so it has one change.
- the treatment day (``Subject.treated_on``, study day 0 of ``VisitInfo.day``): the transplant's
  date for the cell product; for a treatment recorded as an eCRF form (the knee trial's first
  dose) the day of its visit once that visit is attended with the record complete by T, the
  schedule's own rule (``annulus.visits.events``). The visit windows then count from the events
  as they stood at T (the consent, the treatment recorded or planned). Procedure records kept as
  eCRF forms are forms like any other; their computed results (a kit return's compliance) and
  the scores of a protocol's declared analysis parameters are ``Record.computed``.
- adverse events (form "adverse_event", visit "", record = the event's number): each
  ``AdverseEventRevision`` saved by T (initial report and follow-ups).
- end of study (visit ""): present when the status at T is completed, withdrawn or lost to
  follow-up; the withdrawal (``Withdrawal.recorded_at`` by T) gives date, category and details;
  otherwise the date of the status change. A withdrawal is never changed.
- ``verified``: items whose last source-data verification mark by T (``verified_at``) holds the
  value the record had at T (the monitoring app's rule: a later change clears a mark).
- ``sdv_done``: the protocol's SDV plan asks at least one item of the record to be verified (a
  critical item, or every item of a record drawn into the sample: ``annulus.monitoring.plan``) and
  each of them is verified at T, as the monitoring grid counts a form verified. An item the
  export leaves out (the drug code in a blinded export) still counts, by its mark; only the
  yes/no is exported.
- ``locked``: a record lock (form, visit or casebook) locked by T and not unlocked by T.
- queries: raised by T; status at T from the thread's steps by T (raise, answer, close, re-open);
  ``open_queries`` counts those open or answered at T on the record (any item of it).
- deviations: the monitoring review findings of category "protocol_deviation" raised
  (``raised_at``) by T; "resolved" when resolved (``resolved_at``) by T, else "open".
- ``end_adverse_event``: the adverse event a withdrawal by T names (withdrawal for safety).
- signature: the newest casebook signature signed by T. Its state: "signed" when it is still
  the one in force and the casebook's hash still matches it; otherwise "invalidated" if any record
  of the export changed after the signature and by T, else "signed" (a change that leaves no
  change time in the export, such as a corrected visit date, is then not seen).
- ``emergency_unblinded``: an emergency unblinding recorded (``at``) by T.
- randomisation: envelopes opened (``opened_at``) by T.

Timestamps in the database are compared as stored: where the demo or a migration back-dates
clinical times but not entry times, entry times decide.
"""

from __future__ import annotations

import gc
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Iterator

from django.conf import settings
from django.utils import timezone

from annulus.interchange import scores
from annulus.interchange.subject import (Change, DeviationNote, QueryNote, Record, SignatureInfo, Subject,
                                          VisitInfo)

IDENTITY_ITEMS = ("initials", "full_name", "phone")
END_STATUSES = ("completed", "withdrawn", "lost_to_follow_up")
DRUG_CODE_ITEM = "drug_code_entered"
EVIDENCE_GROUP_SECONDS = 1.0


# ---- who sees what ----------------------------------------------------------------------------

def blinding_for(user, at_most: str = "arms") -> str:
    """"blinded" | "labels" | "arms": what an export made by ``user`` carries (never wider than
    ``at_most``)."""
    from annulus.allocation.selectors import export_blinding

    return export_blinding(user, at_most)


def may_see_drug_codes(user, at_most: str = "arms") -> bool:
    """Whether an export made by ``user`` carries drug codes (the level-2 key holder only)."""
    from annulus.allocation.selectors import export_drug_codes

    return export_drug_codes(user, at_most)


# ---- the audit chain ----------------------------------------------------------------------------

def _aware(as_of: datetime) -> datetime:
    if not isinstance(as_of, datetime):
        raise TypeError("as_of must be a datetime")
    return as_of if timezone.is_aware(as_of) else timezone.make_aware(as_of)


def chain_at(as_of: datetime) -> tuple[int, str]:
    """(count, hash): how many audit events were recorded by ``as_of`` and the hash of the last of
    them (in chain order); (0, "") before the first."""
    from annulus.audit.models import AuditEvent

    rows = AuditEvent.objects.filter(timestamp__lte=_aware(as_of))
    count = rows.count()
    if not count:
        return 0, ""
    return count, rows.order_by("-id").values_list("hash", flat=True).first()


# ---- participants -------------------------------------------------------------------------------

def _included(as_of: datetime, user=None):
    """Who gave consent by ``as_of``: those ``user`` sees (their sites), or everyone when no user is
    given (the server's own counts)."""
    from django.db.models import Exists, OuterRef

    from annulus.participants.models import Consent, Participant
    from annulus.participants.selectors import visible

    signed = Consent.objects.filter(participant_id=OuterRef("pk"), consented_at__lte=as_of)
    rows = Participant.objects.filter(Exists(signed))
    return rows if user is None else visible(user, rows)


def count(as_of: datetime, user=None) -> int:
    """How many subjects ``subjects`` yields for ``as_of`` (and ``user``)."""
    return _included(_aware(as_of), user).count()


def numbers(as_of: datetime, user=None) -> list[str]:
    """The participant numbers ``subjects`` yields for ``as_of`` (and ``user``), in its order."""
    return list(_included(_aware(as_of), user).order_by("screening_number").values_list("screening_number", flat=True))


def subjects(user, *, as_of: datetime, identifiable: bool = False, batch: int = 200,
             at_most: str = "arms", after: str | None = None, upto: str | None = None) -> Iterator[Subject]:
    """Every participant who gave informed consent by ``as_of`` (screen failures included), in
    participant-number order, read ``batch`` at a time in a fixed number of queries per batch,
    blinded and pseudonymised for ``user``, each record as it stood at ``as_of``. ``after`` and
    ``upto`` (participant numbers) narrow it to a range (after, up to]: a part of the export
    (``annulus.exports.parts``)."""
    as_of = _aware(as_of)
    batch = max(1, int(batch))
    reader = _Reader(user, as_of, identifiable, at_most)
    last = after
    while True:
        rows = _included(as_of, user).order_by("screening_number")
        if upto is not None:
            rows = rows.filter(screening_number__lte=upto)
        if last is not None:
            rows = rows.filter(screening_number__gt=last)
        people = list(rows[:batch])
        if not people:
            return
        last = people[-1].screening_number
        yield from _without_gc(reader.read, people)
        if len(people) < batch:
            return


def _without_gc(read, people):
    """``read(people)`` with the cyclic garbage collector paused (left as it was when it was
    already off). A batch builds tens of thousands of containers that outlive it (its records,
    changes and rows), and the collector's repeated full passes over them as they pile up cost
    about a fifth of the reading; it runs as usual again once the batch is read (and finds
    anything cyclic the batch left then)."""
    if not gc.isenabled():
        return read(people)
    gc.disable()
    try:
        return read(people)
    finally:
        gc.enable()


# ---- values -------------------------------------------------------------------------------------

_UTC = dt_timezone.utc


def _driver_value(field: str):
    """A datetime column as the database driver returns it, without Django's conversion of every
    row (for the many times of the form revisions; ``_Reader._iso`` then does what that conversion
    does). Declared as text only so that Django adds no converter: the SQL is the bare column, which
    SQLite's driver still parses into a naive datetime and psycopg into an aware one."""
    from django.db.models import CharField, ExpressionWrapper, F

    return ExpressionWrapper(F(field), output_field=CharField())


def _utc(v: datetime | None) -> str | None:
    if v is None:
        return None
    if v.tzinfo is _UTC:  # what the database gives back: already UTC
        return v.isoformat()
    if timezone.is_naive(v):
        v = timezone.make_aware(v)
    return v.astimezone(_UTC).isoformat()


def _local_date(v: datetime) -> date:
    return timezone.localtime(v).date()


def _number(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float, Decimal)):
        return v
    if isinstance(v, str):
        try:
            return Decimal(v.strip())
        except Exception:
            return None
    return None


def typed(entry, value):
    """A stored value as the export carries it (see ``annulus.interchange.subject``): numbers as
    int/float, codes as str (a list of str for several), yes/no as bool, dates ISO, times ISO
    UTC; None when not entered."""
    if value is None or (isinstance(value, str) and value == ""):
        return None
    kind = entry.type if entry is not None else ""
    if kind == "integer":
        n = _number(value)
        if n is None:
            return value
        return int(n) if n == int(n) else float(n)
    if kind == "number":
        n = _number(value)
        return float(n) if n is not None else value
    if kind in ("code", "choice"):
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value == int(value):
            return str(int(value))
        return str(value)
    if kind == "bool":
        if isinstance(value, str):
            return value.strip().lower() in ("true", "yes", "1", "y")
        return bool(value)
    if kind == "date":
        if isinstance(value, datetime):
            return _local_date(value).isoformat()
        if isinstance(value, date):
            return value.isoformat()
        return str(value)
    if kind == "datetime":
        if isinstance(value, datetime):
            return _utc(value)
        if isinstance(value, str):
            try:
                return _utc(datetime.fromisoformat(value))
            except ValueError:
                return value
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (datetime, date)):
        return _utc(value) if isinstance(value, datetime) else value.isoformat()
    return value if isinstance(value, (int, float, bool, list)) else str(value)


def _raw(v):
    """A value as the monitoring app hashes it for a verification mark."""
    if isinstance(v, datetime):
        return v.astimezone(dt_timezone.utc).isoformat()
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    return v


_CACHE_LIMIT = 2048  # typed values kept per item, and stored texts per form, before starting afresh


def _remember(cache: dict, key, value):
    """``cache[key] = value`` (the cache emptied first when it holds ``_CACHE_LIMIT``); ``value``."""
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value
    return value


def _json(text):
    """A JSON column's text decoded as Django's JSONField decodes it (the text itself if it is not JSON)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _converter(entry):
    """``typed(entry, value)`` for one item, remembering the results for text and whole-number
    stored values (they are immutable and the same stored value always types the same way)."""
    cache: dict = {}
    number = entry is not None and entry.type == "number"

    def convert(value):
        cls = value.__class__
        if cls is str or cls is int:  # not bool, float or Decimal: 1 == 1.0 == True, -0.0 == 0.0
            try:
                return cache[value]
            except KeyError:
                return _remember(cache, value, typed(entry, value))
        if value is None:
            return None
        if number and cls is float:
            return value  # float(n) of a float is itself
        return typed(entry, value)

    return convert


class _Form:
    """The dictionary's items of one form and how to type a stored dict."""

    def __init__(self, form, drop=(), flatten=None):
        self.id = form.id
        self._flatten = flatten  # computed results -> scores, for a form ``scores.SCORES`` does not declare
        self.entries = [e for e in form.items if e.item not in drop]
        # (item, converter, the analyte an item "<analyte>__unit" gives the unit of, that unit)
        self._plan = tuple(
            (e.item, _converter(e), e.item[: -len("__unit")] if e.item.endswith("__unit") and e.unit else None,
             e.unit) for e in self.entries)
        self._typed: dict = {}  # stored JSON text -> values
        self._scores: dict = {}  # computed JSON text -> flattened scores

    def values(self, stored: dict) -> dict:
        out = {}
        get = stored.get
        for item, convert, base, unit in self._plan:
            v = get(item)
            if v is None:
                if base is not None and get(base) not in (None, ""):
                    out[item] = convert(unit)  # the analyte's unit from the protocol
                else:
                    out[item] = None
            else:
                out[item] = convert(v)
        return out

    def values_of_text(self, text) -> dict:
        """``values`` of a stored dict given as its JSON text (an empty dict when it holds none); the
        same text is decoded and typed once."""
        out = self._typed.get(text)
        if out is None:
            out = _remember(self._typed, text, self.values(_json(text) or {}))
        return dict(out)

    def scores_of_text(self, text) -> dict:
        """``scores.flatten`` of computed results given as their JSON text, once per text."""
        if self.id in scores.SCORES:
            flatten = scores.flatten
        elif self._flatten is not None:
            flatten = self._flatten
        else:
            return {}  # what flatten gives a form without scores, whatever it computed
        out = self._scores.get(text)
        if out is None:
            out = _remember(self._scores, text, flatten(self.id, _json(text)))
        return dict(out)


def _flatteners(protocol) -> dict:
    """form id -> how its computed results become ``Record.computed``, for the forms the protocol
    gives scores that ``scores.SCORES`` does not know: the forms of its declared analysis
    parameters (their score keys) and the records of its procedures kept as eCRF forms (a kit
    return's compliance)."""
    out = {}
    keys: dict[str, list[str]] = {}
    for p in getattr(getattr(protocol, "analysis", None), "parameters", None) or ():
        keys.setdefault(p.form, []).append(p.score)
    for form_id, wanted in keys.items():
        out[form_id] = lambda _form, computed, wanted=tuple(wanted): scores.flatten_keys(computed, wanted)
    for f in protocol.schedule.forms:
        if f.procedure and f.procedure not in protocol.page_procedures and f.id not in out:
            out[f.id] = lambda _form, computed: scores.flatten_record(computed)
    return out


# ---- the reader ---------------------------------------------------------------------------------

class _Reader:
    def __init__(self, user, as_of: datetime, identifiable: bool, at_most: str = "arms"):
        from django.contrib.auth import get_user_model
        from django.db import connection

        from annulus.trial.selectors import active_protocol, data_dictionary
        from annulus.visits.models import UNSCHEDULED

        self.unscheduled = UNSCHEDULED
        self.user = user
        self.at_most = at_most
        self.as_of = as_of
        # what Django makes a naive time from the database aware in (None: USE_TZ off)
        self.db_timezone = connection.timezone if settings.USE_TZ else None
        self.identifiable = identifiable
        self.protocol = active_protocol()
        self.dictionary = data_dictionary()
        self.drug_codes = may_see_drug_codes(user)
        # the cell product's procedures recorded on its own pages, by their part (harvest, treatment)
        self.pages = _page_records(self.protocol)
        treatment_form = self.pages["treatment"].form if "treatment" in self.pages else None
        drop_tx = () if self.drug_codes else (DRUG_CODE_ITEM,)
        flatten = _flatteners(self.protocol)
        self.forms = {f.id: _Form(f, IDENTITY_ITEMS if f.id == "prescreening" else
                                  drop_tx if f.id == treatment_form else (), flatten.get(f.id))
                      for f in self.dictionary.forms}
        self.pvisits = {v.id: v for v in self.protocol.schedule.visits}
        # a treatment recorded as an eCRF form (not on the cell product's pages) is dated as the
        # schedule dates it (annulus.visits.events): by its visit, once attended with the form complete
        protocol = self.protocol
        treatment = protocol.treatment_procedure
        pages = protocol.page_procedures
        self.treatment_event = treatment.id if treatment is not None and treatment.id not in pages else None
        self.procedure_visits = {pv.id for p in protocol.procedure_list if p.id not in pages
                                 and (pv := protocol.procedure_visit(p.id)) is not None}
        from annulus.monitoring.plan import Plan, sampled
        from annulus.monitoring.selectors import _critical

        self.sdv_plan = Plan.from_protocol(getattr(self.protocol, "sdv", None))
        self._sdv_sampled, self._sdv_is_critical = sampled, _critical  # the monitoring grid's rules
        self._sdv_critical: dict = {}  # (form, item, serious) -> the plan always asks for it
        self.order = {v.id: i for i, v in enumerate(self.protocol.schedule.visits)}
        self._forder = {f.id: i for i, f in enumerate(self.dictionary.forms)}
        self.people_names = {}
        for u in get_user_model().objects.all().only("id", "username", "first_name", "last_name"):
            self.people_names[u.pk] = (u.username, (u.get_full_name() or "").strip() or u.username)

    def who(self, user_id) -> tuple[str, str]:
        return self.people_names.get(user_id, ("", ""))

    def _iso(self, v) -> str | None:
        """``_utc`` of a time read with ``_driver_value``: made aware as Django's own conversion
        makes it (SQLite's driver gives naive datetimes in the connection's time zone)."""
        if v is not None and v.tzinfo is None and self.db_timezone is not None:
            if self.db_timezone is _UTC:
                return v.isoformat() + "+00:00"  # = v.replace(tzinfo=UTC).isoformat()
            v = v.replace(tzinfo=self.db_timezone)
        return _utc(v)

    # -- one batch ------------------------------------------------------------------------------
    def read(self, people) -> list[Subject]:
        from django.db.models import Q, TextField
        from django.db.models.functions import Cast

        from annulus.allocation.models import EmergencyUnblinding, Transplant
        from annulus.allocation.selectors import export_allocations
        from annulus.monitoring.models import ReviewFinding, SdvMark
        from annulus.participants.models import (Consent, EligibilityDecision, Evidence, RecordLock, StatusChange,
                                                 Withdrawal)
        from annulus.queries.models import Query, QueryMessage
        from annulus.safety.models import AdverseEvent, AdverseEventRevision
        from annulus.visits.models import FormRevision, Liposuction, Visit

        # rows as named tuples of the columns used (no model instances, no unused JSON decoded)
        T = self.as_of
        ids = [p.pk for p in people]
        by = defaultdict(lambda: defaultdict(list))

        for c in (Consent.objects.filter(participant_id__in=ids, consented_at__lte=T).order_by("consented_at", "id")
                  .values_list("participant_id", "consent_version", "consented_at", "taken_by_id", "recorded_by_id",
                               "recorded_at", named=True)):
            by[c.participant_id]["consent"].append(c)
        for e in (Evidence.objects.filter(participant_id__in=ids, entered_at__lte=T).order_by("id")
                  .values_list("participant_id", "field", "value", "collected_on", "entered_by_id", "entered_at",
                               "change_reason", named=True)):
            by[e.participant_id]["evidence"].append(e)
        for d in (EligibilityDecision.objects.filter(participant_id__in=ids, decided_at__lte=T).order_by("id")
                  .values_list("participant_id", "outcome", "failing", "decided_at", "decided_by_id", "superseded",
                               named=True)):
            by[d.participant_id]["decisions"].append(d)
        for s in (StatusChange.objects.filter(participant_id__in=ids).order_by("id")
                  .values("participant_id", "from_status", "to_status", "at", "by_id", "reason")):
            by[s["participant_id"]]["status"].append(s)
        withdrawals = {w.participant_id: w for w in Withdrawal.objects.filter(
            participant_id__in=ids, recorded_at__lte=T).values_list(
            "participant_id", "withdrawn_on", "category", "details", "recorded_by_id", "recorded_at",
            "adverse_event_id", named=True)}
        for lp in (Liposuction.objects.filter(participant_id__in=ids, recorded_at__lte=T).order_by("id")
                   .values_list("participant_id", *_columns("harvest"), "recorded_by_id", "recorded_at",
                                "change_reason", named=True)):
            by[lp.participant_id]["lipo"].append(lp)
        transplants = {t.participant_id: t for t in Transplant.objects.filter(
            participant_id__in=ids, recorded_at__lte=T).values_list(
            "participant_id", *_columns("treatment"), "recorded_by_id", "recorded_at", named=True)}
        visits = {}
        for v in (Visit.objects.filter(participant_id__in=ids, created_at__lte=T).order_by("id")
                  .values_list("id", "participant_id", "visit_id", "number", "outcome", "visit_date", "reason",
                               named=True)):
            visits[v.id] = v
            by[v.participant_id]["visits"].append(v)
        revisions = defaultdict(lambda: defaultdict(list))  # participant -> form record -> revisions
        # items and computed scores as their JSON text: the same text is decoded and typed once, and
        # only the last revision's scores are read; the times as the driver gives them (``_iso``)
        for r in (FormRevision.objects.filter(form__participant_id__in=ids, saved_at__lte=T)
                  .order_by("form_id", "number")
                  .annotate(items_text=Cast("items", TextField()), computed_text=Cast("computed", TextField()),
                            collected=_driver_value("collected_at"), saved=_driver_value("saved_at"))
                  .values_list("form_id", "form__visit_id", "form__form_id", "form__participant_id", "number",
                               "state", "items_text", "computed_text", "collected", "saved_by_id", "saved",
                               "reason", named=True).iterator()):
            revisions[r.form__participant_id][r.form_id].append(r)
        aes = {}
        for ae in (AdverseEvent.objects.filter(participant_id__in=ids, created_at__lte=T).order_by("number")
                   .values_list("id", "participant_id", "number", named=True)):
            aes.setdefault(ae.participant_id, []).append(ae)
        ae_revisions = defaultdict(list)
        for r in (AdverseEventRevision.objects.filter(adverse_event__participant_id__in=ids, saved_at__lte=T)
                  .order_by("adverse_event_id", "revision")
                  .values("adverse_event_id", "revision", "data", "reason", "saved_by_id", "saved_at")):
            ae_revisions[r["adverse_event_id"]].append(r)
        marks = {}
        for m in (SdvMark.objects.filter(participant_id__in=ids, verified_at__lte=T).order_by("id")
                  .values_list("participant_id", "visit", "form", "record", "item", "value_hash")):
            marks[m[:5]] = m[5]
        marked = {key[:4] for key in marks}  # the records holding any mark

        locks = set()
        for lk in (RecordLock.objects.filter(participant_id__in=ids, locked_at__lte=T)
                   .filter(Q(unlocked_at__isnull=True) | Q(unlocked_at__gt=T))
                   .values_list("participant_id", "visit", "form")):
            locks.add(lk)
        queries = defaultdict(list)
        for q in (Query.objects.filter(participant_id__in=ids, raised_at__lte=T).order_by("id")
                  .values_list("id", "participant_id", "visit", "form", "record", "item", "raised_by_id",
                               "raised_at", named=True)):
            queries[q.participant_id].append(q)
        for f in (ReviewFinding.objects.filter(participant_id__in=ids, category="protocol_deviation", raised_at__lte=T)
                  .order_by("raised_at", "id").values_list("id", "participant_id", "visit", "form", "item", "text",
                                                           "raised_at", "resolved_at", named=True)):
            by[f.participant_id]["deviations"].append(f)
        messages = defaultdict(list)
        for m in (QueryMessage.objects.filter(query__participant_id__in=ids, at__lte=T).order_by("at", "id")
                  .values("query_id", "kind", "text", "at")):
            messages[m["query_id"]].append(m)
        allocations = export_allocations(self.user, ids, as_of=T, at_most=self.at_most)
        unblinded = set(EmergencyUnblinding.objects.filter(participant_id__in=ids, at__lte=T)
                        .values_list("participant_id", flat=True))
        signatures = self._signatures(ids)
        active: dict[tuple, int] = defaultdict(int)  # open or answered queries at T per record
        for q in (q for mine in queries.values() for q in mine):
            if q.form and _status_at(messages.get(q.id, ())) != "closed":
                active[(q.participant_id, q.visit, q.form, q.record)] += 1

        out = []
        for p in people:
            got = by[p.pk]
            out.append(self._subject(p, got, withdrawals.get(p.pk), transplants.get(p.pk), visits, revisions,
                                     aes, ae_revisions, marks, marked, locks, queries, messages,
                                     allocations.get(p.pk), p.pk in unblinded, signatures.get(p.pk), active))
        return out

    def _signatures(self, ids) -> dict:
        from django.db.models import Max

        from annulus.casebooks.models import CasebookSignature
        from annulus.casebooks.selectors import signature_status

        newest = (CasebookSignature.objects.filter(participant_id__in=ids).values("participant_id")
                  .annotate(last=Max("id")).values("last"))
        at_t = (CasebookSignature.objects.filter(participant_id__in=ids, signed_at__lte=self.as_of)
                .values("participant_id").annotate(last=Max("id")).values("last"))
        rows = {s.participant_id: s for s in CasebookSignature.objects.filter(pk__in=at_t).defer("content")}
        newest_ids = set(CasebookSignature.objects.filter(pk__in=newest).values_list("pk", flat=True))
        current = [pid for pid, s in rows.items() if s.pk in newest_ids]
        status = signature_status(current) if current else {}
        return {pid: (s, s.pk in newest_ids and status.get(pid) == "signed") for pid, s in rows.items()}

    # -- one participant -----------------------------------------------------------------------
    def _subject(self, p, got, withdrawal, transplant, visits, revisions, aes, ae_revisions, marks, marked, locks,
                 queries, messages, allocation, emergency, signature, active) -> Subject:
        T = self.as_of
        pid = p.pk
        who = self.who
        records: list[Record] = []
        all_locked = (pid, "", "") in locks

        def add(visit_key, visit, form, values, changes, raw=None, mark_record=0, *, computed=None, visit_repeat=0,
                record=1, state="", collected_at=None):
            """Adds a record. ``raw``: the values a verification mark hashes (a dict, or a function
            returning it), read only when the record holds a mark."""
            verified = ()
            sdv_done = False
            if raw is not None and marked and (pid, visit_key, form, mark_record) in marked:
                if callable(raw):
                    raw = raw()
                held = []
                holds = set()  # also the items the export leaves out (the drug code when blinded)
                for item, v in raw.items():
                    mark = marks.get((pid, visit_key, form, mark_record, item))
                    if mark is not None and mark == _hash(v):
                        holds.add(item)
                        if item in values:
                            held.append(item)
                verified = tuple(held)
                sdv_done = self._sdv_done(p.screening_number, visit_key, form, raw, holds,
                                          form == "adverse_event" and values.get("serious") is True)
            locked = all_locked or (bool(locks) and ((pid, visit_key, "") in locks
                                                     or (pid, visit_key, form) in locks))
            records.append(Record(visit=visit, form=form, values=values,
                                  computed=computed if computed is not None else {}, visit_repeat=visit_repeat,
                                  record=record, state=state, collected_at=collected_at, changes=changes,
                                  verified=verified, locked=locked,
                                  open_queries=active.get((pid, visit_key, form, mark_record), 0) if active else 0,
                                  sdv_done=sdv_done))

        # status at T
        status_rows = got["status"]
        done = [s for s in status_rows if s["at"] <= T]
        if done:
            status = done[-1]["to_status"]
        elif status_rows:
            status = status_rows[0]["from_status"] or p.status
        else:
            status = p.status

        # pre-screening (no history)
        pre = self.forms["prescreening"]
        pre_stored = {"sex": p.sex, "recruitment_source": p.recruitment_source, "site": p.site,
                      "prescreened_on": p.prescreened_on}
        pre_values = pre.values(pre_stored)
        add("", "", "prescreening", pre_values, (Change(1, _utc(p.created_at), *who(p.created_by_id), "",
                                                        dict(pre_values)),))

        # consents
        consent_form = self.forms["consent"]
        consents = got["consent"]
        for i, c in enumerate(consents, start=1):
            u, n = who(c.recorded_by_id)
            taken = who(c.taken_by_id)[0]
            stored = {"consent_version": c.consent_version, "consented_at": c.consented_at, "taken_by": taken}
            vals = consent_form.values(stored)
            # the monitoring app verifies the latest consent (record 0)
            raw = ({"consent_version": c.consent_version, "consented_at": _raw(c.consented_at), "taken_by": taken}
                   if i == len(consents) else None)
            add("screening", "screening", "consent", vals, (Change(1, _utc(c.recorded_at), u, n, "", dict(vals)),),
                raw, record=i, collected_at=_utc(c.consented_at))

        # screening evidence
        evidence = got["evidence"]
        age = None
        if evidence:
            ev_form = self.forms["screening"]
            groups: list[list] = []
            for e in evidence:
                g = groups[-1] if groups else None
                if (g and g[0].entered_by_id == e.entered_by_id and g[0].change_reason == e.change_reason
                        and g[0].collected_on == e.collected_on
                        and abs((e.entered_at - g[0].entered_at).total_seconds()) <= EVIDENCE_GROUP_SECONDS):
                    g.append(e)
                else:
                    groups.append([e])
            state: dict = {}
            collected = None
            changes = []
            for i, g in enumerate(groups, start=1):
                for e in g:
                    state[e.field] = e.value
                collected = g[-1].collected_on
                u, n = who(g[0].entered_by_id)
                changes.append(Change(i, _utc(g[0].entered_at), u, n, g[0].change_reason,
                                      ev_form.values({**state, "collected_on": collected})))
            # the last change holds the values of the final state
            add("screening", "screening", "screening", dict(changes[-1].values), tuple(changes), state)
            dob = state.get("date_of_birth")
            if dob and consents:
                try:
                    born = date.fromisoformat(str(dob))
                    on = _local_date(consents[0].consented_at)
                    age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
                except ValueError:
                    age = None

        # eligibility
        decisions = got["decisions"]
        eligible, failed = None, ()
        if decisions:
            el = self.forms["eligibility"]
            changes = []
            for i, d in enumerate(decisions, start=1):
                u, n = who(d.decided_by_id)
                changes.append(Change(i, _utc(d.decided_at), u, n, "", el.values({"outcome": d.outcome})))
            d = decisions[-1]
            # changed evidence after the decision supersedes it (decide again): no decision in force
            in_force = not d.superseded or not any(e.entered_at > d.decided_at for e in evidence)
            if in_force:
                eligible = d.outcome == "eligible"
                failed = tuple(d.failing or ())
                add("screening", "screening", "eligibility", dict(changes[-1].values), tuple(changes),
                    {"outcome": d.outcome})

        # the harvest (the cell product's first page): each row a change, the last in force
        lipos = got["lipo"]
        lipo_day = None
        harvest = self.pages.get("harvest")
        if lipos and harvest is not None:
            lf = self.forms.get(harvest.form)
            changes = []
            for i, lp in enumerate(lipos, start=1):
                u, n = who(lp.recorded_by_id)
                changes.append(Change(i, _utc(lp.recorded_at), u, n, lp.change_reason,
                                      lf.values(_stored("harvest", lp))))
            lp = lipos[-1]
            lipo_day = lp.performed_on
            add(harvest.visit, harvest.visit, harvest.form, changes[-1].values, tuple(changes),
                lambda: {k: _raw(v) for k, v in _stored("harvest", lp).items()})

        # the treatment (the cell product's second page): no history
        tx_day = None
        treatment = self.pages.get("treatment")
        if transplant is not None and treatment is not None:
            tf = self.forms.get(treatment.form)
            stored = _stored("treatment", transplant)
            vals = tf.values(stored)
            u, n = who(transplant.recorded_by_id)
            tx_day = _local_date(transplant.transplanted_at)
            add(treatment.visit, treatment.visit, treatment.form, vals,
                (Change(1, _utc(transplant.recorded_at), u, n, "", dict(vals)),),
                lambda: {k: _raw(v) for k, v in stored.items()},
                collected_at=_utc(transplant.transplanted_at))

        # visits and their forms
        vinfos = []
        events = None
        if self.treatment_event is not None:
            events = self._events(consents, got["visits"], revisions.get(pid, {}))
            tx_day = events.recorded(self.treatment_event)
        planned_tx = tx_day
        if planned_tx is None and lipo_day is not None:
            from annulus.visits.selectors import PLANNED_TRANSPLANT_DAYS

            planned_tx = lipo_day + timedelta(days=PLANNED_TRANSPLANT_DAYS)
        my_visits = got["visits"]
        for part, day in (("harvest", lipo_day), ("treatment", tx_day)):
            page = self.pages.get(part)
            if day is not None and page is not None and page.visit in self.pvisits:
                vinfos.append(self._visit_info(page.visit, 0, "attended", day, "", lipo_day, planned_tx, tx_day))
        for v in my_visits:
            vinfos.append(self._visit_info(v.visit_id, v.number, v.outcome, v.visit_date, v.reason, lipo_day,
                                           planned_tx, tx_day, events))
        vinfos.sort(key=lambda vi: (self.order.get(vi.visit, len(self.order)), vi.repeat))
        visit_ids = {v.id for v in my_visits}
        mine = revisions.get(pid, {})
        forms = self.forms
        iso = self._iso
        for form_pk in sorted(k for k, revs in mine.items() if revs[0].form__visit_id in visit_ids):
            revs = mine[form_pk]
            last = revs[-1]
            f = forms.get(last.form__form_id)
            if f is None:
                continue
            if len(revs) == 1:  # most forms
                changes = (Change(last.number, iso(last.saved), *who(last.saved_by_id), last.reason or "",
                                  f.values_of_text(last.items_text)),)
            else:
                changes = tuple(Change(r.number, iso(r.saved), *who(r.saved_by_id), r.reason or "",
                                       f.values_of_text(r.items_text)) for r in revs)
            v = visits[last.form__visit_id]
            complete = last.state in ("complete", "changed")
            unscheduled = v.visit_id == self.unscheduled
            add(f"u{v.number}" if unscheduled else v.visit_id, v.visit_id, f.id, changes[-1].values, changes,
                (lambda text=last.items_text: _json(text) or {}) if complete else None,
                computed=f.scores_of_text(last.computed_text),
                visit_repeat=v.number if unscheduled else 0, state="complete" if complete else "draft",
                collected_at=iso(last.collected))

        # adverse events
        ae_form = self.forms["adverse_event"]
        for ae in aes.get(pid, ()):
            revs = ae_revisions.get(ae.id)
            if not revs:
                continue
            changes = tuple(Change(r["revision"], _utc(r["saved_at"]), *who(r["saved_by_id"]), r["reason"] or "",
                                   ae_form.values(r["data"] or {})) for r in revs)
            add("", "", "adverse_event", changes[-1].values, changes, revs[-1]["data"] or {}, ae.id,
                record=ae.number)

        # end of study
        end_status, end_date, end_reason, end_ae = "", None, "", None
        if status in END_STATUSES:
            end_status = status
            eos = self.forms["end_of_study"]
            change_row = next((s for s in reversed(done) if s["to_status"] == status), None)
            if withdrawal is not None and status == "withdrawn":
                end_date = withdrawal.withdrawn_on.isoformat()
                end_reason = withdrawal.category
                if withdrawal.adverse_event_id is not None:
                    end_ae = next((a.number for a in aes.get(pid, ()) if a.id == withdrawal.adverse_event_id), None)
                stored = {"status": status, "withdrawn_on": withdrawal.withdrawn_on, "category": withdrawal.category,
                          "details": withdrawal.details}
                u, n = who(withdrawal.recorded_by_id)
                at = withdrawal.recorded_at
            else:
                end_date = _local_date(change_row["at"]).isoformat() if change_row else None
                stored = {"status": status}
                u, n = who(change_row["by_id"]) if change_row else ("", "")
                at = change_row["at"] if change_row else None
            vals = eos.values(stored)
            add("", "", "end_of_study", vals, (Change(1, _utc(at), u, n, "", dict(vals)),))

        # queries
        notes = []
        ae_numbers = {a.id: a.number for a in aes.get(pid, ())}
        for q in queries.get(pid, ()):
            thread = messages.get(q.id, ())
            st = _status_at(thread)
            visit, repeat = _visit_of_key(q.visit)
            notes.append(QueryNote(
                id=q.id, visit=visit, form=q.form, record=ae_numbers.get(q.record, 1) if q.record else 1,
                item=q.item, status=st, text=thread[0]["text"] if thread else "",
                raised_by=who(q.raised_by_id)[0] if q.raised_by_id else "edit check",
                raised_at=_utc(q.raised_at), closed_at=_closed_at(thread, st), visit_repeat=repeat))

        deviations = []
        for f in got["deviations"]:
            visit, repeat = _visit_of_key(f.visit)
            resolved = f.resolved_at is not None and f.resolved_at <= T
            deviations.append(DeviationNote(
                id=f.id, visit=visit, visit_repeat=repeat, form=f.form, item=f.item, text=f.text,
                raised_at=_utc(f.raised_at), status="resolved" if resolved else "open",
                resolved_at=_utc(f.resolved_at) if resolved else None))

        order, forder = self.order, self._forder
        records.sort(key=lambda r: (_record_order(r, order), r.visit_repeat, forder.get(r.form, 999), r.record))

        sig = None
        if signature is not None:
            s, still_signed = signature
            if still_signed:
                st = "signed"
            else:
                since, until = _utc(s.signed_at), _utc(T)
                changed = any(ch.at and since < ch.at <= until for r in records for ch in r.changes)
                st = "invalidated" if changed else "signed"
            sig = SignatureInfo(signed_by=who(s.signed_by_id)[0], signed_by_name=s.signer_name,
                                signed_at=_utc(s.signed_at), meaning=s.meaning, content_hash=s.content_hash, state=st)

        enrolled = p.enrolled_at is not None and p.enrolled_at <= T
        case = (p.case_number or "") if enrolled else ""
        alloc = allocation or {}
        identity = None
        if self.identifiable:
            identity = {"initials": p.initials, "full_name": p.full_name, "phone": p.phone}
        return Subject(
            subject=f"{self.protocol.trial.id}-{case or p.screening_number}",
            screening_number=p.screening_number, case_number=case, sex=p.sex, status=status, age=age,
            prescreened_on=p.prescreened_on.isoformat(),
            consented_at=_utc(consents[0].consented_at) if consents else None,
            randomised_at=_utc(alloc.get("randomised_at")),
            liposuction_on=lipo_day.isoformat() if lipo_day else None,
            transplanted_at=_utc(transplant.transplanted_at) if transplant is not None else None,
            treated_on=tx_day.isoformat() if tx_day else None,
            eligible=eligible, failed_criteria=failed, end_status=end_status, end_date=end_date,
            end_reason=end_reason, end_adverse_event=end_ae, emergency_unblinded=emergency,
            group_label=alloc.get("group_label"), arm=alloc.get("arm"), drug_code=alloc.get("drug_code"),
            strata=dict(alloc.get("levels") or {}),
            visits=tuple(vinfos), records=tuple(records), queries=tuple(sorted(notes, key=lambda q: q.id)),
            deviations=tuple(deviations), signature=sig, identity=identity)

    def _sdv_done(self, number: str, visit_key: str, form: str, raw: dict, holds: set, serious: bool) -> bool:
        """Whether the SDV plan asks for at least one item of this record and each one it asks for is
        verified (``holds``): the monitoring grid's rule (``annulus.monitoring.selectors``), on the
        record as it stood at T."""
        plan = self.sdv_plan
        if plan is None:
            return False
        critical = self._sdv_critical
        in_sample = None
        asked = False
        for item in raw:
            key = (form, item, serious)
            always = critical.get(key)
            if always is None:
                always = critical[key] = self._sdv_is_critical(plan, self.dictionary, form, item, serious)
            if not always:
                if in_sample is None:
                    in_sample = self._sdv_sampled(plan, number, visit_key, form)
                if not in_sample:
                    continue
            if item not in holds:
                return False
            asked = True
        return asked

    def _form_order(self, form_id: str) -> int:
        return self._forder.get(form_id, 999)

    def _events(self, consents, my_visits, mine):
        """The participant's events (``annulus.visits.events``) from the records as they stood at T:
        the first consent, and the procedure visits attended with their complete forms."""
        from annulus.protocol.schema import CONSENT_ANCHOR
        from annulus.visits.selectors import events_from

        known = {CONSENT_ANCHOR: _local_date(consents[0].consented_at)} if consents else {}
        attended = {v.id: v for v in my_visits
                    if v.visit_id in self.procedure_visits and v.number == 0 and v.outcome == "attended"}
        recorded = {v.visit_id: (v.visit_date, set()) for v in attended.values()}
        for revs in mine.values():
            last = revs[-1]
            v = attended.get(last.form__visit_id)
            if v is not None and last.state in ("complete", "changed"):
                recorded[v.visit_id][1].add(last.form__form_id)
        return events_from(self.protocol, known, recorded)

    def _visit_info(self, visit_id, number, outcome, on, reason, lipo, planned_tx, tx, events=None) -> VisitInfo:
        from annulus.visits.events import window_of as event_window
        from annulus.visits.selectors import window_of

        day = (on - tx).days if (on is not None and tx is not None) else None
        target, window = None, ""
        pv = self.pvisits.get(visit_id)
        if pv is not None:
            if events is not None:
                tgt, start, end = event_window(pv, events)
            else:
                tgt, start, end = window_of(pv, lipo, planned_tx, self.protocol)
            target = tgt.isoformat() if tgt else None
            if on is not None and start is not None and outcome == "attended":
                window = "early" if on < start else "late" if on > end else "in"
        return VisitInfo(visit=visit_id, repeat=number if visit_id == "unscheduled" else 0, outcome=outcome,
                         date=on.isoformat() if on else None, reason=reason or "", day=day, target=target,
                         window=window)


# ---- helpers ------------------------------------------------------------------------------------

def _hash(value) -> str:
    from annulus.monitoring.plan import value_hash

    return value_hash(value)


@dataclass(frozen=True)
class _Page:
    """Where the export puts a procedure the cell product records on its own pages: the visit at
    which the schedule does it and the form (the data dictionary's) that records it."""

    visit: str
    form: str


def _page_records(protocol) -> dict[str, _Page]:
    """part ("harvest", "treatment": ``Protocol.page_procedures``) -> its ``_Page``: the procedure's
    visit (its id when no one visit of the schedule does it) and the schedule form that records it
    (in a file written before ``procedures:``, the form named after the procedure)."""
    out = {}
    for procedure_id, part in protocol.page_procedures.items():
        visit = protocol.procedure_visit(procedure_id)
        form = protocol.procedure_form(procedure_id)
        out[part] = _Page(visit.id if visit is not None else procedure_id,
                          form.id if form is not None else procedure_id)
    return out


def _columns(part: str) -> tuple[str, ...]:
    """The model fields of a page procedure's record (``annulus.dictionary.records.PAGE_RECORDS``)."""
    from annulus.dictionary.records import PAGE_RECORDS

    return tuple(item.model_field for item in PAGE_RECORDS[part].items)


def _stored(part: str, row) -> dict:
    """A page procedure's record as stored: item id -> the row's value, in the record's order."""
    from annulus.dictionary.records import PAGE_RECORDS

    return {item.id: getattr(row, item.model_field) for item in PAGE_RECORDS[part].items}


def _status_at(thread) -> str:
    status = "open"
    for m in thread:
        kind = m["kind"]
        if kind == "raise" or kind == "reopen":
            status = "open"
        elif kind == "answer":
            status = "answered"
        elif kind in ("close", "auto_close"):
            status = "closed"
    return status


def _closed_at(thread, status) -> str | None:
    if status != "closed":
        return None
    return _utc(next(m["at"] for m in reversed(thread) if m["kind"] in ("close", "auto_close")))


def _visit_of_key(key: str) -> tuple[str, int]:
    from annulus.visits.models import parse_visit_key

    if not key:
        return "", 0
    visit, number = parse_visit_key(key)
    return visit, number


def _record_order(r: Record, order: dict) -> int:
    if r.visit == "" and r.form == "prescreening":
        return -2
    if r.visit == "screening":
        return -1
    if r.visit == "":
        return 10_000
    return order.get(r.visit, 9_000)
