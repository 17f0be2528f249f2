from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """One audited event. ``payload`` is the canonical JSON that the hash covers; the other
    columns are copies of it kept for filtering and are checked against it by ``verify``."""

    ACTIONS = [
        ("create", "create"),
        ("change", "change"),
        ("void", "void"),
        ("view", "view"),
        ("login", "login"),
        ("login_failed", "login failed"),
        ("logout", "logout"),
        ("sign", "sign"),
        ("unblind", "unblind"),
        ("export", "export"),
    ]

    timestamp = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    actor_username = models.CharField(max_length=150)
    action = models.CharField(max_length=20, choices=ACTIONS)
    object_type = models.CharField(max_length=60, db_index=True)
    object_id = models.CharField(max_length=64, db_index=True)
    participant_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    reason = models.TextField(blank=True)
    protocol_version = models.CharField(max_length=20, blank=True)
    payload = models.TextField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    # HMAC-SHA256 of ``hash`` with the audit key (``annulus.audit.keys``): empty when no key was
    # configured; an event appended without the key cannot carry a valid one
    mac = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["participant_id", "id"])]

    def __str__(self):
        return f"#{self.pk} {self.action} {self.object_type}:{self.object_id} by {self.actor_username}"


class AuditHead(models.Model):
    """A single row locked while an event is appended, so concurrent writers form one chain."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_hash = models.CharField(max_length=64)
    count = models.BigIntegerField(default=0)
    keyed_from = models.BigIntegerField(null=True, blank=True)  # the first event with a MAC (its seq)
