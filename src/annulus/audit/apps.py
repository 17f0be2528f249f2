from django.apps import AppConfig
from django.core import checks


class AuditConfig(AppConfig):
    name = "annulus.audit"
    label = "audit"
    verbose_name = "Audit trail"

    def ready(self):
        checks.register(bulk_insert_returns_keys)
        from django.conf import settings

        if getattr(settings, "AUDIT_KEY_FILE", ""):  # a key that cannot be used stops the start, not a write
            from django.core.exceptions import ImproperlyConfigured

            from .keys import AuditKeyError, current

            try:
                current()
            except AuditKeyError as exc:
                raise ImproperlyConfigured(f"ANNULUS_AUDIT_KEY_FILE: {exc}") from None


def bulk_insert_returns_keys(app_configs=None, **kwargs):
    """The audit chain and the visit saves insert rows in bulk and need their keys back
    (PostgreSQL, SQLite 3.35 or later). Refuse to start on a database that cannot."""
    from django.db import connection

    if connection.features.can_return_rows_from_bulk_insert:
        return []
    return [checks.Error(
        f"the database ({connection.vendor}) cannot return the keys of rows inserted in bulk",
        hint="use PostgreSQL, or SQLite 3.35 or later", id="annulus.E001")]
