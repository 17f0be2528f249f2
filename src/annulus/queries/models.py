"""Queries on the trial's data (X-7.4): raised by hand or by an edit check of the protocol, on an
item, a form, a visit or a participant, answered by the site and closed by the raiser's side.
Nothing is deleted: each step adds a message to the query's thread and moves its status."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from annulus.participants.models import Participant

OPEN, ANSWERED, CLOSED = "open", "answered", "closed"
STATUSES = [(OPEN, pgettext_lazy("query", "open")), (ANSWERED, pgettext_lazy("query", "answered")),
            (CLOSED, pgettext_lazy("query", "closed"))]
MANUAL, CHECK = "manual", "check"
ORIGINS = [(MANUAL, _("raised by hand")), (CHECK, _("edit check"))]
# who is to act on a query: the site (investigators and coordinators) or one role
ASSIGNEES = [("site", _("site (investigator or coordinator)")), ("investigator", _("investigator")),
             ("coordinator", _("research coordinator")), ("monitor", _("monitor")),
             ("data_manager", _("data manager"))]
SITE_ROLES = ("investigator", "coordinator")


class Query(models.Model):
    """A question about one data point, addressed as (participant, visit, form, record, item):
    visit = the visit key ("" for the casebook and the adverse-event log, "screening" for consent
    and screening), form = the data dictionary's form id ("" for the whole visit or participant),
    record = the adverse event's id in the log (else 0), item = the item id ("" for the form)."""

    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="queries")
    visit = models.CharField(max_length=20, blank=True)
    form = models.CharField(max_length=40, blank=True)
    record = models.BigIntegerField(default=0)
    item = models.CharField(max_length=60, blank=True)
    origin = models.CharField(max_length=10, choices=ORIGINS, default=MANUAL)
    check_id = models.CharField(max_length=40, blank=True)
    # the failing values of an edit check in words: a check query closed by a person is not raised
    # again while the values are the same
    fingerprint = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=STATUSES, default=OPEN)
    assigned_to = models.CharField(max_length=20, choices=ASSIGNEES)
    raised_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                  null=True, blank=True)  # None: an edit check
    raised_role = models.CharField(max_length=30, blank=True)
    raised_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                  null=True, blank=True)  # None with closed_at: closed by its edit check

    class Meta:
        ordering = ["-raised_at", "-id"]
        indexes = [models.Index(fields=["status", "raised_at"]),
                   models.Index(fields=["participant", "status"]),
                   models.Index(fields=["participant", "check_id"])]

    def __str__(self):
        return f"Q{self.pk}"

    @property
    def label(self) -> str:
        return f"Q-{self.pk:05d}"

    @property
    def is_active(self) -> bool:
        return self.status != CLOSED

    @property
    def target(self) -> tuple:
        return (self.participant_id, self.visit, self.form, self.record, self.item)


class QueryMessage(models.Model):
    """One step of a query's thread: raised, answered, re-opened, closed (by a person or by its
    edit check, ``author`` None), with the text written."""

    RAISE, ANSWER, CLOSE, REOPEN, AUTO_CLOSE = "raise", "answer", "close", "reopen", "auto_close"
    KINDS = [(RAISE, pgettext_lazy("query step", "raised")), (ANSWER, pgettext_lazy("query step", "answered")),
             (CLOSE, pgettext_lazy("query step", "closed")), (REOPEN, pgettext_lazy("query step", "re-opened")),
             (AUTO_CLOSE, _("closed by the edit check"))]
    query = models.ForeignKey(Query, on_delete=models.PROTECT, related_name="messages")
    kind = models.CharField(max_length=12, choices=KINDS)
    text = models.TextField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                               null=True, blank=True)
    author_role = models.CharField(max_length=30, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]
