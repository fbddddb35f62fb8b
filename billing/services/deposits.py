"""Security deposits: the amount the policy requires, collecting, applying and refunding one."""

import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import Account
from billing import prepaid
from billing.events import DepositChanged
from billing.exceptions import BillingError
from billing.ledger import coop_ledger_account, ledger_post, ledger_same_as_before, member_ledger_account
from billing.limits import refuse_above_maximum
from billing.models import Credit, Payment, Transaction
from billing.selectors import account_balances
from billing.services._common import ZERO, P, _is_postpaid, _lock_account, _next_key
from billing.services.payments import _reference_key
from billing.services.receivables import _add_credit
from coop import events
from coop.models import Policy
from coop.money import to_cents
from coop.validators import check_texts


def deposit_required(*, account, on: datetime.date | None = None) -> Decimal:
    """The security deposit the policy requires for this account.

    First meter $60 with a favorable credit reference, $250 without; an additional meter nothing
    or $250 (C); $500 after a long disconnection (D); none for prepaid where the policy waives it.
    """
    on = on or timezone.localdate()
    policy = Policy.objects.in_force(on)
    if account.billing_mode == Account.BillingMode.PREPAID and policy.prepaid_deposit_waived:
        return ZERO
    if (
        policy.long_disconnect_days
        and account.status == Account.Status.DISCONNECTED
        and account.status_changed_at
    ):
        days_off = (on - timezone.localdate(account.status_changed_at)).days
        if days_off >= policy.long_disconnect_days:
            return policy.long_disconnect_deposit
    first_meter = not (
        Account.objects.filter(member_id=account.member_id, status__in=Account.OPEN_STATUSES)
        .exclude(pk=account.pk)
        .exists()
    )
    return policy.required_deposit(
        favorable_credit=account.member.favorable_credit_reference, first_meter=first_meter
    )


@transaction.atomic
def deposit_collect(*, account, amount, tender: str, reference: str, actor=None, on=None) -> Transaction:
    """Take a security deposit: cash in, held for the member as a liability."""
    check_texts(reference=reference)
    refuse_above_maximum(amount, on=on)
    amount = to_cents(amount)
    if amount <= 0 or not reference.strip():
        raise BillingError("A deposit needs an amount above $0.00 and a reference.")
    account = _lock_account(account)
    tender = Payment.Tender(tender)
    # A retry returns the deposit already collected; the reference of another deposit, or of a
    # payment, is refused.
    same = {"account": account, "amount": amount, "tender": tender}
    same["what"] = f"{tender.label} reference {reference.strip()}"
    key = _reference_key(Transaction.Kind.DEPOSIT_COLLECT, reference=reference.strip(), **same)
    earlier = ledger_same_as_before(idempotency_key=key, kind=Transaction.Kind.DEPOSIT_COLLECT, **same)
    if earlier is not None:
        return earlier
    txn, _ = ledger_post(
        kind=Transaction.Kind.DEPOSIT_COLLECT,
        legs=[
            (coop_ledger_account(P.CASH_CLEARING, tender=tender), amount),
            (member_ledger_account(account, P.DEPOSIT_HELD), -amount),
        ],
        idempotency_key=key,
        effective_date=on or timezone.localdate(),
        actor=actor,
        memo=f"Deposit, {tender.label} {reference.strip()}",
        account=account,
    )
    events.publish(DepositChanged(transaction_id=txn.pk))
    return txn


def _held_amount(account, amount) -> Decimal:
    held = account_balances(account).deposit_held
    amount = held if amount is None else to_cents(amount)
    if amount <= 0 or amount > held:
        raise BillingError(f"Account {account.number} holds a deposit of ${held}; cannot use ${amount}.")
    return amount


@transaction.atomic
def deposit_apply(*, account, actor, reason: str, amount=None, on=None) -> Transaction:
    """Apply a held deposit to the account: to the prepaid balance (on conversion to prepaid) or
    against what is owed (a final bill): arrears first, then the amount due."""
    if not reason.strip():
        raise BillingError("Say why the deposit is applied.")
    check_texts(reason=reason)
    account = _lock_account(account)
    amount = _held_amount(account, amount)
    if account.billing_mode == Account.BillingMode.PREPAID:
        targets = [(P.ARREARS, account_balances(account).arrears), (P.PREPAID_CREDIT, amount)]
    else:
        targets = [(P.ARREARS, account_balances(account).arrears), (P.AMOUNT_DUE, amount)]
    legs, left, to_due = [(member_ledger_account(account, P.DEPOSIT_HELD), amount)], amount, ZERO
    for purpose, room in targets:
        part = min(left, max(room, ZERO))
        legs.append((member_ledger_account(account, purpose), -part))
        left -= part
        if purpose == P.AMOUNT_DUE:
            to_due = part
    txn, _ = ledger_post(
        kind=Transaction.Kind.DEPOSIT_APPLY,
        legs=legs,
        idempotency_key=_next_key(account, "deposit-apply"),
        effective_date=on or timezone.localdate(),
        actor=actor,
        memo=f"Deposit applied: {reason.strip()}",
        account=account,
    )
    if _is_postpaid(account):
        _add_credit(account, kind=Credit.Kind.DEPOSIT, txn=txn, amount=to_due)
    events.publish(DepositChanged(transaction_id=txn.pk))
    prepaid.credit_posted(account)  # a funded account is never cut (billing/prepaid.py)
    return txn


@transaction.atomic
def deposit_refund(*, account, actor, reason: str, amount=None, on=None) -> Transaction:
    """Refund a held deposit: it moves to refunds payable until the refund is paid out."""
    if not reason.strip():
        raise BillingError("Say why the deposit is refunded.")
    account = _lock_account(account)
    amount = _held_amount(account, amount)
    txn, _ = ledger_post(
        kind=Transaction.Kind.DEPOSIT_REFUND,
        legs=[
            (member_ledger_account(account, P.DEPOSIT_HELD), amount),
            (coop_ledger_account(P.REFUNDS_PAYABLE), -amount),
        ],
        idempotency_key=_next_key(account, "deposit-refund"),
        effective_date=on or timezone.localdate(),
        actor=actor,
        memo=f"Deposit refunded: {reason.strip()}",
        account=account,
    )
    events.publish(DepositChanged(transaction_id=txn.pk))
    return txn
