"""Admin for meters and their installations: big-table lists (coop/admin_tools.py), serial
searched by its beginning (an index on PostgreSQL: meters/migrations/0002_admin_search_indexes.py)."""

from django.contrib import admin
from django.db.models import OuterRef, Subquery

from coop.admin_tools import BigTableAdmin, HistoryAdmin
from meters.models import Meter, MeterInstallation


class InstalledNowFilter(admin.SimpleListFilter):
    title = "installed"
    parameter_name = "installed"

    def lookups(self, request, model_admin):
        return (("now", "Installed now"), ("removed", "Removed"))

    def queryset(self, request, queryset):
        if self.value() == "now":
            return queryset.filter(removed_on__isnull=True)
        if self.value() == "removed":
            return queryset.filter(removed_on__isnull=False)
        return queryset


class InstallationsOfMeterInline(admin.TabularInline):
    model = MeterInstallation
    fields = ("location", "installed_on", "removed_on")
    raw_id_fields = ("location",)
    extra = 0
    show_change_link = True


@admin.register(Meter)
class MeterAdmin(BigTableAdmin, HistoryAdmin):
    list_display = ("serial", "manufacturer", "model", "remote_disconnect_capable", "installed_at")
    list_filter = ("remote_disconnect_capable",)
    sortable_by = ("serial",)
    search_fields = ("^serial",)
    search_help_text = "Serial number (its beginning is enough)."
    inlines = (InstallationsOfMeterInline,)
    card_number_exempt_fields = ("serial",)  # the maker's number, not free text

    def get_queryset(self, request):
        # Evaluated for the page's rows only, through the meter_installed_once index.
        installed = MeterInstallation.objects.filter(meter=OuterRef("pk"), removed_on__isnull=True)
        return (
            super()
            .get_queryset(request)
            .annotate(installed_at=Subquery(installed.values("location__line1")[:1]))
        )

    @admin.display(description="installed at")
    def installed_at(self, obj):
        return obj.installed_at or ""


@admin.register(MeterInstallation)
class MeterInstallationAdmin(BigTableAdmin):
    list_display = ("meter", "location", "installed_on", "removed_on")
    list_select_related = ("meter", "location")
    list_filter = (InstalledNowFilter,)
    sortable_by = ()
    search_fields = ("^meter__serial", "location__line1")
    search_help_text = "Meter serial (its beginning is enough) or street address."
    raw_id_fields = ("meter", "location")
    ordering = ("-id",)  # newest records first, read from the primary key index


# Registered from their own modules so each stays readable.
from meters import admin_orders, admin_reads  # noqa: E402,F401
