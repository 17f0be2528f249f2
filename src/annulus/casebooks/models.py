"""Investigator signatures of participants' casebooks (21 CFR 11.50/11.70).

A signature is never changed or deleted: signing again adds a row, and the newest row is the one
in force. Each row keeps the content it signed (the canonical casebook) and its SHA-256, so a
later change is found by comparing hashes, and what changed by comparing contents."""

from django.conf import settings
from django.db import models

from annulus.participants.models import Participant
from annulus.trial.models import ProtocolVersion


class CasebookSignature(models.Model):
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="+")
    signed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    signer_name = models.CharField(max_length=160)  # the printed name at the time of signing
    signed_at = models.DateTimeField()
    meaning = models.CharField(max_length=200)  # as signed (English; pages show it translated)
    content_hash = models.CharField(max_length=64)
    content = models.JSONField()  # the canonical casebook that was signed
    protocol_version = models.ForeignKey(ProtocolVersion, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["participant", "id"])]
