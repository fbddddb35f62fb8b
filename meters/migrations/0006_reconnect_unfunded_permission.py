# The manager's override to reconnect an unfunded account (meters.services.order_reconnect_unfunded).

from django.db import migrations

from coop.roles import sync_roles


class Migration(migrations.Migration):
    dependencies = [
        ("meters", "0005_installation_at_location_index"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="serviceorder",
            options={
                "ordering": ["-requested_at", "-id"],
                "permissions": [
                    ("reconnect_unfunded", "Can reconnect an unfunded account (manager's override)")
                ],
            },
        ),
        migrations.RunPython(sync_roles, migrations.RunPython.noop),
    ]
