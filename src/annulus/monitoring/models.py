"""What monitoring keeps: source-data verification marks and the auditor's review findings.

A mark records what was verified (the record's revision and a SHA-256 of the value); whether it
still holds is decided on read by comparing with the current value, so a later change clears it
without any write. Marks are never changed or deleted: verifying again adds a mark."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from annulus.participants.models import Participant


class SdvMark(models.Model):
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="+")
    visit = models.CharField(max_length=20, blank=True)  # visit key, "screening", or "" (logs)
    form = models.CharField(max_length=40)
    record = models.BigIntegerField(default=0)  # the adverse event's id in the adverse-event log
    item = models.CharField(max_length=60)
    revision = models.CharField(max_length=40)  # the record's revision that was verified
    value_hash = models.CharField(max_length=64)
    verified_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    verified_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["participant", "visit", "form"])]


class ReviewFinding(models.Model):
    CATEGORIES = [("data_discrepancy", _("data discrepancy")), ("missing_source", _("missing source document")),
                  ("protocol_deviation", _("protocol deviation")), ("consent", _("informed consent")),
                  ("audit_trail", _("audit trail")), ("other", _("other"))]
    OPEN, RESOLVED = "open", "resolved"
    STATUSES = [(OPEN, pgettext_lazy("finding", "open")), (RESOLVED, pgettext_lazy("finding", "resolved"))]
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="+")
    visit = models.CharField(max_length=20, blank=True)
    form = models.CharField(max_length=40, blank=True)
    record = models.BigIntegerField(default=0)
    item = models.CharField(max_length=60, blank=True)
    category = models.CharField(max_length=30, choices=CATEGORIES)
    text = models.TextField()
    status = models.CharField(max_length=10, choices=STATUSES, default=OPEN)
    raised_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    raised_at = models.DateTimeField()
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                    null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(blank=True)

    class Meta:
        ordering = ["-raised_at", "-id"]
        indexes = [models.Index(fields=["participant", "status"])]
