"""Sending a participant their link: a small interface and the senders shipped with Annulus.

The setting ``ANNULUS_SELFENTRY_SENDER`` names the class (a dotted path). A sender is made with no
argument and has:

- ``channel``: a short name for the audit trail and the pages ("file", "email");
- ``can_reach(contact) -> bool``: whether the contact has what this channel needs;
- ``send(contact, link, language) -> None``: send one message, or raise ``SendFailed``.

``contact`` is a ``Recipient`` (the participant's phone and e-mail address, nothing else);
``link`` an ``OutgoingLink`` (the address, the visit's name, the last day it works): the link
itself carries no personal data. ``language`` is "en" or "zh-hans".

Shipped: ``FileSender`` (one text file per message under ``ANNULUS_VAR_DIR/selfentry-outbox``; the
demo, tests, and sites that hand the messages to another system) and ``EmailSender`` (Django's
mail backend, ``ANNULUS_EMAIL_BACKEND``). No SMS sender is shipped: an SMS gateway is a class
with the same three members, named in the setting."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from django.conf import settings
from django.utils import timezone, translation
from django.utils.module_loading import import_string
from django.utils.translation import gettext


@dataclass(frozen=True)
class Recipient:
    phone: str = ""
    email: str = ""


@dataclass(frozen=True)
class OutgoingLink:
    url: str
    visit_name: str  # the visit's name in the message's language
    expires_on: date


class SendFailed(Exception):
    """The message could not be sent (said in the sender's words)."""


def message(link: OutgoingLink, language: str) -> tuple[str, str]:
    """The subject and text of the message in ``language``: the visit, the link, the card code
    reminder, the last day. No name, no number that identifies the participant."""
    with translation.override(language):
        subject = gettext("Your questionnaire for the study")
        body = "\n\n".join([
            gettext("Please answer the questionnaire for your %(visit)s visit on your phone:") % {
                "visit": link.visit_name},
            link.url,
            gettext("You will need the code printed on your participant card. The link works once, "
                    "until %(day)s.") % {"day": link.expires_on.isoformat()},
            gettext("If you did not expect this message, please tell the research team."),
        ])
    return subject, body


class FileSender:
    """One file per message in ``ANNULUS_VAR_DIR/selfentry-outbox/`` (address, subject, text)."""

    channel = "file"

    def __init__(self, folder: Path | str | None = None):
        self.folder = Path(folder) if folder else Path(settings.VAR_DIR) / "selfentry-outbox"

    def can_reach(self, contact: Recipient) -> bool:
        return bool(contact.email or contact.phone)

    def send(self, contact: Recipient, link: OutgoingLink, language: str) -> None:
        subject, body = message(link, language)
        to = contact.email or contact.phone
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"{timezone.now():%Y%m%dT%H%M%S}-{secrets.token_hex(4)}.txt"
            (self.folder / name).write_text(f"To: {to}\nLanguage: {language}\nSubject: {subject}\n\n{body}\n",
                                            encoding="utf-8")
        except OSError as exc:
            raise SendFailed(f"could not write to {self.folder}: {exc.strerror or exc}") from None


class EmailSender:
    """An e-mail through Django's mail backend (``ANNULUS_EMAIL_BACKEND``) to the participant's
    e-mail address."""

    channel = "email"

    def can_reach(self, contact: Recipient) -> bool:
        return bool(contact.email)

    def send(self, contact: Recipient, link: OutgoingLink, language: str) -> None:
        from annulus.trial.services import send_message

        subject, body = message(link, language)
        try:
            send_message(subject=subject, body=body, to=contact.email)
        except Exception as exc:  # the backend's own errors: SMTP, connection, file
            raise SendFailed(f"the mail server refused the message: {exc}") from None


def get_sender():
    """The sender named by ``ANNULUS_SELFENTRY_SENDER``."""
    from django.core.exceptions import ImproperlyConfigured

    path = getattr(settings, "ANNULUS_SELFENTRY_SENDER", "") or "annulus.selfentry.senders.FileSender"
    try:
        cls = import_string(path)
    except ImportError:
        raise ImproperlyConfigured(f"ANNULUS_SELFENTRY_SENDER: no sender class '{path}'") from None
    sender = cls()
    if not all(hasattr(sender, m) for m in ("channel", "can_reach", "send")):
        raise ImproperlyConfigured(f"ANNULUS_SELFENTRY_SENDER: '{path}' has no channel, can_reach and send")
    return sender
