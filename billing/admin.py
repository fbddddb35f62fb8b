"""Admin for the ledger and the records of money received and charged.

Everything here is read-only for everyone, superusers included: ledger rows (transactions, legs,
ledger accounts) and payments, returns, fees and plans are written only by `billing.services`,
which keep the ledger balanced, append-only and audited. A clerk changes money from the account
page instead: its money panel (billing/admin_views.py) links to one small form per service.

Lists are `BigTableAdmin`s (coop/admin_tools.py): bounded counts, no facets, and every column read
in the list's one query (list_select_related). Lists are ordered by the primary key, newest first,
which its index serves without a sort however large the table.
"""

from django.contrib import admin
from django.contrib.admin import DateFieldListFilter
from django.db.models import Q
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.admin import ACCOUNT_PAGE_PANELS
from billing.admin_views import MoneyViews, money_panel
from billing.models import (
    ChargedFee,
    DebtPlan,
    LedgerAccount,
    Leg,
    Payment,
    RefundPayout,
    ReturnedPayment,
    Transaction,
)
from billing.prepaid import restore_amount_needed
from coop.admin_tools import BigTableAdmin, ExactSearchMixin, ReadOnlyInline, ViewOnlyMixin, account_link
from coop.exceptions import CoopError
from coop.models import FeeScheduleEntry
from coop.money import usd

ACCOUNT_PAGE_PANELS.append(money_panel)


def restore_line(request, account) -> str:
    """Under the money panel of a disconnected prepaid account: what the member must still pay for
    service to come back (billing.prepaid.restore_amount_needed)."""
    if (
        account.billing_mode != account.BillingMode.PREPAID
        or account.status != account.Status.DISCONNECTED
        or not request.user.has_perm("billing.view_transaction")
    ):
        return ""
    try:
        amount = restore_amount_needed(account)
    except CoopError:  # no policy in force: the money panel already says so
        return ""
    return format_html(
        '<p class="money-note warning" id="money-restore">'
        "<strong>Amount needed to restore service: {}</strong></p>",
        usd(amount),
    )


ACCOUNT_PAGE_PANELS.append(restore_line)


class ViewOnlyAdmin(ExactSearchMixin, ViewOnlyMixin, BigTableAdmin):
    """Look, never touch; search whole values only (a receipt number, an account number, a code),
    each through its own index (coop/admin_tools.py)."""


def _actor(user):
    return (user.get_full_name() or user.get_username()) if user else "—"


# --- Payments ------------------------------------------------------------------------------------


@admin.register(Payment)
class PaymentAdmin(ViewOnlyAdmin):
    list_display = ("receipt_number", "received_at", "account_number", "amount", "tender", "reference")
    list_display += ("status", "to_credit", "to_arrears", "to_amount_due", "actor_name")
    list_select_related = ("account", "actor")
    list_filter = ("tender", "status", ("received_at", DateFieldListFilter))
    search_fields = ("receipt_number", "reference", "account__number")
    search_help_text = "Receipt number, check or processor reference, or account number (exactly)."
    sortable_by = ()
    ordering = ("-id",)
    readonly_fields = ("receipt", "account_number", "actor_name")
    fields = (
        "receipt",
        "account_number",
        "amount",
        "tender",
        "reference",
        "received_at",
        "status",
        "to_credit",
        "to_arrears",
        "to_amount_due",
        "transaction",
        "actor_name",
        "created_at",
    )

    def exact_search_filters(self, term):
        return [
            {"receipt_number": term.upper()},  # receipts are printed upper-case; people type either
            # The unique (tender, reference) index, probed once per tender.
            {"tender__in": Payment.Tender.values, "reference": term},
            {"account__number": term},
        ]

    def get_urls(self):
        views = MoneyViews(self.admin_site)
        wrap = self.admin_site.admin_view
        account_actions = [
            ("post/", views.payment_post, "payment_post"),
            ("fee/", views.fee_charge, "fee_charge"),
            ("deposit/collect/", views.deposit_collect, "deposit_collect"),
            ("deposit/apply/", views.deposit_apply, "deposit_apply"),
            ("deposit/refund/", views.deposit_refund, "deposit_refund"),
            ("plan/enroll/", views.plan_enroll, "plan_enroll"),
            ("adjustment/", views.adjustment_post, "adjustment_post"),
            ("write-off/", views.arrears_write_off, "arrears_write_off"),
        ]
        urls = [
            path(f"account/<int:account_id>/{suffix}", wrap(view), name=f"billing_{name}")
            for suffix, view, name in account_actions
        ]
        urls += [
            path("<int:payment_id>/receipt/", wrap(views.payment_receipt), name="billing_payment_receipt"),
            path("<int:payment_id>/return/", wrap(views.payment_return), name="billing_payment_return"),
        ]
        return urls + super().get_urls()

    @admin.display(description="receipt")
    def receipt(self, obj):
        url = reverse("admin:billing_payment_receipt", args=[obj.pk])
        return format_html('<a href="{}">{} (printable receipt)</a>', url, obj.receipt_number)

    @admin.display(description="account")
    def account_number(self, obj):
        return account_link(obj.account)

    @admin.display(description="by")
    def actor_name(self, obj):
        return _actor(obj.actor)


@admin.register(ReturnedPayment)
class ReturnedPaymentAdmin(ViewOnlyAdmin):
    list_display = ("returned_on", "receipt", "account_number", "amount", "tender", "reason", "note")
    list_display += ("actor_name", "created_at")
    list_select_related = ("payment__account", "actor")
    readonly_fields = ("created_at",)  # not editable, so not shown unless named
    list_filter = ("reason", ("returned_on", DateFieldListFilter))
    search_fields = ("payment__receipt_number", "payment__account__number")
    search_help_text = "Receipt number or account number (exactly)."
    sortable_by = ()
    ordering = ("-id",)

    def exact_search_filters(self, term):
        return [{"payment__receipt_number": term.upper()}, {"payment__account__number": term}]

    @admin.display(description="receipt")
    def receipt(self, obj):
        url = reverse("admin:billing_payment_receipt", args=[obj.payment_id])
        return format_html('<a href="{}">{}</a>', url, obj.payment.receipt_number)

    @admin.display(description="account")
    def account_number(self, obj):
        return account_link(obj.payment.account)

    @admin.display(description="amount")
    def amount(self, obj):
        return obj.payment.amount

    @admin.display(description="tender")
    def tender(self, obj):
        return obj.payment.get_tender_display()

    @admin.display(description="by")
    def actor_name(self, obj):
        return _actor(obj.actor)


# --- Fees and plans ------------------------------------------------------------------------------


class FeeCodeFilter(admin.SimpleListFilter):
    """The fee schedule's codes (a small table), not SELECT DISTINCT over every charged fee."""

    title = "fee"
    parameter_name = "code"

    def lookups(self, request, model_admin):
        return list(FeeScheduleEntry.objects.order_by("description").values_list("code", "description"))

    def queryset(self, request, queryset):
        return queryset.filter(code=self.value()) if self.value() else queryset


class WaivedFilter(admin.SimpleListFilter):
    title = "waived"
    parameter_name = "waived"

    def lookups(self, request, model_admin):
        return [("yes", "Waived"), ("no", "Not waived")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(waiver_transaction__isnull=self.value() == "no")
        return queryset


@admin.register(ChargedFee)
class ChargedFeeAdmin(ViewOnlyAdmin):
    list_display = ("charged_on", "account_number", "description", "amount", "actor_name", "posted_at")
    list_display += ("waived", "waived_by_name", "waive_reason")
    list_select_related = ("account", "actor", "transaction", "waived_by")
    list_filter = (FeeCodeFilter, WaivedFilter, ("charged_on", DateFieldListFilter))
    search_fields = ("account__number",)
    search_help_text = "Account number (exactly)."
    sortable_by = ()
    ordering = ("-id",)

    def get_urls(self):
        views = MoneyViews(self.admin_site)
        waive = path(
            "<int:fee_id>/waive/", self.admin_site.admin_view(views.fee_waive), name="billing_fee_waive"
        )
        return [waive, *super().get_urls()]

    @admin.display(description="account")
    def account_number(self, obj):
        return account_link(obj.account)

    @admin.display(description="waived", boolean=True)
    def waived(self, obj):
        return obj.is_waived

    @admin.display(description="posted at")
    def posted_at(self, obj):
        return obj.transaction.posted_at

    @admin.display(description="waived by")
    def waived_by_name(self, obj):
        return _actor(obj.waived_by) if obj.is_waived else ""

    @admin.display(description="by")
    def actor_name(self, obj):
        return _actor(obj.actor)


@admin.register(DebtPlan)
class DebtPlanAdmin(ViewOnlyAdmin):
    list_display = ("account_number", "status", "share_percent", "enrolled_amount", "enrolled_on", "ended_on")
    list_display += ("enrolled_by_name", "share_override_reason", "cancelled_by_name", "cancel_reason")
    list_select_related = ("account", "enrolled_by", "cancelled_by")
    list_filter = ("status",)
    search_fields = ("account__number",)
    search_help_text = "Account number (exactly)."
    sortable_by = ()
    ordering = ("-id",)

    def get_urls(self):
        views = MoneyViews(self.admin_site)
        cancel = path(
            "<int:plan_id>/cancel/", self.admin_site.admin_view(views.plan_cancel), name="billing_plan_cancel"
        )
        return [cancel, *super().get_urls()]

    @admin.display(description="account")
    def account_number(self, obj):
        return account_link(obj.account)

    @admin.display(description="enrolled by")
    def enrolled_by_name(self, obj):
        return _actor(obj.enrolled_by)

    @admin.display(description="cancelled by")
    def cancelled_by_name(self, obj):
        return _actor(obj.cancelled_by) if obj.status == DebtPlan.Status.CANCELLED else ""


@admin.register(RefundPayout)
class RefundPayoutAdmin(ViewOnlyAdmin):
    list_display = (
        "paid_on",
        "check_number",
        "account_number",
        "amount",
        "refund",
        "actor_name",
        "created_at",
    )
    list_select_related = ("refund__account", "actor")
    search_fields = ("check_number", "refund__account__number")
    search_help_text = "Check number or account number (exactly)."
    sortable_by = ()
    ordering = ("-id",)
    readonly_fields = ("created_at",)  # not editable, so not shown unless named

    @admin.display(description="account")
    def account_number(self, obj):
        return account_link(obj.refund.account)

    @admin.display(description="by")
    def actor_name(self, obj):
        return _actor(obj.actor)


# --- The ledger ----------------------------------------------------------------------------------


class LegInline(ReadOnlyInline, admin.TabularInline):
    model = Leg
    fields = ("ledger_account", "amount")
    readonly_fields = fields
    show_change_link = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("ledger_account")


@admin.register(Transaction)
class TransactionAdmin(ViewOnlyAdmin):
    list_display = ("id", "posted_at", "effective_date", "kind", "account_number", "memo", "actor_name")
    list_select_related = ("account", "actor")
    list_filter = ("kind", ("effective_date", DateFieldListFilter))
    search_fields = ("account__number", "idempotency_key")
    search_help_text = "Account number or idempotency key (exactly)."
    sortable_by = ()
    ordering = ("-id",)
    fields = (
        "kind",
        "effective_date",
        "posted_at",
        "account",
        "memo",
        "actor",
        "idempotency_key",
        "reverses",
        "reversed_by_link",
    )
    readonly_fields = ("reversed_by_link",)
    inlines = (LegInline,)

    @admin.display(description="account")
    def account_number(self, obj):
        return account_link(obj.account)

    @admin.display(description="by")
    def actor_name(self, obj):
        return _actor(obj.actor)

    @admin.display(description="reversed by")
    def reversed_by_link(self, obj):
        reversal = getattr(obj, "reversed_by", None)  # None when nothing reverses it
        if reversal is None:
            return "—"
        url = reverse("admin:billing_transaction_change", args=[reversal.pk])
        return format_html('<a href="{}">{}</a>', url, reversal)


@admin.register(Leg)
class LegAdmin(ViewOnlyAdmin):
    list_display = ("id", "transaction_link", "ledger_account", "amount")
    list_select_related = ("transaction", "ledger_account")
    list_filter = ()
    search_fields = ("ledger_account__code",)
    search_help_text = "Ledger account code (exactly), e.g. member:1000042:prepaid_credit."
    sortable_by = ()
    # Newest first from the transaction index, also when filtered to one ledger account (the
    # (ledger_account, transaction) index).
    ordering = ("-transaction_id", "-id")

    @admin.display(description="transaction")
    def transaction_link(self, obj):
        url = reverse("admin:billing_transaction_change", args=[obj.transaction_id])
        return format_html('<a href="{}">{}</a>', url, obj.transaction)


class MemberOrCoopFilter(admin.SimpleListFilter):
    title = "owner"
    parameter_name = "owner"

    def lookups(self, request, model_admin):
        return [("coop", "The cooperative's"), ("member", "Members'")]

    def queryset(self, request, queryset):
        if self.value() in ("coop", "member"):
            return queryset.filter(Q(account__isnull=self.value() == "coop"))
        return queryset


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ViewOnlyAdmin):
    list_display = ("code", "name", "kind", "purpose", "account_number", "balance", "natural")
    list_select_related = ("account",)
    list_filter = (MemberOrCoopFilter, "kind", "purpose")
    search_fields = ("code", "account__number")
    search_help_text = "Code, e.g. coop:fee_revenue or member:1000042:arrears, or account number (exactly)."
    sortable_by = ("code",)
    ordering = ("code",)  # its unique index
    readonly_fields = ("legs_link",)

    def get_fields(self, request, obj=None):
        return ("code", "name", "kind", "purpose", "account", "tender", "balance", "legs_link")

    @admin.display(description="account")
    def account_number(self, obj):
        return account_link(obj.account)

    @admin.display(description="balance as read")
    def natural(self, obj):
        return obj.natural_balance

    @admin.display(description="legs")
    def legs_link(self, obj):
        url = reverse("admin:billing_leg_changelist")
        return format_html(
            '<a href="{}?ledger_account__id__exact={}">Legs of this ledger account</a>', url, obj.pk
        )


# Rates, the daily run and its records live in their own module.
from billing import admin_daily  # noqa: E402,F401
