"""Writing queries: raise, answer, close, re-open (each audited in its transaction, after the
database-lock guard), and the edit checks' own queries, raised and closed as the data change."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from annulus import editchecks
from annulus.accounts.permissions import has, require, role_of
from annulus.audit import services as audit
from annulus.errors import Problems, RuleViolation
from annulus.participants.models import Participant
from annulus.participants.selectors import scoped
from annulus.trial.lock import assert_writable

from . import selectors
from .models import ANSWERED, ASSIGNEES, CHECK, CLOSED, MANUAL, OPEN, Query, QueryMessage

MAX_TEXT = 2000
AUTO_CLOSE_TEXT = "the edit check's condition no longer holds (the data were changed)"


class QueryRefused(RuleViolation):
    """A step on a query that its status does not allow (answering a closed query): 409."""

    status = 409


class NoRight(RuleViolation):
    """Closing or re-opening someone else's query without the right: 403 naming the query."""

    status = 403


def clean_text(value, field: str = "text") -> str:
    if value is None or not isinstance(value, str):
        raise RuleViolation(field, "write the text")
    if "\x00" in value:
        raise RuleViolation(field, "contains a NUL character")
    text = value.strip()
    if not text:
        raise RuleViolation(field, "write the text")
    if len(text) > MAX_TEXT:
        raise RuleViolation(field, f"must be at most {MAX_TEXT} characters (got {len(text)})")
    return text


def _record_lock(query_or_target) -> None:
    """Refuse when the record the query is on is locked (form, visit or casebook lock)."""
    try:
        from annulus.participants.locks import assert_record_writable
    except ImportError:
        return
    pid, visit, form = query_or_target[:3]
    assert_record_writable(pid, visit=visit, form=form)


def _event(actor, q: Query, action: str, changes: dict, reason: str = "", when=None):
    audit.record(actor=actor, action=action, obj_type="query", obj_id=q.pk, participant_id=q.participant_id,
                 changes=changes, reason=reason, when=when)


def _message(q: Query, kind: str, text: str, actor, now) -> QueryMessage:
    return QueryMessage.objects.create(query=q, kind=kind, text=text, author=actor if actor else None,
                                       author_role=(role_of(actor) or "") if actor else "", at=now)


def raise_query(*, actor, participant_id, visit: str = "", form: str = "", record=0, item: str = "",
                text: str, assigned_to: str, at=None) -> Query:
    """A query raised by hand on an item, a form, a visit or the participant. Every problem of the
    request is reported at once, each naming its field; nothing is written then."""
    require(actor, "queries.raise")
    problems = Problems()
    with problems.check():
        text = clean_text(text)
    if assigned_to not in dict(ASSIGNEES):
        problems.add("assigned_to", f"choose who is to answer: one of {', '.join(dict(ASSIGNEES))}")
    now = at or timezone.now()
    with transaction.atomic():
        assert_writable("queries")
        target = selectors.check_target(participant_id, visit, form, record, item, problems=problems, user=actor)
        problems.raise_any()
        pid, visit, form, record, item = target
        q = Query.objects.create(participant_id=pid, visit=visit, form=form, record=record, item=item,
                                 origin=MANUAL, status=OPEN, assigned_to=assigned_to, raised_by=actor,
                                 raised_role=role_of(actor) or "", raised_at=now, updated_at=now)
        _message(q, QueryMessage.RAISE, text, actor, now)
        _event(actor, q, "create", {"visit": visit, "form": form, "record": record, "item": item,
                                    "status": [None, OPEN], "assigned_to": assigned_to, "text": text,
                                    "origin": MANUAL}, when=now)
    return q


def _locked_query(query_id, actor) -> Query:
    """The query ``query_id``, locked; one on a participant of a site ``actor`` is not scoped to
    is answered as one that does not exist."""
    try:
        pk = int(query_id)
    except (TypeError, ValueError):
        raise RuleViolation("query", f"'{query_id}' is not a query") from None
    q = scoped(actor, Query.objects).select_for_update().filter(pk=pk).first()
    if q is None:
        raise RuleViolation("query", f"no query {pk}")
    return q


def may_close(user, q: Query) -> bool:
    """The raiser's side closes and re-opens: the monitor and the data manager, or whoever raised
    the query."""
    return has(user, "queries.close") or (q.raised_by_id is not None and q.raised_by_id == getattr(user, "pk", None))


def answer_query(*, actor, query_id, text: str, at=None) -> Query:
    """The site's answer. A closed query is not answered (re-open it first); nor is a query on a
    locked record (the data manager unlocks it first)."""
    require(actor, "queries.answer")
    text = clean_text(text)
    now = at or timezone.now()
    with transaction.atomic():
        assert_writable("queries")
        # the record lock takes the participant's row first, as every write of its data does
        target = scoped(actor, Query.objects).filter(pk=query_id).values_list("participant_id", "visit", "form").first() \
            if str(query_id).isdigit() else None
        if target is not None:
            _record_lock(target)
        q = _locked_query(query_id, actor)
        if q.status == CLOSED:
            raise QueryRefused("status", "the query is closed and cannot be answered; it must be re-opened first")
        old = q.status
        q.status, q.updated_at = ANSWERED, now
        q.save(update_fields=["status", "updated_at"])
        _message(q, QueryMessage.ANSWER, text, actor, now)
        _event(actor, q, "change", {"status": [old, ANSWERED], "answer": text}, when=now)
    return q


def close_query(*, actor, query_id, text: str, at=None) -> Query:
    return _raisers_step(actor, query_id, text, at, to=CLOSED, kind=QueryMessage.CLOSE, verb="close",
                         already="the query is already closed")


def reopen_query(*, actor, query_id, text: str, at=None) -> Query:
    """Back to open: the answer did not settle it, or a closed query needs more."""
    return _raisers_step(actor, query_id, text, at, to=OPEN, kind=QueryMessage.REOPEN, verb="re-open",
                         already="the query is already open")


def _raisers_step(actor, query_id, text, at, *, to: str, kind: str, verb: str, already: str) -> Query:
    """Close or re-open: a step of the raiser's side (``may_close``), with its text in the thread
    and the audit record."""
    text = clean_text(text)
    now = at or timezone.now()
    with transaction.atomic():
        assert_writable("queries")
        q = _locked_query(query_id, actor)
        if not may_close(actor, q):
            raise NoRight("query", f"only the monitor or the data manager, or whoever raised it, may {verb} this query")
        if q.status == to:
            raise QueryRefused("status", already)
        old = q.status
        closing = to == CLOSED
        q.status, q.updated_at = to, now
        q.closed_at, q.closed_by = (now, actor) if closing else (None, None)
        q.save(update_fields=["status", "updated_at", "closed_at", "closed_by"])
        _message(q, kind, text, actor, now)
        _event(actor, q, "change", {"status": [old, to]}, reason=text, when=now)
    return q


# ---- edit checks ---------------------------------------------------------------------------------


def run_checks(participant_id: int, sources: set[str], forms: set[str] | None = None, protocol=None) -> dict:
    """Re-run the protocol's edit checks that read ``sources`` (restricted to ``forms`` for eCRF
    data) on one participant, inside the caller's transaction: a finding without an active query
    raises one (origin "check", assigned to the site); an active check query whose finding is gone
    is closed with that reason (by the system). A still-failing check opens no second query, and
    one closed by a person is not raised again until its values change. Returns counts."""
    from annulus.trial.selectors import active_protocol

    protocol = protocol or active_protocol()
    checks = [c for c in editchecks.checks_reading(protocol, sources)
              if forms is None or _check_forms(c, protocol) is None or _check_forms(c, protocol) & forms]
    if not checks:
        return {"raised": 0, "closed": 0}
    with transaction.atomic():
        data = selectors.casebook(participant_id, checks, protocol)
        findings = {f.key: f for f in editchecks.evaluate(checks, data, protocol)}
        ids = [c.id for c in checks]
        existing = list(Query.objects.filter(participant_id=participant_id, origin=CHECK, check_id__in=ids)
                        .order_by("id"))
        active = {(q.check_id, q.visit, q.form, q.record, q.item): q for q in existing if q.status != CLOSED}
        settled = {((q.check_id, q.visit, q.form, q.record, q.item), q.fingerprint) for q in existing
                   if q.status == CLOSED and q.closed_by_id is not None}
        now = timezone.now()
        raised = closed = 0
        messages = {c.id: c.message.en for c in checks}
        events = []
        for key, f in findings.items():
            if key in active or (key, f.fingerprint) in settled:
                continue
            assert_writable("queries")
            q = Query.objects.create(participant_id=participant_id, visit=f.visit, form=f.form, record=f.record,
                                     item=f.item, origin=CHECK, check_id=f.check_id, fingerprint=f.fingerprint[:200],
                                     status=OPEN, assigned_to="site", raised_by=None, raised_role="",
                                     raised_at=now, updated_at=now)
            text = f"{messages[f.check_id]} ({f.fingerprint})"
            _message(q, QueryMessage.RAISE, text, None, now)
            events.append(dict(action="create", obj_type="query", obj_id=q.pk, participant_id=participant_id, when=now,
                               changes={"visit": f.visit, "form": f.form, "record": f.record, "item": f.item,
                                        "status": [None, OPEN], "assigned_to": "site", "text": text,
                                        "origin": CHECK, "check": f.check_id}))
            raised += 1
        for key, q in active.items():
            if key in findings:
                continue
            assert_writable("queries")
            old = q.status
            q.status, q.updated_at, q.closed_at, q.closed_by = CLOSED, now, now, None
            q.save(update_fields=["status", "updated_at", "closed_at", "closed_by"])
            _message(q, QueryMessage.AUTO_CLOSE, AUTO_CLOSE_TEXT, None, now)
            events.append(dict(action="change", obj_type="query", obj_id=q.pk, participant_id=participant_id,
                               when=now, reason=AUTO_CLOSE_TEXT, changes={"status": [old, CLOSED],
                                                                          "check": q.check_id}))
            closed += 1
        if events:
            audit.record_many(actor=None, events=events)
    return {"raised": raised, "closed": closed}


def _check_forms(check, protocol) -> set[str] | None:
    """The eCRF forms a check reads (None: it reads no eCRF form)."""
    if check.kind in ("change_between_visits", "above"):
        return {check.form}
    if check.kind == "lab_outside_range":
        return set(editchecks.lab_forms(protocol, check.forms))
    if check.kind in editchecks.AE_BEFORE_TREATMENT:  # the form recording the treatment, if any
        treatment = protocol.treatment_procedure
        form = protocol.procedure_form(treatment.id) if treatment is not None else None
        return {form.id} if form is not None and treatment.id not in protocol.page_procedures else set()
    return None


def run_all_checks(participant_ids=None) -> dict:
    """Every edit check on every participant (or those given): after a protocol amendment, or to
    bring data entered before the checks existed under them."""
    total = {"raised": 0, "closed": 0}
    ids = participant_ids if participant_ids is not None else Participant.objects.values_list("pk", flat=True)
    for pid in list(ids):
        got = run_checks(pid, set().union(*editchecks.READS.values()))
        total = {k: total[k] + got[k] for k in total}
    return total
