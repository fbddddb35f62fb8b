"""Admin for meter reads (see meters/reads/).

Reads come from files (import_reads) and from the morning estimates (reads_estimate_missing), and
billing prices them by (meter, day): nobody adds, edits or deletes one here, whatever their
permissions; a wrong read is corrected through the import, which keeps the audit of what replaced
an estimate. The table holds a row per meter per day (hundreds of millions at a large
cooperative), so the list is a BigTableAdmin (bounded count, no facets), ordered by the primary
key, searched by meter serial prefix (an index on PostgreSQL), and has no date_hierarchy, whose
year and month links are an unbounded query over the whole table.
"""

from django.contrib import admin

from coop.admin_tools import BigTableAdmin, NoWritesMixin
from meters.models import MeterRead


@admin.register(MeterRead)
class MeterReadAdmin(NoWritesMixin, BigTableAdmin):
    list_display = ("meter", "day", "kwh", "quality", "estimated_kwh", "register", "source", "source_name")
    list_select_related = ("meter",)
    list_filter = ("quality", "source")
    # Sorting by day uses the (day, quality) index; other columns would sort the whole table.
    sortable_by = ("day",)
    search_fields = ("^meter__serial",)
    search_help_text = "Meter serial (its beginning is enough)."
    raw_id_fields = ("meter",)
    ordering = ("-id",)  # newest first, read from the primary key index
    fields = (
        "meter",
        "day",
        "kwh",
        "register",
        "quality",
        "estimated_kwh",
        "source",
        "source_name",
        "received_at",
    )
    readonly_fields = fields
