"""Installations get a change history (who installed or removed a meter, when): the admin's
saves go through meters.services, which set its user. The roles' view permission on it follows."""

import django.db.models.deletion
import simple_history.models
from django.conf import settings
from django.db import migrations, models

from coop.roles import sync_roles


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_service_holds"),
        ("meters", "0006_reconnect_unfunded_permission"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="HistoricalMeterInstallation",
            fields=[
                (
                    "id",
                    models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name="ID"),
                ),
                ("installed_on", models.DateField()),
                ("removed_on", models.DateField(blank=True, null=True)),
                ("history_id", models.AutoField(primary_key=True, serialize=False)),
                ("history_date", models.DateTimeField(db_index=True)),
                ("history_change_reason", models.CharField(max_length=100, null=True)),
                (
                    "history_type",
                    models.CharField(
                        choices=[("+", "Created"), ("~", "Changed"), ("-", "Deleted")], max_length=1
                    ),
                ),
                (
                    "history_user",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "location",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="accounts.servicelocation",
                    ),
                ),
                (
                    "meter",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="meters.meter",
                    ),
                ),
            ],
            options={
                "verbose_name": "historical meter installation",
                "verbose_name_plural": "historical meter installations",
                "ordering": ("-history_date", "-history_id"),
                "get_latest_by": ("history_date", "history_id"),
            },
            bases=(simple_history.models.HistoricalChanges, models.Model),
        ),
        migrations.RunPython(sync_roles, migrations.RunPython.noop),
    ]
