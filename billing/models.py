"""The double-entry ledger.

Every movement of money is a `Transaction` whose `Leg`s sum to zero across `LedgerAccount`s. A leg's
amount is debit-positive: +10.00 debits an account, -10.00 credits it. Posted legs are never
changed or deleted; a mistake is corrected by a reversing transaction that points at the original.
On PostgreSQL the database enforces both rules with triggers (see migration 0002_ledger_triggers);
elsewhere `billing.ledger` is the only writer and checks them.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

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
    ledger_account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="legs")
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


class DebtPlan(models.Model):
    """A debt-management plan: a share of every payment goes to the account's arrears until they
    are paid in full."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

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
