"""Admin for members, service locations, accounts and the account status-change audit trail.

Every list page is a `BigTableAdmin` (coop/admin_tools.py): a count that stops at 10,000, a
search that uses the indexes (accounts/migrations/0002_admin_search_indexes.py on PostgreSQL)
and no query per row. A clerk moves an account's status only through
`accounts.services.account_change_status_by_hand` (the "Change status" box on the account page,
or the list action), which checks the lifecycle, writes the audit record and refuses the moves
only the meter's switch may make (disconnected <-> active, closing an active account): those
happen when a service order is confirmed. A manager's reconnect of an unfunded account is its
own button on the account page (meters/admin_orders.py), which requests the reconnect order.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce, Upper
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.exceptions import IllegalStatusTransition
from accounts.models import Account, AccountStatusChange, Member, ServiceHold, ServiceLocation
from coop.admin_tools import BigTableAdmin, HistoryAdmin, NoCardNumbersMixin, NoWritesMixin, ReadOnlyInline
from coop.validators import ValueRefused, no_card_number
from meters.models import MeterInstallation

STATUS_CHANGES_SHOWN = 20  # on the account page; the full trail is on its own list page
STATUS_ACTION_LIMIT = 100  # accounts one "Change status" action may move at once

# Panels other apps add to the account page, above its form: callables (request, account) -> HTML
# ("" to show nothing). billing/admin.py adds the money panel; registering it from there keeps the
# dependency one way (billing knows accounts, accounts does not know billing).
ACCOUNT_PAGE_PANELS = []
# The same, below the form beside "Change status": for the rarer acts on an account's service (a
# manager's reconnect without funds), which should not sit above the daily money work.
ACCOUNT_PAGE_FOOTER_PANELS = []


# --- Members ---------------------------------------------------------------------------------


class AccountsOfMemberInline(ReadOnlyInline, admin.TabularInline):
    model = Account
    fields = ("number", "location", "billing_mode", "status", "billing_cycle")
    readonly_fields = fields
    verbose_name_plural = "accounts"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("location", "billing_cycle")


@admin.register(Member)
class MemberAdmin(BigTableAdmin, HistoryAdmin):
    list_display = ("name", "email", "phone", "accounts_count")
    sortable_by = ("name", "email")  # the columns an index can order
    search_fields = ("first_name", "last_name", "^email", "=accounts__number")
    phone_search_field = "mobile_phone"
    search_help_text = "Name, phone number (any format), email or account number."
    # Matches the member_name_upper index, so the first page is read in index order.
    ordering = (Upper("last_name"), Upper("first_name"), "id")
    raw_id_fields = ("user",)
    readonly_fields = ("created_at",)
    fieldsets = (
        (
            None,
            {"fields": ("first_name", "last_name", "email", "mobile_phone", "favorable_credit_reference")},
        ),
        ("Mailing address", {"fields": ("line1", "line2", "city", "state", "postal_code")}),
        ("Member pages", {"fields": ("user", "created_at")}),
    )
    inlines = (AccountsOfMemberInline,)

    def get_queryset(self, request):
        # A correlated subquery rather than JOIN + GROUP BY: PostgreSQL evaluates it only for
        # the rows on the page, while GROUP BY would aggregate every member before sorting.
        accounts = (
            Account.objects.filter(member=OuterRef("pk"))
            .order_by()
            .values("member")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(accounts_count=Coalesce(Subquery(accounts, output_field=IntegerField()), Value(0)))
        )

    @admin.display(description="name", ordering=Upper("last_name"))
    def name(self, obj):
        return f"{obj.last_name}, {obj.first_name}"

    @admin.display(description="mobile phone")
    def phone(self, obj):
        return obj.mobile_phone.as_national if obj.mobile_phone else ""

    @admin.display(description="accounts")
    def accounts_count(self, obj):
        return obj.accounts_count


# --- Service locations -----------------------------------------------------------------------


class MeterInstallationInline(admin.TabularInline):
    model = MeterInstallation
    fields = ("meter", "installed_on", "removed_on")
    raw_id_fields = ("meter",)
    extra = 0
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("meter")


class AccountsAtLocationInline(ReadOnlyInline, admin.TabularInline):
    model = Account
    fields = ("number", "member", "billing_mode", "status", "opened_on", "closed_on")
    readonly_fields = fields
    verbose_name_plural = "accounts at this location"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("member")


@admin.register(ServiceLocation)
class ServiceLocationAdmin(BigTableAdmin, HistoryAdmin):
    list_display = ("address", "rate_class", "phase", "amperage", "current_meter")
    list_filter = ("rate_class", "phase", "meter_base")
    sortable_by = ("address",)
    search_fields = ("line1", "^meter_installations__meter__serial")
    search_help_text = "Street address or meter serial number (its beginning is enough)."
    ordering = (Upper("line1"), "id")  # the location_line1_upper index
    fieldsets = (
        ("Address", {"fields": ("line1", "line2", "city", "state", "postal_code")}),
        ("Service", {"fields": ("phase", "amperage", "meter_base", "rate_class")}),
    )
    inlines = (MeterInstallationInline, AccountsAtLocationInline)

    def get_queryset(self, request):
        meter_now = MeterInstallation.objects.filter(
            location=OuterRef("pk"), removed_on__isnull=True
        ).order_by("-installed_on")
        return (
            super()
            .get_queryset(request)
            .annotate(current_meter=Subquery(meter_now.values("meter__serial")[:1]))
        )

    @admin.display(description="service address", ordering=Upper("line1"))
    def address(self, obj):
        return obj.one_line

    @admin.display(description="meter now")
    def current_meter(self, obj):
        return obj.current_meter or ""


# --- Accounts --------------------------------------------------------------------------------


class LatestFirstFormSet(BaseInlineFormSet):
    """The newest STATUS_CHANGES_SHOWN rows only (the model orders newest first), read once."""

    def get_queryset(self):
        if not hasattr(self, "_latest"):
            self._latest = super().get_queryset()[:STATUS_CHANGES_SHOWN]
        return self._latest


class StatusChangeInline(ReadOnlyInline, admin.TabularInline):
    model = AccountStatusChange
    formset = LatestFirstFormSet
    fields = ("changed_at", "from_status", "to_status", "reason", "actor")
    readonly_fields = fields
    show_change_link = False
    verbose_name_plural = f"status changes (newest {STATUS_CHANGES_SHOWN})"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")


class ServiceHoldInline(NoCardNumbersMixin, admin.TabularInline):
    """The account's disconnect holds (medical, critical care, management deferral). Only managers
    add or change them (coop/roles.py); others see them read-only."""

    model = ServiceHold
    fields = ("kind", "starts_on", "expires_on", "note", "entered_by", "entered_at")
    readonly_fields = ("entered_by", "entered_at")
    extra = 0
    verbose_name_plural = "disconnect holds (medical, critical care, management)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("entered_by")

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        user = request.user

        class EnteredByFormSet(formset):
            def save_new(self, form, commit=True):
                form.instance.entered_by = user
                return super().save_new(form, commit)

        return EnteredByFormSet


class AccountForm(forms.ModelForm):
    class Meta:
        model = Account
        fields = ("number", "member", "location", "billing_mode", "billing_cycle", "opened_on")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "number" in self.fields:  # adding
            self.fields["number"].required = False
            self.fields["number"].help_text = "Leave blank for the next free number."

    def clean(self):
        cleaned = super().clean()
        location = cleaned.get("location")
        if self.instance._state.adding and location is not None:
            # A new account starts pending, which is "open": the form cannot see that
            # constraint by itself because status is not one of its fields.
            candidate = Account(location=location, status=Account.Status.PENDING)
            others = {f.name for f in Account._meta.fields} - {"location", "status"}
            try:
                candidate.validate_constraints(exclude=others)
            except ValidationError as e:
                self.add_error("location", e.messages)
        return cleaned


class StatusChangeForm(forms.Form):
    to_status = forms.ChoiceField(label="New status", choices=Account.Status.choices)
    reason = forms.CharField(
        max_length=200, help_text="Kept in the account's status history.", validators=[no_card_number]
    )

    def __init__(self, *args, account, **kwargs):
        super().__init__(*args, **kwargs)
        # Offer only the moves a clerk may make now (none that needs the meter's switch). Any
        # status is accepted on submit, so a stale page or a hand-made post gets the service's
        # own message.
        allowed = Account.MANUAL_TRANSITIONS[Account.Status(account.status)]
        self.fields["to_status"].widget.choices = [(s.value, s.label) for s in Account.Status if s in allowed]


class AccountActionForm(ActionForm):
    to_status = forms.ChoiceField(
        label="New status", required=False, choices=[("", "---------"), *Account.Status.choices]
    )
    reason = forms.CharField(label="Reason", required=False, max_length=200)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Offered: the statuses a clerk can move some account to by hand (never "disconnected").
        # Any status is accepted, so the service's message explains a refused move.
        by_hand = set().union(*Account.MANUAL_TRANSITIONS.values())
        self.fields["to_status"].widget.choices = [
            ("", "---------"),
            *((s.value, s.label) for s in Account.Status if s in by_hand),
        ]


@admin.register(Account)
class AccountAdmin(BigTableAdmin, HistoryAdmin):
    form = AccountForm
    action_form = AccountActionForm
    actions = ("change_status",)
    list_display = ("number", "member_name", "service_address", "billing_mode", "status", "billing_cycle")
    list_select_related = ("member", "location", "billing_cycle")
    list_filter = ("status", "billing_mode", "billing_cycle")
    sortable_by = ("number",)
    search_fields = (
        "=number",
        "member__first_name",
        "member__last_name",
        "^member__email",
        "location__line1",
        "^location__meter_installations__meter__serial",
    )
    phone_search_field = "member__mobile_phone"
    search_help_text = (
        "Account number, member name, phone (any format), email, street address or meter serial."
    )
    autocomplete_fields = ("member", "location")
    inlines = (StatusChangeInline, ServiceHoldInline)

    # On an existing account only the billing cycle is edited here. Status moves through
    # account_change_status; a different member or location is a transfer and a different
    # billing mode a prepaid conversion, each with its own rules, not a form edit.
    change_fields = (
        "number",
        "member",
        "location",
        "billing_mode",
        "billing_cycle",
        "status",
        "status_changed_at",
        "opened_on",
        "closed_on",
        "all_status_changes",
    )
    editable_on_change = ("billing_cycle",)

    def get_fields(self, request, obj=None):
        return AccountForm.Meta.fields if obj is None else self.change_fields

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        if obj.billing_mode == Account.BillingMode.PREPAID:
            return tuple(self.change_fields)  # a prepaid account has no billing cycle to choose
        return tuple(f for f in self.change_fields if f not in self.editable_on_change)

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else ()

    @admin.display(description="member")
    def member_name(self, obj):
        return str(obj.member)

    @admin.display(description="service address")
    def service_address(self, obj):
        return obj.location.one_line

    @admin.display(description="status history")
    def all_status_changes(self, obj):
        url = reverse("admin:accounts_accountstatuschange_changelist")
        return format_html(
            '<a href="{}?account__id__exact={}">All status changes of this account</a>', url, obj.pk
        )

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        from accounts.services import account_open

        opened = account_open(
            actor=request.user,
            member=obj.member,
            location=obj.location,
            billing_mode=obj.billing_mode,
            billing_cycle=obj.billing_cycle,
            number=obj.number or None,
            opened_on=obj.opened_on,
        )
        # The admin goes on with `obj` (the log entry, the redirect): make it the saved row.
        obj.pk = opened.pk
        obj.refresh_from_db()
        obj._state.adding = False

    # --- status changes ---

    def get_urls(self):
        status_url = path(
            "<path:object_id>/status/",
            self.admin_site.admin_view(self.change_status_view),
            name="accounts_account_status",
        )
        return [status_url, *super().get_urls()]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["account_panels"] = [
                html for panel in ACCOUNT_PAGE_PANELS if (html := panel(request, obj))
            ]
            context["account_footer_panels"] = [
                html for panel in ACCOUNT_PAGE_FOOTER_PANELS if (html := panel(request, obj))
            ]
        return super().render_change_form(request, context, add, change, form_url, obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        account = self.get_object(request, unquote(object_id))
        if (
            account is not None
            and self.has_change_permission(request, account)
            and Account.MANUAL_TRANSITIONS[Account.Status(account.status)]
        ):
            extra_context["status_form"] = StatusChangeForm(account=account)
        return super().change_view(request, object_id, form_url, extra_context)

    def change_status_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        account = self.get_object(request, unquote(object_id))
        if account is None:
            raise Http404
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        form = StatusChangeForm(request.POST, account=account)
        if form.is_valid():
            self._change_statuses(
                request, [account], form.cleaned_data["to_status"], form.cleaned_data["reason"]
            )
        else:
            for field, errors in form.errors.items():
                label = form.fields[field].label or field.replace("_", " ").capitalize()
                for error in errors:
                    self.message_user(request, f"{label}: {error}", messages.ERROR)
        return HttpResponseRedirect(reverse("admin:accounts_account_change", args=[account.pk]))

    @admin.action(
        description="Change status of selected accounts (give the new status and a reason; "
        "not the moves the meter makes)",
        permissions=["change"],
    )
    def change_status(self, request, queryset):
        form = self.action_form(request.POST)
        form.is_valid()
        to_status = form.cleaned_data.get("to_status")
        reason = (form.cleaned_data.get("reason") or "").strip()
        if not to_status or not reason:
            self.message_user(
                request, "Choose the new status and say why, then run the action again.", messages.ERROR
            )
            return None
        accounts = list(queryset.order_by("pk")[: STATUS_ACTION_LIMIT + 1])
        if len(accounts) > STATUS_ACTION_LIMIT:
            self.message_user(
                request,
                f"Select at most {STATUS_ACTION_LIMIT} accounts at a time; nothing was changed.",
                messages.ERROR,
            )
            return None
        self._change_statuses(request, accounts, to_status, reason)
        return None

    def _change_statuses(self, request, accounts, to_status, reason):
        """Move every account or none: a clerk who sees an error knows nothing changed."""
        from accounts.services import account_change_status_by_hand

        label = Account.Status(to_status).label.lower()
        errors = []
        with transaction.atomic():
            for account in accounts:
                try:
                    account_change_status_by_hand(
                        account=account, to_status=to_status, actor=request.user, reason=reason
                    )
                except (IllegalStatusTransition, ValueRefused) as e:  # ValueRefused: a card number
                    errors.append(str(e))
            if errors:
                transaction.set_rollback(True)
        if errors:
            for error in errors:
                self.message_user(request, error, messages.ERROR)
            if len(accounts) > 1:
                self.message_user(
                    request, "Nothing was changed. Deselect those accounts and try again.", messages.WARNING
                )
            return
        for account in accounts:
            self.log_change(request, account, f"Status changed to {label}: {reason}")
        if len(accounts) == 1:
            self.message_user(request, f"Account {accounts[0].number} is now {label}.", messages.SUCCESS)
        else:
            self.message_user(request, f"{len(accounts)} accounts are now {label}.", messages.SUCCESS)


# --- Disconnect holds ------------------------------------------------------------------------


class HoldInForceFilter(admin.SimpleListFilter):
    title = "in force"
    parameter_name = "in_force"

    def lookups(self, request, model_admin):
        return (("today", "In force today"), ("expired", "Expired"), ("future", "Not started yet"))

    def queryset(self, request, queryset):
        from coop.calendar import local_today

        today = local_today()
        if self.value() == "today":
            return queryset.filter(starts_on__lte=today, expires_on__gte=today)
        if self.value() == "expired":
            return queryset.filter(expires_on__lt=today)
        if self.value() == "future":
            return queryset.filter(starts_on__gt=today)
        return queryset


@admin.register(ServiceHold)
class ServiceHoldAdmin(BigTableAdmin, HistoryAdmin):
    """Holds on disconnecting one account, read by billing.prepaid.disconnect_run. Managers edit
    them (coop/roles.py); the expiry date is required so no hold outlives its certificate unseen."""

    list_display = ("account", "kind", "starts_on", "expires_on", "note", "entered_by")
    list_select_related = ("account", "entered_by")
    list_filter = (HoldInForceFilter, "kind")
    sortable_by = ("starts_on", "expires_on")
    search_fields = ("=account__number",)
    search_help_text = "Account number."
    raw_id_fields = ("account",)
    fields = ("account", "kind", "starts_on", "expires_on", "note", "entered_by", "entered_at")
    readonly_fields = ("entered_by", "entered_at")
    ordering = ("-id",)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.entered_by = request.user
        obj._history_user = request.user
        super().save_model(request, obj, form, change)


# --- The status-change audit trail -----------------------------------------------------------


@admin.register(AccountStatusChange)
class AccountStatusChangeAdmin(NoWritesMixin, BigTableAdmin):
    """Written only by account_change_status: read-only for everyone, superusers included."""

    list_display = ("changed_at", "account", "from_status", "to_status", "reason", "actor")
    list_select_related = ("account", "actor")
    list_filter = ("to_status", "from_status")
    sortable_by = ()
    search_fields = ("=account__number",)
    search_help_text = "Account number."
    ordering = ("-id",)  # the order they were written in, read from the primary key index
