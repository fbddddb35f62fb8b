"""Managers' adjustments (and their reversal) and write-offs of arrears."""

from django.db import transaction
from django.utils import timezone

from billing import prepaid
from billing.exceptions import BillingError
from billing.ledger import coop_ledger_account, ledger_post, ledger_reverse, member_ledger_account
from billing.limits import refuse_above_maximum
from billing.models import Credit, DebtPlan, Receivable, Transaction
from billing.selectors import account_balances, active_plan
from billing.services._common import (
    P,
    _is_postpaid,
    _lock_account,
    _next_key,
    _receivable_purpose,
    _require_manager,
)
from billing.services.plans import plan_move
from billing.services.receivables import _add_credit, _add_receivable, _cancel_items
from coop.money import to_cents
from coop.validators import check_texts


@transaction.atomic
def adjustment_post(*, account, amount, actor, reason: str, on=None) -> Transaction:
    """A manager's credit (positive amount) or debit (negative) to what the account has or owes,
    against billing adjustments. On a postpaid account a credit pays the oldest receivables and a
    debit is a receivable due the day it is posted."""
    check_texts(reason=reason)
    refuse_above_maximum(amount, on=on)
    _require_manager(actor, "post an adjustment")
    amount = to_cents(amount)
    if not amount or not reason.strip():
        raise BillingError("An adjustment needs a non-zero amount and a reason.")
    account = _lock_account(account)
    txn, _ = ledger_post(
        kind=Transaction.Kind.ADJUSTMENT,
        legs=[
            (coop_ledger_account(P.ADJUSTMENTS), amount),
            (member_ledger_account(account, _receivable_purpose(account)), -amount),
        ],
        idempotency_key=_next_key(account, "adjustment"),
        effective_date=on or timezone.localdate(),
        actor=actor,
        memo=f"{'Credit' if amount > 0 else 'Debit'} adjustment: {reason.strip()}",
        account=account,
    )
    if _is_postpaid(account):
        if amount > 0:
            _add_credit(account, kind=Credit.Kind.ADJUSTMENT, txn=txn, amount=amount)
        else:
            _add_receivable(
                account,
                kind=Receivable.Kind.ADJUSTMENT,
                txn=txn,
                amount=-amount,
                due_date=txn.effective_date,
                description=f"Adjustment: {reason.strip()}",
            )
    prepaid.credit_posted(account)  # a funded account is never cut (billing/prepaid.py)
    return txn


@transaction.atomic
def adjustment_reverse(*, adjustment: Transaction, actor, reason: str) -> Transaction:
    """Reverse a manager's adjustment keyed in wrong (managers only). On a postpaid account its
    credit or receivable is cancelled, with what it had paid or been paid reopened."""
    check_texts(reason=reason)
    _require_manager(actor, "reverse an adjustment")
    if not reason.strip():
        raise BillingError("Say why the adjustment is reversed.")
    if adjustment.kind != Transaction.Kind.ADJUSTMENT or not adjustment.idempotency_key.startswith(
        "adjustment:"
    ):
        raise BillingError(f"Transaction #{adjustment.pk} is not an adjustment.")
    account = _lock_account(adjustment.account)
    reversal = ledger_reverse(original=adjustment, actor=actor, memo=f"Reversed: {reason.strip()}")
    _cancel_items(account, original=adjustment, by=reversal)
    prepaid.credit_posted(account)  # a funded account is never cut (billing/prepaid.py)
    return reversal


@transaction.atomic
def arrears_write_off(*, account, actor, reason: str, amount=None, on=None) -> Transaction:
    """Write off uncollectable arrears (all of them unless an amount is given)."""
    check_texts(reason=reason)
    _require_manager(actor, "write off debt")
    if not reason.strip():
        raise BillingError("Say why the debt is written off.")
    account = _lock_account(account)
    arrears = account_balances(account).arrears
    amount = arrears if amount is None else to_cents(amount)
    if amount <= 0 or amount > arrears:
        raise BillingError(f"Account {account.number} has ${arrears} of arrears; cannot write off ${amount}.")
    txn, _ = ledger_post(
        kind=Transaction.Kind.WRITE_OFF,
        legs=[
            (coop_ledger_account(P.WRITE_OFFS), amount),
            (member_ledger_account(account, P.ARREARS), -amount),
        ],
        idempotency_key=_next_key(account, "write-off"),
        effective_date=on or timezone.localdate(),
        actor=actor,
        memo=f"Written off: {reason.strip()}",
        account=account,
    )
    plan = active_plan(account)
    if plan is not None and account_balances(account).arrears <= 0:
        plan_move(plan, DebtPlan.Status.COMPLETED, ended_on=on or timezone.localdate())
    return txn
