"""Reads about money that several places need: balances, plans, check restriction."""

import calendar
import datetime
from dataclasses import dataclass
from decimal import Decimal

from billing.models import DebtPlan, LedgerAccount, Payment, ReturnedPayment
from coop.models import Policy

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


def account_balances(account) -> Balances:
    """One query over the account's (at most four) member ledger accounts' stored balances."""
    stored = dict(
        LedgerAccount.objects.filter(account=account, purpose__in=LedgerAccount.MEMBER_PURPOSES).values_list(
            "purpose", "balance"
        )
    )
    # Legs are debit-positive: the member's credit and deposit are credits, their debts debits.
    return Balances(
        prepaid_credit=-stored.get(P.PREPAID_CREDIT, ZERO),
        arrears=stored.get(P.ARREARS, ZERO),
        deposit_held=-stored.get(P.DEPOSIT_HELD, ZERO),
        amount_due=stored.get(P.AMOUNT_DUE, ZERO),
    )


def active_plan(account) -> DebtPlan | None:
    return DebtPlan.objects.filter(account=account, status=DebtPlan.Status.ACTIVE).first()


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
    ledger account (an account with no postings has a balance of zero).
    """
    from django.db.models import OuterRef, Subquery, Value
    from django.db.models.functions import Coalesce

    from accounts.models import Account

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
