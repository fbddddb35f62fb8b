"""Admin for rates and the daily prepaid run: tariffs with their blocks, riders and taxes (managers
edit versions not yet in force, through billing/tariffs.py), the DailyRun list with its progress,
deductions, disconnect decisions, and a "Daily charges" panel on the account page."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html

from accounts.admin import ACCOUNT_PAGE_PANELS
from billing import tariffs
from billing.admin import ViewOnlyAdmin
from billing.models import (
    DailyRun,
    Deduction,
    DisconnectDecision,
    Rider,
    Tariff,
    TariffBlock,
    TaxRate,
)
from coop.admin_tools import HistoryAdmin, NoCardNumbersMixin, ServiceSaveMixin, account_link, adopt

# --- Rates -----------------------------------------------------------------------------------------
#
# The forms validate with the rules of billing/tariffs.py (each problem on its field) and every save
# and delete goes through its services, which record who in the rows' history.


def _add_problems(form, problems: dict[str, str]) -> None:
    for field, message in problems.items():
        form.add_error(field, message)


class NotYetInForceMixin:
    """A version in force has priced days already: it is read-only. Add a new version instead."""

    def has_change_permission(self, request, obj=None):
        if obj is not None and tariffs.in_force(obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and tariffs.in_force(obj):
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        # Bulk delete would skip the services (and their in-force check): one version at a time.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


BLOCK_FIELDS = ("months", "up_to_kwh", "rate")


def _kept_blocks(formset) -> list[tariffs.BlockFields]:
    return [
        {name: form.cleaned_data.get(name) for name in BLOCK_FIELDS}
        for form in formset.forms
        if form.cleaned_data and not form.cleaned_data.get("DELETE")
    ]


class TariffBlockFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        for form in self.forms:
            kept = form.cleaned_data and not form.cleaned_data.get("DELETE")
            if kept and (problem := tariffs.months_problem(form.cleaned_data.get("months") or "")):
                form.add_error("months", problem)
        problems = tariffs.blocks_problems(_kept_blocks(self))
        if problems:
            raise ValidationError(problems[:3] + (["…"] if len(problems) > 3 else []))


class TariffBlockInline(NoCardNumbersMixin, admin.TabularInline):
    model = TariffBlock
    formset = TariffBlockFormSet
    extra = 0
    fields = BLOCK_FIELDS


class TariffForm(forms.ModelForm):
    class Meta:
        model = Tariff
        fields = ("code", "name", "effective_from", "customer_charge")

    def clean(self):
        data = super().clean()
        _add_problems(self, tariffs.tariff_problems(effective_from=data.get("effective_from")))
        return data


@admin.register(Tariff)
class TariffAdmin(NotYetInForceMixin, HistoryAdmin):
    form = TariffForm
    inlines = [TariffBlockInline]
    list_display = ("code", "name", "effective_from", "customer_charge")
    list_filter = ("code",)

    def save_model(self, request, obj, form, change):
        pass  # saved with its blocks, by one service, in save_related (which has the blocks)

    def save_related(self, request, form, formsets, change):
        (blocks,) = formsets
        fields = {name: form.cleaned_data[name] for name in TariffForm.Meta.fields}
        if change:
            saved = tariffs.tariff_update(
                actor=request.user, tariff=form.instance, blocks=_kept_blocks(blocks), **fields
            )
        else:
            saved = tariffs.tariff_create(actor=request.user, blocks=_kept_blocks(blocks), **fields)
        adopt(form.instance, saved)
        # What construct_change_message reads (formset.save() would set it): the blocks replaced.
        blocks.new_objects, blocks.changed_objects, blocks.deleted_objects = list(saved.blocks.all()), [], []

    def delete_model(self, request, obj):
        tariffs.tariff_delete(actor=request.user, tariff=obj)


class MonthlyVersionForm(forms.ModelForm):
    def clean(self):
        data = super().clean()
        _add_problems(
            self,
            tariffs.monthly_version_problems(
                effective_from=data.get("effective_from"), effective_to=data.get("effective_to")
            ),
        )
        return data


class MonthlyVersionAdmin(ServiceSaveMixin, NotYetInForceMixin, HistoryAdmin):
    """Riders and taxes: saved and deleted through their services (delete_service below)."""

    form = MonthlyVersionForm
    delete_service = None

    def delete_model(self, request, obj):
        self.delete_service(actor=request.user, **{self.update_kwarg: obj})


@admin.register(Rider)
class RiderAdmin(MonthlyVersionAdmin):
    create_service = staticmethod(tariffs.rider_create)
    update_service = staticmethod(tariffs.rider_update)
    delete_service = staticmethod(tariffs.rider_delete)
    update_kwarg = "rider"
    list_display = ("code", "name", "rate", "effective_from", "effective_to")


@admin.register(TaxRate)
class TaxRateAdmin(MonthlyVersionAdmin):
    create_service = staticmethod(tariffs.tax_rate_create)
    update_service = staticmethod(tariffs.tax_rate_update)
    delete_service = staticmethod(tariffs.tax_rate_delete)
    update_kwarg = "tax_rate"
    list_display = ("name", "percent", "effective_from", "effective_to")


# --- The daily run -----------------------------------------------------------------------------------


@admin.register(DailyRun)
class DailyRunAdmin(ViewOnlyAdmin):
    list_display = ("service_day", "status", "progress", "started_at", "finished_at", "deductions")
    list_display += ("true_ups", "estimated_reads", "low_balance", "at_disconnect_level", "failures")
    list_filter = ("status",)
    ordering = ("-service_day",)
    search_fields = ()
    readonly_fields = [f.name for f in DailyRun._meta.fields] + ["progress"]
    change_list_template = "admin/billing/dailyrun/change_list.html"

    @admin.display(description="progress")
    def progress(self, obj):
        return format_html(
            '<progress max="100" value="{}" style="width:8em"></progress> {}% ({} / {})',
            obj.progress_percent,
            obj.progress_percent,
            f"{obj.accounts_done:,}",
            f"{obj.accounts_total:,}",
        )

    def changelist_view(self, request, extra_context=None):
        extra_context = dict(extra_context or {})
        extra_context["running"] = DailyRun.objects.filter(status=DailyRun.Status.RUNNING).exists()
        return super().changelist_view(request, extra_context)


@admin.register(Deduction)
class DeductionAdmin(ViewOnlyAdmin):
    list_display = ("service_day", "account_link", "kind", "kwh", "read_quality", "energy", "customer_charge")
    list_display += ("riders", "tax", "total", "balance_after", "days_remaining")
    list_select_related = ("account",)
    list_filter = ("kind", "read_quality")
    search_fields = ("account__number",)
    ordering = ("-id",)
    raw_id_fields = ("account", "meter", "settles", "transaction", "run")

    @admin.display(description="account")
    def account_link(self, obj):
        return account_link(obj.account)


@admin.register(DisconnectDecision)
class DisconnectDecisionAdmin(ViewOnlyAdmin):
    list_display = ("decided_at", "day", "account_link", "outcome", "reason", "balance", "order")
    list_select_related = ("account", "order")
    list_filter = ("outcome",)
    search_fields = ("account__number",)
    ordering = ("-id",)
    raw_id_fields = ("account", "order")

    @admin.display(description="account")
    def account_link(self, obj):
        return account_link(obj.account)


# --- The account page ------------------------------------------------------------------------------

DAILY_ROWS = 31


def daily_charges_panel(request, account) -> str:
    """The prepaid account's last month of daily charges with their parts (one indexed query)."""
    if account.billing_mode != account.BillingMode.PREPAID or not request.user.has_perm(
        "billing.view_deduction"
    ):
        return ""
    rows = list(Deduction.objects.filter(account=account).order_by("-service_day", "-id")[:DAILY_ROWS])
    if not rows:
        return ""
    more = reverse("admin:billing_deduction_changelist") + f"?q={account.number}"
    return render_to_string("admin/billing/daily_charges_panel.html", {"rows": rows, "more": more})


ACCOUNT_PAGE_PANELS.append(daily_charges_panel)
