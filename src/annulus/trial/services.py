"""Loading protocol versions (an amendment is a new version) and seeding the roles."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction

from annulus.audit import services as audit
from annulus.errors import RuleViolation
from annulus.protocol import ProtocolError, parse_protocol_once, protocol_digest

from . import selectors
from .lock import TrialLocked, assert_writable
from .models import ProtocolVersion, TrialState


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _blind_cosigner(actor, protocol, cosigner_username: str, cosigner_password: str):
    """A version that changes the blind against the one in force is put in force only with a
    principal investigator's co-signature (user name and password of a PI other than the uploader;
    a wrong password counts towards the PI's lockout). Returns (PI or None, the changes). From the
    server's command line (``actor`` None) none is needed, as for accounts."""
    from .selectors import blind_changes_from_force

    if not getattr(actor, "pk", None):
        return None, []
    changes = blind_changes_from_force(protocol)
    if not changes:
        return None, []
    from annulus.accounts.services import _cosigner

    pi = _cosigner(actor, str(cosigner_username or "").strip(), cosigner_password,
                   needed=f"this version changes the blind ({'; '.join(changes)}); it needs a principal "
                          "investigator's co-signature (their user name and password)",
                   other_than="the user loading the protocol")
    return pi, changes


def load_protocol_version(*, actor, text: str | bytes, activate: bool = True, cosigner_username: str = "",
                          cosigner_password: str = "") -> ProtocolVersion:
    """Store a protocol file as a version. The same file again is a no-op; a changed file must
    carry a new version number (it is an amendment). Putting in force a version that changes a
    role's blinding or a key holder needs a principal investigator's co-signature."""
    try:
        protocol = parse_protocol_once(text)
    except ProtocolError as exc:
        raise RuleViolation("protocol", "; ".join(exc.errors)) from None
    raw = text.decode("utf-8") if isinstance(text, bytes) else text
    digest = protocol_digest(raw)
    existing = ProtocolVersion.objects.filter(digest=digest).first()
    if existing:
        if activate and not existing.active:
            cosigner, blind = _blind_cosigner(actor, protocol, cosigner_username, cosigner_password)
            _activate(actor, existing, cosigner=cosigner, blind=blind)
        return existing
    other = (ProtocolVersion.objects.exclude(registry_number=protocol.trial.registry_number)
             .values_list("registry_number", flat=True).first())
    if other is not None:
        # one trial per database: an amendment keeps its trial's registry number
        raise RuleViolation("protocol", f"this database holds the trial {other}; {protocol.trial.registry_number} is "
                                        "another trial: give it its own database (ANNULUS_VAR_DIR or DATABASE_URL)")
    if ProtocolVersion.objects.filter(version=protocol.version).exists():
        raise RuleViolation("version", f"version {protocol.version} is already loaded with different content; "
                                       "an amendment needs a new version number")
    latest = max(ProtocolVersion.objects.values_list("version", flat=True), key=_version_key, default=None)
    if latest is not None and _version_key(protocol.version) < _version_key(latest):
        raise RuleViolation("version", f"version {protocol.version} is older than version {latest} already loaded; "
                                       "an amendment needs a later version number")
    cosigner, blind = (_blind_cosigner(actor, protocol, cosigner_username, cosigner_password) if activate
                       else (None, []))
    with transaction.atomic():
        assert_writable("protocol amendment")
        pv = ProtocolVersion.objects.create(
            version=protocol.version, registry_number=protocol.trial.registry_number, digest=digest,
            text=raw, effective_date=protocol.effective_date,
        )
        audit.record(actor=actor, action="create", obj_type="protocol_version", obj_id=pv.pk,
                     changes={"version": [None, pv.version], "digest": [None, digest]}, protocol_version=pv.version)
        for role in protocol.roles:
            Group.objects.get_or_create(name=role.id)
        TrialState.objects.get_or_create(id=1)
        if activate:
            _activate(actor, pv, cosigner=cosigner, blind=blind)
    return pv


def _activate(actor, pv: ProtocolVersion, cosigner=None, blind=()) -> None:
    with transaction.atomic():
        assert_writable("protocol amendment")
        previous = list(ProtocolVersion.objects.filter(active=True).exclude(pk=pv.pk).values_list("version", flat=True))
        ProtocolVersion.objects.filter(active=True).exclude(pk=pv.pk).update(active=False)
        ProtocolVersion.objects.filter(pk=pv.pk).update(active=True)
        pv.active = True
        selectors.forget_active_version()
        changes = {"active_version": [previous[0] if previous else None, pv.version]}
        if blind:
            changes["blind"] = [None, list(blind)]
        if cosigner is not None:
            changes["cosigned_by"] = [None, cosigner.username]
        audit.record(actor=actor, action="change", obj_type="protocol_version", obj_id=pv.pk, changes=changes,
                     reason="protocol version activated", protocol_version=pv.version)
        if cosigner is not None:
            notify(users=[cosigner], kind="amendment_cosigned", actor=actor,
                   subject=f"You co-signed protocol version {pv.version}, which changes the blind",
                   body=f"Put in force by {actor.username}: {'; '.join(blind)}. If you did not countersign "
                        "this, tell the sponsor at once.", link="/protocol/")


def load_default_protocol(actor=None) -> ProtocolVersion:
    """The shipped protocol file, stored on first use. It is activated only while no version is
    in force: starting the server or a command never undoes an amendment."""
    active = ProtocolVersion.objects.filter(active=True).exists()
    try:
        return load_protocol_version(actor=actor, text=Path(settings.ANNULUS_PROTOCOL_FILE).read_bytes(),
                                     activate=not active)
    except TrialLocked:
        # a changed shipped file is not loaded into a locked database; the version in force stays
        if not active:
            raise
        return ProtocolVersion.objects.get(active=True)


def set_trial_state(*, actor, state: str, reason: str) -> TrialState:
    with transaction.atomic():
        ts, _ = TrialState.objects.select_for_update().get_or_create(id=1)
        old = ts.state
        ts.state = state
        ts.save()
        audit.record(actor=actor, action="change", obj_type="trial_state", obj_id=1,
                     changes={"state": [old, state]}, reason=reason)
    return ts


def notify(*, users, subject: str, body: str = "", link: str = "", kind: str = "", actor=None,
           participant_id=None, trial_wide: bool = False) -> list:
    """Notify users in the app and by e-mail (Django's mail backend). Runs inside the caller's
    transaction; the e-mail goes out only when that transaction commits. A notification about a
    participant (``participant_id``) goes only to those who may see that participant (a user
    limited to sites hears nothing of another site's); one about the whole trial that names
    participants (``trial_wide``) only to users not limited to sites."""
    from django.core.mail import send_mail

    from annulus.participants.selectors import may_see, user_sites

    from .models import Notification

    created = []
    for user in users:
        if participant_id is not None and not may_see(user, participant_id):
            continue
        if trial_wide and user_sites(user) is not None:
            continue
        n = Notification.objects.create(user=user, subject=subject[:200], body=body, link=link[:300], kind=kind[:40])
        audit.record(actor=actor, action="create", obj_type="notification", obj_id=n.pk,
                     changes={"to": [None, user.username], "subject": [None, n.subject], "kind": [None, kind]})
        created.append(n)
        if user.email:
            text = f"{body}\n\n{absolute_url(link)}".strip()
            transaction.on_commit(
                lambda u=user, t=text: send_mail(subject[:200], t, None, [u.email], fail_silently=True)
            )
    return created


def send_message(*, subject: str, body: str, to: str) -> None:
    """One e-mail, sent now through Django's mail backend, to an address outside the accounts (a
    participant's questionnaire link). The mail backend's errors are raised, so that the caller
    can tell sent from not sent. Every mail of the application leaves through this module."""
    from django.core.mail import send_mail

    send_mail(subject[:200], body, None, [to], fail_silently=False)


def absolute_url(link: str) -> str:
    """A link as mail needs it: a path of this site becomes absolute on ``ANNULUS_SITE_URL``."""
    if link.startswith("/") and not link.startswith("//"):
        return settings.ANNULUS_SITE_URL.rstrip("/") + link
    return link


def mark_read(*, user, key: str) -> None:
    from django.utils import timezone

    from .models import Notification

    Notification.objects.filter(key=str(key)[:20], user=user, read_at__isnull=True).update(read_at=timezone.now())
