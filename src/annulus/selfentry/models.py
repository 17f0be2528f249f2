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
    """The participant's card code (a second factor for every link), stored as a password hash."""

    participant = models.OneToOneField(Participant, on_delete=models.PROTECT, related_name="+")
    code_hash = models.CharField(max_length=200)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()


class SelfEntryLink(models.Model):
    """A link issued for one participant and one visit; it works until ``expires_at`` (the end of
    the visit window) and once only (``used_at``)."""

    token_hash = models.CharField(max_length=64, unique=True)  # sha256 of the token, hex
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="+")
    visit = models.ForeignKey(Visit, on_delete=models.PROTECT, related_name="+")
    instruments = models.JSONField(default=list)  # form ids, in the order they are asked
    expires_at = models.DateTimeField()
    issued_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    issued_at = models.DateTimeField()
    opened_at = models.DateTimeField(null=True, blank=True)  # the card code was first accepted
    used_at = models.DateTimeField(null=True, blank=True)  # the answers were submitted
    device = models.CharField(max_length=300, blank=True)  # the submitting browser's user agent
    failed_codes = models.PositiveSmallIntegerField(default=0)  # wrong card codes since the last lock
    locks = models.PositiveSmallIntegerField(default=0)  # how many times wrong codes locked the link
    locked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["participant", "visit"])]
