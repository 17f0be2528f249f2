from django.conf import settings
from django.db import models


class Membership(models.Model):
    """The one trial role a user holds (roles are declared in the protocol file)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="membership")
    role = models.CharField(max_length=30, db_index=True)
    is_principal_investigator = models.BooleanField(default=False)
    phone = models.CharField(max_length=40, blank=True)
    # set when the administrator resets the password: the user's pages lead to the password change
    # until they have chosen their own (accounts.middleware.PasswordChangeRequiredMiddleware)
    must_change_password = models.BooleanField(default=False)
    # the protocol site ids whose participants the user sees; empty: every site
    sites = models.JSONField(default=list, blank=True)

    def __str__(self):
        return f"{self.user.username} ({self.role})"


class LoginAttempt(models.Model):
    username = models.CharField(max_length=150, db_index=True)
    when = models.DateTimeField(auto_now_add=True, db_index=True)
    success = models.BooleanField()
    ip = models.CharField(max_length=64, blank=True)


class LoginLock(models.Model):
    """The password checks of one account from one source: the client's address for a login, ""
    for a password re-entered inside the app (a signature), and ``"*"`` for the account's checks
    from every source together (the account-wide cap, ``backends.ACCOUNT_WIDE``). ``attempts`` counts the checks taken
    since the last success or lock (a check is taken before the password is compared, with one
    conditional UPDATE, so concurrent guesses cannot exceed the limit); ``locks`` counts the locks
    in a row, each one twice as long as the one before (capped). An attacker elsewhere locks only
    their own source; the administrator unlocks an account (audited). A row is state, not a record
(the attempts are ``LoginAttempt`` rows and audit events): a correct password removes it."""

    username = models.CharField(max_length=150, db_index=True)
    source = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt = models.DateTimeField(null=True, blank=True)
    locks = models.PositiveIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["username", "source"], name="accounts_loginlock_one_per_source")]


class ApiToken(models.Model):
    """A per-user API token; only its SHA-256 is stored, the token itself is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_tokens")
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=12, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)
    expires = models.DateTimeField(null=True, blank=True)  # refused from then on (see issue_token)
    revoked = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=200, blank=True)

    def is_expired(self) -> bool:
        from django.utils import timezone

        return self.expires is None or self.expires <= timezone.now()

    def __str__(self):
        return f"{self.prefix}… ({self.name})"
