"""Creating users with roles and issuing API tokens (all audited)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from annulus.audit import services as audit
from annulus.errors import RuleViolation

from .models import ApiToken, LoginLock, Membership
from .permissions import roles_with, unblinded_roles


def needs_cosignature(role: str, is_pi: bool) -> bool:
    """An account that could learn an allocation (an unblinded role, or a role that may unblind
    a participant in an emergency) or that co-signs such accounts (a principal investigator):
    whoever creates it knows its first password, so a principal investigator countersigns the
    creation with their own password, as they sign the delegation log."""
    return role in unblinded_roles() or role in roles_with("unblinding.emergency") or bool(is_pi)


def second_signer(actor, username: str, password: str, *, candidates, field: str, refused: str,
                  same_person: str, what: str):
    """The second person who signs ``actor``'s step: an account among ``candidates`` (a queryset of
    active users who may sign), other than the actor, with their password. An unknown name takes as
    long as a real check, so the answer tells nothing; a wrong password counts towards that account's
    lockout and is audited (``what`` names the signature); a locked account cannot sign. Nothing else
    is written here: callers check it outside their transaction, so the failed attempt is kept."""
    from .backends import check_passed, record_failed_login, take_check

    signer = candidates.filter(username=username, is_active=True).first()
    if signer is None:
        make_password(str(password or ""))
        raise RuleViolation(field, refused)
    if not take_check(signer.username):
        raise RuleViolation(field, gettext("is locked after repeated failed password checks; try again later"))
    if not signer.check_password(str(password or "")):
        record_failed_login(signer.username, "", what=what)
        raise RuleViolation(field, refused)
    check_passed(signer.username)
    if signer.pk == getattr(actor, "pk", None):
        raise RuleViolation(field, same_person)
    return signer


def _cosigner(actor, username: str, password: str, *,
              needed: str = "this account needs a principal investigator's co-signature (their user name and password)",
              other_than: str = "the user creating the account"):
    """The principal investigator who co-signs ``actor``'s step: an active PI other than the actor,
    with their password (``second_signer``)."""
    if not username:
        raise RuleViolation("cosigner_username", needed)
    return second_signer(actor, username, password,
                         candidates=get_user_model().objects.filter(membership__is_principal_investigator=True),
                         field="cosigner_username",
                         refused=gettext("is not an active principal investigator with that password"),
                         same_person=f"must be someone other than {other_than}", what="co-signature")


def clean_sites(sites) -> list[str]:
    """The site ids a user is scoped to, each a site of the protocol in force, once, in the
    protocol's order; an empty list means every site."""
    from annulus.trial.selectors import active_protocol

    declared = [s.id for s in active_protocol().site_list]
    given = [str(s).strip() for s in (sites or ()) if str(s).strip()]
    unknown = [s for s in given if s not in declared]
    if unknown:
        raise RuleViolation("sites", f"unknown site {', '.join(unknown)} (the protocol's sites: {', '.join(declared)})")
    return [s for s in declared if s in given]


def create_user(*, actor, username: str, password: str, role: str, known_roles: set[str], email: str = "",
                full_name: str = "", is_pi: bool = False, phone: str = "", check_password: bool = True,
                cosigner_username: str = "", cosigner_password: str = "", sites=()):
    """Create an account with its role. In the app (``actor`` is a user) an unblinded role or a
    principal investigator needs a PI's co-signature; from the server's command line (``actor``
    None) it does not, since whoever runs it already holds the database. ``sites`` scopes the
    account to those sites' participants (none: every site)."""
    if role not in known_roles:
        raise RuleViolation("role", f"unknown role '{role}'")
    sites = clean_sites(sites)
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise RuleViolation("username", f"user '{username}' already exists")
    if check_password:
        try:
            validate_password(password, User(username=username, email=email))
        except ValidationError as exc:
            raise RuleViolation("password", " ".join(exc.messages)) from None
    cosigner = None
    if getattr(actor, "pk", None) and needs_cosignature(role, is_pi):
        cosigner = _cosigner(actor, cosigner_username, cosigner_password)
    first, _, last = full_name.partition(" ")
    with transaction.atomic():
        user = User.objects.create_user(username=username, password=password, email=email, first_name=first, last_name=last)
        Membership.objects.create(user=user, role=role, is_principal_investigator=is_pi, phone=phone, sites=sites)
        changes = {"username": [None, username], "role": [None, role], "principal_investigator": [None, is_pi]}
        if sites:
            changes["sites"] = [None, sites]
        if cosigner is not None:
            changes["cosigned_by"] = [None, cosigner.username]
        audit.record(actor=actor, action="create", obj_type="user", obj_id=user.pk, changes=changes,
                     reason="" if getattr(actor, "pk", None) else "created from the server's command line")
        if cosigner is not None:
            from annulus.trial.services import notify

            notify(users=[cosigner], kind="account_cosigned", actor=actor,
                   subject=f"You co-signed the account {username} ({role}{', PI' if is_pi else ''})",
                   body=f"Created by {actor.username}. If you did not countersign this, deactivate the account "
                        f"and tell the sponsor.")
    return user


class Signature:
    """An electronic signature whose password check has passed: who signed and what the signature
    means. Pages and API calls make one per request from the password typed; a server-side batch
    (the demo, a benchmark) signs a run of records with one, as a single continuous session."""

    def __init__(self, user, meaning: str):
        self.user = user
        self.meaning = meaning


def sign(*, user, password, meaning: str, what: str = "signature") -> Signature:
    """Check the password a user re-enters to sign. A wrong password counts towards the
    account's lockout and is audited, like a failed login (``what`` names the step in that event);
    a locked account cannot sign. Every re-entered password of the product goes through here. Call it outside any enclosing transaction, or the failed attempt is rolled back with it."""
    from .backends import check_passed, record_failed_login, take_check

    if not getattr(user, "pk", None):
        raise RuleViolation("password", gettext("only a signed-in user can sign"))
    if password in (None, ""):
        raise RuleViolation("password", gettext("is required to sign (re-enter your password)"))
    if not take_check(user.username):  # one of the checks allowed, taken atomically (backends)
        raise RuleViolation("password", gettext(
            "your account is locked after repeated failed password checks; try again later"))
    if not user.check_password(str(password)):
        record_failed_login(user.username, "", what=what)
        # translated when raised, in the language of the page that asked (as TrialLocked)
        raise RuleViolation("password", gettext("is not correct"))
    check_passed(user.username)
    return Signature(user, meaning)


def hash_token(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue_token(*, user, name: str, days: int | None = None) -> str:
    """Returns the token text; it is shown once and only its hash is kept. It is refused after
    ``days`` (``ANNULUS_TOKEN_DAYS`` unless given)."""
    days = settings.ANNULUS_TOKEN_DAYS if days is None else days
    if not isinstance(days, int) or not 1 <= days <= 3650:
        raise RuleViolation("days", "must be a whole number of days from 1 to 3650")
    key = "ann_" + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(user=user, name=name[:80] or "token", prefix=key[:12], key_hash=hash_token(key),
                                        expires=timezone.now() + timedelta(days=days))
        audit.record(actor=user, action="create", obj_type="api_token", obj_id=token.pk,
                     changes={"name": [None, token.name], "expires": [None, token.expires]})
    return key


def revoke_token(*, user, token_id: int) -> None:
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().filter(pk=token_id, user=user, revoked__isnull=True).first()
        if token is None:
            raise RuleViolation("token", "no such active token")
        token.revoked = timezone.now()
        token.revoked_reason = "revoked by owner"
        token.save(update_fields=["revoked", "revoked_reason"])
        audit.record(actor=user, action="void", obj_type="api_token", obj_id=token.pk, reason="revoked by owner",
                     changes={"revoked": [None, token.revoked]})


def _revoke_all(*, actor, user, why: str) -> list[int]:
    """Revoke every token of ``user`` still in force (inside the caller's transaction), each
    marked with when and why and audited; returns their ids. Nothing is deleted."""
    now = timezone.now()
    ids = list(ApiToken.objects.select_for_update().filter(user=user, revoked__isnull=True)
               .order_by("pk").values_list("pk", flat=True))
    ApiToken.objects.filter(pk__in=ids).update(revoked=now, revoked_reason=why)
    for pk in ids:
        audit.record(actor=actor, action="void", obj_type="api_token", obj_id=pk, reason=why,
                     changes={"revoked": [None, now]})
    return ids


def user_for_token(key: str):
    token = (ApiToken.objects.select_related("user", "user__membership")
             .filter(key_hash=hash_token(key), revoked__isnull=True, expires__gt=timezone.now()).first())
    if token is None or not token.user.is_active:
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used=timezone.now())
    return token.user


def token_expired(key: str) -> bool:
    """Whether ``key`` is a token that would be accepted but for its expiry."""
    return ApiToken.objects.filter(key_hash=hash_token(key), revoked__isnull=True, expires__lte=timezone.now()).exists()


def change_password(*, actor, user, password: str, reason: str = "", check_password: bool = True):
    """Set ``user``'s password: their own change (``actor`` is the user) or an administrator's
    reset (``actor`` another user, or None from the server's command line, with a reason; see
    ``reset_password``). Every API token of the account is revoked with it, and one audit event
    says who changed whose password and when, with no password material in it. The user's own
    change ends the requirement to change a password the administrator set."""
    own = getattr(actor, "pk", None) == user.pk
    if not own:
        return reset_password(actor=actor, user=user, password=password, reason=reason, check_password=check_password)
    if check_password:
        _validate_new_password(password, user)
    why = "password changed"
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        user.set_password(password)
        user.save(update_fields=["password"])
        revoked = _revoke_all(actor=actor, user=user, why=why)
        changes = {"password": why, "tokens_revoked": len(revoked)}
        if Membership.objects.filter(user=user, must_change_password=True).update(must_change_password=False):
            changes["must_change_password"] = [True, False]
        audit.record(actor=actor, action="change", obj_type="user", obj_id=user.pk, changes=changes,
                     reason=(reason or "").strip() or why)
    if hasattr(user, "membership"):
        user.membership.must_change_password = False
    return user


def _validate_new_password(password: str, user) -> None:
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise RuleViolation("password", " ".join(exc.messages)) from None


def reset_password(*, actor, user, password: str, reason: str, check_password: bool = True):
    """The administrator sets a temporary password for ``user`` (``actor`` an administrator on the
    Users page, or None from the server's command line), with a reason. In one transaction: the
    password is set, every API token of the account is revoked, the account's login locks are
    cleared (the user is to log in with the new password), the account is marked so that the
    user must choose their own password at the next login, and one audit event records who, when,
    why and what was cleared, with no password material in it. The user's sessions end with the
    old password. An administrator changes their own password on the password page, with the old
    one: not here. Accounts are not trial data: this stays allowed after the database lock
    (``annulus.trial.lock.ALLOWED_AFTER_LOCK["accounts"]``)."""
    reason = (reason or "").strip()
    if getattr(actor, "pk", None) is not None and actor.pk == user.pk:
        raise RuleViolation("user", gettext("is your own account: change your own password on the password page"))
    if not reason:
        raise RuleViolation("reason", gettext("is required"))
    if check_password:
        _validate_new_password(password, user)
    why = "password reset by the administrator"
    now = timezone.now()
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        user.set_password(password)
        user.save(update_fields=["password"])
        revoked = _revoke_all(actor=actor, user=user, why=why)
        locks = list(LoginLock.objects.select_for_update().filter(username=user.username).order_by("source"))
        locked = [source_label(r.source) for r in locks if r.locked_until and r.locked_until > now]
        LoginLock.objects.filter(pk__in=[r.pk for r in locks]).delete()
        marked = Membership.objects.filter(user=user).update(must_change_password=True)
        changes = {"password": why, "tokens_revoked": len(revoked)}
        if marked:
            changes["must_change_password"] = [False, True]
        if locked:
            changes["locks_cleared"] = [locked, []]
        audit.record(actor=actor, action="change", obj_type="user", obj_id=user.pk, changes=changes, reason=reason)
    if marked and hasattr(user, "membership"):
        user.membership.must_change_password = True
    return user


def source_label(source: str) -> str:
    """How a lock's source is named in the audit trail and on the users page."""
    from .backends import ACCOUNT_WIDE

    return {"": "signature", ACCOUNT_WIDE: "every address"}.get(source, source)


def unlock(*, actor, username: str, reason: str) -> list[str]:
    """The administrator ends the lockout of ``username`` for every source (audited with who,
    when and why); returns the sources that were locked."""
    reason = (reason or "").strip()
    if not reason:
        raise RuleViolation("reason", "is required")
    user = get_user_model().objects.filter(username=str(username or "")).first()
    if user is None:
        raise RuleViolation("username", f"no such user '{username}'")
    now = timezone.now()
    with transaction.atomic():
        rows = list(LoginLock.objects.select_for_update().filter(username=user.username)
                    .filter(Q(locked_until__gt=now) | Q(attempts__gt=0) | Q(locks__gt=0)).order_by("source"))
        locked = [source_label(r.source) for r in rows if r.locked_until and r.locked_until > now]
        if not locked:
            raise RuleViolation("username", f"'{user.username}' is not locked")
        LoginLock.objects.filter(pk__in=[r.pk for r in rows]).update(attempts=0, locks=0, locked_until=None)
        audit.record(actor=actor, action="change", obj_type="user", obj_id=user.pk,
                     changes={"locked_for": [locked, []]}, reason=reason)
    return locked


def locks_by_user(usernames) -> dict[str, list]:
    """For the users page: each locked account's locks in force now, as (source, until)."""
    out: dict[str, list] = {}
    rows = LoginLock.objects.filter(username__in=list(usernames), locked_until__gt=timezone.now()).order_by("source")
    for r in rows:
        out.setdefault(r.username, []).append((source_label(r.source), r.locked_until))
    return out


def set_sites(*, actor, user_id: int, sites, reason: str):
    """Scope an account to sites (their participants only) or, with no site, to every site."""
    reason = (reason or "").strip()
    if not reason:
        raise RuleViolation("reason", "is required")
    sites = clean_sites(sites)
    with transaction.atomic():
        membership = Membership.objects.select_for_update().filter(user_id=user_id).first()
        if membership is None:
            raise RuleViolation("user", "no such user with a role")
        old = list(membership.sites or [])
        if old == sites:
            return membership
        membership.sites = sites
        membership.save(update_fields=["sites"])
        audit.record(actor=actor, action="change", obj_type="user", obj_id=user_id,
                     changes={"sites": [old, sites]}, reason=reason)
    return membership


def set_active(*, actor, user_id: int, active: bool, reason: str):
    """Deactivate or reactivate an account (accounts are never deleted)."""
    reason = (reason or "").strip()
    if not reason:
        raise RuleViolation("reason", "is required")
    User = get_user_model()
    with transaction.atomic():
        user = User.objects.select_for_update().filter(pk=user_id).first()
        if user is None:
            raise RuleViolation("user", "no such user")
        if user.pk == getattr(actor, "pk", None) and not active:
            raise RuleViolation("user", "you cannot deactivate your own account")
        if user.is_active == active:
            return user
        user.is_active = active
        user.save(update_fields=["is_active"])
        audit.record(actor=actor, action="change", obj_type="user", obj_id=user.pk,
                     changes={"is_active": [not active, active]}, reason=reason)
        if not active:
            _revoke_all(actor=actor, user=user, why="account deactivated")
    return user
