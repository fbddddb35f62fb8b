"""Insert many rows in one statement, skipping those whose unique key already exists, and learn
the ids of the rows actually inserted.

The rows travel as one JSON parameter and are unpacked by the database (jsonb_array_elements on
PostgreSQL, json_each on SQLite): INSERT ... SELECT ... ON CONFLICT (key) DO NOTHING RETURNING id.
Django's bulk_create cannot do this in a bounded number of statements: on SQLite it is held to
999 parameters per statement (about 40 messages), and with ignore_conflicts it returns no ids.
Here 10,000 notices are one statement on either database (up to CHUNK rows per statement).
"""

import json

from django.db import connection, models

CHUNK = 20_000

_PG_CASTS = {
    "AutoField": "integer",
    "BigAutoField": "bigint",
    "BigIntegerField": "bigint",
    "IntegerField": "integer",
    "PositiveIntegerField": "integer",
    "PositiveSmallIntegerField": "smallint",
    "PositiveBigIntegerField": "bigint",
    "SmallIntegerField": "smallint",
    "BooleanField": "boolean",
    "DateField": "date",
    "DateTimeField": "timestamp with time zone",
    "TimeField": "time",
    "DecimalField": "numeric",
    "JSONField": "jsonb",
}


def _pg_cast(field) -> str:
    if field.is_relation:  # ForeignKey, OneToOneField: the target column's type
        return _pg_cast(field.target_field)
    return _PG_CASTS.get(field.get_internal_type(), "text")


def _json_value(field, value, postgres: bool):
    if value is None:
        return None
    if isinstance(field, models.DateTimeField):
        return value.isoformat() if postgres else connection.ops.adapt_datetimefield_value(value)
    if isinstance(field, (models.DateField, models.TimeField)):
        return value.isoformat()
    if isinstance(field, models.DecimalField):
        return str(value)
    if isinstance(field, models.JSONField):
        return json.dumps(value, cls=field.encoder)  # the column's JSON text, as the ORM writes it
    return value


def insert_new(objs: list, *, unique_field: str, chunk: int = CHUNK, returning: str | None = None) -> list:
    """Insert the unsaved model instances `objs` (every concrete column but the primary key is
    taken from them), skipping any whose `unique_field` value exists already. Returns the ids of
    the rows inserted, in no particular order; with `returning` (a field name), (id, value) pairs."""
    if not objs:
        return []
    model = type(objs[0])
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    postgres = connection.vendor == "postgresql"
    qn = connection.ops.quote_name
    columns = ", ".join(qn(f.column) for f in fields)
    conflict = qn(meta.get_field(unique_field).column)
    if postgres:
        select = ", ".join(f"(r->>{i})::{_pg_cast(f)}" for i, f in enumerate(fields))
        source = "jsonb_array_elements(%s::jsonb) AS r"
        where = ""
    elif connection.vendor == "sqlite":
        select = ", ".join(f"json_extract(r.value, '$[{i}]')" for i in range(len(fields)))
        source = "json_each(%s) AS r"
        where = " WHERE true"  # SQLite needs it to read ON CONFLICT as the upsert clause
    else:
        raise NotImplementedError(f"insert_new supports PostgreSQL and SQLite, not {connection.vendor}")
    sql = (
        f"INSERT INTO {qn(meta.db_table)} ({columns}) SELECT {select} FROM {source}{where} "
        f"ON CONFLICT ({conflict}) DO NOTHING RETURNING {qn(meta.pk.column)}"
    )
    if returning:
        sql += f", {qn(meta.get_field(returning).column)}"
    ids: list = []
    with connection.cursor() as cursor:
        for start in range(0, len(objs), chunk):
            rows = [
                # pre_save, as bulk_create does: it fills auto_now and auto_now_add columns.
                [_json_value(f, f.pre_save(obj, True), postgres) for f in fields]
                for obj in objs[start : start + chunk]
            ]
            cursor.execute(sql, [json.dumps(rows)])
            ids.extend(tuple(row) if returning else row[0] for row in cursor.fetchall())
    return ids
