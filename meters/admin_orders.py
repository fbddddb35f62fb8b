"""Admin for service orders and the field-order list (see meters/headend.py).

Orders are written only by meters.services: every field is read-only here, and staff act through
the list actions (retry, move to the field list, confirm a field order, cancel), each calling one
service. The list is a BigTableAdmin (bounded count, no facets); "Needs attention" shows the
failed orders no automatic attempt is left for.

The field list (Service orders → Field list) is the line crews' printable sheet: open field orders,
sorted by town and street address (the cooperative keeps no route numbers), each with a
"Confirm done" button for the clerk when the crew reports back.

A disconnected account's page (or a pending one's whose meter was left switched off) shows
billing managers a "Reconnect without funds" box (a panel in
accounts.admin.ACCOUNT_PAGE_FOOTER_PANELS): a required reason and an optional hold date, posted to
ServiceOrderAdmin.reconnect_unfunded_view, which calls meters.services.order_reconnect_unfunded.
The account becomes active when the reconnect order is confirmed, like any reconnect.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models.functions import Upper
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts.admin import ACCOUNT_PAGE_FOOTER_PANELS
from accounts.models import Account
from coop.admin_tools import BigTableAdmin
from coop.exceptions import CoopError
from meters import services
from meters.models import ServiceOrder

S = ServiceOrder.Status
ACTION_LIMIT = 100  # orders one action may handle at once
FIELD_LIST_LIMIT = 1000  # rows on one printed field list


class NeedsAttentionFilter(admin.SimpleListFilter):
    title = "attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return (
            ("failed", "Needs attention (failed, no attempt left)"),
            ("retrying", "Failed, retrying"),
            ("overdue", "Open past its due time"),
        )

    def queryset(self, request, queryset):
        if self.value() == "failed":
            return queryset.filter(status=S.FAILED, next_attempt_at__isnull=True)
        if self.value() == "retrying":
            return queryset.filter(status=S.FAILED, next_attempt_at__isnull=False)
        if self.value() == "overdue":
            return queryset.filter(status__in=ServiceOrder.OPEN_STATUSES, due_by__lt=timezone.now())
        return queryset


class ReconnectUnfundedForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        max_length=200,
        help_text="Why service comes back before the member has paid (kept on the order).",
    )
    hold_until = forms.DateField(
        label="Keep connected until",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Optional: a management deferral through this day, so the disconnect step does "
        "not cut it again at once.",
    )


def reconnect_unfunded_panel(request, account) -> str:
    """On a disconnected account's page, for billing managers: the override's form."""
    if account.status not in (Account.Status.DISCONNECTED, Account.Status.PENDING):
        return ""  # no query for the accounts it never applies to
    if not request.user.has_perm(services.RECONNECT_UNFUNDED_PERMISSION):
        return ""
    if not services.reconnect_unfunded_applies(account):
        return ""
    form = ReconnectUnfundedForm()
    return format_html(
        '<div class="module" id="reconnect-unfunded" style="clear: both">'
        "<h2>Reconnect without funds (manager's override)</h2>"
        '<form method="post" action="{}"><input type="hidden" name="csrfmiddlewaretoken" value="{}">'
        "<p>{} {}</p><p>{} {}</p>"
        '<p><input type="submit" value="Request the reconnect order"></p></form></div>',
        reverse("admin:meters_serviceorder_reconnect_unfunded", args=[account.pk]),
        get_token(request),
        form["reason"].label_tag(),
        form["reason"],
        form["hold_until"].label_tag(),
        form["hold_until"],
    )


ACCOUNT_PAGE_FOOTER_PANELS.append(reconnect_unfunded_panel)


class OrderActionForm(ActionForm):
    reason = forms.CharField(label="Reason (cancel)", required=False, max_length=200)


@admin.register(ServiceOrder)
class ServiceOrderAdmin(BigTableAdmin):
    action_form = OrderActionForm
    actions = ("retry", "move_to_field", "confirm_field_orders", "cancel")
    list_display = (
        "id",
        "requested_at",
        "account_link",
        "kind",
        "status",
        "adapter",
        "meter",
        "attempts",
        "next_attempt_at",
        "due_by",
        "error_short",
    )
    list_select_related = ("account", "meter")
    list_filter = (NeedsAttentionFilter, "status", "kind", "adapter")
    sortable_by = ()
    search_fields = ("=account__number", "^meter__serial", "=external_id")
    search_help_text = "Account number, meter serial (its beginning is enough) or head-end order id."
    ordering = ("-id",)  # newest first, read from the primary key index
    readonly_fields = (
        "account_link",
        "meter",
        "kind",
        "status",
        "adapter",
        "reason",
        "requested_at",
        "requested_by",
        "due_by",
        "sent_at",
        "attempts",
        "next_attempt_at",
        "last_error",
        "external_id",
        "confirmed_at",
        "confirmed_by",
    )
    fields = readonly_fields

    def has_add_permission(self, request):
        return False  # orders are requested by the disconnect and reconnect steps

    def has_change_permission(self, request, obj=None):
        # The change permission runs the actions (each one service); an order's own page is for
        # reading: every field is read-only and a save would write the row past the services.
        return obj is None and super().has_change_permission(request)

    def save_model(self, request, obj, form, change):
        # Unreachable (the page is view-only); here so no future edit saves an order past them.
        raise PermissionDenied("Service orders change only through their actions.")

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="account")
    def account_link(self, obj):
        url = reverse("admin:accounts_account_change", args=[obj.account_id])
        return format_html('<a href="{}">{}</a>', url, obj.account.number)

    @admin.display(description="last error / note")
    def error_short(self, obj):
        text = obj.last_error or ""
        return text if len(text) <= 80 else text[:79] + "…"

    # --- actions ---

    def _each(self, request, queryset, call, done: str):
        orders = list(queryset.order_by("pk")[: ACTION_LIMIT + 1])
        if len(orders) > ACTION_LIMIT:
            self.message_user(request, f"Select at most {ACTION_LIMIT} orders at a time.", messages.ERROR)
            return
        ok = 0
        for order in orders:
            try:
                call(order)
            except CoopError as exc:
                self.message_user(request, f"Order #{order.pk}: {exc}", messages.ERROR)
            else:
                ok += 1
                self.log_change(request, order, done)
        if ok:
            self.message_user(request, f"{ok} order{'s' if ok != 1 else ''}: {done}.", messages.SUCCESS)

    @admin.action(description="Retry selected orders now (queued or failed)", permissions=["change"])
    def retry(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda order: services.order_retry(order_id=order.pk, actor=request.user),
            "sent again",
        )

    @admin.action(description="Move selected orders to the field list (line crew)", permissions=["change"])
    def move_to_field(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda order: services.order_move_to_field(order_id=order.pk, actor=request.user),
            "moved to the field list",
        )

    @admin.action(description="Confirm selected field orders done (crew reported)", permissions=["change"])
    def confirm_field_orders(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda order: services.order_confirm_by_hand(order_id=order.pk, actor=request.user),
            "confirmed",
        )

    @admin.action(description="Cancel selected orders (give a reason)", permissions=["change"])
    def cancel(self, request, queryset):
        form = self.action_form(request.POST)
        form.is_valid()
        reason = (form.cleaned_data.get("reason") or "").strip()
        if not reason:
            self.message_user(
                request, "Say why the orders are cancelled, then run the action again.", messages.ERROR
            )
            return
        self._each(
            request,
            queryset,
            lambda order: services.order_cancel(order_id=order.pk, reason=reason, actor=request.user),
            f"cancelled ({reason})",
        )

    # --- the field list ---

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("field-list/", wrap(self.field_list_view), name="meters_serviceorder_field_list"),
            path(
                "reconnect-unfunded/<int:account_id>/",
                wrap(self.reconnect_unfunded_view),
                name="meters_serviceorder_reconnect_unfunded",
            ),
            path(
                "field-list/<int:order_id>/confirm/",
                wrap(self.field_confirm_view),
                name="meters_serviceorder_field_confirm",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "field_list_url": reverse("admin:meters_serviceorder_field_list"),
        }
        return super().changelist_view(request, extra_context)

    def field_list_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        kind = request.GET.get("kind", "")
        orders = ServiceOrder.objects.filter(
            adapter=ServiceOrder.Adapter.FIELD, status__in=(S.QUEUED, S.SENT)
        ).select_related("account__member", "account__location", "meter")
        if kind in ServiceOrder.Kind.values:
            orders = orders.filter(kind=kind)
        rows = list(
            orders.order_by(
                Upper("account__location__city"), Upper("account__location__line1"), "requested_at", "id"
            )[: FIELD_LIST_LIMIT + 1]
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "Field list: disconnects and reconnects for line crews",
            "opts": self.model._meta,
            "orders": rows[:FIELD_LIST_LIMIT],
            "truncated": len(rows) > FIELD_LIST_LIMIT,
            "limit": FIELD_LIST_LIMIT,
            "kind": kind,
            "kinds": ServiceOrder.Kind.choices,
            "can_confirm": self.has_change_permission(request),
        }
        return TemplateResponse(request, "admin/meters/serviceorder/field_list.html", context)

    def field_confirm_view(self, request, order_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        order = get_object_or_404(ServiceOrder, pk=order_id, adapter=ServiceOrder.Adapter.FIELD)
        try:
            services.order_confirm_by_hand(order_id=order.pk, actor=request.user)
        except CoopError as exc:
            self.message_user(request, f"Order #{order.pk}: {exc}", messages.ERROR)
        else:
            self.log_change(request, order, "confirmed from the field list")
            self.message_user(
                request,
                f"{order.get_kind_display()} of account {order.account.number} confirmed.",
                messages.SUCCESS,
            )
        url = reverse("admin:meters_serviceorder_field_list")
        kind = request.POST.get("kind", "")
        return HttpResponseRedirect(f"{url}?kind={kind}" if kind else url)

    def reconnect_unfunded_view(self, request, account_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm(services.RECONNECT_UNFUNDED_PERMISSION):
            raise PermissionDenied
        account = get_object_or_404(Account, pk=account_id)
        back = HttpResponseRedirect(reverse("admin:accounts_account_change", args=[account.pk]))
        form = ReconnectUnfundedForm(request.POST)
        if not form.is_valid():
            for field, errors in form.errors.items():
                for error in errors:
                    self.message_user(request, f"{form.fields[field].label}: {error}", messages.ERROR)
            return back
        try:
            order = services.order_reconnect_unfunded(
                account=account,
                actor=request.user,
                reason=form.cleaned_data["reason"],
                hold_until=form.cleaned_data["hold_until"],
            )
        except CoopError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        except ValidationError as exc:
            for error in exc.messages:
                self.message_user(request, f"Keep connected until: {error}", messages.ERROR)
        else:
            self.log_addition(request, order, f"Reconnect without funds: {form.cleaned_data['reason']}")
            self.message_user(
                request,
                f"Reconnect order #{order.pk} requested for account {account.number}; the account "
                "becomes active when the meter confirms.",
                messages.SUCCESS,
            )
        return back
