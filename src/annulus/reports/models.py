"""A trial report asked for (``TrialReport``): from the command line (built at once) or from the
Report page and the API (built in a background thread, its progress shown). The row records who
asked, the as-of time, the language, the blind asked for and the blind given, the export it was
made from and the file written with its SHA-256; its audit event is written when it is done."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from annulus.exports.models import BLINDINGS, ExportRun

FORMATS = [("html", _("HTML")), ("pdf", _("PDF"))]
ORIGINS = [("cli", _("command line")), ("page", _("Report page")), ("api", _("API"))]


class TrialReport(models.Model):
    QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
    STATUSES = [(QUEUED, pgettext_lazy("report", "queued")), (RUNNING, pgettext_lazy("report", "running")),
                (DONE, pgettext_lazy("report", "done")), (FAILED, pgettext_lazy("report", "failed"))]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    origin = models.CharField(max_length=10, choices=ORIGINS, default="page")
    format = models.CharField(max_length=10, choices=FORMATS, default="pdf")
    language = models.CharField(max_length=10, default="en")
    as_of = models.DateTimeField(null=True, blank=True)  # None: the time the build starts
    unblinded = models.BooleanField(default=False)  # asked for: False = the blinded (pooled) report
    blinding = models.CharField(max_length=10, choices=BLINDINGS, blank=True)  # given (from the export)
    status = models.CharField(max_length=10, choices=STATUSES, default=QUEUED)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    step = models.CharField(max_length=40, blank=True)
    error = models.TextField(blank=True)
    export = models.ForeignKey(ExportRun, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    path = models.TextField(blank=True)
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["user", "id"])]
