"""Admin for meters and their installations: big-table lists (coop/admin_tools.py), serial
searched by its beginning (an index on PostgreSQL: meters/migrations/0002_admin_search_indexes.py).

Saves go through meters/services.py (meter_create / meter_update, meter_install / meter_remove),
which record who in the rows' history. A meter is installed on the installations' add page and
removed by giving the installation its removal day; installations are not edited otherwise or
deleted (a wrong one is removed and the right one installed), and the inlines only list them.

The service location's admin page (accounts/admin.py) is extended here with its meters, the
"meter now" column and the installations inline: accounts does not know meters, so the location's
admin is registered again from here, the higher app.
"""

from django import forms
from django.contrib import admin
from django.db.models import OuterRef, Subquery

from accounts.admin import ServiceLocationAdmin
from accounts.models import ServiceLocation
from coop.admin_tools import (
    BigTableAdmin,
    HistoryAdmin,
    NoDeleteMixin,
    ReadOnlyInline,
    ServiceSaveMixin,
    adopt,
    check_constraints_on,
)
from meters import services
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


class InstallationsOfMeterInline(ReadOnlyInline, admin.TabularInline):
    model = MeterInstallation
    fields = ("location", "installed_on", "removed_on")
    readonly_fields = fields
    verbose_name_plural = "installations (add or remove one under Meter installations)"


@admin.register(Meter)
class MeterAdmin(ServiceSaveMixin, NoDeleteMixin, BigTableAdmin, HistoryAdmin):
    create_service = staticmethod(services.meter_create)
    update_service = staticmethod(services.meter_update)
    update_kwarg = "meter"
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


class InstallForm(forms.ModelForm):
    """A new installation: meter, location and day (it is removed later, on its own page)."""

    class Meta:
        model = MeterInstallation
        fields = ("meter", "location", "installed_on")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("meter") is not None:
            # The form cannot see the one-installation-per-meter constraint by itself: it is
            # conditioned on removed_on, which is not one of its fields (a new one is installed).
            candidate = MeterInstallation(meter=cleaned["meter"], removed_on=None)
            check_constraints_on(self, "meter", candidate, involving=("meter", "removed_on"))
        return cleaned


class RemoveForm(forms.ModelForm):
    """An installation's removal day, the one thing changed on an installation."""

    class Meta:
        model = MeterInstallation
        fields = ("removed_on",)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("removed_on"):
            # installed_on is read-only here, so the form alone would skip the constraint on both.
            candidate = MeterInstallation(
                installed_on=self.instance.installed_on, removed_on=cleaned["removed_on"]
            )
            check_constraints_on(self, "removed_on", candidate, involving=("installed_on", "removed_on"))
        return cleaned


@admin.register(MeterInstallation)
class MeterInstallationAdmin(NoDeleteMixin, BigTableAdmin, HistoryAdmin):
    list_display = ("meter", "location", "installed_on", "removed_on")
    list_select_related = ("meter", "location")
    list_filter = (InstalledNowFilter,)
    sortable_by = ()
    search_fields = ("^meter__serial", "location__line1")
    search_help_text = "Meter serial (its beginning is enough) or street address."
    raw_id_fields = ("meter", "location")
    ordering = ("-id",)  # newest records first, read from the primary key index

    def get_form(self, request, obj=None, **kwargs):
        kwargs["form"] = InstallForm if obj is None else RemoveForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return (
            ("meter", "location", "installed_on")
            if obj is None
            else ("meter", "location", "installed_on", "removed_on")
        )

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("meter", "location", "installed_on")

    def has_change_permission(self, request, obj=None):
        # A removed meter's installation is history: nothing is left to change on it.
        if obj is not None and obj.removed_on is not None:
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            saved = services.meter_install(
                actor=request.user,
                meter=data["meter"],
                location=data["location"],
                installed_on=data["installed_on"],
            )
        elif data.get("removed_on"):
            saved = services.meter_remove(actor=request.user, installation=obj, removed_on=data["removed_on"])
        else:
            return
        adopt(obj, saved)


class MeterInstallationInline(ReadOnlyInline, admin.TabularInline):
    model = MeterInstallation
    fields = ("meter", "installed_on", "removed_on")
    readonly_fields = fields
    verbose_name_plural = "meter installations (add or remove one under Meter installations)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("meter")


class MeteredLocationAdmin(ServiceLocationAdmin):
    """The service location's page with its meters: the meter installed now, in the list, and
    the installations."""

    list_display = (*ServiceLocationAdmin.list_display, "current_meter")
    inlines = (MeterInstallationInline, *ServiceLocationAdmin.inlines)

    def get_queryset(self, request):
        meter_now = MeterInstallation.objects.filter(
            location=OuterRef("pk"), removed_on__isnull=True
        ).order_by("-installed_on")
        return (
            super()
            .get_queryset(request)
            .annotate(current_meter=Subquery(meter_now.values("meter__serial")[:1]))
        )

    @admin.display(description="meter now")
    def current_meter(self, obj):
        return obj.current_meter or ""


admin.site.unregister(ServiceLocation)
admin.site.register(ServiceLocation, MeteredLocationAdmin)


# Registered from their own modules so each stays readable.
from meters import admin_orders, admin_reads  # noqa: E402,F401
