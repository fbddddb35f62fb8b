"""PostgreSQL indexes for the admin's searches; nothing on SQLite.

Each index is on exactly the expression Django's lookup generates on PostgreSQL, otherwise the
planner cannot use it:

- "contains" (icontains: names, street address) is `UPPER("col"::text) LIKE UPPER('%term%')`:
  a pg_trgm GIN index on `UPPER("col"::text)`.
- "starts with" and "exact" (istartswith / iexact: email, account number) are
  `UPPER("col"::text) LIKE UPPER('term%')` and `UPPER("col"::text) = UPPER('term')`: a btree with
  text_pattern_ops (the database's collation is not C, so a plain btree cannot serve LIKE).

pg_trgm is a trusted extension: the database owner may create it without being a superuser.
The indexes are not in the models' Meta because SQLite has neither GIN nor operator classes.
"""

from django.db import migrations

INDEXES = {
    "member_first_name_trgm": 'ON accounts_member USING gin ((UPPER("first_name"::text)) gin_trgm_ops)',
    "member_last_name_trgm": 'ON accounts_member USING gin ((UPPER("last_name"::text)) gin_trgm_ops)',
    "member_email_upper_prefix": 'ON accounts_member ((UPPER("email"::text)) text_pattern_ops)',
    "location_line1_trgm": 'ON accounts_servicelocation USING gin ((UPPER("line1"::text)) gin_trgm_ops)',
    "account_number_upper_prefix": 'ON accounts_account ((UPPER("number"::text)) text_pattern_ops)',
}


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, definition in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} {definition}")


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [migrations.RunPython(create_indexes, drop_indexes, elidable=False)]
