"""Admin for the message log, members' notice preferences, notice templates and Twilio webhooks,
plus the message history panel on the account page.

The message log grows by a row per notice (a million a year at a large cooperative): it is a
`BigTableAdmin` (bounded counts, no facets), lists newest first by primary key, searches exact
values only, each through an index, and its "needs attention" filters (failed today...) read the
(status, status_changed_at) index. Messages and webhook events are written only by the services:
read-only for everyone; failed ones are sent again with the "resend" action (a new row).
"""

import datetime

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import DateFieldListFilter
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts.admin import ACCOUNT_PAGE_PANELS
from coop.admin_tools import (
    BigTableAdmin,
    ExactSearchMixin,
    HistoryAdmin,
    NoDeleteMixin,
    ViewOnlyMixin,
    account_link,
    phone_search_value,
)
from coop.calendar import local_midnight, local_today
from notifications import services
from notifications.exceptions import NotResendable, TemplateInvalid
from notifications.models import Message, NoticeTemplate, NotificationPreference, WebhookEvent
from notifications.notices import OPTIONAL_NOTICES, Channel
from notifications.rendering import template_check
from notifications.selectors import Prefs, e164

# An email's HTML part, shown sandboxed (no scripts, no forms) inside the admin page.
IFRAME = (
    '<iframe sandbox="" srcdoc="{}" '
    'style="width:100%;max-width:700px;height:420px;border:1px solid #ccc"></iframe>'
)
PANEL_MESSAGES = 15  # on the account page; the rest are in the log, filtered to the account
RESEND_LIMIT = 100  # messages one resend action may send again


# --- The message log -------------------------------------------------------------------------------


class AttentionFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return (
            ("failed_today", "Failed today"),
            ("failed_week", "Failed in the last 7 days"),
            ("held", "Held (quiet hours or retry)"),
            ("unknown", "Outcome unknown"),
        )

    def queryset(self, request, queryset):
        value = self.value()
        today = local_today()
        if value == "failed_today":
            return queryset.filter(
                status__in=Message.PROBLEM_STATUSES, status_changed_at__gte=local_midnight(today)
            )
        if value == "failed_week":
            since = local_midnight(today - datetime.timedelta(days=6))
            return queryset.filter(status__in=Message.PROBLEM_STATUSES, status_changed_at__gte=since)
        if value == "held":
            return queryset.filter(status=Message.Status.QUEUED, send_after__gt=timezone.now())
        if value == "unknown":
            return queryset.filter(status=Message.Status.FAILED, error_code="unknown")
        return queryset


@admin.register(Message)
class MessageAdmin(ExactSearchMixin, ViewOnlyMixin, BigTableAdmin):
    list_display = (
        "id",
        "created_at",
        "notice",
        "channel",
        "recipient",
        "account_number",
        "status_label",
        "transport",
        "error_code",
    )
    list_filter = (
        AttentionFilter,
        "status",
        "channel",
        "notice",
        ("created_at", DateFieldListFilter),
        "transport",
    )
    list_select_related = ("account",)
    search_fields = ("recipient", "account__number", "provider_id")
    search_help_text = "Phone number (any format), email address, account number, message id or provider id."
    sortable_by = ()
    ordering = ("-id",)
    actions = ("resend",)
    date_hierarchy = None
    fields = (
        "created_at",
        "notice",
        "channel",
        "recipient",
        "account_number",
        "member",
        "notice_day",
        "status",
        "status_changed_at",
        "send_after",
        "attempts",
        "transport",
        "provider_id",
        "error_code",
        "error_message",
        "sent_at",
        "delivered_at",
        "subject",
        "body",
        "segments",
        "html_preview",
        "template",
        "dedupe_key",
        "resend_of",
        "resent_as",
        "actor",
    )
    readonly_fields = ("account_number", "html_preview", "resent_as")

    def exact_search_filters(self, term):
        filters = [{"account__number": term}, {"provider_id": term}]
        phone = phone_search_value(term)
        if phone:
            filters.append({"recipient": phone})
        if "@" in term:
            filters += [{"recipient": term}, {"recipient": term.lower()}]
        if term.isdigit():
            filters.append({"pk": int(term)})
        return filters

    def lookup_allowed(self, lookup, value, request=None):
        if lookup in ("account__id__exact", "member__id__exact"):
            return True
        return super().lookup_allowed(lookup, value, request)

    @admin.display(description="account")
    def account_number(self, obj):
        return account_link(obj.account)

    @admin.display(description="status")
    def status_label(self, obj):
        css = {"failed": "#ba2121", "undelivered": "#ba2121", "delivered": "#447e9b", "cancelled": "#777"}
        label = obj.get_status_display()
        if obj.status == Message.Status.QUEUED and obj.send_after:
            label += f" until {timezone.localtime(obj.send_after):%b %-d %H:%M}"
        if obj.attempts > 1:
            label += f" ({obj.attempts} tries)"
        return format_html('<span style="color:{}">{}</span>', css.get(obj.status, "inherit"), label)

    @admin.display(description="HTML part")
    def html_preview(self, obj):
        if not obj.html_body:
            return "—"
        return format_html(
            IFRAME,
            obj.html_body,
        )

    @admin.display(description="resent as")
    def resent_as(self, obj):
        links = [
            format_html('<a href="{}">#{}</a>', reverse("admin:notifications_message_change", args=[pk]), pk)
            for pk in obj.resends.values_list("pk", flat=True)
        ]
        return format_html(", ".join(["{}"] * len(links)), *links) if links else "—"

    def has_resend_permission(self, request):
        return request.user.has_perm("notifications.resend_message")

    @admin.action(description="Send the selected failed messages again", permissions=["resend"])
    def resend(self, request, queryset):
        chosen = list(queryset.select_related("member").order_by("pk")[: RESEND_LIMIT + 1])
        if len(chosen) > RESEND_LIMIT:
            self.message_user(
                request,
                f"Select at most {RESEND_LIMIT} messages at a time; nothing was sent.",
                messages.ERROR,
            )
            return
        resent = 0
        for message in chosen:
            try:
                services.message_resend(message=message, actor=request.user)
                resent += 1
            except NotResendable as exc:
                self.message_user(request, str(exc), messages.WARNING)
        if resent:
            self.message_user(request, f"{resent} message(s) queued to be sent again.", messages.SUCCESS)

    def changelist_view(self, request, extra_context=None):
        # Bounded like the list's own count: "more than 1,000" is enough to know it is bad.
        failed = (
            Message.objects.filter(
                status__in=Message.PROBLEM_STATUSES, status_changed_at__gte=local_midnight(local_today())
            )
            .values("pk")[:1001]
            .count()
        )
        extra_context = {**(extra_context or {}), "failed_today": failed}
        return super().changelist_view(request, extra_context)


# --- Preferences -----------------------------------------------------------------------------------


class PreferenceForm(forms.ModelForm):
    muted_notices = forms.MultipleChoiceField(
        label="Notices turned off",
        required=False,
        choices=[(n.value, n.label) for n in OPTIONAL_NOTICES],
        widget=forms.CheckboxSelectMultiple,
        help_text="Disconnect warnings, disconnections and returned payments are always sent.",
    )

    class Meta:
        model = NotificationPreference
        fields = ("member", *services.EDITABLE_PREFERENCES)


class PhoneProblemFilter(admin.SimpleListFilter):
    title = "phone problem"
    parameter_name = "phone_problem"

    def lookups(self, request, model_admin):
        return (("yes", "Number flagged"),)

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(~Q(phone_problem="")).order_by("-phone_problem_at")
        return queryset


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(NoDeleteMixin, BigTableAdmin, HistoryAdmin):
    form = PreferenceForm
    list_display = ("member", "channels", "sms_consent", "low_balance", "phone_problem", "updated_at")
    list_select_related = ("member",)
    list_filter = (PhoneProblemFilter, "sms_consent", "channels", "low_balance_unit")
    search_fields = ("member__last_name", "^member__email", "=member__accounts__number")
    phone_search_field = "member__mobile_phone"
    search_help_text = "Member name, phone number (any format), email or account number."
    autocomplete_fields = ("member",)
    sortable_by = ()
    ordering = ("-id",)
    readonly_fields = (
        "sms_consent_changed_at",
        "sms_consent_source",
        "phone_problem_number",
        "phone_problem_at",
        "updated_at",
        "updated_by",
    )
    fieldsets = (
        (None, {"fields": ("member", "channels", "muted_notices")}),
        (
            "Low balance",
            {
                "fields": (
                    "low_balance_unit",
                    "low_balance_dollars",
                    "low_balance_days",
                    "low_balance_reminder_days",
                )
            },
        ),
        (
            "SMS",
            {
                "fields": (
                    "sms_consent",
                    "sms_consent_changed_at",
                    "sms_consent_source",
                    "quiet_hours_start",
                    "quiet_hours_end",
                    "phone_problem",
                    "phone_problem_number",
                    "phone_problem_at",
                ),
                "description": "A flagged number gets no texts until the problem is cleared (empty it "
                "once the member's mobile number is corrected; a new number clears it by itself).",
            },
        ),
        ("Changed", {"fields": ("updated_at", "updated_by")}),
    )

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return (*fields, "member") if obj is not None else fields

    @admin.display(description="low-balance warning")
    def low_balance(self, obj):
        if obj.low_balance_unit == NotificationPreference.Unit.DAYS:
            return f"below {obj.low_balance_days} days"
        return (
            f"below ${obj.low_balance_dollars}" if obj.low_balance_dollars is not None else "policy default"
        )

    def save_model(self, request, obj, form, change):
        fields = {
            name: form.cleaned_data[name]
            for name in services.EDITABLE_PREFERENCES
            if name in form.cleaned_data
        }
        saved = services.preference_update(member=obj.member, actor=request.user, **fields)
        obj.pk = saved.pk
        obj.refresh_from_db()
        obj._state.adding = False


# --- Templates -------------------------------------------------------------------------------------


class NoticeTemplateForm(forms.ModelForm):
    class Meta:
        model = NoticeTemplate
        fields = ("notice", "channel", "subject", "body", "html_body", "allow_multipart")
        widgets = {"body": forms.Textarea(attrs={"rows": 6, "cols": 100})}

    def clean(self):
        cleaned = super().clean()
        notice = cleaned.get("notice") or getattr(self.instance, "notice", None)
        channel = cleaned.get("channel") or getattr(self.instance, "channel", None)
        if notice and channel and "body" in cleaned:
            try:
                template_check(
                    notice=notice,
                    channel=channel,
                    subject=cleaned.get("subject", ""),
                    body=cleaned["body"],
                    html_body=cleaned.get("html_body", ""),
                    allow_multipart=cleaned.get("allow_multipart", False),
                )
            except TemplateInvalid as exc:
                if exc.field in self.fields:
                    self.add_error(exc.field, str(exc))
                else:
                    raise ValidationError(str(exc)) from exc
        return cleaned


@admin.register(NoticeTemplate)
class NoticeTemplateAdmin(NoDeleteMixin, HistoryAdmin):
    form = NoticeTemplateForm
    list_display = ("notice", "channel", "subject", "allow_multipart", "updated_at", "updated_by")
    list_filter = ("channel", "notice")
    readonly_fields = ("sample", "updated_at", "updated_by")
    fields = ("notice", "channel", "subject", "body", "html_body", "allow_multipart", "sample", "updated_at")

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return (*fields, "notice", "channel") if obj is not None else fields

    @admin.display(description="with sample values")
    def sample(self, obj):
        if obj is None or not obj.pk:
            return "—"
        try:
            rendered = template_check(
                notice=obj.notice,
                channel=obj.channel,
                subject=obj.subject,
                body=obj.body,
                html_body=obj.html_body,
                allow_multipart=True,
            )
        except TemplateInvalid as exc:
            return str(exc)
        if obj.channel == Channel.SMS:
            return format_html(
                "<pre style='white-space:pre-wrap'>{}</pre>{} characters, {} segment(s)",
                rendered.body,
                len(rendered.body),
                rendered.segments,
            )
        return format_html(
            "<strong>{}</strong><pre style='white-space:pre-wrap'>{}</pre>" + IFRAME,
            rendered.subject,
            rendered.body,
            rendered.html_body,
        )

    def save_model(self, request, obj, form, change):
        services.notice_template_save(
            template=obj,
            actor=request.user,
            subject=form.cleaned_data.get("subject", ""),
            body=form.cleaned_data["body"],
            html_body=form.cleaned_data.get("html_body", ""),
            allow_multipart=form.cleaned_data.get("allow_multipart", False),
        )


# --- Webhooks --------------------------------------------------------------------------------------


@admin.register(WebhookEvent)
class WebhookEventAdmin(ExactSearchMixin, ViewOnlyMixin, BigTableAdmin):
    list_display = ("received_at", "kind", "from_number", "short_body", "outcome", "message_link")
    list_select_related = ("message",)
    list_filter = ("kind", ("received_at", DateFieldListFilter))
    search_fields = ("from_number", "key")
    search_help_text = "Phone number (any format) or Twilio SID."
    sortable_by = ()
    ordering = ("-id",)
    fields = ("received_at", "kind", "key", "from_number", "body", "message", "outcome", "response", "params")

    def exact_search_filters(self, term):
        filters = [{"key": f"inbound:{term}"}]
        phone = phone_search_value(term)
        if phone:
            filters.append({"from_number": phone})
        filters.append({"message__provider_id": term})
        return filters

    @admin.display(description="text")
    def short_body(self, obj):
        return (obj.body[:60] + "…") if len(obj.body) > 60 else obj.body

    @admin.display(description="message")
    def message_link(self, obj):
        if obj.message_id is None:
            return "—"
        url = reverse("admin:notifications_message_change", args=[obj.message_id])
        return format_html('<a href="{}">#{}</a>', url, obj.message_id)


# --- The account page ------------------------------------------------------------------------------


def messages_panel(request, account) -> str:
    """The account's latest messages and its member's notice preferences, on the account page."""
    if not request.user.has_perm("notifications.view_message"):
        return ""
    member = account.member
    pref = NotificationPreference.objects.filter(member=member).first()
    prefs = Prefs.of(pref)
    phone = e164(member.mobile_phone)
    rows = list(Message.objects.filter(account=account).order_by("-id")[:PANEL_MESSAGES])
    if pref is not None:
        pref_url = reverse("admin:notifications_notificationpreference_change", args=[pref.pk])
    else:
        pref_url = reverse("admin:notifications_notificationpreference_add") + f"?member={member.pk}"
    return render_to_string(
        "admin/notifications/account_panel.html",
        {
            "account": account,
            "rows": rows,
            "shown": PANEL_MESSAGES,
            "pref": pref,
            "prefs": prefs,
            "phone": phone,
            "sms_possible": prefs.sms_possible(phone),
            "phone_flagged": bool(phone) and prefs.phone_flagged(phone),
            "pref_url": pref_url,
            "can_edit_pref": request.user.has_perm(
                "notifications.change_notificationpreference"
                if pref
                else "notifications.add_notificationpreference"
            ),
            "log_url": reverse("admin:notifications_message_changelist")
            + f"?account__id__exact={account.pk}",
        },
        request=request,
    )


ACCOUNT_PAGE_PANELS.append(messages_panel)
