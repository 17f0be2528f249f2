"""One-time links through which a participant answers their own questionnaires (VAS, ODI, the
patient part of JOA, SF-36) for one visit, and the short code printed on the participant's card
that is asked for as a second factor.

Neither the link's token nor the card code is stored: only a hash of each. The link names no
person; the participant and the visit are found through the token's hash."""

from django.conf import settings
from django.db import models

from annulus.participants.models import Participant
from annulus.visits.models import Visit


class CardCode(models.Model):
    """The participant's card code (a second factor for every link), stored as a password hash. A
    reset keeps the old row (``replaced_at``, who and why) and adds a new one: the current code is
    the participant's row not replaced."""

    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="+")
    code_hash = models.CharField(max_length=200)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    replaced_at = models.DateTimeField(null=True, blank=True)
    replaced_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                    null=True, blank=True)
    replace_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["participant"], condition=models.Q(replaced_at__isnull=True),
                                               name="selfentry_one_current_card_code")]


class SelfEntryLink(models.Model):
    """A link issued for one participant and one visit; it works until ``expires_at`` (the end of
    the visit window) and once only (``used_at``), unless revoked. A link issued by the schedule
    before the visit is recorded has no ``visit`` row: ``visit_key`` names the protocol visit, and
    the visit is recorded when the participant sends the answers."""

    token_hash = models.CharField(max_length=64, unique=True)  # sha256 of the token, hex
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="+")
    visit = models.ForeignKey(Visit, on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    visit_key = models.CharField(max_length=20)  # the visit's key ("m1", "u2")
    instruments = models.JSONField(default=list)  # form ids, in the order they are asked
    expires_at = models.DateTimeField()
    # None: issued by the schedule (``annulus selfentry issue-due``)
    issued_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                  null=True, blank=True)
    issued_at = models.DateTimeField()
    sent_via = models.CharField(max_length=20, blank=True)  # the sender's channel ("file", "email"), if sent
    sent_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)  # the card code was first accepted
    used_at = models.DateTimeField(null=True, blank=True)  # the answers were submitted
    device = models.CharField(max_length=300, blank=True)  # the submitting browser's user agent
    failed_codes = models.PositiveSmallIntegerField(default=0)  # wrong card codes since the last lock
    locks = models.PositiveSmallIntegerField(default=0)  # how many times wrong codes locked the link
    locked_until = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                   null=True, blank=True)
    revoke_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["participant", "visit_key"])]


class Contact(models.Model):
    """Where a participant's links are sent: an e-mail address (the phone is the participant's own
    ``phone``) and the language of the message. A change adds a row (who, when, why); the current
    contact is the participant's latest row."""

    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="+")
    email = models.CharField(max_length=200, blank=True)
    language = models.CharField(max_length=10)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField()
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]


class GuessCount(models.Model):
    """Requests for links that do not work from one client address (state, not a record): after
    ``ANNULUS_SELFENTRY_GUESSES`` within ``ANNULUS_SELFENTRY_GUESS_MINUTES`` the address gets the
    generic page with 429 for every link, working or not, until ``blocked_until``."""

    source = models.CharField(max_length=64, unique=True)
    misses = models.PositiveIntegerField(default=0)
    first_miss = models.DateTimeField()
    last_hash = models.CharField(max_length=16, blank=True)  # a repeat of the same link is not a new guess
    blocked_until = models.DateTimeField(null=True, blank=True)
