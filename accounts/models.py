"""Members, the places they take service, and their service accounts."""

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from phonenumber_field.modelfields import PhoneNumberField
from simple_history.models import HistoricalRecords


def validate_phone_for_region(value):
    """A member's mobile number must be a valid number of the cooperative's own region."""
    if not value:
        return
    region = settings.PHONENUMBER_DEFAULT_REGION
    if not value.is_valid() or not phonenumbers.is_valid_number_for_region(value, region):
        raise ValidationError(
            f"'{value.raw_input or value}' is not a valid {region} phone number.",
            code="invalid_phone_number",
        )


class Address(models.Model):
    line1 = models.CharField("street address", max_length=200)
    line2 = models.CharField("address line 2", max_length=200, blank=True)
    city = models.CharField(max_length=100)
    state = models.CharField(max_length=2, help_text="Two-letter state code.")
    postal_code = models.CharField("ZIP code", max_length=10)

    class Meta:
        abstract = True

    @property
    def one_line(self) -> str:
        street = ", ".join(p for p in (self.line1, self.line2) if p)
        return f"{street}, {self.city}, {self.state} {self.postal_code}"


class Member(Address):
    """A member of the cooperative. The address fields are the mailing address."""

    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100, db_index=True)
    email = models.EmailField(blank=True, db_index=True)
    mobile_phone = PhoneNumberField(
        blank=True, db_index=True, validators=[validate_phone_for_region], help_text="Any common format."
    )
    favorable_credit_reference = models.BooleanField(
        default=False, help_text="A favorable utility credit reference is on file."
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="member",
        help_text="The login this member uses on the member pages.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["last_name", "first_name", "id"]
        indexes = [models.Index(Upper("last_name"), Upper("first_name"), name="member_name_upper")]

    def __str__(self):
        return f"{self.first_name} {self.last_name}"

    @property
    def full_name(self) -> str:
        return str(self)


class ServiceLocation(Address):
    """A place where the cooperative delivers power, as the meter shop describes it."""

    class Phase(models.TextChoices):
        SINGLE = "single", "Single phase"
        THREE = "three", "Three phase"

    class MeterBase(models.TextChoices):
        SELF_CONTAINED = "self_contained", "Self-contained"
        CT = "ct", "CT (current transformer)"

    class RateClass(models.TextChoices):
        RESIDENTIAL = "residential", "Residential"
        SMALL_COMMERCIAL = "small_commercial", "Small commercial"
        LARGE_POWER = "large_power", "Large power"
        IRRIGATION = "irrigation", "Irrigation"

    phase = models.CharField(max_length=10, choices=Phase.choices, default=Phase.SINGLE)
    amperage = models.PositiveSmallIntegerField("service amperage", default=200)
    meter_base = models.CharField(max_length=20, choices=MeterBase.choices, default=MeterBase.SELF_CONTAINED)
    rate_class = models.CharField(max_length=20, choices=RateClass.choices, default=RateClass.RESIDENTIAL)
    history = HistoricalRecords()

    class Meta:
        ordering = ["line1", "id"]
        indexes = [models.Index(Upper("line1"), name="location_line1_upper")]

    def __str__(self):
        return self.one_line


class AccountQuerySet(models.QuerySet):
    def prepaid(self):
        return self.filter(billing_mode=Account.BillingMode.PREPAID)

    def postpaid(self):
        return self.filter(billing_mode=Account.BillingMode.POSTPAID)

    def in_service(self):
        """Accounts the cooperative still serves or bills daily: active or disconnected."""
        return self.filter(status__in=[Account.Status.ACTIVE, Account.Status.DISCONNECTED])


class Account(models.Model):
    """A service account: one member's service at one location, billed prepaid or postpaid."""

    class BillingMode(models.TextChoices):
        PREPAID = "prepaid", "Prepaid"
        POSTPAID = "postpaid", "Postpaid"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACTIVE = "active", "Active"
        DISCONNECTED = "disconnected", "Disconnected"
        INACTIVE = "inactive", "Inactive"
        CLOSED = "closed", "Closed"

    # The only moves an account's status may make (see accounts.services.account_change_status).
    # Beyond the lifecycle pending → active → disconnected → inactive → closed and the reconnect
    # disconnected → active, a pending account may be withdrawn and an active one closed at the
    # member's request.
    ALLOWED_TRANSITIONS = {
        Status.PENDING: {Status.ACTIVE, Status.CLOSED},
        Status.ACTIVE: {Status.DISCONNECTED, Status.CLOSED},
        Status.DISCONNECTED: {Status.ACTIVE, Status.INACTIVE},
        Status.INACTIVE: {Status.CLOSED},
        Status.CLOSED: set(),
    }
    # Moves that only the meter's switch may make: they happen when a service order is confirmed
    # (meters.services.order_confirm), never by a clerk's hand, so the records never say "in
    # service" while the meter is off (or the reverse). Closing an active account would leave a
    # live meter that nobody is billed for: it is disconnected first. The rest of
    # ALLOWED_TRANSITIONS (MANUAL_TRANSITIONS) is what the admin's "Change status" offers.
    METER_TRANSITIONS = {
        (Status.ACTIVE, Status.DISCONNECTED): "disconnect",
        (Status.DISCONNECTED, Status.ACTIVE): "reconnect",
        (Status.ACTIVE, Status.CLOSED): "disconnect",
    }
    MANUAL_TRANSITIONS = {
        Status.PENDING: {Status.ACTIVE, Status.CLOSED},  # the meter is set at enrollment
        Status.ACTIVE: set(),
        Status.DISCONNECTED: {Status.INACTIVE},
        Status.INACTIVE: {Status.CLOSED},
        Status.CLOSED: set(),
    }
    OPEN_STATUSES = (Status.PENDING, Status.ACTIVE, Status.DISCONNECTED)

    number = models.CharField("account number", max_length=20, unique=True)
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="accounts")
    location = models.ForeignKey(ServiceLocation, on_delete=models.PROTECT, related_name="accounts")
    billing_mode = models.CharField(max_length=10, choices=BillingMode.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, editable=False)
    status_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    billing_cycle = models.ForeignKey(
        "coop.BillingCycle",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="accounts",
        help_text="Postpaid accounts only.",
    )
    opened_on = models.DateField(null=True, blank=True)
    closed_on = models.DateField(null=True, blank=True)
    history = HistoricalRecords()

    objects = AccountQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "billing_mode"])]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(billing_mode="postpaid", billing_cycle__isnull=False)
                    | Q(billing_mode="prepaid", billing_cycle__isnull=True)
                ),
                name="account_cycle_matches_billing_mode",
                violation_error_message="A postpaid account needs a billing cycle; a prepaid one has none.",
            ),
            models.UniqueConstraint(
                fields=["location"],
                condition=Q(status__in=["pending", "active", "disconnected"]),
                name="one_open_account_per_location",
                violation_error_message="This location already has an open account.",
            ),
        ]

    def __str__(self):
        return self.number

    def clean(self):
        if self.billing_mode == self.BillingMode.POSTPAID and not self.billing_cycle_id:
            raise ValidationError({"billing_cycle": "A postpaid account needs a billing cycle."})
        if self.billing_mode == self.BillingMode.PREPAID and self.billing_cycle_id:
            raise ValidationError({"billing_cycle": "Prepaid accounts have no billing cycle."})


class AccountStatusChange(models.Model):
    """The audit trail of an account's status: who moved it, from what, to what, and why."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="status_changes")
    from_status = models.CharField(max_length=20, choices=Account.Status.choices)
    to_status = models.CharField(max_length=20, choices=Account.Status.choices)
    changed_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.CharField(max_length=200)

    class Meta:
        ordering = ["-changed_at", "-id"]
        indexes = [models.Index(fields=["account", "-changed_at"])]

    def __str__(self):
        return f"{self.account}: {self.from_status} → {self.to_status}"


class ServiceHold(models.Model):
    """A manager's hold on disconnecting one account (a medical or critical-care certificate),
    in force from `starts_on` through `expires_on` inclusive."""

    class Kind(models.TextChoices):
        MEDICAL = "medical", "Medical certificate"
        CRITICAL_CARE = "critical_care", "Critical care (life support)"
        MANAGEMENT = "management", "Management hardship deferral"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="holds")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    starts_on = models.DateField()
    expires_on = models.DateField()
    note = models.CharField(max_length=300, blank=True)
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    entered_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-expires_on", "-id"]
        indexes = [models.Index(fields=["account", "expires_on"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_on__gte=models.F("starts_on")),
                name="hold_expires_not_before_start",
                violation_error_message="A hold cannot expire before it starts.",
            )
        ]

    def __str__(self):
        return f"{self.get_kind_display()} hold on {self.account} until {self.expires_on}"
