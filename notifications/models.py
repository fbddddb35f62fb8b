"""Members' notice preferences, the templates notices are written from, every message sent (the
delivery log), and every Twilio webhook received.

A `Message` row is written, in the transaction of whatever caused it, before anything is sent; a
django-q2 task sends it after that transaction commits (notifications/services.py). Its
`dedupe_key` is unique: the same notice for the same account and day (or payment, or status
change) is one row however often the code that queues it runs, and a row is sent at most once
(claimed by a conditional UPDATE before the provider is called).
"""

import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from coop.money import MoneyField
from notifications.notices import OPTIONAL_NOTICES, Channel, Notice

QUIET_START = datetime.time(21, 0)
QUIET_END = datetime.time(8, 0)


class NotificationPreference(models.Model):
    """How one member wants to hear from the cooperative. A member without a row gets the
    defaults: email and SMS (SMS only once they consent), the policy's low-balance level, quiet
    hours 21:00-08:00."""

    class Channels(models.TextChoices):
        EMAIL = "email", "Email only"
        SMS = "sms", "SMS only"
        BOTH = "both", "Email and SMS"

    class Unit(models.TextChoices):
        DOLLARS = "dollars", "Dollars"
        DAYS = "days", "Days remaining"

    member = models.OneToOneField(
        "accounts.Member", on_delete=models.CASCADE, related_name="notification_preference"
    )
    channels = models.CharField(
        max_length=10,
        choices=Channels.choices,
        default=Channels.BOTH,
        help_text="If none of the chosen channels can reach the member (no consent, no address), "
        "notices go by whichever one can.",
    )
    muted_notices = models.JSONField(
        "notices turned off",
        default=list,
        blank=True,
        help_text="Optional notices the member does not want. Disconnect warnings, disconnections and "
        "returned payments are always sent.",
    )
    low_balance_unit = models.CharField(
        "low-balance warning in", max_length=10, choices=Unit.choices, default=Unit.DOLLARS
    )
    low_balance_dollars = MoneyField(
        "warn below ($)", null=True, blank=True, help_text="Blank: the policy's default level."
    )
    low_balance_days = models.PositiveSmallIntegerField("warn below (days remaining)", null=True, blank=True)
    low_balance_reminder_days = models.PositiveSmallIntegerField(
        "remind after (days)",
        null=True,
        blank=True,
        help_text="One reminder this many days after the warning if the balance is still low. "
        "Blank: no reminder.",
    )
    quiet_hours_start = models.TimeField(
        default=QUIET_START, help_text="No SMS from this time (cooperative time zone)…"
    )
    quiet_hours_end = models.TimeField(default=QUIET_END, help_text="…until this time; held texts go then.")
    sms_consent = models.BooleanField(
        "SMS consent", default=False, help_text="The member agreed to receive texts at their mobile number."
    )
    sms_consent_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    sms_consent_source = models.CharField(max_length=100, blank=True, editable=False)
    # Set when Twilio refuses the number for good (21211 invalid, 21610 unsubscribed, 21614 not a
    # mobile): no SMS goes to that number until the clerk corrects it (a new number clears it).
    phone_problem = models.CharField(max_length=200, blank=True)
    phone_problem_number = models.CharField(max_length=20, blank=True, editable=False)
    phone_problem_at = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    history = HistoricalRecords()

    class Meta:
        verbose_name = "notification preference"
        indexes = [
            models.Index(
                fields=["phone_problem_at"], condition=~Q(phone_problem=""), name="pref_phone_problem"
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(low_balance_unit="days") | Q(low_balance_days__isnull=False),
                name="pref_days_unit_has_days",
                violation_error_message="Give the number of days remaining to warn below.",
            ),
            models.CheckConstraint(
                condition=Q(low_balance_dollars__isnull=True) | Q(low_balance_dollars__gte=0),
                name="pref_dollars_not_negative",
            ),
        ]

    def __str__(self):
        return f"Notices for {self.member}"

    def clean(self):
        unknown = set(self.muted_notices or []) - {n.value for n in OPTIONAL_NOTICES}
        if unknown:
            raise ValidationError(
                {"muted_notices": f"These notices cannot be turned off: {', '.join(sorted(unknown))}."}
            )
        if self.low_balance_unit == self.Unit.DAYS and self.low_balance_days is None:
            raise ValidationError({"low_balance_days": "Give the number of days remaining to warn below."})

    def phone_flagged(self, number: str) -> bool:
        """Whether SMS to `number` (E.164) is blocked by a recorded permanent failure."""
        return bool(self.phone_problem) and self.phone_problem_number == number


class NoticeTemplate(models.Model):
    """The text of one notice on one channel, in the Django template language. Managers edit it;
    every message keeps the text it was rendered to, so editing never rewrites the log."""

    notice = models.CharField(max_length=30, choices=Notice.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    subject = models.CharField(max_length=200, blank=True, help_text="Email only.")
    body = models.TextField(help_text="SMS text, or the plain-text part of the email.")
    html_body = models.TextField(
        "HTML body",
        blank=True,
        help_text="Email only: the HTML part (inside the cooperative's email layout).",
    )
    allow_multipart = models.BooleanField(
        "allow more than one SMS segment",
        default=False,
        help_text="Off: the SMS must fit one GSM-7 segment (160 characters) with the sample values.",
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["notice", "channel"]
        constraints = [
            models.UniqueConstraint(fields=["notice", "channel"], name="one_template_per_notice_channel")
        ]

    def __str__(self):
        return f"{self.get_notice_display()} ({self.get_channel_display()})"


class Message(models.Model):
    """One SMS or email to one recipient: the delivery log."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        UNDELIVERED = "undelivered", "Undelivered"
        CANCELLED = "cancelled", "Not sent"

    # The only moves a message's status may make (services._move; the two set-based updates in
    # services, the claim and the stuck-sending sweep, check their one move). SENDING -> QUEUED is a retry
    # after a transient error or a text held for quiet hours; SENDING -> DELIVERED/UNDELIVERED is
    # Twilio's callback arriving before the worker recorded the send.
    TRANSITIONS = {
        Status.QUEUED: {Status.SENDING, Status.CANCELLED, Status.FAILED},
        Status.SENDING: {
            Status.QUEUED,
            Status.SENT,
            Status.DELIVERED,
            Status.FAILED,
            Status.UNDELIVERED,
            Status.CANCELLED,
        },
        Status.SENT: {Status.DELIVERED, Status.UNDELIVERED, Status.FAILED},
        Status.DELIVERED: set(),
        Status.FAILED: set(),
        Status.UNDELIVERED: set(),
        Status.CANCELLED: set(),
    }
    PROBLEM_STATUSES = (Status.FAILED, Status.UNDELIVERED)
    RESENDABLE = (Status.FAILED, Status.UNDELIVERED, Status.CANCELLED)

    class Transport(models.TextChoices):
        TWILIO = "twilio", "Twilio"
        SMTP = "smtp", "SMTP"
        CONSOLE = "console", "Console (not sent)"
        FILE = "file", "File (not sent)"
        MEMORY = "memory", "Memory (tests)"
        REPLY = "reply", "Webhook reply (TwiML)"
        DEMO = "demo", "Demo history (never sent)"
        OTHER = "other", "Other email backend"

    created_at = models.DateTimeField(default=timezone.now)
    notice = models.CharField(max_length=30, choices=Notice.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    recipient = models.CharField(max_length=254, help_text="E.164 phone number or email address.")
    subject = models.CharField(max_length=300, blank=True)
    body = models.TextField(help_text="The SMS text, or the email's plain-text part.")
    html_body = models.TextField(blank=True)
    template = models.ForeignKey(
        NoticeTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    account = models.ForeignKey(
        "accounts.Account", null=True, blank=True, on_delete=models.PROTECT, related_name="messages"
    )
    member = models.ForeignKey(
        "accounts.Member", null=True, blank=True, on_delete=models.PROTECT, related_name="messages"
    )
    notice_day = models.DateField(null=True, blank=True, help_text="The day the notice is about.")
    dedupe_key = models.CharField(max_length=150, unique=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    status_changed_at = models.DateTimeField(default=timezone.now)
    send_after = models.DateTimeField(
        null=True, blank=True, help_text="Held until then: SMS quiet hours, or the next retry."
    )
    enqueued_at = models.DateTimeField(null=True, blank=True, editable=False)
    claim_token = models.CharField(max_length=32, blank=True, editable=False)
    claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    transport = models.CharField(max_length=10, choices=Transport.choices, blank=True)
    provider_id = models.CharField("provider id", max_length=200, blank=True)
    error_code = models.CharField(max_length=20, blank=True)
    error_message = models.CharField(max_length=300, blank=True)
    segments = models.PositiveSmallIntegerField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    resend_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="resends"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Who resent it.",
    )

    class Meta:
        ordering = ["-id"]
        permissions = [("resend_message", "Can resend failed messages")]
        indexes = [
            models.Index(fields=["account", "-id"], name="message_account_latest"),
            models.Index(fields=["created_at"], name="message_created"),
            models.Index(fields=["notice", "-id"], name="message_notice_latest"),
            models.Index(fields=["recipient"], name="message_recipient"),
            models.Index(fields=["status", "status_changed_at"], name="message_status_changed"),
            # The retry sweep's question: queued messages whose time has come.
            models.Index(fields=["send_after"], condition=Q(status="queued"), name="message_queued_due"),
            models.Index(fields=["claimed_at"], condition=Q(status="sending"), name="message_sending"),
            models.Index(fields=["provider_id"], condition=~Q(provider_id=""), name="message_provider_id"),
            # Low-balance reminders look up the account's last warning.
            models.Index(
                fields=["account", "notice_day"],
                condition=Q(notice__in=["low_balance", "low_balance_reminder"]),
                name="message_low_balance_day",
            ),
        ]

    def __str__(self):
        return f"{self.get_notice_display()} by {self.get_channel_display()} to {self.recipient}"


class WebhookEvent(models.Model):
    """One Twilio webhook, processed once: a repeated delivery (same key) finds this row and is
    answered as the first one was, without doing anything again."""

    class Kind(models.TextChoices):
        STATUS = "status", "Delivery status"
        INBOUND = "inbound", "Incoming SMS"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    key = models.CharField(max_length=150, unique=True)
    received_at = models.DateTimeField(default=timezone.now)
    from_number = models.CharField(max_length=40, blank=True)
    body = models.TextField(blank=True)
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.PROTECT, related_name="webhook_events"
    )
    outcome = models.CharField(max_length=300, blank=True)
    response = models.TextField(blank=True, help_text="What was answered (TwiML).")
    params = models.JSONField(default=dict, help_text="The POST parameters as received.")

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["received_at"], name="webhook_received"),
            models.Index(fields=["from_number", "-id"], name="webhook_from"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.key}"
