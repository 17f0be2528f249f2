"""Creating users with roles and issuing API tokens (all audited)."""

from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from annulus.audit import services as audit
from annulus.errors import RuleViolation

from .models import ApiToken, Membership


def create_user(*, actor, username: str, password: str, role: str, known_roles: set[str], email: str = "",
                full_name: str = "", is_pi: bool = False, phone: str = "", check_password: bool = True):
    if role not in known_roles:
        raise RuleViolation("role", f"unknown role '{role}'")
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise RuleViolation("username", f"user '{username}' already exists")
    if check_password:
        try:
            validate_password(password, User(username=username, email=email))
        except ValidationError as exc:
            raise RuleViolation("password", " ".join(exc.messages)) from None
    first, _, last = full_name.partition(" ")
    with transaction.atomic():
        user = User.objects.create_user(username=username, password=password, email=email, first_name=first, last_name=last)
        Membership.objects.create(user=user, role=role, is_principal_investigator=is_pi, phone=phone)
        audit.record(actor=actor, action="create", obj_type="user", obj_id=user.pk,
                     changes={"username": [None, username], "role": [None, role], "principal_investigator": [None, is_pi]})
    return user


def hash_token(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue_token(*, user, name: str) -> str:
    """Returns the token text; it is shown once and only its hash is kept."""
    key = "ann_" + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(user=user, name=name[:80] or "token", prefix=key[:12], key_hash=hash_token(key))
        audit.record(actor=user, action="create", obj_type="api_token", obj_id=token.pk, changes={"name": [None, token.name]})
    return key


def revoke_token(*, user, token_id: int) -> None:
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().filter(pk=token_id, user=user, revoked__isnull=True).first()
        if token is None:
            raise RuleViolation("token", "no such active token")
        token.revoked = timezone.now()
        token.save(update_fields=["revoked"])
        audit.record(actor=user, action="void", obj_type="api_token", obj_id=token.pk, reason="revoked by owner",
                     changes={"revoked": [None, token.revoked]})


def user_for_token(key: str):
    token = ApiToken.objects.select_related("user", "user__membership").filter(key_hash=hash_token(key), revoked__isnull=True).first()
    if token is None or not token.user.is_active:
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used=timezone.now())
    return token.user


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
    return user
