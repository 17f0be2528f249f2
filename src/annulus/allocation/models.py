"""The allocation list and everything that hangs on an envelope.

Nothing here is ever deleted or overwritten in place: a re-test adds a release row and marks the
earlier one superseded; every write has an audit event. Group labels and the level-2 key live
only in these tables and are read only through ``selectors`` (the blind).
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from annulus.participants.models import Participant
from annulus.trial.models import ProtocolVersion


class AllocationList(models.Model):
    """One generated list per protocol version; its seed and level-2 key are sealed (their
    SHA-256 digests are fixed at generation and checked on every export)."""

    protocol_version = models.OneToOneField(ProtocolVersion, on_delete=models.PROTECT, related_name="+")
    seed = models.BigIntegerField()
    n = models.PositiveIntegerField()
    block_multipliers = models.JSONField()
    block_sizes = models.JSONField()
    arms = models.JSONField(help_text="[[arm_id, ratio], ...] in protocol order")
    level2_key = models.JSONField(help_text="group label -> arm id (level-2 key)")
    # the protocol's randomisation method when the list was generated, and what that method needs:
    # stratified_blocks: the factors, the list length per stratum and each stratum (number, levels,
    # label, block sizes); minimisation: the factors with their weights, p and the measure
    method = models.CharField(max_length=20, default="permuted_blocks")
    method_settings = models.JSONField(default=dict, blank=True)
    # minimisation: the sealed pool, one {serial, random_number, drug_code} per position
    pool = models.JSONField(default=list, blank=True)
    algorithm = models.TextField()
    generator = models.TextField()
    table_sha256 = models.CharField(max_length=64)
    level1_sha256 = models.CharField(max_length=64)
    level2_sha256 = models.CharField(max_length=64)
    generated_at = models.DateTimeField(auto_now_add=True)
    generated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # a kit product's kit list (``Kit`` rows): its SHA-256, fixed at generation like the others,
    # and how it was made (kits per arm, dispensing visits, spare fraction, prefix); empty otherwise
    kits_sha256 = models.CharField(max_length=64, blank=True, default="")
    kit_settings = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]


class Envelope(models.Model):
    """One sealed envelope: random number -> group label, with its drug code. Opening it ties it to
    the participant for good (one-to-one, so never twice).

    Permuted blocks: the random number is the case number. Stratified blocks: one list per
    stratum (``stratum`` is its number, the serial counts within it, the random number is
    "<stratum>-<serial>"). Minimisation: the row is made when minimisation allocates, ``serial``
    being the position. ``levels`` are the participant's factor levels the allocation used."""

    allocation_list = models.ForeignKey(AllocationList, on_delete=models.PROTECT, related_name="envelopes")
    stratum = models.CharField(max_length=12, blank=True, default="")
    serial = models.PositiveIntegerField()
    random_number = models.CharField(max_length=20)
    levels = models.JSONField(default=dict, blank=True)
    group_label = models.CharField(max_length=4)
    drug_code = models.CharField(max_length=20, unique=True)
    # no way back from a participant: the envelope (group label) is reached only through the
    # selectors of the blind, never as ``participant.envelope``
    participant = models.OneToOneField(Participant, on_delete=models.PROTECT, null=True, blank=True,
                                       related_name="+")
    opened_at = models.DateTimeField(null=True, blank=True)
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                  related_name="+")

    class Meta:
        ordering = ["allocation_list", "serial"]
        constraints = [
            models.UniqueConstraint(fields=["allocation_list", "stratum", "serial"], name="envelope_serial_unique"),
            models.UniqueConstraint(fields=["allocation_list", "random_number"], name="envelope_number_unique"),
        ]


class Kit(models.Model):
    """One numbered kit of a kit product's kit list. Which group label it holds is level-2 secret
    like an envelope's (read only through ``selectors``, shown to the level-2 key holder only);
    the number alone says nothing. Allocating it to a participant for a visit ties it to them
    for good (``services.assign_kit``); the first kit of a participant is their envelope's drug
    code, so it has no row here."""

    allocation_list = models.ForeignKey(AllocationList, on_delete=models.PROTECT, related_name="kits")
    serial = models.PositiveIntegerField()
    kit_number = models.CharField(max_length=24, unique=True)
    group_label = models.CharField(max_length=4)
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    visit_key = models.CharField(max_length=20, blank=True, default="")
    assigned_at = models.DateTimeField(null=True, blank=True)
    assigned_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="+")

    class Meta:
        ordering = ["allocation_list", "serial"]
        constraints = [
            models.UniqueConstraint(fields=["allocation_list", "serial"], name="kit_serial_unique"),
            models.UniqueConstraint(fields=["participant", "visit_key"], condition=models.Q(participant__isnull=False),
                                    name="kit_once_per_visit"),
        ]
        indexes = [models.Index(fields=["allocation_list", "group_label", "participant"])]


class ProductRelease(models.Model):
    """Release checks of the ADMSC lot made for one drug code. Every participant's lot is made
    and tested whatever the arm (the manufacturer is blind), so release looks the same for all."""

    envelope = models.ForeignKey(Envelope, on_delete=models.PROTECT, related_name="releases")
    lot_number = models.CharField(max_length=40)
    tested_on = models.DateField()
    results = models.JSONField(help_text="criterion id -> {value, passed}")
    failing = models.JSONField(default=list)
    passed = models.BooleanField()
    checked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    checked_at = models.DateTimeField()
    superseded = models.BooleanField(default=False)
    # a lot that failed is quarantined: recording it again needs a reason and a second pharmacist's
    # (QA) signature; a new lot needs neither
    reason = models.TextField(blank=True)
    qa_signed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                     related_name="+")

    class Meta:
        ordering = ["id"]


class Dispensing(models.Model):
    envelope = models.OneToOneField(Envelope, on_delete=models.PROTECT, related_name="dispensing")
    release = models.ForeignKey(ProductRelease, on_delete=models.PROTECT, related_name="+")
    dispensed_at = models.DateTimeField()
    dispensed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")


class Transplant(models.Model):
    """The transplantation record (P-4.3)."""

    participant = models.OneToOneField(Participant, on_delete=models.PROTECT, related_name="+")  # it holds the envelope
    envelope = models.OneToOneField(Envelope, on_delete=models.PROTECT, related_name="treatment_record")
    transplanted_at = models.DateTimeField()
    disc_level = models.CharField(max_length=10)
    needle_gauge = models.PositiveSmallIntegerField()
    approach = models.CharField(max_length=40)
    imaging = models.CharField(max_length=40)
    volume_ml = models.DecimalField(max_digits=4, decimal_places=2)
    drug_code_entered = models.CharField(max_length=20)
    activity_restriction_until = models.DateField()
    notes = models.TextField(blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)


class EmergencyUnblinding(models.Model):
    """The unblinding record form: who, when, why, scope. The treatment revealed is not stored
    here; it is shown once, to the investigator who asked."""

    number = models.PositiveIntegerField(unique=True)
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="emergency_unblindings")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()
    reason = models.TextField()
    scope = models.CharField(max_length=120)
    # a second unblinding by the same person within 24 hours is co-signed by a principal investigator
    cosigned_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="+")

    class Meta:
        ordering = ["number"]

    @property
    def label(self) -> str:
        return f"EU-{self.number:03d}"


class UnblindingStep(models.Model):
    """A signed step towards unblinding: the two database-lock signatures, the release of each
    key and the analysis sign-off. Each kind happens once."""

    KINDS = [
        ("lock_pi", _("database lock signed by the principal investigator")),
        ("lock_statistician", _("database lock signed by the statistician")),
        ("level1", _("first-level unblinding (group labels released for analysis)")),
        ("analysis_signoff", _("analysis signed off")),
        ("level2", _("second-level unblinding (label → treatment released)")),
    ]
    kind = models.CharField(max_length=20, choices=KINDS, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(auto_now_add=True)
    statement = models.TextField()

    class Meta:
        ordering = ["id"]


class LockWaiver(models.Model):
    """An open item of the pre-lock checklist (a draft form, an SAE report not sent, a participant
    without an end-of-study status) that the principal investigator lets the lock go ahead with,
    and why. Kept for ever; one per item."""

    item = models.CharField(max_length=60, unique=True)  # "crf_form:12", "sae_report:3", "participant:7"
    group = models.CharField(max_length=40)
    label = models.CharField(max_length=300)  # what the item was when it was waived
    reason = models.TextField()
    waived_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    waived_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
