from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="ProtocolVersion",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("version", models.CharField(max_length=20, unique=True)),
                ("registry_number", models.CharField(max_length=40)),
                ("digest", models.CharField(max_length=64, unique=True)),
                ("text", models.TextField()),
                ("effective_date", models.DateField()),
                ("loaded_at", models.DateTimeField(auto_now_add=True)),
                ("active", models.BooleanField(default=False)),
            ],
            options={"ordering": ["-loaded_at"]},
        ),
        migrations.CreateModel(
            name="TrialState",
            fields=[
                ("id", models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                ("state", models.CharField(choices=[("setup", "set-up"), ("recruiting", "recruiting"), ("locked", "database locked"), ("unblinded_1", "first-level unblinded"), ("unblinded_2", "second-level unblinded")], default="setup", max_length=20)),
                ("changed_at", models.DateTimeField(auto_now=True)),
            ],
        ),
    ]
