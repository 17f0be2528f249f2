"""Exports (X-7.6): each export made (``ExportRun``: who, when, what, the files' checksums) and
each export asked for from the page or the API (``ExportJob``: built in the background, its status
and progress visible, its zip downloaded). Nothing here is trial data: an export reads the trial
as of a time and writes files; the run row and its audit event are the record that it was made."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

FORMAT_CHOICES = [
    ("csv", _("CSV (long and wide, with the data dictionary)")),
    ("sav", _("SPSS (.sav)")),
    ("dta", _("Stata (.dta)")),
    ("xpt", _("SAS transport (.xpt)")),
    ("odm", _("CDISC ODM 1.3.2 (XML, with audit records)")),
    ("sdtm", _("SDTM-style domains (.xpt, define.xml)")),
    ("dataset-json", _("SDTM-style domains (Dataset-JSON)")),
    ("adam", _("Analysis datasets (ADaM-style ADSL, ADEFF, ADAE, ADLB, ADSV, ADDV)")),
]
BLINDINGS = [("blinded", _("blinded")), ("labels", _("group labels A–D")), ("arms", _("treatments"))]
ORIGINS = [("cli", _("command line")), ("page", _("Exports page")), ("api", _("API"))]


class ExportRun(models.Model):
    """One export made: recorded with its audit event in one transaction, after the files were
    written. ``files`` lists every file written with its size and SHA-256 (the manifest too)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    role = models.CharField(max_length=40)
    format = models.CharField(max_length=20, choices=FORMAT_CHOICES)
    origin = models.CharField(max_length=10, choices=ORIGINS, default="cli")
    as_of = models.DateTimeField()
    created_at = models.DateTimeField()
    blinding = models.CharField(max_length=10, choices=BLINDINGS)
    identifiable = models.BooleanField(default=False)
    drug_codes = models.BooleanField(default=False)  # made by a role that sees drug codes (the pharmacist)
    excel_bom = models.BooleanField(default=False)
    language = models.CharField(max_length=10, default="en")
    subjects = models.PositiveIntegerField(default=0)
    chain_count = models.BigIntegerField(default=0)
    chain_hash = models.CharField(max_length=64, blank=True)
    out_dir = models.TextField(blank=True)
    files = models.JSONField(default=list)  # [{"name", "size", "sha256"}]
    protocol_version = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["-id"]


class ExportJob(models.Model):
    """An export asked for from the page or the API, built in a background thread into a zip under
    the var directory. ``heartbeat_at`` moves while it runs: a job "running" whose heartbeat
    stopped (the process died) is shown as failed."""

    QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
    STATUSES = [(QUEUED, pgettext_lazy("export", "queued")), (RUNNING, pgettext_lazy("export", "running")),
                (DONE, pgettext_lazy("export", "done")), (FAILED, pgettext_lazy("export", "failed"))]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    format = models.CharField(max_length=20, choices=FORMAT_CHOICES)
    origin = models.CharField(max_length=10, choices=ORIGINS, default="page")
    as_of = models.DateTimeField(null=True, blank=True)  # None: the time the job runs
    identifiable = models.BooleanField(default=False)
    excel_bom = models.BooleanField(default=False)
    language = models.CharField(max_length=10, default="en")
    status = models.CharField(max_length=10, choices=STATUSES, default=QUEUED)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    run = models.ForeignKey(ExportRun, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    zip_path = models.TextField(blank=True)
    zip_size = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["user", "id"])]
