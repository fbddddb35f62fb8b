"""Admin for rates and the daily prepaid run: tariffs with their blocks, riders and taxes (managers
edit versions not yet in force), the DailyRun list with its progress, deductions, disconnect
decisions, and a "Daily charges" panel on the account page."""

import datetime

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts.admin import ACCOUNT_PAGE_PANELS
from billing.admin import ViewOnlyAdmin
from billing.models import (
    DailyRun,
    Deduction,
    DisconnectDecision,
    Rider,
    Tariff,
    TariffBlock,
    TaxRate,
    parse_months,
)
from billing.rates import tariff_blocks_problem
from coop.admin_tools import NoCardNumbersMixin, account_link

# --- Rates -----------------------------------------------------------------------------------------


def _first_of_month(value, field):
    if value and value.day != 1:
        raise ValidationError({field: "Rates change on the first day of a month."})


class NotYetInForceMixin:
    """A version in force has priced days already: it is read-only. Add a new version instead."""

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.effective_from <= timezone.localdate():
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.effective_from <= timezone.localdate():
            return False
        return super().has_delete_permission(request, obj)


class TariffBlockFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        blocks = []
        for form in self.forms:
            if not form.cleaned_data or form.cleaned_data.get("DELETE"):
                continue
            try:
                months = parse_months(form.cleaned_data.get("months") or "")
            except ValueError as exc:
                form.add_error("months", f"{exc}. Write month numbers separated by commas, e.g. 6,7,8,9.")
                continue
            blocks.append((months, form.cleaned_data.get("up_to_kwh"), form.cleaned_data.get("rate")))
        problems = []
        for month in range(1, 13):
            ladder = sorted(
                [(up, rate) for months, up, rate in blocks if month in months],
                key=lambda b: (b[0] is None, b[0] or 0),
            )
            if problem := tariff_blocks_problem(ladder):
                problems.append(f"month {month}: {problem}")
        if problems:
            raise ValidationError(problems[:3] + (["…"] if len(problems) > 3 else []))


class TariffBlockInline(NoCardNumbersMixin, admin.TabularInline):
    model = TariffBlock
    formset = TariffBlockFormSet
    extra = 0
    fields = ("months", "up_to_kwh", "rate")


class TariffForm(forms.ModelForm):
    class Meta:
        model = Tariff
        fields = ("code", "name", "effective_from", "customer_charge")

    def clean(self):
        data = super().clean()
        _first_of_month(data.get("effective_from"), "effective_from")
        if data.get("effective_from") and data["effective_from"] <= timezone.localdate():
            raise ValidationError({"effective_from": "A new version starts after today (first of a month)."})
        return data


@admin.register(Tariff)
class TariffAdmin(NotYetInForceMixin, NoCardNumbersMixin, admin.ModelAdmin):
    form = TariffForm
    inlines = [TariffBlockInline]
    list_display = ("code", "name", "effective_from", "customer_charge")
    list_filter = ("code",)


class MonthlyVersionForm(forms.ModelForm):
    def clean(self):
        data = super().clean()
        _first_of_month(data.get("effective_from"), "effective_from")
        end = data.get("effective_to")
        if end and (end + datetime.timedelta(days=1)).day != 1:
            raise ValidationError({"effective_to": "Give the last day of a month (or leave blank)."})
        if end and data.get("effective_from") and end < data["effective_from"]:
            raise ValidationError({"effective_to": "It cannot end before it starts."})
        return data


@admin.register(Rider)
class RiderAdmin(NotYetInForceMixin, NoCardNumbersMixin, admin.ModelAdmin):
    form = MonthlyVersionForm
    list_display = ("code", "name", "rate", "effective_from", "effective_to")


@admin.register(TaxRate)
class TaxRateAdmin(NotYetInForceMixin, NoCardNumbersMixin, admin.ModelAdmin):
    form = MonthlyVersionForm
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
