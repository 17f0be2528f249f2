from django.db import models
from django.utils.translation import gettext_lazy as _


class ProtocolVersion(models.Model):
    """A protocol file as loaded. Records keep the version they were collected under."""

    version = models.CharField(max_length=20, unique=True)
    registry_number = models.CharField(max_length=40)
    digest = models.CharField(max_length=64, unique=True)
    text = models.TextField()
    effective_date = models.DateField()
    loaded_at = models.DateTimeField(auto_now_add=True)
    active = models.BooleanField(default=False)

    class Meta:
        ordering = ["-loaded_at"]

    def __str__(self):
        return f"{self.registry_number} v{self.version}"


class TrialState(models.Model):
    """Single row: where the trial stands. Its row lock also serialises case-number issue."""

    STATES = [
        ("setup", _("set-up")),
        ("recruiting", _("recruiting")),
        ("locked", _("database locked")),
        ("unblinded_1", _("first-level unblinded")),
        ("unblinded_2", _("second-level unblinded")),
    ]
    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    state = models.CharField(max_length=20, choices=STATES, default="setup")
    changed_at = models.DateTimeField(auto_now=True)


def notification_key() -> str:
    import secrets

    return secrets.token_urlsafe(12)


class Notification(models.Model):
    """An in-app message to one user (also sent by e-mail). Reading it is the only change.
    Pages and forms name a notification by its random ``key``, never by its row id: the ids run
    over every user's notifications, so their gaps would tell a user how many others received."""

    key = models.CharField(max_length=20, unique=True, default=notification_key, editable=False)
    user = models.ForeignKey("auth.User", on_delete=models.PROTECT, related_name="notifications")
    subject = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    link = models.CharField(max_length=300, blank=True)
    kind = models.CharField(max_length=40, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
