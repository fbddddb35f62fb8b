"""Fees: charging one from the fee schedule (or a policy fee) and waiving one."""

import datetime

from django.db import transaction
from django.utils import timezone

from billing import prepaid
from billing.exceptions import BillingError
from billing.ledger import coop_ledger_account, ledger_post, ledger_reverse, member_ledger_account
from billing.limits import refuse_above_maximum
from billing.models import ChargedFee, Receivable, ReturnedPayment, Transaction
from billing.services._common import P, _is_postpaid, _lock_account, _next_key, _receivable_purpose
from billing.services.receivables import _add_receivable, _cancel_items
from coop.models import FeeScheduleEntry
from coop.money import to_cents
from coop.validators import check_texts


@transaction.atomic
def fee_charge(
    *,
    account,
    code: str,
    actor=None,
    on: datetime.date | None = None,
    amount=None,
    memo: str = "",
    due_date: datetime.date | None = None,
    returned_payment: ReturnedPayment | None = None,
):
    """Charge a fee from the fee schedule (or a policy fee with its amount given) to fee revenue.

    On a postpaid account the fee is also a receivable, due the day it is charged unless
    `due_date` says otherwise; any credit on the account pays it at once. `returned_payment`: the
    return that charges it (payment_return), which the payment's receipt lists it under.
    """
    check_texts(memo=memo)
    on = on or timezone.localdate()
    account = _lock_account(account)
    entry = FeeScheduleEntry.objects.filter(code=code).first()
    if amount is None:
        if entry is None or not entry.is_active:
            raise BillingError(f"There is no active fee '{code}' in the fee schedule.")
        amount = entry.amount
    refuse_above_maximum(amount, on=on)  # a schedule's amount too: it may have been mistyped
    amount = to_cents(amount)
    if amount <= 0:
        raise BillingError(f"A fee must be more than $0.00 (got ${amount}).")
    description = memo or (entry.description if entry else code)
    txn, _ = ledger_post(
        kind=Transaction.Kind.FEE,
        legs=[
            (member_ledger_account(account, _receivable_purpose(account)), amount),
            (coop_ledger_account(P.FEE_REVENUE), -amount),
        ],
        idempotency_key=_next_key(account, "fee"),
        effective_date=on,
        actor=actor,
        memo=description,
        account=account,
    )
    fee = ChargedFee.objects.create(
        account=account,
        code=code,
        description=description,
        amount=amount,
        charged_on=on,
        transaction=txn,
        actor=actor,
        return_transaction=returned_payment.transaction if returned_payment else None,
    )
    if _is_postpaid(account):
        _add_receivable(
            account,
            kind=Receivable.Kind.FEE,
            txn=txn,
            amount=amount,
            due_date=due_date or on,
            description=description,
        )
    return fee


@transaction.atomic
def fee_waive(*, fee: ChargedFee, actor, reason: str) -> ChargedFee:
    """Waive a charged fee (managers only): its charge is reversed, with the reason.

    A postpaid fee's receivable is cancelled. If it was partly (or wholly) paid, the paid part is
    not refunded: it goes back to the payments (credits) that paid it as unallocated credit, which
    pays the oldest open receivable at once or, if none is open, stays a credit on the account for
    the next one. Keeping it with the payment it came from means a later return of that payment
    takes back exactly what the payment brought, wherever it was allocated by then.
    """
    check_texts(reason=reason)
    if actor is None or not actor.has_perm("coop.waive_fee"):
        raise BillingError("Only a billing manager may waive a fee.")
    if not reason.strip():
        raise BillingError("Say why the fee is waived.")
    account = _lock_account(fee.account)
    fee = ChargedFee.objects.select_for_update().get(pk=fee.pk)
    if fee.is_waived:
        raise BillingError(f"{fee.description} of {fee.charged_on} was already waived.")
    fee.waiver_transaction = ledger_reverse(
        original=fee.transaction, actor=actor, memo=f"Waived: {reason}", kind=Transaction.Kind.FEE_WAIVER
    )
    fee.waive_reason = reason.strip()
    fee.waived_by = actor
    fee.save(update_fields=["waiver_transaction", "waive_reason", "waived_by"])
    _cancel_items(account, original=fee.transaction, by=fee.waiver_transaction)
    prepaid.credit_posted(account)  # a funded account is never cut (billing/prepaid.py)
    return fee
