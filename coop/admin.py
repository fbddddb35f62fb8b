"""Admin for the cooperative's settings: policy versions, billing cycles, fee schedule, office
closures and weather holds.

Who may do what comes from the roles (coop/roles.py): only billing managers add or change these;
clerks and auditors see them. The overrides below only ever *narrow* what a role allows (a policy
version in force is read-only for everyone). Every save goes through coop/services.py, which
validates and records who made the change; history (django-simple-history) is on every page.
"""

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Subquery
from django.urls import reverse
from simple_history.admin import SimpleHistoryAdmin

from coop import admin_q, services  # noqa: F401 (admin_q: django-q2's records, read-only)
from coop.admin_tools import NoCardNumbersMixin, adopt
from coop.calendar import local_today
from coop.exceptions import PolicyNotConfigured
from coop.models import BillingCycle, FeeScheduleEntry, OfficeClosure, Policy, WeatherHold


class ServiceHistoryAdmin(NoCardNumbersMixin, SimpleHistoryAdmin):
    """SimpleHistoryAdmin whose saves go through a service (subclasses implement save_model) and
    whose deletes through setting_entry_delete (PolicyAdmin has its own)."""

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        # django-simple-history accepts a "Revert" POST from anyone who may merely *view* the
        # object (it checks view-or-change). A revert is a change: require change permission on
        # the object as it is now (a policy version in force may not be reverted by anyone).
        if request.method == "POST":
            current = self.get_object(request, unquote(object_id))
            if current is None or not self.has_change_permission(request, current):
                raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)

    _adopt = staticmethod(adopt)

    def delete_model(self, request, obj):
        services.setting_entry_delete(actor=request.user, entry=obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


# --- Policy ---------------------------------------------------------------------------------------

# Sections as in the model: each starts at its first field and runs to the next section's.
POLICY_SECTIONS = [
    ("Prepaid eligibility", "prepaid_single_phase_only"),
    ("Prepaid money", "prepaid_minimum_starting_balance"),
    ("Prepaid disconnect and restore", "disconnect_level"),
    ("Debt-management plans", "debt_plan_share_percent"),
    ("Postpaid billing and collections", "due_date_rolls_to_business_day"),
    ("Returned payments", "returned_payment_fee"),
    ("Payment arrangements", "arrangement_broken_limit"),
    ("Deposits", "deposit_first_meter_favorable"),
    ("Amount guards", "amount_maximum"),
]


def _policy_fieldsets():
    starts = {first: title for title, first in POLICY_SECTIONS}
    fieldsets = [("Version", {"fields": ["effective_from", "name", "notes", "created_by", "created_at"]})]
    for name in services.POLICY_SETTING_FIELDS:
        if name in starts:
            fieldsets.append((starts[name], {"fields": []}))
        fieldsets[-1][1]["fields"].append(name)
    return fieldsets


POLICY_FIELDSETS = _policy_fieldsets()


def _in_force(policy: Policy) -> bool:
    return policy.pk is not None and policy.effective_from <= local_today()


class PolicyAdminForm(forms.ModelForm):
    class Meta:
        model = Policy
        fields = [*services.POLICY_VERSION_FIELDS, *services.POLICY_SETTING_FIELDS]

    def clean(self):
        cleaned = super().clean()
        if "effective_from" in cleaned:
            for message in services.policy_effective_date_errors(
                cleaned["effective_from"], policy_pk=self.instance.pk
            ):
                self.add_error("effective_from", message)
        # Cross-field rules on the field to correct (the model's constraints name no field).
        for name, message in services.policy_field_errors(cleaned).items():
            if name in self.fields and name in cleaned:
                self.add_error(name, message)
        return cleaned


@admin.register(Policy)
class PolicyAdmin(ServiceHistoryAdmin):
    form = PolicyAdminForm
    fieldsets = POLICY_FIELDSETS
    readonly_fields = ("created_by", "created_at")
    list_display = ("name", "effective_from", "status")
    list_display_links = ("name",)
    ordering = ("-effective_from",)

    def get_queryset(self, request):
        # The version in force today, worked out once in SQL for the whole list.
        in_force_now = Policy.objects.filter(effective_from__lte=local_today()).order_by("-effective_from")
        return super().get_queryset(request).annotate(in_force_pk=Subquery(in_force_now.values("pk")[:1]))

    @admin.display(description="Status")
    def status(self, obj):
        if obj.effective_from > local_today():
            return "Scheduled"
        if obj.pk == obj.in_force_pk:
            return "In force now"
        return "Past"

    # A version in force is history: nobody changes or deletes it, whatever their role.
    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and not (obj is not None and _in_force(obj))

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not (obj is not None and _in_force(obj))

    def get_actions(self, request):
        # Bulk delete would skip the in-force check; delete one pending version at a time.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def get_changeform_initial_data(self, request):
        """A new version starts as a copy of the one in force: change one number, pick a day."""
        initial = {}
        try:
            current = Policy.objects.in_force(local_today())
        except PolicyNotConfigured:
            current = None
        if current is not None:
            initial = {name: getattr(current, name) for name in services.POLICY_SETTING_FIELDS}
            initial["name"] = current.name
        initial.update(super().get_changeform_initial_data(request))  # ?field=value in the URL
        return initial

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        extra_context = dict(extra_context or {})
        if obj is not None and _in_force(obj):
            extra_context["policy_locked"] = True
            extra_context["policy_add_url"] = reverse("admin:coop_policy_add")
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        values = {name: data[name] for name in services.POLICY_SETTING_FIELDS if name in data}
        if change:
            version = {name: data[name] for name in services.POLICY_VERSION_FIELDS if name in data}
            saved = services.policy_update_pending(
                actor=request.user, policy=obj, values={**values, **version}
            )
        else:
            saved = services.policy_create_version(
                actor=request.user,
                effective_from=data["effective_from"],
                name=data["name"],
                notes=data.get("notes", ""),
                values=values,
            )
        self._adopt(obj, saved)

    def delete_model(self, request, obj):
        services.policy_delete_pending(actor=request.user, policy=obj)


# --- Billing cycles, fee schedule -----------------------------------------------------------------


@admin.register(BillingCycle)
class BillingCycleAdmin(ServiceHistoryAdmin):
    list_display = ("code", "name", "bill_day", "due_day", "is_active")
    list_filter = ("is_active",)
    search_fields = ("code", "name")

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        saved = services.billing_cycle_save(
            actor=request.user,
            cycle=obj if change else None,
            code=data["code"],
            name=data["name"],
            bill_day=data["bill_day"],
            due_day=data["due_day"],
            is_active=data["is_active"],
        )
        self._adopt(obj, saved)


@admin.register(FeeScheduleEntry)
class FeeScheduleEntryAdmin(ServiceHistoryAdmin):
    list_display = ("code", "description", "amount", "is_active")
    list_filter = ("is_active",)
    search_fields = ("code", "description")

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        saved = services.fee_schedule_entry_save(
            actor=request.user,
            entry=obj if change else None,
            code=data["code"],
            description=data["description"],
            amount=data["amount"],
            is_active=data["is_active"],
        )
        self._adopt(obj, saved)


# --- Office closures and weather holds ------------------------------------------------------------


class DateRangeAdmin(ServiceHistoryAdmin):
    list_display = ("start_date", "end_date", "reason", "entered_by", "entered_at")
    list_select_related = ("entered_by",)
    readonly_fields = ("entered_by", "entered_at")
    search_fields = ("reason",)
    date_hierarchy = "start_date"
    fields = ("start_date", "end_date", "reason", "entered_by", "entered_at")
    create_service = None
    update_service = None
    update_kwarg = ""

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        kwargs = {
            "actor": request.user,
            "start_date": data["start_date"],
            "end_date": data["end_date"],
            "reason": data["reason"],
        }
        if change:
            saved = self.update_service(**kwargs, **{self.update_kwarg: obj})
        else:
            saved = self.create_service(**kwargs)
        self._adopt(obj, saved)


@admin.register(OfficeClosure)
class OfficeClosureAdmin(DateRangeAdmin):
    create_service = staticmethod(services.office_closure_create)
    update_service = staticmethod(services.office_closure_update)
    update_kwarg = "closure"


@admin.register(WeatherHold)
class WeatherHoldAdmin(DateRangeAdmin):
    create_service = staticmethod(services.weather_hold_create)
    update_service = staticmethod(services.weather_hold_update)
    update_kwarg = "hold"
