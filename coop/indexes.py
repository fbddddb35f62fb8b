"""Index types that every database the project runs on can build."""

from django.db import models


class BlockRangeIndex(models.Index):
    """A BRIN index on PostgreSQL, a plain B-tree elsewhere (SQLite has no BRIN).

    A BRIN index keeps one small summary per range of table pages, so it costs next to nothing per
    row written. It suits a column whose values follow the order rows are written in, such as the
    service day of the daily run's rows. Declared in a model's Meta like any index, so migrations
    and table rebuilds keep it."""

    def create_sql(self, model, schema_editor, using="", **kwargs):
        if schema_editor.connection.vendor != "postgresql":
            return super().create_sql(model, schema_editor, using=using, **kwargs)
        statement = super().create_sql(model, schema_editor, using=" USING brin", **kwargs)
        # Each page range is summarised as soon as it fills (by autovacuum), so the index finds the
        # newest day's rows right after the run, not only after the next vacuum.
        statement.parts["extra"] = " WITH (autosummarize = on)" + statement.parts["extra"]
        return statement
