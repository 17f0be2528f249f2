from django.conf import settings
from django.db import models


class Membership(models.Model):
    """The one trial role a user holds (roles are declared in the protocol file)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="membership")
    role = models.CharField(max_length=30, db_index=True)
    is_principal_investigator = models.BooleanField(default=False)
    phone = models.CharField(max_length=40, blank=True)

    def __str__(self):
        return f"{self.user.username} ({self.role})"


class LoginAttempt(models.Model):
    username = models.CharField(max_length=150, db_index=True)
    when = models.DateTimeField(auto_now_add=True, db_index=True)
    success = models.BooleanField()
    ip = models.CharField(max_length=64, blank=True)


class ApiToken(models.Model):
    """A per-user API token; only its SHA-256 is stored, the token itself is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_tokens")
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=12, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.prefix}… ({self.name})"
