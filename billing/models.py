"""The double-entry ledger.

Every movement of money is a `Transaction` whose `Leg`s sum to zero across `LedgerAccount`s. A leg's
amount is debit-positive: +10.00 debits an account, -10.00 credits it. Posted legs are never
changed or deleted; a mistake is corrected by a reversing transaction that points at the original.
On PostgreSQL the database enforces both rules with triggers (migrations 0002 and 0013; the money
records are append-only too, 0013, 0015, 0016); elsewhere `billing.ledger` is the only writer and
checks them.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from coop.indexes import BlockRangeIndex
from coop.money import MoneyField


class LedgerAccount(models.Model):
    class Kind(models.TextChoices):
        ASSET = "asset", "Asset"
        LIABILITY = "liability", "Liability"
        REVENUE = "revenue", "Revenue"
        EXPENSE = "expense", "Expense"

    class Purpose(models.TextChoices):
        # One of each per member account.
        PREPAID_CREDIT = "prepaid_credit", "Prepaid credit"
        ARREARS = "arrears", "Arrears"
        DEPOSIT_HELD = "deposit_held", "Deposit held"
        AMOUNT_DUE = "amount_due", "Amount due (postpaid)"
        # The cooperative's own.
        CASH_CLEARING = "cash_clearing", "Cash clearing"
        ENERGY_REVENUE = "energy_revenue", "Energy revenue"
        FEE_REVENUE = "fee_revenue", "Fee revenue"
        REFUNDS_PAYABLE = "refunds_payable", "Refunds payable"
        WRITE_OFFS = "write_offs", "Bad-debt write-offs"
        ADJUSTMENTS = "adjustments", "Billing adjustments"
        TAX_PAYABLE = "tax_payable", "Sales tax payable"

    # What kind of account each purpose is. A member's prepaid credit and deposit are money the
    # cooperative owes the member (liabilities); arrears and postpaid amounts due are money the
    # member owes (receivables, assets).
    KIND_OF = {
        Purpose.PREPAID_CREDIT: Kind.LIABILITY,
        Purpose.ARREARS: Kind.ASSET,
        Purpose.DEPOSIT_HELD: Kind.LIABILITY,
        Purpose.AMOUNT_DUE: Kind.ASSET,
        Purpose.CASH_CLEARING: Kind.ASSET,
        Purpose.ENERGY_REVENUE: Kind.REVENUE,
        Purpose.FEE_REVENUE: Kind.REVENUE,
        Purpose.REFUNDS_PAYABLE: Kind.LIABILITY,
        Purpose.WRITE_OFFS: Kind.EXPENSE,
        Purpose.ADJUSTMENTS: Kind.EXPENSE,
        Purpose.TAX_PAYABLE: Kind.LIABILITY,
    }
    MEMBER_PURPOSES = (Purpose.PREPAID_CREDIT, Purpose.ARREARS, Purpose.DEPOSIT_HELD, Purpose.AMOUNT_DUE)

    code = models.CharField(max_length=60, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    account = models.ForeignKey(
        "accounts.Account", null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_accounts"
    )
    tender = models.CharField(max_length=20, blank=True, help_text="For cash clearing: the tender.")
    # Debit-positive sum of this account's legs, kept in the same database transaction as the legs
    # under a row lock; `manage.py ledger_audit` proves it equals the sum.
    balance = MoneyField(default=0)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "purpose"],
                condition=Q(account__isnull=False),
                name="one_ledger_account_per_member_account_purpose",
            )
        ]

    def __str__(self):
        return self.name

    @property
    def natural_balance(self):
        """The balance as people read it: credit-positive for liabilities and revenue."""
        return -self.balance if self.kind in (self.Kind.LIABILITY, self.Kind.REVENUE) else self.balance


class Transaction(models.Model):
    class Kind(models.TextChoices):
        PAYMENT = "payment", "Payment"
        PAYMENT_RETURN = "payment_return", "Returned payment"
        FEE = "fee", "Fee"
        FEE_WAIVER = "fee_waiver", "Fee waived"
        DEPOSIT_COLLECT = "deposit_collect", "Deposit collected"
        DEPOSIT_APPLY = "deposit_apply", "Deposit applied"
        DEPOSIT_REFUND = "deposit_refund", "Deposit refunded"
        ADJUSTMENT = "adjustment", "Adjustment"
        REFUND = "refund", "Credit refund"
        WRITE_OFF = "write_off", "Write-off"
        ENERGY = "energy", "Energy charge"
        BILL = "bill", "Postpaid bill"
        REVERSAL = "reversal", "Reversal"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    effective_date = models.DateField(help_text="The business day the money movement belongs to.")
    posted_at = models.DateTimeField(default=timezone.now, editable=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    memo = models.CharField(max_length=300, blank=True)
    idempotency_key = models.CharField(max_length=120, unique=True)
    account = models.ForeignKey(
        "accounts.Account",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="transactions",
        help_text="The member account this transaction concerns, if any.",
    )
    reverses = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by"
    )

    class Meta:
        ordering = ["-posted_at", "-id"]
        indexes = [models.Index(fields=["account", "-posted_at", "-id"])]
        permissions = [("post_adjustment", "Can post adjustments, refunds and write-offs")]

    def __str__(self):
        return f"{self.get_kind_display()} #{self.pk}"


class Leg(models.Model):
    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="legs")
    # Served by the (ledger_account, transaction) index below.
    ledger_account = models.ForeignKey(
        LedgerAccount, on_delete=models.PROTECT, related_name="legs", db_index=False
    )
    amount = MoneyField(help_text="Debit positive, credit negative.")

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["ledger_account", "transaction"])]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="leg_amount_not_zero")]

    def __str__(self):
        return f"{self.ledger_account}: {self.amount}"


class Payment(models.Model):
    """Money received from a member, posted to the ledger as one transaction."""

    class Tender(models.TextChoices):
        CASH = "cash", "Cash"
        CHECK = "check", "Check"
        CARD = "card", "Card"
        ACH = "ach", "ACH"
        ONLINE = "online", "Online"
        MONEY_ORDER = "money_order", "Money order"

    class Status(models.TextChoices):
        POSTED = "posted", "Posted"
        RETURNED = "returned", "Returned"

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="payments")
    amount = MoneyField()
    tender = models.CharField(max_length=20, choices=Tender.choices)
    reference = models.CharField(
        max_length=80, help_text="Check number, processor or lockbox reference; unique per tender."
    )
    received_at = models.DateTimeField()
    receipt_number = models.CharField(max_length=20, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.POSTED)
    transaction = models.OneToOneField(Transaction, on_delete=models.PROTECT, related_name="payment")
    to_credit = MoneyField(default=0, help_text="Part applied to the prepaid balance.")
    to_arrears = MoneyField(default=0, help_text="Part taken by the debt-management plan.")
    to_amount_due = MoneyField(default=0, help_text="Part applied to postpaid amounts due.")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["account", "-received_at"])]
        constraints = [
            models.UniqueConstraint(fields=["tender", "reference"], name="payment_unique_tender_reference"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
        ]

    def __str__(self):
        return f"{self.receipt_number}: ${self.amount} {self.get_tender_display()}"


class ReturnedPayment(models.Model):
    """A posted payment that came back (bounced check, ACH return, card chargeback)."""

    class Reason(models.TextChoices):
        INSUFFICIENT_FUNDS = "nsf", "Insufficient funds"
        ACCOUNT_CLOSED = "account_closed", "Account closed"
        STOP_PAYMENT = "stop_payment", "Stop payment"
        NO_ACCOUNT = "no_account", "No account / unable to locate"
        UNAUTHORIZED = "unauthorized", "Unauthorized / disputed"
        OTHER = "other", "Other"

    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, related_name="return_record")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    note = models.CharField(max_length=300, blank=True)
    returned_on = models.DateField()
    transaction = models.OneToOneField(Transaction, on_delete=models.PROTECT, related_name="+")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-returned_on", "-id"]

    def __str__(self):
        return f"{self.payment.receipt_number} returned: {self.get_reason_display()}"


class ChargedFee(models.Model):
    """A fee charged to an account, at the amount it was charged at."""

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="fees")
    code = models.CharField(max_length=40)
    description = models.CharField(max_length=200)
    amount = MoneyField()
    charged_on = models.DateField()
    transaction = models.OneToOneField(Transaction, on_delete=models.PROTECT, related_name="charged_fee")
    waiver_transaction = models.OneToOneField(
        Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="waived_fee"
    )
    waive_reason = models.CharField(max_length=300, blank=True)
    # The return that charged this fee (payment_return's returned-payment and collection fees), by
    # its reversal transaction (ReturnedPayment.transaction, one per return), so the payment's
    # receipt lists them by this link, not by searching descriptions. The transaction, not the
    # return record: ledger transactions are never deleted, and the link never blocks ledger_audit
    # from reporting a return record that was.
    return_transaction = models.ForeignKey(
        Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="return_fees"
    )
    waived_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-charged_on", "-id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="charged_fee_positive")]

    def __str__(self):
        return f"{self.description} ${self.amount}"

    @property
    def is_waived(self) -> bool:
        return self.waiver_transaction_id is not None


class RefundPayout(models.Model):
    """A refund (a deposit refunded, credit refunded) paid out by one of the cooperative's checks:
    one payout per refund, and one refund per check number (`billing.services.refund_pay`)."""

    refund = models.OneToOneField(Transaction, on_delete=models.PROTECT, related_name="payout")
    transaction = models.OneToOneField(Transaction, on_delete=models.PROTECT, related_name="refund_payout")
    check_number = models.CharField(max_length=80, unique=True)
    amount = MoneyField()
    paid_on = models.DateField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="refund_payout_positive")]

    def __str__(self):
        return f"Refund #{self.refund_id} paid by check {self.check_number}"


class DebtPlan(models.Model):
    """A debt-management plan: a share of every payment goes to the account's arrears until they
    are paid in full."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    # Every move a plan's status may make (billing.services.plan_move is the one place that makes
    # them). A plan starts active; it completes when the arrears are paid or written off (or the
    # final bill clears them) and is cancelled by a manager. A completed plan resumes when the
    # payment that completed it is returned and arrears are owed again.
    TRANSITIONS = {
        Status.ACTIVE: frozenset({Status.COMPLETED, Status.CANCELLED}),
        Status.COMPLETED: frozenset({Status.ACTIVE}),
        Status.CANCELLED: frozenset(),
    }

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="debt_plans")
    share_percent = models.DecimalField(max_digits=5, decimal_places=2)
    share_override_reason = models.CharField(
        max_length=300, blank=True, help_text="Why the share differs from the policy's."
    )
    enrolled_amount = MoneyField(help_text="Arrears when the plan began.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    enrolled_on = models.DateField()
    enrolled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    ended_on = models.DateField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=300, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-enrolled_on", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account"], condition=Q(status="active"), name="one_active_plan_per_account"
            ),
            models.CheckConstraint(
                condition=Q(share_percent__gt=0, share_percent__lte=100), name="plan_share_in_range"
            ),
        ]

    def __str__(self):
        return f"Plan for {self.account} ({self.share_percent}%)"


# --- Postpaid receivables ------------------------------------------------------------------------
#
# A postpaid account's AMOUNT_DUE ledger account says how much the member owes in total; these
# three models say what for and what has been paid. Every debit to AMOUNT_DUE is a `Receivable`
# (a bill, a fee, a debit adjustment, a refund of credit), every credit is a `Credit` (a payment's
# share for the amount due, a credit adjustment, a deposit applied, debt moved to arrears), and an
# `Allocation` says how much of which credit paid which receivable. `billing.services` keeps them
# in step with the ledger in the same database transaction, under the account's row lock, so that
# for every postpaid account
#
#     sum(open amounts of receivables) - sum(unallocated credit) == AMOUNT_DUE balance
#
# (`billing.selectors.receivables_audit` proves it). Unallocated credit and an open receivable
# never exist together on one account: whenever either appears, credit is allocated to the open
# receivables oldest due date first (then oldest id), the credit received first going first.
# A reversal (a returned payment, a waived fee, a reversed adjustment) cancels the item it
# reverses: its live allocations are released, so the other side is open or unallocated again for
# exactly those amounts.


class Receivable(models.Model):
    """One amount a postpaid member owes, with the day it is due."""

    class Kind(models.TextChoices):
        BILL = "bill", "Bill"
        FEE = "fee", "Fee"
        ADJUSTMENT = "adjustment", "Debit adjustment"
        REFUND = "refund", "Credit refunded"

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="receivables")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    description = models.CharField(max_length=200)
    due_date = models.DateField()
    amount = MoneyField()
    open_amount = MoneyField(help_text="What is still owed: the amount less live allocations.")
    transaction = models.OneToOneField(Transaction, on_delete=models.PROTECT, related_name="receivable")
    cancelled_by = models.ForeignKey(
        Transaction,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The reversal that took it off the account (a fee waiver); nothing is owed on it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_date", "id"]
        indexes = [
            # The payment service's and the account page's question: this account's open
            # receivables, oldest due first.
            models.Index(
                fields=["account", "due_date", "id"],
                condition=Q(open_amount__gt=0),
                name="receivable_open_by_due",
            )
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="receivable_amount_positive"),
            models.CheckConstraint(
                condition=Q(open_amount__gte=0, open_amount__lte=models.F("amount")),
                name="receivable_open_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(cancelled_by__isnull=True) | Q(open_amount=0),
                name="receivable_cancelled_is_not_open",
            ),
        ]

    def __str__(self):
        return f"{self.description} due {self.due_date:%Y-%m-%d}: ${self.open_amount} of ${self.amount} open"

    @property
    def paid(self):
        """How much of it live allocations have paid (nothing, once cancelled)."""
        return self.amount - self.open_amount if self.cancelled_by_id is None else Decimal("0.00")


class Credit(models.Model):
    """One amount credited to a postpaid account's amount due, to be allocated to receivables."""

    class Kind(models.TextChoices):
        PAYMENT = "payment", "Payment"
        ADJUSTMENT = "adjustment", "Credit adjustment"
        DEPOSIT = "deposit", "Deposit applied"
        ARREARS_TRANSFER = "arrears_transfer", "Moved to arrears"

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="credits")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    amount = MoneyField()
    unallocated = MoneyField(help_text="What is not yet allocated to a receivable: a credit on the account.")
    transaction = models.OneToOneField(
        Transaction, on_delete=models.PROTECT, related_name="amount_due_credit"
    )
    payment = models.OneToOneField(
        Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="amount_due_credit"
    )
    cancelled_by = models.ForeignKey(
        Transaction,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The reversal that took it back (a returned payment); it pays nothing.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["account", "id"], condition=Q(unallocated__gt=0), name="credit_unallocated")
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_amount_positive"),
            models.CheckConstraint(
                condition=Q(unallocated__gte=0, unallocated__lte=models.F("amount")),
                name="credit_unallocated_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(cancelled_by__isnull=True) | Q(unallocated=0),
                name="credit_cancelled_is_not_unallocated",
            ),
            models.CheckConstraint(
                condition=Q(kind="payment", payment__isnull=False)
                | (~Q(kind="payment") & Q(payment__isnull=True)),
                name="credit_payment_iff_kind_payment",
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} ${self.amount} (${self.unallocated} unallocated)"


class Allocation(models.Model):
    """Part of a credit paying part of a receivable. Rows are never deleted: a reversal of either
    side marks its live allocations released, which reopens the other side for those amounts."""

    credit = models.ForeignKey(Credit, on_delete=models.PROTECT, related_name="allocations")
    receivable = models.ForeignKey(Receivable, on_delete=models.PROTECT, related_name="allocations")
    amount = MoneyField()
    created_at = models.DateTimeField(auto_now_add=True)
    released_by = models.ForeignKey(
        Transaction,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The reversal (returned payment, waived fee) that undid this allocation.",
    )

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="allocation_amount_positive")]

    def __str__(self):
        return f"${self.amount} of credit #{self.credit_id} to receivable #{self.receivable_id}"

    @property
    def is_live(self) -> bool:
        return self.released_by_id is None


# --- Rates ---------------------------------------------------------------------------------------

MONTHS_HELP = "Months this applies to, as numbers: '6,7,8,9' for summer. Blank: every month."


def parse_months(text: str) -> set[int]:
    """'6,7,8,9' -> {6, 7, 8, 9}; blank -> every month. Raises ValueError on anything else."""
    if not text.strip():
        return set(range(1, 13))
    months = set()
    for part in text.split(","):
        month = int(part.strip())
        if not 1 <= month <= 12:
            raise ValueError(f"{month} is not a month number (1-12)")
        months.add(month)
    return months


class Tariff(models.Model):
    """A rate schedule in force from the first day of a month until the next version of the same
    code. Used for prepaid (priced daily) and postpaid (priced monthly) alike; see billing/rates.py
    for how a prepaid day is priced so that a month's days add up to the monthly bill."""

    code = models.CharField(max_length=20, default="RES", help_text="RES: residential.")
    name = models.CharField(max_length=100)
    effective_from = models.DateField(help_text="Always the first day of a month.")
    customer_charge = MoneyField(help_text="Monthly customer (service availability) charge per meter.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()  # who changed a version before it came into force (billing/tariffs.py)

    class Meta:
        ordering = ["code", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["code", "effective_from"], name="one_tariff_version_per_day"),
            models.CheckConstraint(
                condition=Q(customer_charge__gte=0), name="tariff_customer_charge_not_negative"
            ),
        ]

    def __str__(self):
        return f"{self.code} from {self.effective_from}"


class TariffBlock(models.Model):
    """One energy block of a tariff in the given months: `rate` per kWh for month-to-date kWh up to
    `up_to_kwh` (blank: no limit; the last block of each month)."""

    tariff = models.ForeignKey(Tariff, on_delete=models.CASCADE, related_name="blocks")
    months = models.CharField(max_length=40, blank=True, help_text=MONTHS_HELP)
    up_to_kwh = models.PositiveIntegerField("up to kWh (month to date)", null=True, blank=True)
    rate = models.DecimalField("rate per kWh", max_digits=10, decimal_places=6)
    history = HistoricalRecords()

    class Meta:
        ordering = ["tariff", "months", models.F("up_to_kwh").asc(nulls_last=True)]
        constraints = [models.CheckConstraint(condition=Q(rate__gte=0), name="block_rate_not_negative")]

    def __str__(self):
        limit = f"up to {self.up_to_kwh} kWh" if self.up_to_kwh is not None else "above"
        return f"{self.months or 'all months'} {limit}: ${self.rate}/kWh"


class Rider(models.Model):
    """A per-kWh adjustment on every tariff (a power cost adjustment, a renewable rider), in force
    for whole months from `effective_from` through `effective_to` (blank: until ended)."""

    code = models.CharField(max_length=20)
    name = models.CharField(max_length=100)
    rate = models.DecimalField("rate per kWh", max_digits=10, decimal_places=6, help_text="May be negative.")
    effective_from = models.DateField(help_text="The first day of a month.")
    effective_to = models.DateField(null=True, blank=True, help_text="The last day of a month, or blank.")
    history = HistoricalRecords()

    class Meta:
        ordering = ["code", "-effective_from"]

    def __str__(self):
        return f"{self.name} ${self.rate}/kWh from {self.effective_from}"


class TaxRate(models.Model):
    """A percentage tax on the energy bill (energy, customer charge and riders)."""

    name = models.CharField(max_length=100)
    percent = models.DecimalField(max_digits=7, decimal_places=4)
    effective_from = models.DateField(help_text="The first day of a month.")
    effective_to = models.DateField(null=True, blank=True, help_text="The last day of a month, or blank.")
    history = HistoricalRecords()

    class Meta:
        ordering = ["name", "-effective_from"]
        constraints = [models.CheckConstraint(condition=Q(percent__gte=0), name="tax_percent_not_negative")]

    def __str__(self):
        return f"{self.name} {self.percent}%"


# --- The daily prepaid run -----------------------------------------------------------------------


class DailyRun(models.Model):
    """One service day's prepaid run: progress while it runs, counts when it ends."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Finished with failures"

    service_day = models.DateField(unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last progress report.")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times the run was started.")
    accounts_total = models.PositiveIntegerField(default=0)
    accounts_done = models.PositiveIntegerField(default=0)
    deductions = models.PositiveIntegerField(default=0)
    true_ups = models.PositiveIntegerField(default=0)
    estimated_reads = models.PositiveIntegerField(default=0)
    low_balance = models.PositiveIntegerField(default=0, help_text="Accounts below their warning level.")
    at_disconnect_level = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    failure_detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-service_day"]

    def __str__(self):
        return f"Daily run for {self.service_day}"

    @property
    def progress_percent(self) -> int:
        if not self.accounts_total:
            return 100 if self.status != self.Status.RUNNING else 0
        return min(100, self.accounts_done * 100 // self.accounts_total)


class Deduction(models.Model):
    """One prepaid account's charge for one service day (kind daily), or the settlement of an
    estimated day whose actual read came later (kind true_up). Keeps the parts a statement shows.

    The month-to-date columns make pricing telescope: each day's part is the rounded month-to-date
    amount after the day less the one before it, so a month's days add up to the monthly bill to
    the cent (billing/rates.py)."""

    class Kind(models.TextChoices):
        DAILY = "daily", "Daily charge"
        TRUE_UP = "true_up", "True-up of an estimate"

    # A million rows a day: no index on a column another index already leads with (account) or
    # that nothing looks rows up by (run, meter), and no database foreign-key constraint on any of
    # them. Each constraint costs a check per row at commit (about 5 µs, so 5 s a day at a million
    # meters for each one). Only the daily run writes these rows, in the database transaction that
    # locks the account rows it reads them from and creates the ledger transaction they point to;
    # neither is ever deleted (accounts have ledger accounts, which the database protects, and
    # transactions are append-only), and `ledger_audit` checks that every deduction's account
    # exists and that its transaction posts its total on the member's prepaid credit.
    account = models.ForeignKey(
        "accounts.Account",
        on_delete=models.PROTECT,
        related_name="deductions",
        db_index=False,
        db_constraint=False,
    )
    service_day = models.DateField()
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.DAILY)
    # The run and the meter are a record of where the row came from. Neither table's rows are
    # ever deleted.
    run = models.ForeignKey(
        DailyRun,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    meter = models.ForeignKey(
        "meters.Meter",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    read_quality = models.CharField(
        max_length=10, blank=True, help_text="actual, estimated, or blank: no meter."
    )
    # Unique where set (see Meta): a daily row, which has none, adds nothing to its index.
    settles = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="settled_by",
        db_index=False,
        help_text="For a true-up: the estimated day it settles.",
    )
    kwh = models.DecimalField("kWh", max_digits=12, decimal_places=3)
    energy = MoneyField()
    customer_charge = MoneyField()
    riders = MoneyField()
    tax = MoneyField()
    total = MoneyField()
    # Month-to-date position after this row, in whole Wh and cents (see the class docstring).
    mtd_wh = models.BigIntegerField()
    mtd_days = models.PositiveSmallIntegerField()
    mtd_energy_cents = models.BigIntegerField()
    mtd_customer_cents = models.BigIntegerField()
    mtd_riders_cents = models.BigIntegerField()
    mtd_tax_cents = models.BigIntegerField()
    balance_after = MoneyField(help_text="The prepaid balance right after this charge.")
    avg_daily_cents = models.BigIntegerField(
        help_text="Recent daily cost (exponentially weighted), for the days-remaining estimate."
    )
    days_remaining = models.PositiveIntegerField(null=True, blank=True)
    # The run posts one balanced transaction per chunk of accounts: a leg on each member's prepaid
    # credit, and one leg each to energy revenue and sales tax for the chunk (billing/daily.py).
    transaction = models.ForeignKey(
        Transaction,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="deductions",
        db_constraint=False,
        help_text="Blank when the day cost nothing.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-service_day", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "service_day"],
                condition=Q(kind="daily"),
                name="one_daily_deduction_per_account_day",
            ),
            models.UniqueConstraint(
                fields=["settles"], condition=Q(settles__isnull=False), name="one_true_up_per_estimate"
            ),
        ]
        indexes = [
            models.Index(fields=["account", "service_day", "id"]),
            # Looked up by day too (the notices after a run, the run's counts). A day's rows are
            # written together, so a BRIN index finds them; a B-tree would add an entry per row,
            # a million a day, for the same answer.
            BlockRangeIndex(fields=["service_day"], name="deduction_service_day_brin"),
            models.Index(
                fields=["account"], condition=Q(read_quality="estimated"), name="deduction_estimated"
            ),
        ]

    def __str__(self):
        return f"{self.account} {self.service_day}: ${self.total}"


class DisconnectDecision(models.Model):
    """What the disconnect step decided for one candidate on one day, and why."""

    class Outcome(models.TextChoices):
        ORDERED = "ordered", "Disconnect ordered"
        SKIPPED = "skipped", "Skipped"

    account = models.ForeignKey(
        "accounts.Account", on_delete=models.PROTECT, related_name="disconnect_decisions"
    )
    day = models.DateField()
    decided_at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    reason = models.CharField(max_length=300)
    balance = MoneyField()
    order = models.ForeignKey(
        "meters.ServiceOrder", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-decided_at", "-id"]
        indexes = [models.Index(fields=["day", "outcome"]), models.Index(fields=["account", "-decided_at"])]

    def __str__(self):
        return f"{self.account} {self.day}: {self.get_outcome_display()} ({self.reason})"
