"""The cooperative itself: its policy (versioned), billing cycles, fee schedule and calendar."""

import datetime
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from coop.exceptions import PolicyNotConfigured
from coop.money import MoneyField

NON_NEGATIVE = [MinValueValidator(Decimal("0.00"))]
PERCENT = [MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))]


class BillingCycle(models.Model):
    """A postpaid billing cycle: the day of the month bills are made and the day they fall due.

    A due day smaller than the bill day falls in the following month (bill the 14th, due the 5th).
    """

    code = models.SlugField(max_length=20, unique=True)
    name = models.CharField(max_length=100)
    bill_day = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(28)],
        help_text="Day of the month the bill is made (1–28).",
    )
    due_day = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(28)],
        help_text="Day of the month the bill is due (1–28); before the bill day means next month.",
    )
    is_active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(bill_day__gte=1, bill_day__lte=28, due_day__gte=1, due_day__lte=28),
                name="billingcycle_days_in_range",
            )
        ]

    def __str__(self):
        return self.name

    def due_date_for(self, bill_date: datetime.date) -> datetime.date:
        """The due date of a bill made on `bill_date` (before any business-day roll)."""
        if self.due_day > bill_date.day:
            return bill_date.replace(day=self.due_day)
        year, month = (
            (bill_date.year + 1, 1) if bill_date.month == 12 else (bill_date.year, bill_date.month + 1)
        )
        return datetime.date(year, month, self.due_day)


class PolicyQuerySet(models.QuerySet):
    def in_force(self, on: datetime.date) -> "Policy":
        """The policy version in force on `on`: the latest one effective on or before that day."""
        policy = self.filter(effective_from__lte=on).order_by("-effective_from").first()
        if policy is None:
            raise PolicyNotConfigured(
                f"No policy is in force on {on:%Y-%m-%d}. A billing manager must add one "
                "(Cooperative → Policies) or load a preset: manage.py load_policy_preset --list."
            )
        return policy


class Policy(models.Model):
    """Every number and rule in docs/POLICIES.md, as one dated version.

    Defaults are neutral (no fee, no restriction, no requirement): a preset or a manager sets
    each program's own numbers, so nothing silently inherits another cooperative's rule. The
    amount guards are the exception (see their section).

    A change is a new version with a later `effective_from`; every computation asks for the version
    in force on the day concerned (`Policy.objects.in_force(day)`), so a change never rewrites the
    past. A version already in force is read-only.
    """

    class DisconnectRule(models.TextChoices):
        AT_OR_BELOW = "at_or_below", "Balance at or below the disconnect level"
        BELOW = "below", "Balance below the disconnect level"

    class CustomerChargeProration(models.TextChoices):
        DAYS_IN_MONTH = "days_in_month", "Monthly charge ÷ days in the month"
        THIRTY_DAYS = "thirty", "Monthly charge ÷ 30"

    class PrepaidStatement(models.TextChoices):
        MONTHLY = "monthly", "Monthly statement"
        ONLINE_ONLY = "online_only", "No statement; history online"
        FINAL_ONLY = "final_only", "Final bill only"

    class LateFeeKind(models.TextChoices):
        NONE = "none", "No late fee"
        FLAT = "flat", "Flat amount"
        PERCENT = "percent", "Percent of the past-due balance"

    class NonpayDisconnectRule(models.TextChoices):
        DAY_OF_MONTH = "day_of_month", "On a fixed day of the month"
        DAYS_AFTER_NOTICE = "after_notice", "A number of days after the delinquent notice"

    class OnlinePaymentPosting(models.TextChoices):
        IMMEDIATE = "immediate", "Credited immediately"
        NEXT_BUSINESS_DAY = "next_business_day", "Posted by the next business day"

    effective_from = models.DateField(
        unique=True, help_text="The first day this version is in force (cooperative time zone)."
    )
    name = models.CharField(max_length=100, help_text="For people: 'Program B, 2026 rates'.")
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # --- Prepaid eligibility -----------------------------------------------------------------
    prepaid_single_phase_only = models.BooleanField(default=False)
    prepaid_residential_only = models.BooleanField(default=False)
    prepaid_self_contained_meter_only = models.BooleanField(default=False)
    prepaid_required_amperage = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Service amperage required for prepaid (blank: any)."
    )
    prepaid_requires_portal_account = models.BooleanField(default=False)
    prepaid_requires_signed_application = models.BooleanField(default=False)
    prepaid_requires_appointment = models.BooleanField(default=False)
    prepaid_deposit_waived = models.BooleanField(
        default=False, help_text="Prepaid accounts pay no security deposit."
    )
    prepaid_deposit_waiver_term_months = models.PositiveSmallIntegerField(
        default=0, help_text="Minimum agreement term (months) for the deposit waiver; 0: none."
    )

    # --- Prepaid money -----------------------------------------------------------------------
    prepaid_minimum_starting_balance = MoneyField(default=Decimal("0.00"), validators=NON_NEGATIVE)
    signup_membership_fee = MoneyField(default=Decimal("0.00"), validators=NON_NEGATIVE)
    signup_account_establishment_fee = MoneyField(default=Decimal("0.00"), validators=NON_NEGATIVE)
    prepaid_minimum_payment = MoneyField(
        default=Decimal("0.00"), validators=NON_NEGATIVE, help_text="0: any amount."
    )
    conversion_applies_existing_credits = models.BooleanField(
        default=False, help_text="Existing deposits and credits go to the prepaid balance."
    )
    conversion_requires_debts_settled = models.BooleanField(
        default=False,
        help_text="Outstanding fees and unbilled energy paid in full, or enrolled in a plan.",
    )
    low_balance_threshold_default = MoneyField(
        default=Decimal("20.00"),
        validators=NON_NEGATIVE,
        help_text="Low-balance warning level for members who have not chosen their own.",
    )
    customer_charge_proration = models.CharField(
        max_length=20,
        choices=CustomerChargeProration.choices,
        default=CustomerChargeProration.DAYS_IN_MONTH,
        help_text="How the monthly customer charge becomes a daily prepaid charge.",
    )
    prepaid_statement = models.CharField(
        max_length=20, choices=PrepaidStatement.choices, default=PrepaidStatement.MONTHLY
    )

    # --- Prepaid disconnect and restore ------------------------------------------------------
    disconnect_level = MoneyField(default=Decimal("0.00"))
    disconnect_rule = models.CharField(
        max_length=20, choices=DisconnectRule.choices, default=DisconnectRule.AT_OR_BELOW
    )
    grace_on_weekends = models.BooleanField(default=False)
    grace_on_holidays = models.BooleanField(default=False)
    grace_on_weather_holds = models.BooleanField(default=False)
    disconnect_window_start = models.TimeField(
        null=True, blank=True, help_text="Blank with the end too: disconnect at any time."
    )
    disconnect_window_end = models.TimeField(null=True, blank=True)
    restore_level = MoneyField(default=Decimal("0.00"))
    restore_adds_accrued_debt = models.BooleanField(
        default=False, help_text="Debt used since credit ran out is added to the restore level."
    )
    restore_within_minutes = models.PositiveSmallIntegerField(default=15)
    charges_continue_while_disconnected = models.BooleanField(default=False)
    inactive_after_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="An account disconnected this many days becomes inactive (blank: never).",
    )
    refund_credit_on_final_bill = models.BooleanField(default=True)
    returned_payment_may_disconnect = models.BooleanField(default=True)

    # --- Debt-management plans ---------------------------------------------------------------
    debt_plan_share_percent = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal("0"), validators=PERCENT
    )
    debt_plan_exempts_initial_minimum = models.BooleanField(
        default=False, help_text="The initial minimum starting balance is never split."
    )

    # --- Postpaid billing and collections ----------------------------------------------------
    due_date_rolls_to_business_day = models.BooleanField(
        default=False, help_text="A due date on a weekend or holiday is not late until the next business day."
    )
    late_fee_kind = models.CharField(max_length=10, choices=LateFeeKind.choices, default=LateFeeKind.NONE)
    late_fee_amount = MoneyField(default=Decimal("0.00"), validators=NON_NEGATIVE)
    late_fee_percent = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal("0"), validators=PERCENT
    )
    late_fee_grace_days = models.PositiveSmallIntegerField(
        default=0, help_text="Days after the due date a bill may still be paid without a late fee."
    )
    reminder_notice_days_after_due = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Send a reminder this many days after the due date."
    )
    delinquent_notice_business_days_after_due = models.PositiveSmallIntegerField(null=True, blank=True)
    delinquent_notice_shows_disconnect_date = models.BooleanField(default=False)
    nonpay_disconnect_rule = models.CharField(
        max_length=20, choices=NonpayDisconnectRule.choices, default=NonpayDisconnectRule.DAY_OF_MONTH
    )
    nonpay_disconnect_day_of_month = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(28)]
    )
    nonpay_disconnect_days_after_notice = models.PositiveSmallIntegerField(null=True, blank=True)
    management_may_defer_disconnect = models.BooleanField(default=True)
    usage_due_at_disconnect = models.BooleanField(
        default=False, help_text="All kWh used to date fall due immediately on disconnection."
    )
    collection_fee = MoneyField(default=Decimal("0.00"), validators=NON_NEGATIVE)
    disconnect_fee = MoneyField(default=Decimal("0.00"), validators=NON_NEGATIVE)
    reconnect_fee_business_hours = MoneyField(default=Decimal("0.00"), validators=NON_NEGATIVE)
    reconnect_fee_after_hours = MoneyField(
        default=Decimal("0.00"),
        validators=NON_NEGATIVE,
        help_text="After hours, weekends and holidays.",
    )
    reconnect_same_day_is_after_hours = models.BooleanField(
        default=False, help_text="A reconnect on the day of disconnection pays the after-hours fee."
    )
    reconnect_cutoff_time = models.TimeField(
        null=True, blank=True, help_text="Payments after this time reconnect the next business day."
    )
    business_hours_start = models.TimeField(default=datetime.time(8, 0))
    business_hours_end = models.TimeField(default=datetime.time(16, 0))
    long_disconnect_days = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Calendar days off after which a larger deposit is required."
    )
    long_disconnect_deposit = MoneyField(default=Decimal("0.00"), validators=NON_NEGATIVE)
    online_payment_posting = models.CharField(
        max_length=20, choices=OnlinePaymentPosting.choices, default=OnlinePaymentPosting.IMMEDIATE
    )

    # --- Returned payments -------------------------------------------------------------------
    returned_payment_fee = MoneyField(default=Decimal("0.00"), validators=NON_NEGATIVE)
    returned_payment_collection_fee = MoneyField(default=Decimal("0.00"), validators=NON_NEGATIVE)
    check_restriction_returns = models.PositiveSmallIntegerField(
        default=0, help_text="Returned checks within the window that restrict check payments (0: never)."
    )
    check_restriction_window_months = models.PositiveSmallIntegerField(default=12)
    check_restriction_months = models.PositiveSmallIntegerField(
        default=12, help_text="Months after the latest returned check that checks are refused."
    )

    # --- Payment arrangements ----------------------------------------------------------------
    arrangement_broken_limit = models.PositiveSmallIntegerField(
        default=0, help_text="Broken arrangements within the window that bar a new one (0: no limit)."
    )
    arrangement_window_months = models.PositiveSmallIntegerField(default=12)

    # --- Deposits ----------------------------------------------------------------------------
    deposit_first_meter_favorable = MoneyField(default=Decimal("0.00"), validators=NON_NEGATIVE)
    deposit_first_meter_unfavorable = MoneyField(default=Decimal("0.00"), validators=NON_NEGATIVE)
    deposit_additional_meter_favorable = MoneyField(default=Decimal("0.00"), validators=NON_NEGATIVE)
    deposit_additional_meter_unfavorable = MoneyField(default=Decimal("0.00"), validators=NON_NEGATIVE)

    # --- Amount guards ----------------------------------------------------------------------
    # Typing errors, not rules of a program: unlike the settings above, their defaults are not
    # neutral, because "no limit" would let 9,999,999,999.99 typed by mistake reach the ledger.
    amount_maximum = MoneyField(
        default=Decimal("1000000.00"),
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="The largest single amount posted by staff or a payment file (a payment, deposit, "
        "fee, bill, adjustment or debt transfer); a larger amount is refused as a typing error.",
    )
    payment_confirm_above_cash = MoneyField(
        default=Decimal("5000.00"),
        validators=NON_NEGATIVE,
        help_text="A cash payment above this is posted only when the clerk confirms the amount "
        "(recorded with the payment); 0: never asked.",
    )
    payment_confirm_above = MoneyField(
        default=Decimal("10000.00"),
        validators=NON_NEGATIVE,
        help_text="The same for a payment by any other tender (check, card, ACH, online, money "
        "order); 0: never asked.",
    )

    history = HistoricalRecords()
    objects = PolicyQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "policies"
        ordering = ["-effective_from"]
        constraints = [
            models.CheckConstraint(
                condition=Q(restore_level__gte=F("disconnect_level")),
                name="policy_restore_not_below_disconnect",
                violation_error_message="The restore level may not be below the disconnect level.",
            ),
            models.CheckConstraint(
                condition=(
                    Q(disconnect_window_start__isnull=True, disconnect_window_end__isnull=True)
                    | Q(disconnect_window_start__lt=F("disconnect_window_end"))
                ),
                name="policy_disconnect_window_valid",
                violation_error_message=(
                    "The disconnect window needs both a start and an end, the start before the end "
                    "(or neither, to allow disconnection at any time)."
                ),
            ),
            models.CheckConstraint(
                condition=Q(business_hours_start__lt=F("business_hours_end")),
                name="policy_business_hours_valid",
                violation_error_message="Business hours must start before they end.",
            ),
        ]

    def __str__(self):
        return f"{self.name} (from {self.effective_from:%Y-%m-%d})"

    def clean(self):
        errors = {}
        if self.late_fee_kind == self.LateFeeKind.FLAT and not self.late_fee_amount:
            errors["late_fee_amount"] = "A flat late fee needs an amount."
        if self.late_fee_kind == self.LateFeeKind.PERCENT and not self.late_fee_percent:
            errors["late_fee_percent"] = "A percentage late fee needs a percentage."
        if (
            self.nonpay_disconnect_rule == self.NonpayDisconnectRule.DAY_OF_MONTH
            and self.nonpay_disconnect_days_after_notice is not None
        ):
            errors["nonpay_disconnect_days_after_notice"] = (
                "Only used when disconnection is a number of days after the notice."
            )
        if (
            self.nonpay_disconnect_rule == self.NonpayDisconnectRule.DAYS_AFTER_NOTICE
            and self.nonpay_disconnect_days_after_notice is None
        ):
            errors["nonpay_disconnect_days_after_notice"] = "Say how many days after the notice."
        if self.long_disconnect_days is None and self.long_disconnect_deposit:
            errors["long_disconnect_days"] = "A long-disconnection deposit needs a number of days."
        for name in ("payment_confirm_above_cash", "payment_confirm_above"):
            limit = getattr(self, name)
            if limit and self.amount_maximum and limit >= self.amount_maximum:
                errors[name] = (
                    f"The confirmation limit (${limit}) must be below the largest amount "
                    f"(${self.amount_maximum}), or 0 to never ask."
                )
        if errors:
            raise ValidationError(errors)

    @property
    def has_disconnect_window(self) -> bool:
        return self.disconnect_window_start is not None

    def disconnect_level_lookup(self, field: str) -> dict:
        """`is_disconnect_level` as an ORM filter on the balance field `field`."""
        operator = "lt" if self.disconnect_rule == self.DisconnectRule.BELOW else "lte"
        return {f"{field}__{operator}": self.disconnect_level}

    def is_disconnect_level(self, balance: Decimal) -> bool:
        """Whether a prepaid balance is at the point where service is cut under this policy."""
        if self.disconnect_rule == self.DisconnectRule.BELOW:
            return balance < self.disconnect_level
        return balance <= self.disconnect_level

    def required_deposit(self, *, favorable_credit: bool, first_meter: bool) -> Decimal:
        if first_meter:
            return (
                self.deposit_first_meter_favorable
                if favorable_credit
                else self.deposit_first_meter_unfavorable
            )
        return (
            self.deposit_additional_meter_favorable
            if favorable_credit
            else self.deposit_additional_meter_unfavorable
        )


class FeeScheduleEntry(models.Model):
    """A fee a clerk may charge, at the amount a manager sets. A charged fee keeps the amount
    it was charged at, so editing the schedule never changes what members already owe."""

    code = models.SlugField(max_length=40, unique=True)
    description = models.CharField(max_length=200)
    amount = MoneyField(validators=NON_NEGATIVE)
    is_active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]
        verbose_name = "fee schedule entry"
        verbose_name_plural = "fee schedule"
        permissions = [("waive_fee", "Can waive a charged fee")]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gte=0),
                name="fee_amount_not_negative",
                violation_error_message="A fee may not be negative.",
            )
        ]

    def __str__(self):
        return f"{self.description} (${self.amount})"


class DateRangeEntry(models.Model):
    """A staff-entered range of days (inclusive) with a reason and who entered it."""

    start_date = models.DateField()
    end_date = models.DateField(help_text="Last day included.")
    reason = models.CharField(max_length=200)
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    entered_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ["-start_date"]

    def __str__(self):
        if self.start_date == self.end_date:
            return f"{self.start_date:%Y-%m-%d}: {self.reason}"
        return f"{self.start_date:%Y-%m-%d} – {self.end_date:%Y-%m-%d}: {self.reason}"

    def clean(self):
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValidationError({"end_date": "The last day may not be before the first day."})


class OfficeClosure(DateRangeEntry):
    """Days the office is closed beyond weekends and public holidays: not business days."""

    history = HistoricalRecords()

    class Meta(DateRangeEntry.Meta):
        constraints = [
            models.CheckConstraint(
                condition=Q(end_date__gte=F("start_date")),
                name="officeclosure_end_not_before_start",
                violation_error_message="The last day may not be before the first day.",
            )
        ]
        indexes = [models.Index(fields=["start_date", "end_date"])]


class WeatherHold(DateRangeEntry):
    """Days of extreme heat or cold on which no prepaid disconnection happens (where the policy
    grants weather grace)."""

    history = HistoricalRecords()

    class Meta(DateRangeEntry.Meta):
        constraints = [
            models.CheckConstraint(
                condition=Q(end_date__gte=F("start_date")),
                name="weatherhold_end_not_before_start",
                violation_error_message="The last day may not be before the first day.",
            )
        ]
        indexes = [models.Index(fields=["start_date", "end_date"])]


class ScheduleChange(models.Model):
    """The audit trail of the background schedules (django-q2's Schedule rows): who paused,
    resumed, added, edited or deleted one, when and why. Written only by coop/schedules.py; the
    Schedule rows themselves have no history (the cluster saves each one after every run)."""

    class Action(models.TextChoices):
        PAUSED = "paused", "Paused"
        RESUMED = "resumed", "Resumed"
        SAVED = "saved", "Added or edited (superuser)"
        DELETED = "deleted", "Deleted (superuser)"

    # The schedule by id and name, not a foreign key: the trail outlives a deleted schedule.
    schedule_id = models.PositiveIntegerField()
    schedule_name = models.CharField(max_length=100, blank=True)
    action = models.CharField(max_length=10, choices=Action.choices)
    func = models.CharField("function", max_length=256, blank=True)
    repeats_before = models.IntegerField(null=True, blank=True)
    repeats_after = models.IntegerField(null=True, blank=True)
    reason = models.CharField(max_length=200)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]
        # On this model because django-q2's Schedule is not ours to give permissions to.
        permissions = [("pause_schedule", "Can pause or resume the cooperative's own schedules")]

    def __str__(self):
        return f"{self.schedule_name or self.schedule_id}: {self.get_action_display()} by {self.actor}"
