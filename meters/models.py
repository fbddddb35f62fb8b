"""Meters and where they are installed."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from simple_history.models import HistoricalRecords


class Meter(models.Model):
    serial = models.CharField("serial number", max_length=40, unique=True)
    manufacturer = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=100, blank=True)
    remote_disconnect_capable = models.BooleanField(
        default=True, help_text="The AMI head-end can open and close this meter's service switch."
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["serial"]

    def __str__(self):
        return self.serial


class MeterInstallation(models.Model):
    """A meter installed at a service location from one day until (optionally) another."""

    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="installations")
    # Indexed by `installation_at_location` below, which leads with it.
    location = models.ForeignKey(
        "accounts.ServiceLocation",
        on_delete=models.PROTECT,
        related_name="meter_installations",
        db_index=False,
    )
    installed_on = models.DateField()
    removed_on = models.DateField(null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-installed_on", "-id"]
        # A location's meter on a day is its latest installation up to that day: the daily run
        # looks it up for every account, and this index answers it without a sort.
        indexes = [models.Index(fields=["location", "-installed_on", "-id"], name="installation_at_location")]
        constraints = [
            models.CheckConstraint(
                condition=Q(removed_on__isnull=True) | Q(removed_on__gte=F("installed_on")),
                name="installation_removed_not_before_installed",
                violation_error_message="A meter cannot be removed before it was installed.",
            ),
            models.UniqueConstraint(
                fields=["meter"],
                condition=Q(removed_on__isnull=True),
                name="meter_installed_once",
                violation_error_message="This meter is already installed at another location.",
            ),
        ]

    def __str__(self):
        return f"{self.meter} at {self.location}"

    def clean(self):
        if self.removed_on and self.installed_on and self.removed_on < self.installed_on:
            raise ValidationError({"removed_on": "A meter cannot be removed before it was installed."})


class MeterRead(models.Model):
    """One meter's energy use for one local day (the cooperative's zone). The (meter, day) pair is
    the read's idempotency key. An estimate is replaced in place by the actual read when it
    arrives; the money is settled by a true-up deduction in billing, never by editing a posting."""

    class Quality(models.TextChoices):
        ACTUAL = "actual", "Actual"
        ESTIMATED = "estimated", "Estimated"

    class Source(models.TextChoices):
        CSV = "csv", "CSV file"
        GREEN_BUTTON = "green_button", "Green Button file"
        ESTIMATE = "estimate", "Estimate"
        MANUAL = "manual", "Entered by hand"

    # No index of its own: the unique (meter, day) index serves every lookup by meter, and a
    # million reads a day are inserted.
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="reads", db_index=False)
    day = models.DateField(help_text="The local service day the usage belongs to.")
    kwh = models.DecimalField("kWh", max_digits=12, decimal_places=3)
    register = models.DecimalField(
        max_digits=12,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="The cumulative register reading at the end of the day, when the file gave one.",
    )
    quality = models.CharField(max_length=10, choices=Quality.choices, default=Quality.ACTUAL)
    source = models.CharField(max_length=20, choices=Source.choices)
    source_name = models.CharField(max_length=200, blank=True, help_text="The file the read came from.")
    estimated_kwh = models.DecimalField(
        "estimated kWh",
        max_digits=12,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="What was estimated for this day before the actual read arrived.",
    )
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["meter", "-day"]
        constraints = [
            models.UniqueConstraint(fields=["meter", "day"], name="one_read_per_meter_day"),
            models.CheckConstraint(condition=Q(kwh__gte=0), name="read_kwh_not_negative"),
        ]
        indexes = [models.Index(fields=["day", "quality"])]

    def __str__(self):
        return f"{self.meter} {self.day}: {self.kwh} kWh ({self.quality})"


class ServiceOrder(models.Model):
    """A request to open (disconnect) or close (reconnect) a meter's service switch, carried out
    by a head-end adapter (meters/headend.py): the simulated AMI head-end or a manual field
    order confirmed by a clerk."""

    class Kind(models.TextChoices):
        DISCONNECT = "disconnect", "Disconnect"
        RECONNECT = "reconnect", "Reconnect"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        CONFIRMED = "confirmed", "Confirmed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Adapter(models.TextChoices):
        SIMULATED_AMI = "simulated_ami", "Simulated AMI head-end"
        FIELD = "field", "Field order (line crew)"

    # Every move an order's status may make (meters.services._move is the one place that makes
    # them): requested (queued), sent through its head-end adapter, confirmed once the switch moved;
    # a failed send is retried; an open order may be cancelled.
    TRANSITIONS = {
        Status.QUEUED: frozenset({Status.SENT, Status.FAILED, Status.CANCELLED}),
        # SENT -> SENT: an order in flight at the head-end moved to the field list.
        Status.SENT: frozenset({Status.SENT, Status.CONFIRMED, Status.FAILED, Status.CANCELLED}),
        # FAILED -> FAILED: another attempt failed.
        Status.FAILED: frozenset({Status.SENT, Status.FAILED, Status.CANCELLED}),
        Status.CONFIRMED: frozenset(),
        Status.CANCELLED: frozenset(),
    }
    OPEN_STATUSES = (Status.QUEUED, Status.SENT, Status.FAILED)

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="service_orders")
    meter = models.ForeignKey(Meter, null=True, blank=True, on_delete=models.PROTECT, related_name="orders")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    adapter = models.CharField(max_length=20, choices=Adapter.choices)
    reason = models.CharField(max_length=300)
    requested_at = models.DateTimeField(default=timezone.now)
    due_by = models.DateTimeField(null=True, blank=True, help_text="When the policy wants it done.")
    sent_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    external_id = models.CharField(max_length=100, blank=True, help_text="The head-end's id for the order.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-requested_at", "-id"]
        # Billing managers only (coop/roles.py: custom permissions are the managers' own).
        permissions = [("reconnect_unfunded", "Can reconnect an unfunded account (manager's override)")]
        indexes = [
            models.Index(fields=["status", "adapter", "kind"]),
            models.Index(fields=["account", "-requested_at"]),
        ]
        constraints = [
            # At most one open order of each kind per account: a second request finds the first.
            models.UniqueConstraint(
                fields=["account", "kind"],
                condition=Q(status__in=["queued", "sent", "failed"]),
                name="one_open_order_per_account_kind",
            )
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.account} ({self.get_status_display()})"
