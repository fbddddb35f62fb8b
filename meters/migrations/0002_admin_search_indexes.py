"""PostgreSQL index for the admin's meter-serial search; nothing on SQLite.

The search is "starts with" (istartswith), which Django writes on PostgreSQL as
`UPPER("serial"::text) LIKE UPPER('term%')`: a btree on exactly that expression with
text_pattern_ops (the database's collation is not C, so the unique btree on serial cannot serve
LIKE) serves it, and `UPPER(...) = UPPER(...)` too.
"""

from django.db import migrations

INDEXES = {
    "meter_serial_upper_prefix": 'ON meters_meter ((UPPER("serial"::text)) text_pattern_ops)',
}


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, definition in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} {definition}")


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("meters", "0001_initial")]

    operations = [migrations.RunPython(create_indexes, drop_indexes, elidable=False)]
