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
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password, make_password
from django.core import signing
from django.db import transaction
from django.utils import timezone

from annulus.audit import services as audit
from annulus.errors import RuleViolation
from annulus.participants.locks import RecordLocked, assert_record_writable
from annulus.participants.models import Participant
from annulus.trial.lock import TrialLocked, assert_writable
from annulus.visits import crf
from annulus.visits import selectors as visit_selectors
from annulus.visits import services as visit_services
from annulus.visits.models import FormRecord

from .models import CardCode, Contact, SelfEntryLink
from .selectors import (NOT_ISSUED, contact_of, current_card, link_by_token, live_links, open_questionnaires,
                        patient_forms, patient_items, token_hash, usable, visit_of)
from .senders import OutgoingLink, Recipient, SendFailed, get_sender

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


def _new_code() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))


@dataclass
class Issued:
    link: SelfEntryLink
    token: str  # shown once, never stored
    card_code: str | None  # shown once when the participant had none
    sent_via: str = ""  # the sender's channel when the link was sent


def _expiry(participant, visit, slot) -> datetime:
    """The end of the visit window; for a recorded visit no later than the eCRF accepts a
    collection time for it (``COLLECTION_SLACK_DAYS`` after its date)."""
    last = None
    if visit is not None:
        last = visit.visit_date + timedelta(days=visit_services.COLLECTION_SLACK_DAYS)
    if slot is not None and slot.window_end is not None:
        last = slot.window_end if last is None else min(last, slot.window_end)
    return timezone.make_aware(datetime.combine(last, time(23, 59, 59)))


def _open_forms(participant, visit_key: str, today) -> tuple[object, object, list[str]]:
    """(slot, visit row or None, the patient-reported forms still to answer, in the schedule's
    order) for a link, or the RuleViolation that says why none can be issued: the visit must be
    recorded as attended, or be a scheduled visit whose window is open."""
    from annulus.trial.selectors import active_protocol

    slot = visit_selectors.slot_for(participant, visit_key, today=today)
    if slot is None:
        raise RuleViolation("visit", f"unknown visit '{visit_key}'")
    visit = visit_selectors.get_visit(participant.pk, visit_key)
    if visit is not None and visit.outcome != "attended":
        raise RuleViolation("visit", "this visit is recorded as missed")
    if visit is None:
        if slot.procedure or slot.window_start is None:
            raise RuleViolation("visit", "record the visit date first; this visit has no window yet")
        if today < slot.window_start:
            raise RuleViolation("visit", f"the window of this visit opens on {slot.window_start}")
        expected = slot.forms
        records = {}
        protocol = active_protocol()  # the visit is recorded under it when the answers come
    else:
        expected = visit.forms
        records = visit_selectors.form_records(visit)
        protocol = protocol_for(visit.protocol_version)
    forms = [f for f in patient_forms(protocol, expected)
             if not (records.get(f) is not None and records[f].is_complete)]
    if not forms:
        raise RuleViolation("visit", "this visit has no patient-reported questionnaire still to answer")
    return slot, visit, forms


def _make_link(actor, p, visit_key: str, now: datetime, *, card_code: bool) -> Issued:
    """Inside the caller's transaction: the link (and a card code when ``card_code`` and the
    participant has none), audited."""
    if p.status not in visit_selectors.ACTIVE:
        raise RuleViolation("status", f"no link can be issued for a participant who is {p.status_label}")
    slot, visit, forms = _open_forms(p, visit_key, timezone.localdate(now))
    expires = _expiry(p, visit, slot)
    if expires <= now:
        raise RuleViolation("visit", "the window of this visit has closed")
    has_card = current_card(p.pk) is not None
    if not has_card and not card_code:
        raise RuleViolation("card_code", "the participant has no card code yet; issue the first link in clinic")
    token = secrets.token_urlsafe(32)
    link = SelfEntryLink.objects.create(token_hash=token_hash(token), participant=p, visit=visit,
                                        visit_key=visit_key, instruments=forms, expires_at=expires,
                                        issued_by=actor, issued_at=now)
    code = None
    if not has_card:
        code = _new_code()
        card = CardCode.objects.create(participant=p, code_hash=_code_hash(code), created_by=actor, created_at=now)
        audit.record(actor=actor, action="create", obj_type="card_code", obj_id=card.pk, participant_id=p.pk,
                     changes={"card_code": [None, "issued (shown once, stored as a hash)"]},
                     protocol_version=p.protocol_version.version, when=now)
    audit.record(actor=actor, action="create", obj_type="selfentry_link", obj_id=link.pk, participant_id=p.pk,
                 changes={"visit": [None, visit_key], "instruments": [None, forms], "expires_at": [None, expires],
                          "visit_recorded": visit is not None},
                 reason="" if actor is not None else "the visit window opened",
                 protocol_version=p.protocol_version.version, when=now)
    return Issued(link=link, token=token, card_code=code)


def recipient_of(p) -> Recipient:
    contact = contact_of(p.pk)
    return Recipient(phone=p.phone or "", email=contact.email if contact else "")


def language_of(p) -> str:
    contact = contact_of(p.pk)
    return contact.language if contact else settings.LANGUAGE_CODE


def _send(actor, issued: Issued, url: str, sender, now: datetime) -> None:
    """Inside the caller's transaction: send the link and audit it (who, the visit, the channel;
    never the token). A failure raises ``RuleViolation("sender", ...)`` and the caller's
    transaction undoes the link."""
    from annulus.trial.selectors import active_protocol

    link, p = issued.link, issued.link.participant
    contact = recipient_of(p)
    if not sender.can_reach(contact):
        need = "e-mail address" if sender.channel == "email" else "phone number or e-mail address"
        raise RuleViolation("contact", f"the participant has no {need} for sending ({sender.channel})")
    language = language_of(p)
    pv = next((v for v in active_protocol().schedule.visits if v.id == link.visit_key), None)
    name = pv.name.get(language) if pv else link.visit_key
    try:
        sender.send(contact, OutgoingLink(url=url, visit_name=name, expires_on=timezone.localdate(link.expires_at)),
                    language)
    except SendFailed as exc:
        raise RuleViolation("sender", f"the link was not sent: {exc}") from None
    link.sent_via, link.sent_at = sender.channel, now
    link.save(update_fields=["sent_via", "sent_at"])
    issued.sent_via = sender.channel
    audit.record(actor=actor, action="change", obj_type="selfentry_link", obj_id=link.pk, participant_id=p.pk,
                 changes={"visit": link.visit_key, "sent_via": [None, sender.channel], "language": language},
                 reason="link sent to the participant", protocol_version=p.protocol_version.version, when=now)


def link_url(token: str, base: str | None = None) -> str:
    from django.urls import reverse

    return (base or settings.ANNULUS_SITE_URL).rstrip("/") + reverse("selfentry", args=[token])


def issue_link(*, actor, participant_id: int, visit_key: str, at: datetime | None = None, send: bool = False,
               url_base: str | None = None, sender=None) -> Issued:
    """A one-time link for the patient-reported forms of a visit that are not yet complete: a
    recorded visit, or a scheduled one whose window is open (the visit is then recorded when the
    participant sends the answers). Only the token's hash is stored; a card code is made (and
    only its hash stored) when the participant has none. With ``send`` the link goes out through
    the configured sender in the same transaction: issued and sent, or neither."""
    from annulus.accounts.permissions import require

    require(actor, "visits.edit")
    now = timezone.now() if at is None else at
    with transaction.atomic():
        assert_writable("visit data")
        assert_record_writable(participant_id, visit_key)
        p = Participant.objects.select_for_update().select_related("protocol_version").filter(pk=participant_id).first()
        if p is None:
            raise RuleViolation("participant", "no such participant")
        issued = _make_link(actor, p, visit_key, now, card_code=True)
        if send:
            _send(actor, issued, link_url(issued.token, url_base), sender or get_sender(), now)
    return issued


@dataclass
class DueReport:
    issued: list = field(default_factory=list)  # (participant, visit key, channel)
    skipped: list = field(default_factory=list)  # (participant, visit key, reason)


def due_visits(today) -> list[tuple[object, str]]:
    """(participant, visit key) of every participant in the trial whose scheduled visit with a
    patient-reported form has its window open today, not recorded as missed, with no link
    waiting, none answered and the questionnaire not entered otherwise."""
    rows = []
    for row in open_questionnaires(today=today):
        p, s = row["participant"], row["slot"]
        if row["status"] != NOT_ISSUED:
            continue
        if SelfEntryLink.objects.filter(participant=p, visit_key=s.key, used_at__isnull=False).exists():
            continue
        rows.append((p, s.key))
    return rows


def issue_due(*, at: datetime | None = None, sender=None, url_base: str | None = None) -> DueReport:
    """The schedule's links: for each visit of ``due_visits`` a link sent through the configured
    sender, each in its own transaction, audited as the system's ("the visit window opened").
    Nothing is issued for a participant without a card code (it is handed out in clinic, never
    sent with the link) or without the contact the sender needs; a locked casebook or visit is
    left alone. Running it again issues nothing new. The trial's lock stops it (``TrialLocked``)."""
    now = timezone.now() if at is None else at
    sender = sender or get_sender()
    report = DueReport()
    assert_writable("visit data")
    for p, key in due_visits(timezone.localdate(now)):
        try:
            with transaction.atomic():
                assert_writable("visit data")
                assert_record_writable(p.pk, key)
                locked = Participant.objects.select_for_update().select_related("protocol_version").get(pk=p.pk)
                if live_links([p.pk], now).filter(visit_key=key).exists():
                    continue  # issued meanwhile
                issued = _make_link(None, locked, key, now, card_code=False)
                _send(None, issued, link_url(issued.token, url_base), sender, now)
        except RecordLocked:
            report.skipped.append((p, key, "the record is locked"))
        except TrialLocked:
            raise
        except RuleViolation as exc:
            report.skipped.append((p, key, exc.message))
        else:
            report.issued.append((p, key, issued.sent_via))
    return report


def revoke_link(*, actor, link_id: int, reason: str, at: datetime | None = None) -> SelfEntryLink:
    """End a link before its time (lost slip, wrong person, ...): it then gets the same page as a
    link that never existed. Needs a reason; audited."""
    from annulus.accounts.permissions import require

    require(actor, "visits.edit")
    now = timezone.now() if at is None else at
    reason = str(reason or "").strip()
    if not reason:
        raise RuleViolation("reason", "give the reason for revoking the link")
    with transaction.atomic():
        assert_writable("visit data")
        link = SelfEntryLink.objects.select_for_update().select_related("participant__protocol_version").filter(
            pk=link_id).first()
        if link is None:
            raise RuleViolation("link", "no such link")
        assert_record_writable(link.participant_id, link.visit_key)
        if link.used_at is not None:
            raise RuleViolation("link", "this link was used: the answers are in")
        if link.revoked_at is not None:
            raise RuleViolation("link", "this link is already revoked")
        link.revoked_at, link.revoked_by, link.revoke_reason = now, actor, reason[:1000]
        link.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
        audit.record(actor=actor, action="change", obj_type="selfentry_link", obj_id=link.pk,
                     participant_id=link.participant_id, changes={"visit": link.visit_key, "revoked_at": [None, now]},
                     reason=reason[:1000], protocol_version=link.participant.protocol_version.version, when=now)
    return link


def reset_card_code(*, actor, participant_id: int, reason: str, at: datetime | None = None) -> str:
    """A new card code for the participant (the card was lost, the code seen by someone else):
    the old one stops working, its row is kept as replaced; the new code is returned to be shown
    once. Needs a reason; audited."""
    from annulus.accounts.permissions import require

    require(actor, "visits.edit")
    now = timezone.now() if at is None else at
    reason = str(reason or "").strip()
    if not reason:
        raise RuleViolation("reason", "give the reason for the new card code")
    with transaction.atomic():
        assert_writable("visit data")
        assert_record_writable(participant_id)
        p = Participant.objects.select_for_update().select_related("protocol_version").filter(pk=participant_id).first()
        if p is None:
            raise RuleViolation("participant", "no such participant")
        if p.status not in visit_selectors.ACTIVE:
            raise RuleViolation("status", f"no card code for a participant who is {p.status_label}")
        old = CardCode.objects.select_for_update().filter(participant=p, replaced_at__isnull=True).first()
        if old is not None:
            old.replaced_at, old.replaced_by, old.replace_reason = now, actor, reason[:1000]
            old.save(update_fields=["replaced_at", "replaced_by", "replace_reason"])
        code = _new_code()
        card = CardCode.objects.create(participant=p, code_hash=_code_hash(code), created_by=actor, created_at=now)
        audit.record(actor=actor, action="create", obj_type="card_code", obj_id=card.pk, participant_id=p.pk,
                     changes={"card_code": ["replaced" if old else None, "issued (shown once, stored as a hash)"],
                              "replaces": old.pk if old else None},
                     reason=reason[:1000], protocol_version=p.protocol_version.version, when=now)
    return code


LANGUAGES = ("zh-hans", "en")


def set_contact(*, actor, participant_id: int, email: str, language: str, reason: str = "",
                at: datetime | None = None):
    """Record where the participant's links are sent (an e-mail address; the phone is the
    participant's own) and in which language. A change adds a row and needs a reason; audited."""
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    from annulus.accounts.permissions import require

    require(actor, "visits.edit")
    now = timezone.now() if at is None else at
    email = str(email or "").strip()
    language = str(language or "").strip().lower()
    reason = str(reason or "").strip()
    if len(email) > 200:
        raise RuleViolation("email", "at most 200 characters")
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise RuleViolation("email", f"'{email[:60]}' is not an e-mail address") from None
    if language not in LANGUAGES:
        raise RuleViolation("language", "choose zh-hans or en")
    with transaction.atomic():
        assert_writable("participant data")
        assert_record_writable(participant_id)
        p = Participant.objects.select_for_update().select_related("protocol_version").filter(pk=participant_id).first()
        if p is None:
            raise RuleViolation("participant", "no such participant")
        old = contact_of(p.pk)
        if old is not None and old.email == email and old.language == language:
            return old
        if old is not None and not reason:
            raise RuleViolation("reason", "give the reason for the change")
        row = Contact.objects.create(participant=p, email=email, language=language, recorded_by=actor,
                                     recorded_at=now, reason=reason[:1000])
        audit.record(actor=actor, action="change" if old else "create", obj_type="selfentry_contact", obj_id=row.pk,
                     participant_id=p.pk, changes=audit.diff({"email": old.email, "language": old.language} if old
                                                             else {}, {"email": email, "language": language}),
                     reason=reason[:1000], protocol_version=p.protocol_version.version, when=now)
    return row


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
        assert_record_writable(link.participant_id, link.visit_key)
        for form_id in link.instruments:
            assert_record_writable(link.participant_id, link.visit_key, form_id)
    except RecordLocked:
        raise RecordClosed() from None


class CodeResult:
    OK, WRONG, LOCKED, GONE = "ok", "wrong", "locked", "gone"


_STAND_IN: list[str] = []


def _code_matches(code: str, code_hash: str | None) -> bool:
    """Whether ``code`` is the card code of ``code_hash``. Every answer to a card code costs one
    password-hash check, also when there is no code to check against (a link that does not work,
    a locked link, a participant without a card, an empty code): otherwise the time of the answer
    would tell a link that works from one that does not, and a guessed link from a real one."""
    if not _STAND_IN:
        _STAND_IN.append(make_password(secrets.token_urlsafe(12)))
    if code and code_hash:
        return check_password(code, code_hash)
    check_password(code or "-", _STAND_IN[0])
    return False


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
            _code_matches(code, None)
            return CodeResult.GONE, None
        if link.locked_until is not None and link.locked_until > now:
            _code_matches(code, None)
            return CodeResult.LOCKED, link
        _assert_open(link)  # nothing is counted or opened on a locked record
        card = current_card(link.participant_id)
        if not _code_matches(code, card.code_hash if card is not None else None):
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
    """Save the participant's answers through the eCRF's own service and use up the link. A form
    the participant answers whole is saved complete; one of which the participant answers a part
    (its instrument's ``SelfReport.groups``, the JOA's patient part) is saved as a draft for the
    investigator to add the rest (the examination). A link the schedule issued before the visit was
    recorded records the visit first (dated today, the participant as the source), in the same
    transaction. A questionnaire completed by the staff since the link was issued is left as it
    is. Raises ``LinkGone`` or the eCRF's ``RuleViolation``s."""
    now = timezone.now() if at is None else at
    device = str(device or "")[:300]
    actor = participant_actor()
    with transaction.atomic():
        assert_writable("visit data")
        link = link_by_token(token, lock=True)
        if link is None or not usable(link, now) or link.opened_at is None:
            raise LinkGone
        _assert_open(link)
        visit = visit_of(link)
        recorded = None
        if visit is None:
            visit = visit_services.open_visit(actor=actor, participant_id=link.participant_id,
                                              visit_id=link.visit_key, visit_date=timezone.localdate(now), at=now,
                                              source="participant")
            recorded = visit.visit_date
        protocol = protocol_for(visit.protocol_version)
        records = visit_selectors.form_records(visit)
        complete, draft, left = {}, {}, []
        for form_id in link.instruments:
            if form_id not in visit.forms or (records.get(form_id) is not None and records[form_id].is_complete):
                left.append(form_id)
                continue
            items = answers.get(form_id) or {}
            allowed = {i.id for i in patient_items(protocol, form_id)}
            items = {k: v for k, v in items.items() if k in allowed}
            whole = crf.spec_for(protocol, form_id).patient_answers_all
            (complete if whole else draft)[form_id] = items
        if complete:
            visit_services.save_visit_forms(actor=actor, participant_id=link.participant_id, visit_key=link.visit_key,
                                            forms=complete, complete=True, collected_at=now, at=now,
                                            source="participant")
        for form_id, items in draft.items():
            current = FormRecord.objects.filter(visit=visit, form_id=form_id).first()
            merged = {**(current.items if current else {}), **items}
            visit_services.save_visit_forms(actor=actor, participant_id=link.participant_id, visit_key=link.visit_key,
                                            forms={form_id: merged}, complete=False, collected_at=now, at=now,
                                            source="participant")
        link.used_at = now
        link.device = device
        fields = ["used_at", "device"]
        changes = {"used_at": [None, now], "device": [None, device], "source": "participant"}
        if link.visit_id is None:
            link.visit = visit
            fields.append("visit")
            changes["visit_recorded"] = [None, str(recorded or visit.visit_date)]
        if left:
            changes["already_complete"] = left
        link.save(update_fields=fields)
        audit.record(actor=actor, action="change", obj_type="selfentry_link", obj_id=link.pk,
                     participant_id=link.participant_id, changes=changes, reason="entered by participant", when=now)
    return link


def protocol_for(version):
    from annulus.trial.selectors import protocol_for as _protocol_for

    return _protocol_for(version)


# ---- guessing links: a limit per client address ---------------------------------------------


def note_gone(source: str, token: str, at: datetime | None = None) -> bool:
    """Count a request for a link that does not work from ``source`` (the client's address; a
    repeat of the same link does not count again). True when the address is now refused: after
    ``ANNULUS_SELFENTRY_GUESSES`` within ``ANNULUS_SELFENTRY_GUESS_MINUTES``, for that long. The
    count is state, not trial data, so it is kept while the database is locked too; a refusal
    is audited (the address, never the links tried)."""
    from .models import GuessCount

    now = timezone.now() if at is None else at
    source = str(source or "?")[:64]
    window = timedelta(minutes=settings.ANNULUS_SELFENTRY_GUESS_MINUTES)
    mark = token_hash(token)[:16]
    with transaction.atomic():
        row, _created = GuessCount.objects.select_for_update().get_or_create(
            source=source, defaults={"misses": 0, "first_miss": now})
        if row.blocked_until is not None and row.blocked_until > now:
            return True
        if row.misses and row.last_hash == mark and row.first_miss > now - window:
            return False
        if row.first_miss <= now - window:
            row.misses, row.first_miss = 0, now
        row.misses += 1
        row.last_hash = mark
        blocked = row.misses >= settings.ANNULUS_SELFENTRY_GUESSES
        if blocked:
            row.blocked_until = now + window
            row.misses, row.first_miss = 0, now
        row.save()
        if blocked:
            audit.record(actor=None, action="change", obj_type="selfentry_guard", obj_id=row.pk,
                         changes={"source": source, "blocked_until": [None, row.blocked_until]},
                         reason="too many links that do not work asked for from one address", when=now)
    return blocked
