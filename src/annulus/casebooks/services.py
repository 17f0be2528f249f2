"""The investigator's electronic signature of a participant's casebook (21 CFR 11.50, 11.70,
11.100, 11.200).

Who signs: the principal investigator. The protocol is single-centre and names no investigator
responsible for particular participants: research records go to the research leader for review
and "all data" to the project leader, and the CRFs are "checked and signed" before the first-level
unblinding. The principal investigator is that one responsible person (ICH E6 4.9: the
investigator is responsible for the accuracy and completeness of the CRFs). A sub-investigator
signs eligibility decisions (``participant.decide``) but not a casebook; a coordinator signs
neither. A signature is the signer's own: the user name typed must be the signed-in user's
(11.100: a signature belongs to one individual; 11.200: both components, name and password, at
each signing), and the password is checked by ``annulus.accounts.services.sign``, so a wrong
password counts towards the account's lockout and is audited.

What is signed: the canonical casebook (``selectors.casebook_content``) and its SHA-256, kept
with the signature (11.70: bound to the record). A later change of any of it makes the hash
differ: the signature is then shown as invalidated and a new one is asked for. Signing is part of
closing the trial, so it is refused after the database lock (the pre-lock checklist lists the
casebooks not signed).
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from annulus.accounts.permissions import has
from annulus.audit import services as audit
from annulus.errors import NotPermitted, Problems, RuleViolation, RuleViolations
from annulus.trial.lock import assert_writable
from annulus.trial.selectors import active_version

from . import selectors
from .models import CasebookSignature

MEANING = selectors.MEANING


class NotTheSigner(RuleViolation):
    """Someone else's casebook signature: another user's name, or a user who may not sign."""

    status = 403


class AlreadySigned(RuleViolation):
    status = 409


def may_sign(user) -> bool:
    """Whether the user signs casebooks: the principal investigator (an active investigator
    account marked principal investigator)."""
    if not has(user, "casebook.sign") or not getattr(user, "is_active", False):
        return False
    membership = getattr(user, "membership", None)
    return bool(membership and membership.is_principal_investigator)


def signer_problems(actor, username: str, password: str | None, *, batch: bool = False) -> list[RuleViolation]:
    """What is wrong with a signing request before its password is checked: the user name
    missing or not the signed-in user's, a signer who is not the principal investigator, the
    password missing. Pages show these beside a missing "I confirm" without checking the password."""
    problems = Problems()
    typed = (username or "").strip()
    if not typed:
        problems.add("username", "is required to sign (re-enter your user name)")
    elif typed != actor.username:
        # a mistyped or borrowed name is bad input (400); who may sign at all is the 403 below
        problems.add("username", "is not the signed-in user: a casebook is signed only by the person signed in, "
                                 "as themselves")
    if not may_sign(actor):
        problems.violations.append(NotTheSigner("username", "only the principal investigator signs a casebook"))
    if not batch and password in (None, ""):
        problems.add("password", "is required to sign (re-enter your password)")
    return problems.violations


def sign_casebook(*, actor, participant_id: int, username: str = "", password: str | None = None,
                  content_hash: str = "", signature=None) -> CasebookSignature:
    """Sign participant ``participant_id``'s casebook as ``actor`` (the signed-in user), who
    re-enters their user name and password (or, for a server-side batch such as the demo, a
    ``Signature`` of ``annulus.accounts.services.sign`` with this meaning: one continuous session).
    ``content_hash``, when given, is the hash of the casebook the signer read: if the casebook
    changed since, nothing is signed."""
    from annulus.accounts.services import Signature, sign

    if isinstance(signature, Signature):
        if signature.user.pk != getattr(actor, "pk", None) or signature.meaning != MEANING:
            raise NotTheSigner("username", "the signature is not this investigator's casebook signature")
        username, password = actor.username, None

    if not has(actor, "casebook.sign"):
        raise NotPermitted("casebook.sign")
    found = signer_problems(actor, username, password, batch=signature is not None)
    if found:
        if len(found) == 1:
            raise found[0]
        every = RuleViolations(found)
        if any(isinstance(v, NotTheSigner) for v in found):
            every.status = 403
        raise every
    # before the transaction: a failed attempt is kept even though the signature is refused
    if signature is None:
        signature = sign(user=actor, password=password, meaning=MEANING, what="casebook signature")
    with transaction.atomic():
        assert_writable("casebook signature")
        from annulus.participants.models import Participant

        p = Participant.objects.select_for_update().filter(pk=participant_id).first()
        if p is None:
            raise RuleViolation("participant", "no such participant")
        if not p.consents.exists():
            raise RuleViolation("casebook", "there is nothing to sign: no informed consent is recorded")
        content = selectors.casebook_content(p)
        digest = selectors.hash_of(content)
        if content_hash and content_hash != digest:
            raise RuleViolation("content_hash", "the casebook changed after you opened it; read it again and sign")
        last = CasebookSignature.objects.filter(participant=p).order_by("-id").first()
        if last is not None and last.content_hash == digest:
            raise AlreadySigned("casebook", "is already signed and has not changed since")
        now = timezone.now()
        s = CasebookSignature.objects.create(
            participant=p, signed_by=signature.user, signer_name=selectors._name(signature.user), signed_at=now,
            meaning=signature.meaning, content_hash=digest, content=content, protocol_version=active_version())
        audit.record(actor=actor, action="sign", obj_type="casebook_signature", obj_id=s.pk, participant_id=p.pk,
                     changes={"content_hash": [last.content_hash if last else None, digest],
                              "signer_name": [None, s.signer_name], "meaning": [None, s.meaning]},
                     reason=f"electronic signature: {s.meaning}"
                            + (" (again: the casebook changed after the signature of "
                               f"{timezone.localtime(last.signed_at):%Y-%m-%d %H:%M})" if last else ""),
                     protocol_version=s.protocol_version.version)
    return s
