from django.apps import AppConfig
from django.core import checks


class AuditConfig(AppConfig):
    name = "annulus.audit"
    label = "audit"
    verbose_name = "Audit trail"

    def ready(self):
        checks.register(bulk_insert_returns_keys)


def bulk_insert_returns_keys(app_configs=None, **kwargs):
    """The audit chain and the visit saves insert rows in bulk and need their keys back
    (PostgreSQL, SQLite 3.35 or later). Refuse to start on a database that cannot."""
    from django.db import connection

    if connection.features.can_return_rows_from_bulk_insert:
        return []
    return [checks.Error(
        f"the database ({connection.vendor}) cannot return the keys of rows inserted in bulk",
        hint="use PostgreSQL, or SQLite 3.35 or later", id="annulus.E001")]
