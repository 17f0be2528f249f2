from django.conf import settings
from django.db import migrations, models
import django.db.models.deletion

# On PostgreSQL the audit table refuses UPDATE and DELETE outright (the application never
# issues either; this stops a stray script or console session too).
PG_TRIGGER = """
CREATE OR REPLACE FUNCTION audit_event_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_auditevent is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_event_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_immutable();
CREATE TRIGGER audit_event_no_truncate
    BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_immutable();
"""
PG_TRIGGER_REVERSE = """
DROP TRIGGER IF EXISTS audit_event_no_update_delete ON audit_auditevent;
DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_event_immutable();
"""


def add_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # params=None: the SQL holds a literal '%' (plpgsql's RAISE placeholder), not a parameter
        schema_editor.execute(PG_TRIGGER, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_TRIGGER_REVERSE, params=None)


class Migration(migrations.Migration):
    initial = True
    dependencies = [migrations.swappable_dependency(settings.AUTH_USER_MODEL)]

    operations = [
        migrations.CreateModel(
            name="AuditHead",
            fields=[
                ("id", models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                ("last_hash", models.CharField(max_length=64)),
                ("count", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name="AuditEvent",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("timestamp", models.DateTimeField(db_index=True)),
                ("actor_username", models.CharField(max_length=150)),
                ("action", models.CharField(choices=[("create", "create"), ("change", "change"), ("void", "void"), ("view", "view"), ("login", "login"), ("login_failed", "login failed"), ("logout", "logout"), ("sign", "sign"), ("unblind", "unblind"), ("export", "export")], max_length=20)),
                ("object_type", models.CharField(db_index=True, max_length=60)),
                ("object_id", models.CharField(db_index=True, max_length=64)),
                ("participant_id", models.BigIntegerField(blank=True, db_index=True, null=True)),
                ("reason", models.TextField(blank=True)),
                ("protocol_version", models.CharField(blank=True, max_length=20)),
                ("payload", models.TextField()),
                ("prev_hash", models.CharField(max_length=64)),
                ("hash", models.CharField(max_length=64, unique=True)),
                ("actor", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to=settings.AUTH_USER_MODEL)),
            ],
            options={"ordering": ["id"], "indexes": [models.Index(fields=["participant_id", "id"], name="audit_audit_partici_929832_idx")]},
        ),
        migrations.RunPython(add_trigger, drop_trigger),
    ]
