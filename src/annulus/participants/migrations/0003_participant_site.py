"""Each participant belongs to a site of the protocol. Rows made before sites existed get the
site of the protocol version in force (its first declared site, else its one site ``trial.site``
whose id is ``DEFAULT_SITE_ID``)."""

from django.db import migrations, models


def _site_of_protocol(ProtocolVersion, alias) -> str:
    from annulus.protocol import ProtocolError, parse_protocol
    from annulus.protocol.schema import DEFAULT_SITE_ID

    pv = (ProtocolVersion.objects.using(alias).filter(active=True).first()
          or ProtocolVersion.objects.using(alias).order_by("-loaded_at").first())
    if pv is None:
        return DEFAULT_SITE_ID
    try:
        return parse_protocol(pv.text).site_list[0].id
    except ProtocolError:
        return DEFAULT_SITE_ID


def existing_rows_to_the_single_site(apps, schema_editor):
    alias = schema_editor.connection.alias
    Participant = apps.get_model("participants", "Participant")
    if not Participant.objects.using(alias).exists():
        return
    site = _site_of_protocol(apps.get_model("trial", "ProtocolVersion"), alias)
    Participant.objects.using(alias).filter(site="").update(site=site)


class Migration(migrations.Migration):
    dependencies = [
        ("participants", "0002_record_lock"),
        ("trial", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="participant",
            name="site",
            field=models.CharField(db_index=True, default="", max_length=12),
            preserve_default=False,
        ),
        migrations.RunPython(existing_rows_to_the_single_site, migrations.RunPython.noop),
    ]
