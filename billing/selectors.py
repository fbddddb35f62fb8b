"""Reads about money that several places need: balances (and the one rule of their sign), plans,
check restriction, postpaid receivables, and what the account page and the receipt show."""

import calendar
import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.core.paginator import Paginator
from django.db.models import OuterRef, Prefetch, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from accounts.models import Account
from billing.models import (
    Allocation,
    ChargedFee,
    Credit,
    DebtPlan,
    LedgerAccount,
    Leg,
    Payment,
    Receivable,
    ReturnedPayment,
    Transaction,
)
from coop.models import Policy
from coop.money import split, usd

P = LedgerAccount.Purpose
ZERO = Decimal("0.00")


def add_months(day: datetime.date, months: int) -> datetime.date:
    """The same day `months` later (or earlier), clamped to the month's end (Jan 31 + 1 = Feb 28)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return datetime.date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


@dataclass(frozen=True)
class Balances:
    """A member account's money, each from the member's point of view."""

    prepaid_credit: Decimal  # available prepaid balance (negative: used on credit)
    arrears: Decimal  # old debt owed, paid down by a debt-management plan
    deposit_held: Decimal  # security deposit the cooperative holds
    amount_due: Decimal  # postpaid amount owed (negative: a credit on the account)


def member_amount(purpose: str, debit: Decimal) -> Decimal:
    """A member ledger account's debit-positive amount (a leg, a balance) as the member reads it.
    Legs are debit-positive; prepaid credit and the deposit are what the cooperative owes the member
    (liabilities, LedgerAccount.KIND_OF), so their credit balance is the member's positive amount;
    arrears and the amount due are what the member owes (assets), read as they are."""
    return -debit if LedgerAccount.KIND_OF[purpose] == LedgerAccount.Kind.LIABILITY else debit


def balances_from(debits: dict[str, Decimal]) -> Balances:
    """The Balances of debit-positive sums by member purpose (a purpose left out is zero)."""
    return Balances(
        prepaid_credit=member_amount(P.PREPAID_CREDIT, debits.get(P.PREPAID_CREDIT, ZERO)),
        arrears=member_amount(P.ARREARS, debits.get(P.ARREARS, ZERO)),
        deposit_held=member_amount(P.DEPOSIT_HELD, debits.get(P.DEPOSIT_HELD, ZERO)),
        amount_due=member_amount(P.AMOUNT_DUE, debits.get(P.AMOUNT_DUE, ZERO)),
    )


def account_balances(account) -> Balances:
    """One query over the account's (at most four) member ledger accounts' stored balances."""
    return balances_from(
        dict(
            LedgerAccount.objects.filter(
                account=account, purpose__in=LedgerAccount.MEMBER_PURPOSES
            ).values_list("purpose", "balance")
        )
    )


def balances_as_of(account_id: int, transaction_id: int) -> Balances:
    """The account's balances just after the transaction `transaction_id` posted, for what reports
    it later (a receipt printed again, a notice queued after the commit, when later postings of the
    same database transaction may already be in). Postings to one member ledger account are
    serialized by its row lock and take their ids in that order, so the legs up to that transaction
    are exactly the past. (SQLite sums in floating point; the DecimalField converter rounds the total
    back to the cent, exact for any realistic number of legs.)"""
    return balances_from(
        dict(
            Leg.objects.filter(ledger_account__account_id=account_id, transaction_id__lte=transaction_id)
            .values_list("ledger_account__purpose")
            .annotate(total=Sum("amount"))
            .order_by()
        )
    )


def balances_after(payment: Payment) -> Balances:
    """The account's balances just after `payment` posted, for its receipt."""
    return balances_as_of(payment.account_id, payment.transaction_id)


def active_plan(account) -> DebtPlan | None:
    return DebtPlan.objects.filter(account=account, status=DebtPlan.Status.ACTIVE).first()


def plan_share(payment: Decimal, *, share_percent, exempt: Decimal, arrears: Decimal) -> Decimal:
    """What of `payment` an active debt plan takes to arrears: its share of the payment less the
    `exempt` part (initial_minimum_unpaid), never more than the arrears. The one rule both
    billing.services.payment_post (the split it posts) and billing.prepaid (the restore amount,
    grossed up for the share) apply."""
    share, _ = split(payment - min(payment, exempt), share_percent)
    return min(share, max(arrears, ZERO))


def initial_minimum_unpaid(account, policy) -> Decimal:
    """How much of the initial minimum starting balance is still to come. Policy B: the debt
    plan's share is never taken from the initial $50 minimum."""
    if account.billing_mode != Account.BillingMode.PREPAID or not policy.debt_plan_exempts_initial_minimum:
        return ZERO
    paid = sum(
        Payment.objects.filter(account=account, status=Payment.Status.POSTED).values_list(
            "to_credit", flat=True
        ),
        ZERO,
    )
    return max(ZERO, policy.prepaid_minimum_starting_balance - paid)


def check_restricted_until(member, *, today: datetime.date) -> datetime.date | None:
    """The last day a member may not pay by check, or None when checks are accepted.

    Policy D: two returned checks within 12 months bar checks for 12 months after the latest one.
    """
    policy = Policy.objects.in_force(today)
    if not policy.check_restriction_returns:
        return None
    window_start = add_months(
        today, -(policy.check_restriction_window_months + policy.check_restriction_months)
    )
    returns = list(
        ReturnedPayment.objects.filter(
            payment__account__member=member,
            payment__tender=Payment.Tender.CHECK,
            returned_on__gt=window_start,
        )
        .order_by("returned_on")
        .values_list("returned_on", flat=True)
    )
    # Find the latest return that, with the ones before it inside the window, reaches the count.
    n = policy.check_restriction_returns
    until = None
    for i in range(n - 1, len(returns)):
        latest, earliest = returns[i], returns[i - n + 1]
        if earliest > add_months(latest, -policy.check_restriction_window_months):
            until = add_months(latest, policy.check_restriction_months)
    return until if until and until >= today else None


def disconnect_candidates(*, on: datetime.date):
    """Prepaid accounts in service whose balance is at the policy's disconnect level on `on`.

    One query: the prepaid credit is the negated stored balance of the account's prepaid-credit
    ledger account (member_amount's rule, in SQL; an account with no postings has a balance of
    zero).
    """
    policy = Policy.objects.in_force(on)
    stored = LedgerAccount.objects.filter(account=OuterRef("pk"), purpose=P.PREPAID_CREDIT).values("balance")
    accounts = (
        Account.objects.prepaid()
        .filter(status=Account.Status.ACTIVE)
        .annotate(debit_balance=Coalesce(Subquery(stored[:1]), Value(ZERO)))
    )
    # balance <= level  <=>  -debit <= level  <=>  debit >= -level (and strictly for BELOW).
    if policy.disconnect_rule == Policy.DisconnectRule.BELOW:
        return accounts.filter(debit_balance__gt=-policy.disconnect_level)
    return accounts.filter(debit_balance__gte=-policy.disconnect_level)


# --- Postpaid receivables ------------------------------------------------------------------------


def open_receivables(account):
    """The account's open receivables, oldest due date first (then oldest id): what the account
    page lists and the order payments pay them in."""
    return Receivable.objects.filter(account=account, open_amount__gt=0).order_by("due_date", "id")


def amount_past_due(account, *, on: datetime.date) -> Decimal:
    """What is still open on receivables due before `on`. A receivable due on the 28th is past due
    on the 29th. (Policy D's "not delinquent until the next business day" is the caller's: pass the
    first day it counts, or store the rolled due date.)"""
    # Summed in Python: SQLite adds decimals in floating point.
    return sum(open_receivables(account).filter(due_date__lt=on).values_list("open_amount", flat=True), ZERO)


@dataclass(frozen=True)
class ReceivablesSummary:
    open_total: Decimal  # what is owed on open receivables
    unallocated_credit: Decimal  # credit not yet allocated to a receivable
    amount_due: Decimal  # the AMOUNT_DUE ledger balance

    @property
    def reconciles(self) -> bool:
        return self.open_total - self.unallocated_credit == self.amount_due


def receivables_summary(account) -> ReceivablesSummary:
    """The account's receivables and credit beside its AMOUNT_DUE ledger balance. For a postpaid
    account `open_total - unallocated_credit == amount_due` always holds."""
    return ReceivablesSummary(
        open_total=sum(open_receivables(account).values_list("open_amount", flat=True), ZERO),
        unallocated_credit=sum(
            Credit.objects.filter(account=account, unallocated__gt=0).values_list("unallocated", flat=True),
            ZERO,
        ),
        amount_due=account_balances(account).amount_due,
    )


def receivables_audit(account) -> list[str]:
    """Every way the account's receivables, credits and allocations disagree with each other or
    with the ledger; an empty list when they agree. Checks that each stored open or unallocated
    amount equals its amount less its live allocations (zero once cancelled), that no allocation
    is live on a cancelled item, that credit is never left unallocated while a receivable is open,
    and the summary's reconciliation."""
    problems = []
    live: dict[tuple[str, int], Decimal] = {}
    for allocation in Allocation.objects.filter(credit__account=account).select_related(
        "credit", "receivable"
    ):
        if allocation.released_by_id is not None:
            continue
        for side, item in (("receivable", allocation.receivable), ("credit", allocation.credit)):
            live[side, item.pk] = live.get((side, item.pk), ZERO) + allocation.amount
            if item.cancelled_by_id is not None:
                problems.append(f"allocation #{allocation.pk} is live on cancelled {side} #{item.pk}")
    for side, model, stored in (("receivable", Receivable, "open_amount"), ("credit", Credit, "unallocated")):
        for item in model.objects.filter(account=account):
            expected = ZERO if item.cancelled_by_id else item.amount - live.get((side, item.pk), ZERO)
            if getattr(item, stored) != expected:
                problems.append(f"{side} #{item.pk}: {stored} {getattr(item, stored)}, expected {expected}")
    summary = receivables_summary(account)
    if summary.open_total and summary.unallocated_credit:
        problems.append(
            f"${summary.unallocated_credit} of credit unallocated while ${summary.open_total} is open"
        )
    if account.billing_mode == account.BillingMode.POSTPAID and not summary.reconciles:
        problems.append(
            f"open ${summary.open_total} - credit ${summary.unallocated_credit} "
            f"!= amount due ${summary.amount_due}"
        )
    return problems


# --- The account page and the receipt (billing/admin_views.py) -------------------------------------

TRANSACTIONS_PER_PAGE = 20


@dataclass(frozen=True)
class PlanProgress:
    plan: DebtPlan
    paid: Decimal  # the plan's share of the payments posted since enrollment (returned ones excluded)
    remaining: Decimal  # the arrears still owed

    @property
    def percent_paid(self) -> int:
        total = self.paid + self.remaining
        return int(self.paid * 100 / total) if total > 0 else 100

    @property
    def display(self) -> dict[str, str]:
        return {
            "enrolled": usd(self.plan.enrolled_amount),
            "paid": usd(self.paid),
            "remaining": usd(self.remaining),
            "share": f"{self.plan.share_percent.normalize():f}%",
        }


def plan_progress(account, balances: Balances) -> PlanProgress | None:
    plan = active_plan(account)
    if plan is None:
        return None
    # Only an active plan takes a share of a payment (payment_post), so the shares of the payments
    # posted since the enrollment day are what this plan has collected.
    paid = Payment.objects.filter(
        account=account,
        status=Payment.Status.POSTED,
        transaction__effective_date__gte=plan.enrolled_on,
    ).aggregate(total=Sum("to_arrears"))["total"]
    return PlanProgress(plan=plan, paid=paid or ZERO, remaining=max(balances.arrears, ZERO))


@dataclass(frozen=True)
class CheckStatus:
    refused_until: datetime.date | None
    returned_checks: int
    window_months: int

    def __str__(self):
        plural = "s" if self.returned_checks != 1 else ""
        if self.refused_until:
            return (
                f"Checks refused until {self.refused_until:%B} {self.refused_until.day}, "
                f"{self.refused_until.year} — {self.returned_checks} returned check{plural}"
            )
        if self.returned_checks:
            return (
                f"Checks accepted — {self.returned_checks} returned check{plural} "
                f"in the last {self.window_months} months"
            )
        return "Checks accepted"


def check_status(account, *, today: datetime.date) -> CheckStatus:
    """The member's check restriction, said plainly, with the returned checks behind it."""
    policy = Policy.objects.in_force(today)
    until = check_restricted_until(account.member, today=today)
    # The returns check_restricted_until looks at: a restriction may rest on a return up to
    # window + restriction months ago.
    months = (
        policy.check_restriction_window_months + policy.check_restriction_months
        if until
        else policy.check_restriction_window_months
    )
    returned = ReturnedPayment.objects.filter(
        payment__account__member_id=account.member_id,
        payment__tender=Payment.Tender.CHECK,
        returned_on__gt=add_months(today, -months),
    ).count()
    return CheckStatus(refused_until=until, returned_checks=returned, window_months=months)


class TransactionRow:
    """One ledger transaction as the account page shows it: what it did to each of the member's
    balances (member_amount), and the net amount in the member's favour (+) or against (−)."""

    LABELS = {
        P.PREPAID_CREDIT: "prepaid",
        P.ARREARS: "arrears",
        P.DEPOSIT_HELD: "deposit",
        P.AMOUNT_DUE: "amount due",
    }

    def __init__(self, txn: Transaction):
        self.txn = txn
        by_purpose: dict[str, Decimal] = {}
        for leg in txn.member_legs:
            purpose = leg.ledger_account.purpose
            by_purpose[purpose] = by_purpose.get(purpose, ZERO) + leg.amount
        self.changes = [
            (label, usd(member_amount(purpose, by_purpose[purpose]), signed=True))
            for purpose, label in self.LABELS.items()
            if by_purpose.get(purpose)
        ]
        # Legs are debit-positive; every member ledger account moves in the member's favour when
        # credited, so the net is minus the sum of the member's legs.
        self.amount = -sum(by_purpose.values(), ZERO)
        self.amount_display = usd(self.amount, signed=True)
        self.payment = _related_or_none(txn, "payment")
        self.fee = _related_or_none(txn, "charged_fee")


def _related_or_none(obj, name):
    try:
        return getattr(obj, name)
    except (ChargedFee.DoesNotExist, Payment.DoesNotExist):
        return None


def account_transactions(account, *, page_number):
    """A page of the account's transactions, newest first, in four queries however many rows:
    the count, the page (with its payment, fee and actor joined), and the member legs."""
    member_legs = Leg.objects.filter(ledger_account__account=account).select_related("ledger_account")
    queryset = (
        Transaction.objects.filter(account=account)
        .select_related("actor", "payment", "charged_fee")
        .prefetch_related(Prefetch("legs", queryset=member_legs, to_attr="member_legs"))
        .order_by("-posted_at", "-id")  # the (account, -posted_at, -id) index
    )
    page = Paginator(queryset, TRANSACTIONS_PER_PAGE).get_page(page_number)
    return page, [TransactionRow(txn) for txn in page.object_list]


def return_fees(returned: ReturnedPayment | None) -> list[ChargedFee]:
    """The fees a payment's return charged (ChargedFee.return_transaction), in the order charged."""
    if returned is None:
        return []
    return list(
        ChargedFee.objects.filter(return_transaction_id=returned.transaction_id).order_by("transaction_id")
    )
