"""Record locks (X-7.5): the data manager locks one form of a visit, one visit or a participant's
whole casebook; the trial lock (``annulus.trial.lock``) is the last level above them.

Every service that writes a participant's data calls ``assert_record_writable(participant_id,
visit, form)`` right after ``assert_writable`` in its transaction. It takes the participant's row
``FOR UPDATE`` (so a lock and a write of the same participant cannot cross) and raises
``RecordLocked`` when the casebook, that visit or that form is locked: pages show it on the form,
the API answers 409 naming the field ``lock`` (as the trial lock answers 409 naming ``trial``).

A record is addressed as in the shared data-point address: ``visit`` is the visit key of URLs
(a protocol visit id, ``u1``/``u2`` for unscheduled visits, ``screening`` for consent, screening
evidence and the eligibility decision, ``""`` for the casebook and log forms); ``form`` is the
form id (``""`` for a whole visit).

The apps that hold a participant's records (visits, safety, queries, all above this one) tell it
what they hold through a ``record_work.py`` module
(``open_work(participant_id, visit, form) -> list[str]``: unfinished work that forbids a lock;
optionally ``recorded_visits(participant_id) -> {visit key: [form ids]}`` for visits that exist
only once recorded, such as unscheduled ones); this app imports none of them.
"""

from __future__ import annotations


from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from annulus.errors import RuleViolation

from .models import Participant, RecordLock

SCREENING = "screening"
# forms outside the visit schedule, by the visit they belong to ("" = the casebook's log forms)
RECORD_FORMS = {
    SCREENING: {"consent": _("Informed consent"), "screening": _("Screening evidence"),
                "eligibility": _("Eligibility decision")},
    "": {"adverse_event": _("Adverse-event log"), "end_of_study": _("End of study")},
}


class RecordLocked(RuleViolation):
    """A write to a locked form, visit or casebook. Pages show it on the form; the API answers
    409 naming the field ``lock``."""

    status = 409

    def __init__(self, lock: RecordLock):
        who = lock.locked_by.get_full_name() or lock.locked_by.username
        since = timezone.localtime(lock.locked_at).strftime("%Y-%m-%d %H:%M")
        values = {"who": who, "since": since, "p": lock.participant.label,
                  "visit": visit_name(lock.visit), "form": form_name(lock.visit, lock.form)}
        if lock.level == "casebook":
            message = gettext("the casebook of %(p)s is locked (by %(who)s since %(since)s); "
                              "the data manager must unlock it before anything in it can change") % values
        elif lock.level == "visit":
            message = gettext("the visit %(visit)s of %(p)s is locked (by %(who)s since %(since)s); "
                              "the data manager must unlock it before it can change") % values
        elif lock.visit:
            message = gettext("the form %(form)s of visit %(visit)s of %(p)s is locked (by %(who)s since "
                              "%(since)s); the data manager must unlock it before it can change") % values
        else:
            message = gettext("the %(form)s of %(p)s is locked (by %(who)s since %(since)s); "
                              "the data manager must unlock it before it can change") % values
        super().__init__("lock", message)
        self.lock = lock


def assert_record_writable(participant_id, visit: str = "", form: str = "") -> None:
    """Raise ``RecordLocked`` if the participant's casebook, the visit ``visit`` or its form
    ``form`` is locked. Call inside the write's transaction, right after ``assert_writable``:
    it locks the participant's row, so a record lock waits for the write under way and a write
    that starts after the lock sees it."""
    if participant_id is None:
        return
    list(Participant.objects.select_for_update().filter(pk=participant_id).values_list("pk"))
    keys = [("", "")]
    if visit:
        keys.append((visit, ""))
    if form:
        keys.append((visit or "", form))
    found = {(r.visit, r.form): r for r in RecordLock.objects.filter(
        participant_id=participant_id, unlocked_at__isnull=True,
        visit__in={v for v, _f in keys}, form__in={f for _v, f in keys}).select_related("locked_by", "participant")}
    for key in keys:  # the widest level first: the casebook, then the visit, then the form
        if key in found:
            raise RecordLocked(found[key])


def participant_locks(participant_id) -> dict[tuple[str, str], RecordLock]:
    """Every lock in force of one participant by (visit, form), read once per page
    (``read_once``; for pages)."""
    from annulus.trial.selectors import read_once

    return read_once(("record_locks", int(participant_id)), lambda: {
        (r.visit, r.form): r for r in RecordLock.objects.filter(
            participant_id=participant_id, unlocked_at__isnull=True).select_related("locked_by").order_by("id")})


def open_lock(participant_id, visit: str = "", form: str = "") -> RecordLock | None:
    """The lock in force on exactly this record (no row lock: for pages)."""
    return participant_locks(participant_id).get((visit, form))


def covering_lock(participant_id, visit: str = "", form: str = "") -> RecordLock | None:
    """The lock that keeps this record from changing: its own, its visit's or the casebook's
    (the widest first). For pages."""
    keys = [("", "")] + ([(visit, "")] if visit else []) + ([(visit, form)] if form else [])
    rows = participant_locks(participant_id)
    return next((rows[k] for k in keys if k in rows), None)


# ---- names and targets -------------------------------------------------------------------------

def _protocol():
    from annulus.trial.selectors import active_protocol

    return active_protocol()


def visit_name(visit: str) -> str:
    """A visit key by its name in the page's language."""
    if not visit:
        return ""
    if visit == SCREENING:
        return gettext("Screening")
    if visit[:1] == "u" and visit[1:].isdigit():
        return f"{gettext('Unscheduled')} {visit[1:]}"
    v = next((v for v in _protocol().schedule.visits if v.id == visit), None)
    return v.name.get(get_language()) if v else visit


def form_name(visit: str, form: str) -> str:
    if not form:
        return ""
    if form in RECORD_FORMS.get(visit, {}):
        return str(RECORD_FORMS[visit][form])
    f = next((f for f in _protocol().schedule.forms if f.id == form), None)
    return f.name.get(get_language()) if f else form


def record_name(visit: str, form: str) -> str:
    """The locked record by name: "casebook", a visit, or a form of a visit."""
    if not visit and not form:
        return gettext("Casebook")
    if not form:
        return visit_name(visit)
    return f"{visit_name(visit)} · {form_name(visit, form)}" if visit else form_name(visit, form)


def _providers():
    from annulus.trial.extensions import app_modules

    return app_modules("record_work")


def known_forms(participant_id: int, visit: str) -> tuple[str, ...] | None:
    """The forms of a visit of this participant, or None if there is no such visit."""
    if visit in RECORD_FORMS:
        return tuple(RECORD_FORMS[visit])
    v = next((v for v in _protocol().schedule.visits if v.id == visit), None)
    if v is not None:
        return tuple(v.forms)
    for module in _providers():
        recorded = getattr(module, "recorded_visits", None)
        if recorded is not None:
            forms = recorded(participant_id).get(visit)
            if forms is not None:
                return tuple(forms)
    return None


def check_target(participant_id: int, visit: str, form: str) -> None:
    """Refuse a lock target that names no visit or form of this participant (fields ``visit``,
    ``form``)."""
    if not isinstance(visit, str) or not isinstance(form, str):
        raise RuleViolation("visit", gettext("must be text"))
    if form and not visit and form not in RECORD_FORMS[""]:
        raise RuleViolation("form", gettext("'%(f)s' is not a form of the casebook") % {"f": form[:40]})
    if visit:
        forms = known_forms(participant_id, visit)
        if forms is None:
            raise RuleViolation("visit", gettext("unknown visit '%(v)s'") % {"v": visit[:20]})
        if form and form not in forms:
            raise RuleViolation("form", gettext("'%(f)s' is not a form of the visit %(v)s") % {
                "f": form[:40], "v": visit_name(visit)})


def open_work(participant_id: int, visit: str = "", form: str = "") -> list[str]:
    """Unfinished work on the record (and on everything below it) that forbids locking it: draft
    forms, open queries, adverse-event tasks and SAE reports still to send."""
    lines: list[str] = []
    for module in _providers():
        lines.extend(module.open_work(participant_id, visit, form))
    return lines
