"""Admin for members, service locations, accounts and the account status-change audit trail.

Every list page is a `BigTableAdmin` (coop/admin_tools.py): a count that stops at 10,000, a
search that uses the indexes (accounts/migrations/0002_admin_search_indexes.py on PostgreSQL)
and no query per row. A clerk moves an account's status only through
`accounts.services.account_change_status_by_hand` (the "Change status" box on the account page,
or the list action), which checks the lifecycle, writes the audit record and refuses the moves
only the meter's switch may make (disconnected <-> active, closing an active account): those
happen when a service order is confirmed. A manager's reconnect of an unfunded account is its
own button on the account page (meters/admin_orders.py), which requests the reconnect order.

Every form and action here only validates and calls one service of accounts/services.py, which
records who (and why) in the row's history with the change: members and locations
(member_create/update, location_create/update), accounts (account_open, account_change_cycle,
accounts_change_status_by_hand), holds (hold_create/update/end). Nothing is deleted here: a hold
is ended, an account closed. The location page's meters (its list column and installations) are
added by meters/admin.py, which knows meters; accounts does not.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce, Upper
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from accounts import services
from accounts.exceptions import BulkStatusChangeRefused
from accounts.models import Account, AccountStatusChange, Member, ServiceHold, ServiceLocation
from coop.admin_tools import (
    BigTableAdmin,
    HistoryAdmin,
    NoCardNumbersMixin,
    NoDeleteMixin,
    NoWritesMixin,
    ReadOnlyInline,
    ServiceSaveMixin,
    adopt,
    check_constraints_on,
)
from coop.validators import no_card_number

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
class MemberAdmin(ServiceSaveMixin, NoDeleteMixin, BigTableAdmin, HistoryAdmin):
    create_service = staticmethod(services.member_create)
    update_service = staticmethod(services.member_update)
    update_kwarg = "member"
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


class AccountsAtLocationInline(ReadOnlyInline, admin.TabularInline):
    model = Account
    fields = ("number", "member", "billing_mode", "status", "opened_on", "closed_on")
    readonly_fields = fields
    verbose_name_plural = "accounts at this location"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("member")


@admin.register(ServiceLocation)
class ServiceLocationAdmin(ServiceSaveMixin, NoDeleteMixin, BigTableAdmin, HistoryAdmin):
    create_service = staticmethod(services.location_create)
    update_service = staticmethod(services.location_update)
    update_kwarg = "location"
    list_display = ("address", "rate_class", "phase", "amperage")
    list_filter = ("rate_class", "phase", "meter_base")
    sortable_by = ("address",)
    search_fields = ("line1", "^meter_installations__meter__serial")
    search_help_text = "Street address or meter serial number (its beginning is enough)."
    ordering = (Upper("line1"), "id")  # the location_line1_upper index
    fieldsets = (
        ("Address", {"fields": ("line1", "line2", "city", "state", "postal_code")}),
        ("Service", {"fields": ("phase", "amperage", "meter_base", "rate_class")}),
    )
    inlines = (AccountsAtLocationInline,)

    @admin.display(description="service address", ordering=Upper("line1"))
    def address(self, obj):
        return obj.one_line


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
    add or change them (coop/roles.py); others see them read-only. Saved by AccountAdmin.save_formset
    through hold_create / hold_update; a hold is ended (its page's action), not deleted."""

    model = ServiceHold
    fields = ("kind", "starts_on", "expires_on", "note", "entered_by", "entered_at")
    readonly_fields = ("entered_by", "entered_at")
    extra = 0
    can_delete = False
    verbose_name_plural = "disconnect holds (medical, critical care, management)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("entered_by")

    def has_delete_permission(self, request, obj=None):
        return False


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
            check_constraints_on(self, "location", candidate, involving=("location", "status"))
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
class AccountAdmin(NoDeleteMixin, BigTableAdmin, HistoryAdmin):
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
            if "billing_cycle" in form.changed_data:
                saved = services.account_change_cycle(
                    actor=request.user, account=obj, billing_cycle=form.cleaned_data["billing_cycle"]
                )
                adopt(obj, saved)
            return
        opened = services.account_open(
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

    def save_formset(self, request, form, formset, change):
        """The holds inline, through the hold services (the other inlines are read-only)."""
        # What construct_change_message reads (formset.save() would set it).
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if formset.model is not ServiceHold:
            return  # the read-only inlines: nothing to save
        for hold_form in formset.forms:
            if not hold_form.has_changed():
                continue
            data = hold_form.cleaned_data
            if hold_form.instance.pk is None:
                fields = {name: data[name] for name in services.HOLD_FIELDS if name in data}
                formset.new_objects.append(
                    services.hold_create(actor=request.user, account=form.instance, **fields)
                )
            else:
                changed = [name for name in hold_form.changed_data if name in services.HOLD_FIELDS]
                fields = {name: data[name] for name in changed}
                hold = services.hold_update(actor=request.user, hold=hold_form.instance, **fields)
                formset.changed_objects.append((hold, changed))

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
        """Move every account or none (the service's rule): on an error nothing changed."""
        label = Account.Status(to_status).label.lower()
        try:
            services.accounts_change_status_by_hand(
                accounts=accounts, to_status=to_status, actor=request.user, reason=reason
            )
        except BulkStatusChangeRefused as refused:
            for error in refused.errors:
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
class ServiceHoldAdmin(ServiceSaveMixin, NoDeleteMixin, BigTableAdmin, HistoryAdmin):
    """Holds on disconnecting one account, read by billing.prepaid.disconnect_run. Managers edit
    them (coop/roles.py); the expiry date is required so no hold outlives its certificate unseen.
    Saved through hold_create / hold_update; ended early by the list action (hold_end)."""

    create_service = staticmethod(services.hold_create)
    update_service = staticmethod(services.hold_update)
    update_kwarg = "hold"
    actions = ("end_holds",)

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

    def get_readonly_fields(self, request, obj=None):
        # A hold stays on its account: a hold for another account is a new hold.
        return (*self.readonly_fields, "account") if obj is not None else self.readonly_fields

    @admin.action(description="End selected holds (their last day becomes yesterday)", permissions=["change"])
    def end_holds(self, request, queryset):
        holds = list(queryset.order_by("pk")[: STATUS_ACTION_LIMIT + 1])
        if len(holds) > STATUS_ACTION_LIMIT:
            self.message_user(
                request, f"Select at most {STATUS_ACTION_LIMIT} holds at a time.", messages.ERROR
            )
            return
        for hold in holds:
            try:
                services.hold_end(actor=request.user, hold=hold, reason="ended in the admin")
            except ValidationError as exc:
                self.message_user(request, f"{hold}: {' '.join(exc.messages)}", messages.ERROR)
            else:
                self.log_change(request, hold, "Ended")
                self.message_user(
                    request, f"{hold.get_kind_display()} hold on {hold.account} ended.", messages.SUCCESS
                )


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
