from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from annulus.trial.models import ProtocolVersion

from . import states

# the protocol's recruitment-source ids in words (P-2.4)
SOURCE_LABELS = {
    "inpatient_referral": _("Inpatient referral"),
    "records_search_phone": _("Hospital records search + phone call"),
    "flyers_website": _("Flyers / website"),
}


class Participant(models.Model):
    screening_number = models.CharField(max_length=12, unique=True)
    initials = models.CharField(max_length=10)
    full_name = models.CharField(max_length=120, blank=True)
    sex = models.CharField(max_length=1, choices=[("F", _("female")), ("M", _("male"))])
    phone = models.CharField(max_length=40, blank=True)
    recruitment_source = models.CharField(max_length=40)
    # the protocol's site id (``sites:``, or its one site ``trial.site``); users may be scoped to sites
    site = models.CharField(max_length=12, db_index=True)
    prescreened_on = models.DateField()
    status = models.CharField(max_length=20, choices=states.CHOICES, default=states.PRE_SCREENED, db_index=True)
    # "007", or with per-site numbers "A-007" (a site id of up to 12 characters, a hyphen, 6 digits)
    case_number = models.CharField(max_length=20, unique=True, null=True, blank=True)
    enrolled_at = models.DateTimeField(null=True, blank=True)
    protocol_version = models.ForeignKey(ProtocolVersion, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["status", "id"]), models.Index(fields=["updated_at"])]

    def __str__(self):
        return self.case_number or self.screening_number

    @property
    def label(self) -> str:
        return f"{self.case_number} ({self.screening_number})" if self.case_number else self.screening_number

    @property
    def status_label(self):
        return states.LABELS.get(self.status, self.status)

    @property
    def site_label(self) -> str:
        """The site's code and name in the page's language ("01 · First Affiliated Hospital")."""
        from django.utils.translation import get_language

        from annulus.trial.selectors import active_protocol

        site = active_protocol().site_by_id(self.site)
        return f"{self.site} · {site.name.get(get_language())}" if site else self.site

    @property
    def recruitment_source_label(self):
        return SOURCE_LABELS.get(self.recruitment_source, self.recruitment_source)


class Consent(models.Model):
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="consents")
    consent_version = models.CharField(max_length=40)
    consented_at = models.DateTimeField()
    taken_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)
    protocol_version = models.ForeignKey(ProtocolVersion, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["consented_at", "id"]


class Evidence(models.Model):
    """One value entered for one screening field. A correction adds a new row and marks the
    old one superseded; nothing is overwritten."""

    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="evidence")
    field = models.CharField(max_length=60)
    value = models.JSONField(null=True)
    collected_on = models.DateField()
    entered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    entered_at = models.DateTimeField(auto_now_add=True)
    protocol_version = models.ForeignKey(ProtocolVersion, on_delete=models.PROTECT, related_name="+")
    superseded = models.BooleanField(default=False)
    change_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["participant", "superseded"])]


class EligibilityDecision(models.Model):
    """The outcome of screening with every criterion's evaluation and the evidence behind it."""

    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="decisions")
    outcome = models.CharField(max_length=12, choices=[("eligible", "eligible"), ("ineligible", "screen failure")])
    criteria = models.JSONField()
    failing = models.JSONField(default=list)
    decided_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    protocol_version = models.ForeignKey(ProtocolVersion, on_delete=models.PROTECT, related_name="+")
    superseded = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]


class StatusChange(models.Model):
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="status_changes")
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20)
    at = models.DateTimeField(auto_now_add=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]


class Withdrawal(models.Model):
    CATEGORIES = [
        ("participant_request", "participant's request"),
        ("adverse_event", "serious adverse event / safety"),
        ("other_disease", "other serious disease limiting participation"),
        ("investigator_decision", "investigator's decision"),
        ("declined_consent", "declined consent"),
        ("other", "other"),
    ]
    participant = models.OneToOneField(Participant, on_delete=models.PROTECT, related_name="withdrawal")
    withdrawn_on = models.DateField()
    category = models.CharField(max_length=30, choices=CATEGORIES)
    details = models.TextField()
    from_status = models.CharField(max_length=20)
    adverse_event_id = models.BigIntegerField(null=True, blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)
    protocol_version = models.ForeignKey(ProtocolVersion, on_delete=models.PROTECT, related_name="+")


class RecordLock(models.Model):
    """A data manager's lock of one participant's casebook (visit "" and form ""), one visit
    (form "") or one form of a visit (X-7.5). A locked record refuses every write. Never deleted:
    an unlock closes the row (who, when, why) and a new lock adds a row."""

    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="record_locks")
    visit = models.CharField(max_length=20, blank=True)
    form = models.CharField(max_length=40, blank=True)
    locked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    locked_at = models.DateTimeField()
    unlocked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                    null=True, blank=True)
    unlocked_at = models.DateTimeField(null=True, blank=True)
    unlock_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["participant", "unlocked_at"])]
        constraints = [models.UniqueConstraint(fields=["participant", "visit", "form"],
                                               condition=models.Q(unlocked_at__isnull=True),
                                               name="one_open_record_lock")]

    @property
    def level(self) -> str:
        return "casebook" if not self.visit and not self.form else ("visit" if not self.form else "form")

    @property
    def is_open(self) -> bool:
        return self.unlocked_at is None
