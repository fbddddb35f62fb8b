"""Refunds of a closing account's credit, and paying a refund (deposit or credit) out by check."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Account
from billing.exceptions import BillingError, DuplicateReference
from billing.ledger import coop_ledger_account, ledger_post, ledger_same_as_before, member_ledger_account
from billing.models import Payment, Receivable, RefundPayout, Transaction
from billing.selectors import account_balances
from billing.services._common import (
    P,
    _is_postpaid,
    _lock_account,
    _next_key,
    _receivable_purpose,
    _require_manager,
)
from billing.services.receivables import _add_receivable
from coop.validators import check_texts


@transaction.atomic
def credit_refund(*, account, actor, on=None) -> Transaction:
    """Move the remaining credit of a closing account to refunds payable (paid out later)."""
    _require_manager(actor, "refund credit")
    account = _lock_account(account)
    if account.status not in (Account.Status.INACTIVE, Account.Status.CLOSED):
        raise BillingError(
            f"Account {account.number} is {account.get_status_display().lower()}; "
            "credit is refunded when it closes."
        )
    balances = account_balances(account)
    credit = (
        balances.prepaid_credit
        if account.billing_mode == Account.BillingMode.PREPAID
        else -balances.amount_due
    )
    if credit <= 0:
        raise BillingError(f"Account {account.number} has no credit to refund.")
    txn, _ = ledger_post(
        kind=Transaction.Kind.REFUND,
        legs=[
            (member_ledger_account(account, _receivable_purpose(account)), credit),
            (coop_ledger_account(P.REFUNDS_PAYABLE), -credit),
        ],
        idempotency_key=_next_key(account, "refund"),
        effective_date=on or timezone.localdate(),
        actor=actor,
        memo="Remaining credit refunded",
        account=account,
    )
    if _is_postpaid(account):
        # The refund uses up the unallocated credit: it is a receivable the credit pays at once.
        _add_receivable(
            account,
            kind=Receivable.Kind.REFUND,
            txn=txn,
            amount=credit,
            due_date=txn.effective_date,
            description="Credit refunded",
        )
    return txn


@transaction.atomic
def refund_pay(*, refund: Transaction, actor, reference: str, on=None) -> Transaction:
    """Pay out a refund (deposit or credit) by check: refunds payable down, cash out."""
    check_texts(reference=reference)
    _require_manager(actor, "pay out a refund")
    if refund.kind not in (Transaction.Kind.REFUND, Transaction.Kind.DEPOSIT_REFUND):
        raise BillingError(f"Transaction #{refund.pk} is not a refund.")
    if refund.idempotency_key.startswith("refund-paid:"):  # a payout is a REFUND too; paying it undoes it
        raise BillingError(f"Transaction #{refund.pk} is the payout of a refund, not a refund.")
    reference = (reference or "").strip()
    if not reference:
        raise BillingError("Give the number of the check that pays the refund out.")
    if len(reference) > RefundPayout._meta.get_field("check_number").max_length:
        raise BillingError(f"A check number has at most 80 characters (this one has {len(reference)}).")
    if refund.account is not None:
        _lock_account(refund.account)  # one payout of a refund at a time
    amount = -refund.legs.get(ledger_account__purpose=P.REFUNDS_PAYABLE).amount
    key, memo = f"refund-paid:{refund.pk}", f"Refund #{refund.pk} paid, check {reference}"
    # The same check again returns the payout already posted; another check is a second payout.
    earlier = ledger_same_as_before(
        idempotency_key=key,
        kind=Transaction.Kind.REFUND,
        account=refund.account,
        amount=amount,
        tender=Payment.Tender.CHECK,
        memo=memo,
        what=f"The payout of refund #{refund.pk}",
    )
    if earlier is not None:
        return earlier
    # A check pays one refund: the same number on a second refund would mark it paid with no
    # check written for it. (The unique check number is the database's guard; this is the message.)
    used = RefundPayout.objects.filter(check_number=reference).first()
    if used is not None:
        raise DuplicateReference(
            f"Check {reference} already paid out refund #{used.refund_id} as transaction "
            f"#{used.transaction_id} (${used.amount} on {used.paid_on:%B %-d, %Y})."
        )
    on = on or timezone.localdate()
    txn, _ = ledger_post(
        kind=Transaction.Kind.REFUND,
        legs=[
            (coop_ledger_account(P.REFUNDS_PAYABLE), amount),
            (coop_ledger_account(P.CASH_CLEARING, tender=Payment.Tender.CHECK), -amount),
        ],
        idempotency_key=key,
        effective_date=on,
        actor=actor,
        memo=memo,
        account=refund.account,
    )
    try:
        with transaction.atomic():
            RefundPayout.objects.create(
                refund=refund, transaction=txn, check_number=reference, amount=amount, paid_on=on, actor=actor
            )
    except IntegrityError as exc:  # another refund's payout took this check number meanwhile
        raise DuplicateReference(
            f"Check {reference} already paid out another refund. Nothing was posted."
        ) from exc
    return txn
