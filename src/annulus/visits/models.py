"""Visit data. The schedule itself is not stored: it is derived from the protocol and the two
anchor dates (liposuction here, transplantation in the allocation app). What is stored is what
happened: the liposuction record, each visit that took place (or was recorded as missed), each
eCRF form with every revision, and the reminder calls."""

import re

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from annulus.participants.models import Participant
from annulus.trial.models import ProtocolVersion

UNSCHEDULED = "unscheduled"


class Liposuction(models.Model):
    """Day 0 (P-4.1). A correction adds a row and marks the earlier one superseded."""

    ANAESTHESIA = [("local", _("local anaesthesia")), ("local_sedation", _("local anaesthesia with sedation")),
                   ("general", _("general anaesthesia"))]
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="liposuctions")
    performed_on = models.DateField()
    fat_volume_ml = models.DecimalField(max_digits=6, decimal_places=1)
    anaesthesia = models.CharField(max_length=20, choices=ANAESTHESIA, default="local")
    observation_hours = models.DecimalField(max_digits=4, decimal_places=1)
    complications = models.TextField(blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField()
    protocol_version = models.ForeignKey(ProtocolVersion, on_delete=models.PROTECT, related_name="+")
    superseded = models.BooleanField(default=False)
    change_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["participant", "superseded"])]


# What a harvest record (the cell product's first page, ``Protocol.page_procedures``) is called in
# the audit trail and as the source of the adverse-event task its complications open: its table.
HARVEST_RECORD = Liposuction._meta.model_name


class Visit(models.Model):
    """A visit that took place (``attended``) or that the coordinator recorded as ``missed``."""

    OUTCOMES = [("attended", _("attended")), ("missed", _("missed"))]
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="visits")
    visit_id = models.CharField(max_length=20)  # protocol visit id, or "unscheduled"
    number = models.PositiveSmallIntegerField(default=0)  # 1, 2, ... for unscheduled visits
    outcome = models.CharField(max_length=10, choices=OUTCOMES, default="attended")
    visit_date = models.DateField(null=True, blank=True)
    reason = models.TextField(blank=True)  # why unscheduled, or why missed
    forms = models.JSONField(default=list)  # form ids expected, fixed when the visit is opened
    completed_at = models.DateTimeField(null=True, blank=True)  # when every form was first complete
    protocol_version = models.ForeignKey(ProtocolVersion, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["participant_id", "visit_date", "id"]
        constraints = [models.UniqueConstraint(fields=["participant", "visit_id", "number"], name="visit_once")]

    @property
    def key(self) -> str:
        """The visit's id in URLs: the protocol id, or u1, u2 ... for unscheduled visits."""
        return f"u{self.number}" if self.visit_id == UNSCHEDULED else self.visit_id


def parse_visit_key(key: str) -> tuple[str, int]:
    """(visit id, number) of a visit key from a URL: "u3" -> ("unscheduled", 3), "m6" -> ("m6", 0)."""
    m = re.fullmatch(r"u([0-9]{1,5})", key)
    return (UNSCHEDULED, int(m.group(1))) if m else (key, 0)


class FormRecord(models.Model):
    """One eCRF form of one visit: its current answers and state. Every save also adds a
    ``FormRevision``, so no earlier answer is ever lost."""

    DRAFT, COMPLETE, CHANGED = "draft", "complete", "changed"
    STATES = [(DRAFT, "draft"), (COMPLETE, "complete"), (CHANGED, "changed after completion")]
    visit = models.ForeignKey(Visit, on_delete=models.PROTECT, related_name="form_records")
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="+")
    form_id = models.CharField(max_length=30)
    state = models.CharField(max_length=10, choices=STATES, default=DRAFT)
    items = models.JSONField(default=dict)
    computed = models.JSONField(default=dict)
    revision = models.PositiveIntegerField(default=1)
    collected_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)  # first completion = submitted for review
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["visit_id", "id"]
        constraints = [models.UniqueConstraint(fields=["visit", "form_id"], name="form_once_per_visit")]
        indexes = [models.Index(fields=["submitted_at", "collected_at"])]

    @property
    def is_complete(self) -> bool:
        return self.state in (self.COMPLETE, self.CHANGED)


class FormRevision(models.Model):
    form = models.ForeignKey(FormRecord, on_delete=models.PROTECT, related_name="revisions")
    number = models.PositiveIntegerField()
    state = models.CharField(max_length=10)
    items = models.JSONField()
    computed = models.JSONField()
    collected_at = models.DateTimeField()
    saved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    saved_at = models.DateTimeField()
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["form_id", "number"]
        constraints = [models.UniqueConstraint(fields=["form", "number"], name="revision_once")]


class ReminderCall(models.Model):
    """A reminder phone call the day before a visit (P-4.6)."""

    OUTCOMES = [("reached", _("reached participant")), ("family", _("reached family member")),
                ("no_answer", _("no answer")), ("message", _("left a message"))]
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="reminder_calls")
    visit_id = models.CharField(max_length=20)
    visit_on = models.DateField()  # the visit date the call was about
    outcome = models.CharField(max_length=12, choices=OUTCOMES, default="reached")
    note = models.TextField(blank=True)
    called_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    called_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["visit_on"])]


class Appointment(models.Model):
    """The date booked for a visit within its window. Rebooking adds a row and marks the
    earlier one superseded."""

    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="appointments")
    visit_id = models.CharField(max_length=20)
    on = models.DateField()
    booked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    booked_at = models.DateTimeField()
    superseded = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["on", "superseded"]), models.Index(fields=["participant", "superseded"])]
