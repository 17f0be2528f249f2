"""Every write of participant self-entry: issuing a one-time link, checking the card code, and
submitting the answers. Each runs in one transaction with its audit record, after the trial's
lock guard (``assert_writable``).

The answers are saved through the visits app's ``save_visit_forms``/``save_form``, so they pass
exactly the validation and scoring of the eCRF; the actor is the participant's system account
(``participant_actor``), and the audit events name ``source: participant`` with the reason
"entered by participant".
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password, make_password
from django.core import signing
from django.db import transaction
from django.utils import timezone

from annulus.audit import services as audit
from annulus.errors import RuleViolation
from annulus.participants.locks import RecordLocked, assert_record_writable
from annulus.trial.lock import assert_writable
from annulus.visits import selectors as visit_selectors
from annulus.visits import services as visit_services
from annulus.visits.models import FormRecord

from .models import CardCode, SelfEntryLink
from .selectors import PATIENT_FORMS, link_by_token, patient_items, token_hash, usable

# The account the audit trail names for answers a participant entered (no login, no role).
PARTICIPANT_USERNAME = "participant (self-entry)"
CODE_DIGITS = 6
# wrong card codes before the link is locked for a while; after MAX_LOCKS locks it is dead
FAILURES_PER_LOCK = 5
LOCK_MINUTES = 15
MAX_LOCKS = 3
PROOF_SALT = "annulus.selfentry.code"
PROOF_MAX_AGE = 4 * 3600  # seconds a correct card code is good for on one device


def participant_actor():
    """The system account that stands for a participant entering their own answers: inactive,
    no usable password, no role, so it can never log in."""
    user, created = get_user_model().objects.get_or_create(
        username=PARTICIPANT_USERNAME, defaults={"is_active": False, "first_name": "Participant"})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def _code_hash(code: str) -> str:
    return make_password(code)


@dataclass
class Issued:
    link: SelfEntryLink
    token: str  # shown once, never stored
    card_code: str | None  # shown once when the participant had none


def _expiry(participant, visit) -> datetime:
    """The end of the visit window, but no later than the eCRF accepts a collection time for the
    visit (``COLLECTION_SLACK_DAYS`` after its date)."""
    slot = visit_selectors.slot_for(participant, visit.key)
    last = visit.visit_date + timedelta(days=visit_services.COLLECTION_SLACK_DAYS)
    if slot is not None and slot.window_end is not None:
        last = min(last, slot.window_end)
    return timezone.make_aware(datetime.combine(last, time(23, 59, 59)))


def issue_link(*, actor, participant_id: int, visit_key: str, at: datetime | None = None) -> Issued:
    """A one-time link for the patient-reported forms of a recorded visit that are not yet
    complete. Only the token's hash is stored; a card code is made (and only its hash stored)
    when the participant has none."""
    from annulus.accounts.permissions import require

    require(actor, "visits.edit")
    now = timezone.now() if at is None else at
    with transaction.atomic():
        assert_writable("visit data")
        assert_record_writable(participant_id, visit_key)
        visit = visit_selectors.get_visit(participant_id, visit_key)
        if visit is None or visit.outcome != "attended":
            raise RuleViolation("visit", "record the visit date first; the link is for a visit that took place")
        p = visit.participant
        if p.status not in visit_selectors.ACTIVE:
            raise RuleViolation("status", f"no link can be issued for a participant who is {p.status_label}")
        records = visit_selectors.form_records(visit)
        forms = [f for f in PATIENT_FORMS if f in visit.forms
                 and not (records.get(f) is not None and records[f].is_complete)]
        if not forms:
            raise RuleViolation("visit", "this visit has no patient-reported questionnaire still to answer")
        expires = _expiry(p, visit)
        if expires <= now:
            raise RuleViolation("visit", "the window of this visit has closed")
        token = secrets.token_urlsafe(32)
        link = SelfEntryLink.objects.create(token_hash=token_hash(token), participant=p, visit=visit,
                                            instruments=forms, expires_at=expires, issued_by=actor, issued_at=now)
        code = None
        if not CardCode.objects.filter(participant=p).exists():
            code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
            card = CardCode.objects.create(participant=p, code_hash=_code_hash(code), created_by=actor, created_at=now)
            audit.record(actor=actor, action="create", obj_type="card_code", obj_id=card.pk, participant_id=p.pk,
                         changes={"card_code": [None, "issued (shown once, stored as a hash)"]},
                         protocol_version=p.protocol_version.version, when=now)
        audit.record(actor=actor, action="create", obj_type="selfentry_link", obj_id=link.pk, participant_id=p.pk,
                     changes={"visit": [None, visit.key], "instruments": [None, forms], "expires_at": [None, expires]},
                     protocol_version=p.protocol_version.version, when=now)
    return Issued(link=link, token=token, card_code=code)


class RecordClosed(RuleViolation):
    """The participant's casebook, this visit or one of its questionnaires is locked: said to the
    participant in their words (the staff's message names the lock's author and the casebook)."""

    status = 409

    def __init__(self):
        from django.utils.translation import gettext

        super().__init__("lock", gettext("These questionnaires can no longer be answered: the research team has "
                                         "closed this record. Please contact the research team."))


def _assert_open(link: SelfEntryLink) -> None:
    """``RecordClosed`` when a record lock covers the link's visit or any of its questionnaires
    (inside the write's transaction, as ``assert_record_writable``)."""
    try:
        assert_record_writable(link.participant_id, link.visit.key)
        for form_id in link.instruments:
            assert_record_writable(link.participant_id, link.visit.key, form_id)
    except RecordLocked:
        raise RecordClosed() from None


class CodeResult:
    OK, WRONG, LOCKED, GONE = "ok", "wrong", "locked", "gone"


def check_code(*, token: str, code: str, at: datetime | None = None) -> tuple[str, SelfEntryLink | None]:
    """Check the card code for a link: ``(CodeResult.OK, link)`` and the link marked opened, or
    WRONG (counted; the fifth in a row locks the link for a while, longer each time, and the
    third lock ends it), LOCKED, or GONE (no such link, used, expired, or not usable: one answer
    for all of them)."""
    now = timezone.now() if at is None else at
    code = str(code or "").strip().replace(" ", "")[:20]
    with transaction.atomic():
        assert_writable("visit data")
        link = link_by_token(token, lock=True)
        if link is None or not usable(link, now) or link.locks >= MAX_LOCKS:
            return CodeResult.GONE, None
        if link.locked_until is not None and link.locked_until > now:
            return CodeResult.LOCKED, link
        _assert_open(link)  # nothing is counted or opened on a locked record
        card = CardCode.objects.filter(participant=link.participant).first()
        if card is None or not code or not check_password(code, card.code_hash):
            link.failed_codes += 1
            fields = ["failed_codes"]
            if link.failed_codes >= FAILURES_PER_LOCK:
                link.locks += 1
                link.failed_codes = 0
                link.locked_until = now + timedelta(minutes=LOCK_MINUTES * 2 ** (link.locks - 1))
                fields += ["locks", "locked_until"]
            link.save(update_fields=fields)
            if link.locked_until is not None and link.locked_until > now:
                audit.record(actor=participant_actor(), action="change", obj_type="selfentry_link", obj_id=link.pk,
                             participant_id=link.participant_id,
                             changes={"locked_until": [None, link.locked_until], "locks": [link.locks - 1, link.locks]},
                             reason="wrong card codes", when=now)
                return CodeResult.LOCKED, link
            return CodeResult.WRONG, link
        changes = {}
        if link.opened_at is None:
            changes["opened_at"] = [None, now]
            link.opened_at = now
        link.failed_codes = 0
        link.save(update_fields=["opened_at", "failed_codes"])
        audit.record(actor=participant_actor(), action="change", obj_type="selfentry_link", obj_id=link.pk,
                     participant_id=link.participant_id, changes={"card_code": "accepted", **changes},
                     reason="entered by participant", when=now)
    return CodeResult.OK, link


def proof_for(link: SelfEntryLink) -> str:
    """What the questionnaire page carries once the card code was right (signed, time-limited)."""
    return signing.dumps({"l": link.pk, "h": link.token_hash[:16]}, salt=PROOF_SALT)


def proof_matches(proof: str, link: SelfEntryLink) -> bool:
    try:
        data = signing.loads(str(proof or ""), salt=PROOF_SALT, max_age=PROOF_MAX_AGE)
    except signing.BadSignature:
        return False
    return isinstance(data, dict) and data.get("l") == link.pk and data.get("h") == link.token_hash[:16]


class LinkGone(Exception):
    """The link cannot be used (unknown, used, expired, participant withdrawn): one answer for all."""


def submit(*, token: str, answers: dict[str, dict], device: str = "", at: datetime | None = None) -> SelfEntryLink:
    """Save the participant's answers through the eCRF's own service and use up the link. VAS,
    ODI and SF-36 are saved complete; the patient part of JOA is saved as a draft for the
    investigator to add the examination. Raises ``LinkGone`` or the eCRF's ``RuleViolation``s."""
    now = timezone.now() if at is None else at
    device = str(device or "")[:300]
    actor = participant_actor()
    with transaction.atomic():
        assert_writable("visit data")
        link = link_by_token(token, lock=True)
        if link is None or not usable(link, now) or link.opened_at is None:
            raise LinkGone
        _assert_open(link)
        protocol = visit_selectors_protocol(link)
        complete, draft = {}, {}
        for form_id in link.instruments:
            items = answers.get(form_id) or {}
            allowed = {i.id for i in patient_items(protocol, form_id)}
            items = {k: v for k, v in items.items() if k in allowed}
            (draft if form_id == "joa" else complete)[form_id] = items
        if complete:
            visit_services.save_visit_forms(actor=actor, participant_id=link.participant_id, visit_key=link.visit.key,
                                            forms=complete, complete=True, collected_at=now, at=now,
                                            source="participant")
        for form_id, items in draft.items():
            current = FormRecord.objects.filter(visit=link.visit, form_id=form_id).first()
            merged = {**(current.items if current else {}), **items}
            visit_services.save_visit_forms(actor=actor, participant_id=link.participant_id, visit_key=link.visit.key,
                                            forms={form_id: merged}, complete=False, collected_at=now, at=now,
                                            source="participant")
        link.used_at = now
        link.device = device
        link.save(update_fields=["used_at", "device"])
        audit.record(actor=actor, action="change", obj_type="selfentry_link", obj_id=link.pk,
                     participant_id=link.participant_id,
                     changes={"used_at": [None, now], "device": [None, device], "source": "participant"},
                     reason="entered by participant", when=now)
    return link


def visit_selectors_protocol(link: SelfEntryLink):
    from annulus.trial.selectors import protocol_for

    return protocol_for(link.visit.protocol_version)
