from django.db import migrations


def create_default_templates(apps, schema_editor):
    """The texts of notifications/defaults.py as editable rows (existing rows are kept)."""
    from notifications.defaults import defaults

    NoticeTemplate = apps.get_model("notifications", "NoticeTemplate")
    for (notice, channel), text in defaults().items():
        NoticeTemplate.objects.get_or_create(notice=notice, channel=channel, defaults=text)


class Migration(migrations.Migration):
    dependencies = [("notifications", "0001_log_preferences_templates")]

    operations = [migrations.RunPython(create_default_templates, migrations.RunPython.noop)]
