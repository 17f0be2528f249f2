"""The causalities to the trial's procedures move from two columns of the first trial
(``causality_liposuction``, ``causality_injection``) into ``AdverseEvent.causality``, keyed by
the ids the protocol declares under ``safety.causality_of``: each value that was held is copied,
then the two columns are removed. Outward the fields keep their names (``causality_<id>``)."""

from django.db import migrations, models

# the old column -> the id of the protocol's causality item it becomes
MOVED = {"causality_liposuction": "liposuction", "causality_injection": "injection"}


def causality_of(row: dict) -> dict:
    """The ``causality`` value of one row: each old column that holds a value, under its id."""
    return {key: row[column] for column, key in MOVED.items() if row.get(column)}


def copy_causalities(apps, schema_editor):
    AdverseEvent = apps.get_model("safety", "AdverseEvent")
    rows = AdverseEvent.objects.using(schema_editor.connection.alias)
    for row in rows.values("pk", *MOVED).iterator():
        rows.filter(pk=row["pk"]).update(causality=causality_of(row))


def copy_back(apps, schema_editor):
    AdverseEvent = apps.get_model("safety", "AdverseEvent")
    rows = AdverseEvent.objects.using(schema_editor.connection.alias)
    for pk, causality in rows.values_list("pk", "causality").iterator():
        causality = causality or {}
        rows.filter(pk=pk).update(**{column: causality.get(key, "") for column, key in MOVED.items()})


class Migration(migrations.Migration):

    dependencies = [
        ('safety', '0004_dsmb_report_chinese'),
    ]

    operations = [
        migrations.AddField(
            model_name='adverseevent',
            name='causality',
            field=models.JSONField(default=dict),
            preserve_default=False,
        ),
        migrations.RunPython(copy_causalities, copy_back),
        migrations.RemoveField(model_name='adverseevent', name='causality_liposuction'),
        migrations.RemoveField(model_name='adverseevent', name='causality_injection'),
    ]
