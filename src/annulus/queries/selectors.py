"""Reading queries: counts for badges and the monitor's grid, the dashboard's groupings, the list
with its filters, a query's target in words, and the check of a target against the data
dictionary and the participant's actual records."""

from __future__ import annotations

from collections import Counter
from datetime import date

from django.db.models import Count
from django.utils import timezone
from django.utils.translation import get_language

from annulus import editchecks
from annulus.errors import Problems, RuleViolation
from annulus.participants.selectors import scoped

from .models import ANSWERED, CLOSED, OPEN, Query

ACTIVE = (OPEN, ANSWERED)
# age bands of open queries (days since raised): label, first day, last day (None: no end)
AGE_BANDS = [("0–7", 0, 7), ("8–14", 8, 14), ("15–30", 15, 30), ("31+", 31, None)]
SORTS = {"raised": ("raised_at", "id"), "-raised": ("-raised_at", "-id"),
         "participant": ("participant__case_number", "participant__screening_number", "id"),
         "-participant": ("-participant__case_number", "-participant__screening_number", "-id"),
         "form": ("form", "item", "id"), "-form": ("-form", "-item", "-id"),
         "status": ("status", "-raised_at"), "-status": ("-status", "-raised_at"),
         "assigned": ("assigned_to", "-raised_at"), "-assigned": ("-assigned_to", "-raised_at"),
         "updated": ("updated_at", "id"), "-updated": ("-updated_at", "-id")}


# ---- counts -------------------------------------------------------------------------------------

def open_query_counts(participant_ids=None) -> dict[tuple[int, str, str], int]:
    """(participant id, visit, form) -> number of open and answered queries; visit and form are ""
    for queries on the participant (casebook level), form "" for a query on a whole visit."""
    qs = Query.objects.filter(status__in=ACTIVE)
    if participant_ids is not None:
        qs = qs.filter(participant_id__in=list(participant_ids))
    return {(r["participant_id"], r["visit"], r["form"]): r["n"]
            for r in qs.values("participant_id", "visit", "form").annotate(n=Count("id")).order_by()}


def status_counts(participant_id: int, visit: str | None = None, form: str | None = None) -> dict[str, int]:
    """{"open": n, "answered": n} of one participant, or of one visit / one form of it."""
    qs = Query.objects.filter(participant_id=participant_id, status__in=ACTIVE)
    if visit is not None:
        qs = qs.filter(visit=visit)
    if form is not None:
        qs = qs.filter(form=form)
    got = dict(qs.values_list("status").annotate(n=Count("id")).order_by())
    return {OPEN: got.get(OPEN, 0), ANSWERED: got.get(ANSWERED, 0)}


def queries_on(participant_id: int, visit: str | None = None, form: str | None = None, *, active_only=False):
    qs = Query.objects.filter(participant_id=participant_id).select_related("participant")
    if visit is not None:
        qs = qs.filter(visit=visit)
    if form is not None:
        qs = qs.filter(form=form)
    if active_only:
        qs = qs.filter(status__in=ACTIVE)
    return qs.order_by("status", "-raised_at", "-id")


def get_query(pk, user=None) -> Query | None:
    """The query ``pk``; None also when it is on a participant ``user`` may not see."""
    try:
        return scoped(user, Query.objects).select_related("participant", "raised_by", "closed_by").filter(pk=int(pk)).first()
    except (TypeError, ValueError):
        return None


# ---- list and dashboard -------------------------------------------------------------------------

def query_list(*, status: str = "", form: str = "", assigned_to: str = "", origin: str = "", participant=None,
               visit: str | None = None, sort: str = "-raised", user=None):
    qs = scoped(user, Query.objects).select_related("participant")
    if status == "active":
        qs = qs.filter(status__in=ACTIVE)
    elif status:
        qs = qs.filter(status=status)
    if form:
        qs = qs.filter(form=form)
    if assigned_to:
        qs = qs.filter(assigned_to=assigned_to)
    if origin:
        qs = qs.filter(origin=origin)
    if participant:
        qs = qs.filter(participant_id=participant)
    if visit is not None:
        qs = qs.filter(visit=visit)
    return qs.order_by(*SORTS.get(sort, SORTS["-raised"]))


def dashboard(today: date | None = None, user=None) -> dict:
    """Open (and answered) queries by age band, by form, by participant and by assignee (of the
    participants ``user`` may see)."""
    today = today or timezone.localdate()
    rows = list(scoped(user, Query.objects).filter(status__in=ACTIVE).values_list(
        "raised_at", "form", "participant_id", "participant__case_number", "participant__screening_number",
        "assigned_to", "status"))
    ages = Counter()
    for raised_at, *_ in rows:
        days = (today - timezone.localtime(raised_at).date()).days
        band = next(label for label, lo, hi in AGE_BANDS if days >= lo and (hi is None or days <= hi))
        ages[band] += 1
    by_form = Counter(r[1] for r in rows)
    people = {}
    for r in rows:
        people.setdefault(r[2], [r[3] or r[4], 0])[1] += 1
    return {
        "total": len(rows),
        "open": sum(1 for r in rows if r[6] == OPEN),
        "answered": sum(1 for r in rows if r[6] == ANSWERED),
        "ages": [(label, ages.get(label, 0)) for label, _lo, _hi in AGE_BANDS],
        "forms": sorted(by_form.items(), key=lambda kv: (-kv[1], kv[0])),
        "participants": sorted(((pid, name, n) for pid, (name, n) in people.items()), key=lambda t: (-t[2], t[1])),
        "assignees": sorted(Counter(r[5] for r in rows).items(), key=lambda kv: (-kv[1], kv[0])),
    }


def closed_count(user=None) -> int:
    return scoped(user, Query.objects).filter(status=CLOSED).count()


# ---- names ----------------------------------------------------------------------------------------

def _dictionary():
    try:
        from annulus.trial.selectors import data_dictionary
    except ImportError:
        return None
    try:
        return data_dictionary()
    except Exception:  # noqa: BLE001 - the dictionary is being built out; fall back to the form specs
        return None


def form_label(form: str, language: str | None = None) -> str:
    if not form:
        return ""
    d = _dictionary()
    f = d.form(form) if d is not None else None
    if f is not None:
        return f.name(language or get_language())
    from annulus.trial.selectors import active_protocol

    sf = next((f for f in active_protocol().schedule.forms if f.id == form), None)
    return sf.name.get(language or get_language()) if sf else form


def item_label(form: str, item: str, language: str | None = None) -> str:
    if not item:
        return ""
    language = language or get_language()
    if item == "visit_date" and not form:
        from django.utils.translation import gettext

        return gettext("Visit date")
    d = _dictionary()
    e = d.entry(form, item) if d is not None else None
    if e is not None:
        return e.label(language)
    spec = _spec(form)
    i = spec.item(item) if spec is not None else None
    return i.label(language) if i is not None else item


def visit_label(visit: str, language: str | None = None) -> str:
    from django.utils.translation import gettext

    from annulus.trial.selectors import active_protocol

    if not visit:
        return ""
    if visit == "screening":
        return gettext("Screening")
    if visit.startswith("u") and visit[1:].isdigit():
        return f"{gettext('Unscheduled')} {visit[1:]}"
    v = next((v for v in active_protocol().schedule.visits if v.id == visit), None)
    return v.name.get(language or get_language()) if v else visit


def target_text(q: Query, language: str | None = None) -> str:
    """"Baseline · VAS pain · Pain on the 100 mm line", or the adverse event's label."""
    parts = [visit_label(q.visit, language), form_label(q.form, language)]
    if q.record:
        parts.append(f"AE{_ae_number(q.record)}")
    parts.append(item_label(q.form, q.item, language))
    return " · ".join(p for p in parts if p)


def _ae_number(ae_id: int) -> str:
    from annulus.safety.models import AdverseEvent

    n = AdverseEvent.objects.filter(pk=ae_id).values_list("number", flat=True).first()
    return f"{n:02d}" if n else str(ae_id)


def target_link(q: Query) -> str | None:
    """The page that shows the data the query is about."""
    from django.urls import reverse

    pid = q.participant_id
    if q.form == "adverse_event" and q.record:
        return reverse("safety_ae", args=[q.record])
    if q.visit == "screening":
        return reverse("screening", args=[pid]) if q.form in ("screening", "eligibility") else reverse("participant", args=[pid])
    pages = _page_procedures()
    if q.visit and q.form and q.form not in pages:
        return reverse("crf_form", args=[pid, q.visit, q.form])
    if q.visit and q.visit not in pages:
        return reverse("visit", args=[pid, q.visit])
    return reverse("participant", args=[pid])


# ---- targets --------------------------------------------------------------------------------------

def _spec(form: str):
    from annulus.instruments.forms import spec_for
    from annulus.trial.selectors import active_protocol

    try:
        return spec_for(active_protocol(), form)
    except (RuleViolation, StopIteration):
        return None


SCREENING_FORMS = ("consent", "screening", "eligibility")
CASEBOOK_FORMS = ("adverse_event", "end_of_study", "prescreening")
def _page_procedures() -> dict:
    """The cell product's procedures, recorded on their own pages (a query names them as both the
    visit and the form)."""
    from annulus.trial.selectors import active_protocol

    return active_protocol().page_procedures


def _form_exists(form: str) -> bool:
    d = _dictionary()
    if d is not None:
        return d.form(form) is not None
    return _spec(form) is not None or form in SCREENING_FORMS + CASEBOOK_FORMS + tuple(_page_procedures())


def _item_exists(form: str, item: str) -> bool:
    d = _dictionary()
    if d is not None:
        return d.entry(form, item) is not None
    spec = _spec(form)
    return spec is not None and spec.item(item) is not None


def check_target(participant_id, visit, form, record, item, *, problems: Problems | None = None,
                 user=None) -> tuple:
    """The target (participant, visit, form, record, item) as stored, after checking it names
    data that exist: a participant, one of its visits that took place (or "screening", or "" for
    the casebook and the adverse-event log), a form of that visit in the data dictionary, an item
    of that form, and for the adverse-event log one of the participant's events. Each problem is
    added to ``problems`` naming its field (raised here when none is given)."""
    from annulus.participants.models import Participant
    from annulus.visits.models import Visit, parse_visit_key

    own = problems is None
    problems = problems if problems is not None else Problems()
    visit = (visit or "").strip() if isinstance(visit, str) else visit
    form = (form or "").strip() if isinstance(form, str) else form
    item = (item or "").strip() if isinstance(item, str) else item
    for name, value, limit in (("visit", visit, 20), ("form", form, 40), ("item", item, 60)):
        if not isinstance(value, str):
            problems.add(name, "must be text")
        elif "\x00" in value:
            problems.add(name, "contains a NUL character")
        elif len(value) > limit:
            problems.add(name, f"must be at most {limit} characters")
    try:
        record = int(record or 0)
        if record < 0:
            raise ValueError
    except (TypeError, ValueError):
        problems.add("record", f"'{record}' is not a record number")
        record = 0
    try:
        pid = int(participant_id)
    except (TypeError, ValueError):
        pid = None
    # a participant of a site ``user`` is not scoped to is answered as one that does not exist
    participant = scoped(user, Participant.objects, "").filter(pk=pid).first() if pid is not None else None
    if participant is None:
        problems.add("participant", f"no participant '{participant_id}'")
    if problems.broken("participant", "visit", "form", "item"):
        if own:
            problems.raise_any()
        return (pid, visit, form, record, item)
    if form and not _form_exists(form):
        problems.add("form", f"'{form}' is not a form of the data dictionary")
    # the visit: one that took place, "screening", or "" (casebook level and the adverse-event log)
    visit_forms = None
    if visit == "":
        if form and form not in CASEBOOK_FORMS:
            problems.add("form", f"the {form} form belongs to a visit: name the visit")
    elif visit == "screening":
        if form and form not in SCREENING_FORMS:
            problems.add("form", f"the {form} form is not a screening record (consent, screening, eligibility)")
        elif not participant.consents.exists():
            problems.add("visit", "nothing is recorded at screening for this participant yet")
    elif visit in _page_procedures():
        from annulus.visits.events import events_of

        done = events_of(pid).recorded(visit)
        if done is None:
            problems.add("visit", f"the {visit} of this participant is not recorded")
        visit_forms = [visit]
    else:
        visit_id, number = parse_visit_key(visit)
        v = Visit.objects.filter(participant_id=pid, visit_id=visit_id, number=number).first()
        if v is None:
            problems.add("visit", f"'{visit}' is not a visit of this participant on record")
        else:
            visit_forms = list(v.forms)
    if visit_forms is not None and form and not problems.broken("form") and form not in visit_forms:
        problems.add("form", f"the {form} form is not collected at this visit")
    # the record: an adverse event of the participant in the log, else 0
    if form == "adverse_event":
        from annulus.safety.models import AdverseEvent

        if not record:
            problems.add("record", "name the adverse event (its record number)")
        elif not AdverseEvent.objects.filter(pk=record, participant_id=pid).exists():
            problems.add("record", f"no adverse event {record} of this participant")
    elif record:
        problems.add("record", "only adverse events have record numbers; leave it 0")
    if item and not problems.broken("form"):
        if not form:
            if not (item == "visit_date" and visit not in ("", "screening")):
                problems.add("item", f"'{item}' is not an item: name its form")
        elif not _item_exists(form, item):
            problems.add("item", f"'{item}' is not an item of the {form} form")
    if own:
        problems.raise_any()
    return (pid, visit, form, record, item)


# ---- the casebook the edit checks read ------------------------------------------------------------

def casebook(participant_id: int, checks, protocol) -> editchecks.Casebook:
    """The participant's data that ``checks`` read, as plain values (a few queries)."""
    from annulus.participants.models import Consent
    from annulus.visits.models import UNSCHEDULED, FormRecord, Visit

    kinds = {c.kind for c in checks}
    forms = set()
    for c in checks:
        if c.kind in ("change_between_visits", "above"):
            forms.add(c.form)
        elif c.kind == "lab_outside_range":
            forms |= set(editchecks.lab_forms(protocol, c.forms))
    order = {v.id: i for i, v in enumerate(protocol.schedule.visits)}
    visits = {}
    if forms or "visit_before_consent" in kinds:
        for v in Visit.objects.filter(participant_id=participant_id, outcome="attended"):
            key = f"u{v.number}" if v.visit_id == UNSCHEDULED else v.visit_id
            visits[v.pk] = (key, order.get(v.visit_id, 1000 + v.number), v.visit_date, {})
    if forms:
        for r in FormRecord.objects.filter(participant_id=participant_id, form_id__in=forms).values(
                "visit_id", "form_id", "items", "computed"):
            if r["visit_id"] in visits:
                visits[r["visit_id"]][3][r["form_id"]] = editchecks.Form(r["items"] or {}, r["computed"] or {})
    consent_date = treatment = None
    aes = ()
    if "visit_before_consent" in kinds:
        first = Consent.objects.filter(participant_id=participant_id).order_by("consented_at").values_list(
            "consented_at", flat=True).first()
        consent_date = timezone.localtime(first).date() if first else None
    if kinds & set(editchecks.AE_BEFORE_TREATMENT) and protocol.treatment_procedure is not None:
        from annulus.safety.models import AdverseEvent
        from annulus.visits.events import events_of

        treatment = events_of(participant_id, protocol).recorded(protocol.treatment_procedure.id)
        aes = tuple(editchecks.AdverseEventData(pk, timezone.localtime(onset).date(), causality)
                    for pk, onset, causality in AdverseEvent.objects.filter(participant_id=participant_id)
                    .values_list("pk", "onset_at", "causality_product"))
    return editchecks.Casebook(
        visits=tuple(editchecks.VisitData(k, o, d, f) for k, o, d, f in visits.values()),
        consent_date=consent_date, treatment_date=treatment, adverse_events=aes)


def check_message(check_id: str, language: str | None = None) -> str:
    from annulus.trial.selectors import active_protocol

    c = next((c for c in (active_protocol().edit_checks or []) if c.id == check_id), None)
    return c.message.get(language or get_language()) if c else check_id


def active_counts_by_participant(participant_ids=None) -> dict[int, dict[str, int]]:
    qs = Query.objects.filter(status__in=ACTIVE)
    if participant_ids is not None:
        qs = qs.filter(participant_id__in=list(participant_ids))
    out: dict[int, dict[str, int]] = {}
    for pid, status, n in qs.values_list("participant_id", "status").annotate(n=Count("id")).order_by():
        out.setdefault(pid, {OPEN: 0, ANSWERED: 0})[status] = n
    return out



# ---- the data against the audit trail (``annulus audit verify --data``) -------------------------

QUERY_FIELDS = {"visit": "visit", "form": "form", "record": "record", "item": "item", "origin": "origin",
                "check": "check_id", "status": "status", "assigned_to": "assigned_to"}


def _step(changes: dict, reason: str) -> tuple[str, str] | None:
    """The thread message an event of a query wrote: (kind, text)."""
    from .models import QueryMessage

    status = changes.get("status")
    if isinstance(status, list) and status[0] is None:
        return QueryMessage.RAISE, changes.get("text") or ""
    if "answer" in changes:
        return QueryMessage.ANSWER, changes["answer"]
    if isinstance(status, list) and status[1] == CLOSED:
        return (QueryMessage.AUTO_CLOSE if "check" in changes else QueryMessage.CLOSE), reason
    if isinstance(status, list) and status[1] == OPEN:
        return QueryMessage.REOPEN, reason
    return None


def audit_mismatches(participant_ids) -> list[str]:
    """Each query of ``participant_ids`` whose row or thread differs from what the audit trail
    records for it, one line each: where it points (visit, form, record, item), its origin and
    edit check, its status and who is to answer; and its thread, message by message (the kind and
    the text of each raise, answer, close and re-open). Not compared: the times and authors of
    the messages (the events' own)."""
    from annulus.audit.selectors import differences, new_value, screening_numbers, trail

    from .models import QueryMessage

    ids = list(participant_ids)
    numbers = screening_numbers(ids)
    state: dict[str, dict] = {}
    steps: dict[str, list] = {}
    for _otype, object_id, _pid, changes, reason in trail(["query"], ids):
        mine = state.setdefault(object_id, {})
        for name, change in changes.items():
            mine[name] = new_value(change)
        step = _step(changes, reason)
        if step is not None:
            steps.setdefault(object_id, []).append(step)
    thread: dict[int, list] = {}
    for qid, kind, text in QueryMessage.objects.filter(query__participant_id__in=ids).order_by("pk").values_list(
            "query_id", "kind", "text"):
        thread.setdefault(qid, []).append((kind, text))
    out = []
    rows = Query.objects.filter(participant_id__in=ids).order_by("pk").values("pk", "participant_id",
                                                                               *QUERY_FIELDS.values())
    for row in rows:
        where = f"participant {numbers.get(row['participant_id'], row['participant_id'])}, query {row['pk']}"
        audited = state.pop(str(row["pk"]), None)
        if audited is None:
            out.append(f"{where}: in the database but never in the audit trail")
            continue
        out += differences(where, [(name, row[column], audited.get(name)) for name, column in QUERY_FIELDS.items()])
        stored, told = thread.get(row["pk"], []), steps.get(str(row["pk"]), [])
        for n, (s, a) in enumerate(zip(stored, told), 1):
            out += differences(f"{where}, message {n}", [("kind", s[0], a[0]), ("text", s[1], a[1])])
        for n in range(len(told), len(stored)):
            out.append(f"{where}, message {n + 1}: in the database but never in the audit trail")
        for n in range(len(stored), len(told)):
            out.append(f"{where}, message {n + 1}: in the audit trail but no longer in the database")
    out += [f"query {pk}: in the audit trail but no longer in the database" for pk in state]
    return out
