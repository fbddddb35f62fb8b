from django.db import migrations

from coop.roles import sync_roles


class Migration(migrations.Migration):
    dependencies = [
        ("coop", "0001_initial"),
        ("accounts", "0001_initial"),
        ("meters", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
