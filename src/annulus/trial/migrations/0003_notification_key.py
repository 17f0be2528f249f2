"""Notifications get a random key (pages name them by it, not by their row id)."""

from django.db import migrations, models

import annulus.trial.models


def fill_keys(apps, schema_editor):
    Notification = apps.get_model("trial", "Notification")
    db = schema_editor.connection.alias  # the connection migrating (the owner's, when roles are split)
    for n in Notification.objects.using(db).filter(key__isnull=True).only("id").iterator():
        Notification.objects.using(db).filter(pk=n.pk).update(key=annulus.trial.models.notification_key())


class Migration(migrations.Migration):

    dependencies = [
        ("trial", "0002_notification"),
    ]

    operations = [
        migrations.AddField(
            model_name="notification",
            name="key",
            field=models.CharField(editable=False, max_length=20, null=True),
        ),
        migrations.RunPython(fill_keys, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="notification",
            name="key",
            field=models.CharField(default=annulus.trial.models.notification_key, editable=False, max_length=20,
                                   unique=True),
        ),
    ]
