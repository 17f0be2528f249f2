"""Adverse events with their revision history, SAE reports with their clocks, DSMB alerts,
interim reports and recommendations. Rows are never deleted; a change adds a revision."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from annulus.participants.models import Participant
from annulus.trial.models import ProtocolVersion

# ICH E2A seriousness criteria
SERIOUS_CRITERIA = [
    ("death", _("results in death")),
    ("life_threatening", _("is life-threatening")),
    ("hospitalisation", _("requires hospitalisation or prolongs it")),
    ("disability", _("results in persistent or significant disability/incapacity")),
    ("congenital_anomaly", _("is a congenital anomaly/birth defect")),
    ("important_medical_event", _("other important medical event")),
]
GRADES = [(1, _("1 mild")), (2, _("2 moderate")), (3, _("3 severe")), (4, _("4 life-threatening")), (5, _("5 death"))]
CAUSALITY = [
    ("not_applicable", _("not applicable (not yet done)")),
    ("not_related", _("not related")),
    ("unlikely", _("unlikely")),
    ("possible", _("possible")),
    ("probable", _("probable")),
    ("definite", _("definite")),
]
EXPECTEDNESS = [("expected", _("expected")), ("unexpected", _("unexpected"))]
ACTIONS = [
    ("none", _("none")),
    ("treatment", _("treatment given")),
    ("procedure_postponed", _("study procedure postponed")),
    ("procedure_cancelled", _("study procedure cancelled")),
    ("hospitalised", _("hospitalised")),
    ("withdrawn", _("withdrawn from the study")),
]
OUTCOMES = [
    ("recovering", _("recovering/resolving")),
    ("recovered", _("recovered/resolved")),
    ("recovered_with_sequelae", _("recovered with sequelae")),
    ("not_recovered", _("not recovered/not resolved")),
    ("fatal", _("fatal")),
    ("unknown", _("unknown")),
]
# the causality every adverse event is assessed for; the protocol adds its procedures'
# (``safety.causality_of``), stored in ``AdverseEvent.causality``
PRODUCT_CAUSALITY = "causality_product"


class AdverseEvent(models.Model):
    """The current state of one adverse event; every saved state is also kept as a revision."""

    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="adverse_events")
    number = models.PositiveIntegerField()  # 1, 2, ... within the participant
    term = models.CharField(max_length=200)
    meddra_pt_code = models.CharField(max_length=8, blank=True)
    meddra_version = models.CharField(max_length=10, blank=True)
    description = models.TextField(blank=True)
    onset_at = models.DateTimeField()
    end_at = models.DateTimeField(null=True, blank=True)
    serious = models.BooleanField(default=False, db_index=True)
    serious_criteria = models.JSONField(default=list)
    grade = models.PositiveSmallIntegerField(choices=GRADES)
    # the causality to each procedure the protocol names (``safety.causality_of``): its id ->
    # a code of CAUSALITY; read and written outward as ``causality_<id>``
    causality = models.JSONField()
    causality_product = models.CharField(max_length=16, choices=CAUSALITY)
    expectedness = models.CharField(max_length=12, choices=EXPECTEDNESS)
    action_taken = models.CharField(max_length=24, choices=ACTIONS)
    outcome = models.CharField(max_length=24, choices=OUTCOMES)
    first_knowledge_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=60, blank=True)  # e.g. "lab:alt" when prompted by a lab value
    revision = models.PositiveIntegerField(default=1)
    protocol_version = models.ForeignKey(ProtocolVersion, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["participant", "number"], name="ae_number_per_participant")]
        indexes = [models.Index(fields=["onset_at"]), models.Index(fields=["outcome"])]

    def __str__(self):
        return f"AE {self.label}"

    @property
    def label(self) -> str:
        return f"{self.participant}-AE{self.number:02d}"

    @property
    def fatal(self) -> bool:
        return self.outcome == "fatal"

    def __getattr__(self, name):
        # ``ae.causality_<id>``: the causality to a procedure the protocol names, as stored
        if name.startswith("causality_"):
            stored = self.__dict__.get("causality")
            key = name[len("causality_"):]
            if isinstance(stored, dict) and key in stored:
                return stored[key]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def criteria_labels(self) -> list[str]:
        names = dict(SERIOUS_CRITERIA)
        return [str(names.get(c, c)) for c in self.serious_criteria]


class AdverseEventRevision(models.Model):
    """One saved state of an adverse event (revision 1 is the first report; later ones are follow-ups)."""

    adverse_event = models.ForeignKey(AdverseEvent, on_delete=models.PROTECT, related_name="revisions")
    revision = models.PositiveIntegerField()
    data = models.JSONField()
    changes = models.JSONField(default=dict)
    reason = models.TextField(blank=True)
    saved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    saved_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["adverse_event", "revision"]
        constraints = [models.UniqueConstraint(fields=["adverse_event", "revision"], name="ae_revision_unique")]


class SaeReport(models.Model):
    """The report of a serious adverse event to one recipient, with its deadline."""

    adverse_event = models.ForeignKey(AdverseEvent, on_delete=models.PROTECT, related_name="sae_reports")
    recipient = models.CharField(max_length=40)
    recipient_name = models.CharField(max_length=120)
    due_at = models.DateTimeField()
    rule = models.CharField(max_length=300)
    calendar_warning = models.CharField(max_length=200, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    sent_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    sent_to = models.CharField(max_length=120, blank=True)
    sent_method = models.CharField(max_length=40, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=120, blank=True)  # the recipient's person, outside the system
    ack_recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    # set when the event stops being serious before the report went out; the clock then stops
    not_required_since = models.DateTimeField(null=True, blank=True)
    # the expedited report of a SUSAR (serious, unexpected, related to the product), on its own clock
    expedited = models.BooleanField(default=False)
    # a SUSAR clock that started at a follow-up (the event became a SUSAR after its first report);
    # empty: the clock runs from first knowledge of the event
    clock_start_at = models.DateTimeField(null=True, blank=True)
    overdue_notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_at", "id"]
        constraints = [models.UniqueConstraint(fields=["adverse_event", "recipient"], name="sae_report_per_recipient")]

    @property
    def active(self) -> bool:
        return self.not_required_since is None


class DsmbAlert(models.Model):
    """A crossed safety threshold. A threshold of one event ("any death") alerts once per
    qualifying event (``event``); a threshold of N events (per arm or overall) alerts each time the
    count reaches a new multiple of N (``level`` = N, 2N, 3N ...). ``arm`` names an arm and is
    shown only to closed-report readers, in the app (never in mail)."""

    threshold_id = models.CharField(max_length=60)
    arm = models.CharField(max_length=40, blank=True)
    description = models.CharField(max_length=300)
    count = models.PositiveIntegerField()
    level = models.PositiveIntegerField(default=0)  # the multiple reached; 0 for an alert on one event
    event = models.ForeignKey(AdverseEvent, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    adverse_event_ids = models.JSONField(default=list)
    triggered_at = models.DateTimeField(auto_now_add=True)
    triggered_by_ae = models.ForeignKey(AdverseEvent, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-triggered_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["threshold_id", "arm", "level"], condition=models.Q(event__isnull=True),
                                    name="dsmb_alert_once_per_multiple"),
            models.UniqueConstraint(fields=["threshold_id", "event"], condition=models.Q(event__isnull=False),
                                    name="dsmb_alert_once_per_event"),
        ]


class DsmbReport(models.Model):
    """A generated interim safety report, kept as produced (HTML; the PDF is rendered from it), in
    English (``html``) and Chinese (``html_zh``; empty for reports produced before it was kept)."""

    KINDS = [("open", _("open (pooled)")), ("closed", _("closed (by arm)"))]
    kind = models.CharField(max_length=6, choices=KINDS)
    as_of = models.DateField()
    scheduled = models.BooleanField(default=False)
    html = models.TextField()
    html_zh = models.TextField(blank=True, default="")
    summary = models.JSONField(default=dict)
    generated_at = models.DateTimeField(auto_now_add=True)
    generated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-as_of", "-generated_at", "-id"]
        indexes = [models.Index(fields=["kind", "as_of"])]

    def html_in(self, language: str | None) -> str:
        """The report in ``language`` (Chinese for zh*, else English; English when no Chinese is kept)."""
        if (language or "").lower().startswith("zh") and self.html_zh:
            return self.html_zh
        return self.html


class DsmbRecommendation(models.Model):
    DECISIONS = [
        ("continue", _("continue unchanged")),
        ("continue_modified", _("continue with modifications")),
        ("pause", _("pause enrolment/treatment")),
        ("stop", _("stop the trial")),
    ]
    meeting_on = models.DateField()
    as_of = models.DateField(null=True, blank=True)
    decision = models.CharField(max_length=20, choices=DECISIONS)
    summary = models.TextField()  # shared with the investigators (open session)
    closed_notes = models.TextField(blank=True)  # closed session: DSMB and unblinded reviewers only
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-meeting_on", "-id"]


class AeTask(models.Model):
    """A finding that may be an adverse event and asks for the adverse-event form: complications of
    the liposuction, "AE review = yes" on a visit, a laboratory value judged clinically significant.
    It stays open (dashboard, participant page) until an adverse event is recorded and linked to
    it, or it is dismissed with a reason. ``key`` names the finding, so it opens one task only."""

    SOURCES = [
        ("liposuction", _("liposuction complications")),
        ("ae_review", _("adverse-event review at a visit")),
        ("lab", _("clinically significant laboratory value")),
    ]
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="ae_tasks")
    key = models.CharField(max_length=80, unique=True)
    source = models.CharField(max_length=20, choices=SOURCES)
    description = models.CharField(max_length=300)
    term = models.CharField(max_length=200, blank=True)  # suggested adverse-event term
    opened_at = models.DateTimeField()
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                  related_name="+")
    adverse_event = models.ForeignKey(AdverseEvent, on_delete=models.PROTECT, null=True, blank=True,
                                      related_name="tasks")
    dismissed_reason = models.TextField(blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                  related_name="+")

    class Meta:
        ordering = ["opened_at", "id"]
        indexes = [models.Index(fields=["closed_at"])]

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    @property
    def state(self) -> str:
        if self.closed_at is None:
            return "open"
        return "recorded" if self.adverse_event_id else "dismissed"
