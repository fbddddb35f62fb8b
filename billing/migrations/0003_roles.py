from django.db import migrations

from coop.roles import sync_roles


class Migration(migrations.Migration):
    """Give the roles their permissions on the ledger models (read-only for everyone but the
    services: nobody deletes a financial record)."""

    dependencies = [("billing", "0002_ledger_triggers"), ("coop", "0002_roles")]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
