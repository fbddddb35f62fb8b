"""The schedules' audit trail and the managers' permission to pause them; django-q2's rows become
read-only for every role (coop/roles.py, READ_ONLY_APPS), so its add/change/delete permissions
are taken back from the groups."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from coop.roles import sync_roles


class Migration(migrations.Migration):
    dependencies = [
        ("coop", "0005_amount_guards"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.CreateModel(
            name="ScheduleChange",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("schedule_id", models.PositiveIntegerField()),
                ("schedule_name", models.CharField(blank=True, max_length=100)),
                (
                    "action",
                    models.CharField(
                        choices=[
                            ("paused", "Paused"),
                            ("resumed", "Resumed"),
                            ("saved", "Added or edited (superuser)"),
                            ("deleted", "Deleted (superuser)"),
                        ],
                        max_length=10,
                    ),
                ),
                ("func", models.CharField(blank=True, max_length=256, verbose_name="function")),
                ("repeats_before", models.IntegerField(blank=True, null=True)),
                ("repeats_after", models.IntegerField(blank=True, null=True)),
                ("reason", models.CharField(max_length=200)),
                ("at", models.DateTimeField(auto_now_add=True)),
                (
                    "actor",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-at", "-id"],
                "permissions": [("pause_schedule", "Can pause or resume the cooperative's own schedules")],
            },
        ),
        migrations.RunPython(sync_roles, migrations.RunPython.noop),
    ]
