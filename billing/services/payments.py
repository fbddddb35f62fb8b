"""Payments: posting one (with the debt plan's share) and returning one (with its fees)."""

import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import Account
from billing import prepaid
from billing.events import DebtPlanChanged, PaymentPosted, PaymentReturned
from billing.exceptions import BillingError, PaymentRefused
from billing.ledger import (
    coop_ledger_account,
    ledger_post,
    ledger_reverse,
    ledger_same_as_before,
    member_ledger_account,
)
from billing.limits import payment_amount_check
from billing.models import Credit, DebtPlan, LedgerAccount, Payment, ReturnedPayment, Transaction
from billing.selectors import (
    account_balances,
    active_plan,
    check_restricted_until,
    initial_minimum_unpaid,
    plan_share,
)
from billing.services._common import ZERO, P, _is_postpaid, _lock_account
from billing.services.fees import fee_charge
from billing.services.plans import plan_move
from billing.services.receivables import _add_credit, _cancel_items
from coop import events
from coop.models import Policy
from coop.money import to_cents
from coop.validators import check_texts, refuse_bad_text

# A tender and reference name one piece of paper (a check, a receipt-book slip, a processor's
# record): it pays a payment or a deposit, never both. Each kind has its own idempotency key.
_REFERENCE_KEY = {
    Transaction.Kind.PAYMENT: "payment:{tender}:{reference}",
    Transaction.Kind.DEPOSIT_COLLECT: "deposit:{tender}:{reference}",
}


def _reference_key(kind, *, tender, reference: str, account, amount, what: str) -> str:
    """The idempotency key of a payment or deposit, after refusing (DuplicateReference, naming the
    earlier record) a reference the same tender already posted as the other kind.

    The two keys differ, so the unique key cannot stop a payment and a deposit of one check posted
    at the same moment (each clerk locks only their own account). Both post to the tender's cash
    clearing account, whose row ledger_post locks until commit: locked here already, before the
    check, the second waits for the first to commit and then sees its key. (A row lock, not an
    advisory lock per reference: an import posts thousands of references in one transaction.)"""
    cash = coop_ledger_account(P.CASH_CLEARING, tender=tender)
    list(LedgerAccount.objects.select_for_update().filter(pk=cash.pk).values_list("pk", flat=True))
    for other, pattern in _REFERENCE_KEY.items():
        if other != kind:  # a different kind: ledger_same_as_before refuses any earlier posting
            ledger_same_as_before(
                idempotency_key=pattern.format(tender=tender, reference=reference),
                kind=kind,
                account=account,
                amount=amount,
                tender=tender,
                what=what,
            )
    return _REFERENCE_KEY[kind].format(tender=tender, reference=reference)


@transaction.atomic
def payment_post(
    *,
    account,
    amount,
    tender: str,
    reference: str,
    received_at: datetime.datetime | None = None,
    actor=None,
    over_limit_confirmed: str = "",
) -> tuple[Payment, bool]:
    """Post a payment. Returns (payment, created).

    Idempotent on tender + reference: the same check number or processor reference posted again
    returns the payment already posted. The debt plan's share goes to arrears; the rest to the
    prepaid balance (prepaid) or the amount due (postpaid). On a postpaid account that rest pays
    the open receivables oldest due date first (then oldest id), recorded as `Allocation`s of the
    payment's `Credit`; what is left over is a credit on the account (AMOUNT_DUE goes negative)
    that pays the next receivable added.

    An amount above the policy's largest amount is refused; one above the confirmation limit of
    its tender is posted only with `over_limit_confirmed` (how the clerk confirmed it), which the
    memo records (billing/limits.py).
    """
    check_texts(reference=reference)
    refuse_bad_text(reference, field="reference", max_length=Payment._meta.get_field("reference").max_length)
    amount = to_cents(amount)
    tender = Payment.Tender(tender)
    reference = (reference or "").strip()
    if not reference:
        raise PaymentRefused("A payment needs a reference (receipt, check number or processor id).")
    if amount <= 0:
        raise PaymentRefused(f"A payment must be more than $0.00 (got ${amount}).")
    received_at = received_at or timezone.now()
    day = timezone.localdate(received_at)
    account = _lock_account(account)

    what = f"{tender.label} reference {reference}"
    same = {"account": account, "amount": amount, "tender": tender, "what": what}
    key = _reference_key(Transaction.Kind.PAYMENT, reference=reference, **same)
    earlier = ledger_same_as_before(idempotency_key=key, kind=Transaction.Kind.PAYMENT, **same)
    if earlier is not None:
        return Payment.objects.get(transaction=earlier), False
    if account.status == Account.Status.CLOSED:
        raise PaymentRefused(f"Account {account.number} is closed; it takes no payments.")
    policy = Policy.objects.in_force(day)
    if (
        account.billing_mode == Account.BillingMode.PREPAID
        and policy.prepaid_minimum_payment
        and amount < policy.prepaid_minimum_payment
    ):
        raise PaymentRefused(
            f"The minimum prepaid payment is ${policy.prepaid_minimum_payment}; ${amount} is less."
        )
    over_limit = payment_amount_check(
        policy=policy, amount=amount, tender=tender, confirmed=over_limit_confirmed, actor=actor
    )
    if tender == Payment.Tender.CHECK:
        until = check_restricted_until(account.member, today=day)
        if until:
            raise PaymentRefused(
                f"{account.member} may not pay by check until {until:%B %-d, %Y} (returned checks). "
                "Take cash, a certified check or a card."
            )

    to_arrears = ZERO
    plan = active_plan(account)
    if plan is not None:
        to_arrears = plan_share(
            amount,
            share_percent=plan.share_percent,
            exempt=initial_minimum_unpaid(account, policy),
            arrears=account_balances(account).arrears,
        )
    rest = amount - to_arrears
    to_credit, to_due = (rest, ZERO) if account.billing_mode == Account.BillingMode.PREPAID else (ZERO, rest)

    txn, _ = ledger_post(
        kind=Transaction.Kind.PAYMENT,
        legs=[
            (coop_ledger_account(P.CASH_CLEARING, tender=tender), amount),
            (member_ledger_account(account, P.PREPAID_CREDIT), -to_credit),
            (member_ledger_account(account, P.ARREARS), -to_arrears),
            (member_ledger_account(account, P.AMOUNT_DUE), -to_due),
        ],
        idempotency_key=key,
        effective_date=day,
        actor=actor,
        memo=f"{tender.label} {reference}" + (f"; {over_limit}" if over_limit else ""),
        account=account,
    )
    payment = Payment.objects.create(
        account=account,
        amount=amount,
        tender=tender,
        reference=reference,
        received_at=received_at,
        receipt_number=f"R{txn.pk:09d}",
        transaction=txn,
        to_credit=to_credit,
        to_arrears=to_arrears,
        to_amount_due=to_due,
        actor=actor,
    )
    if _is_postpaid(account):
        _add_credit(account, kind=Credit.Kind.PAYMENT, txn=txn, amount=to_due, payment=payment)
    if plan is not None and to_arrears and account_balances(account).arrears <= 0:
        plan_move(plan, DebtPlan.Status.COMPLETED, ended_on=day)
        events.publish(DebtPlanChanged(plan_id=plan.pk))
    events.publish(PaymentPosted(payment_id=payment.pk))
    # A disconnected prepaid member may now be restored: checked by a task after commit, never if
    # this payment rolls back (billing/prepaid.py).
    prepaid.credit_posted(account)
    return payment, True


@transaction.atomic
def payment_return(
    *, payment: Payment, reason: str, actor=None, returned_on: datetime.date | None = None, note: str = ""
) -> ReturnedPayment:
    """Return a posted payment: reverse it (its plan split included), charge the policy's
    returned-payment fees at once, and record the return for the check-restriction rule.

    On a postpaid account the receivables the payment paid are open again for exactly the amounts
    it paid them (any other credit on the account then pays them, oldest first), and the fees are
    new receivables due the day of the return."""
    check_texts(note=note)
    refuse_bad_text(note, field="note", max_length=ReturnedPayment._meta.get_field("note").max_length)
    returned_on = returned_on or timezone.localdate()
    account = _lock_account(payment.account)
    payment = Payment.objects.select_for_update().get(pk=payment.pk)
    if payment.status == Payment.Status.RETURNED:
        raise BillingError(f"Payment {payment.receipt_number} was already returned.")
    if reason not in ReturnedPayment.Reason.values:
        raise BillingError(
            f"'{reason}' is not a return reason; use one of {', '.join(ReturnedPayment.Reason)}."
        )
    if reason == ReturnedPayment.Reason.OTHER and not note.strip():
        raise BillingError("A return for another reason needs a note saying what the reason is.")
    reversal = ledger_reverse(
        original=payment.transaction,
        actor=actor,
        memo=f"Returned: {ReturnedPayment.Reason(reason).label}",
        kind=Transaction.Kind.PAYMENT_RETURN,
    )
    payment.status = Payment.Status.RETURNED
    payment.save(update_fields=["status"])
    _cancel_items(account, original=payment.transaction, by=reversal)
    record = ReturnedPayment.objects.create(
        payment=payment, reason=reason, note=note, returned_on=returned_on, transaction=reversal, actor=actor
    )
    policy = Policy.objects.in_force(returned_on)
    fees = Decimal("0.00")
    for code, amount in (
        ("returned-payment", policy.returned_payment_fee),
        ("returned-payment-collection", policy.returned_payment_collection_fee),
    ):
        if amount:
            fees += amount
            fee_charge(
                account=account,
                code=code,
                amount=amount,
                actor=actor,
                on=returned_on,
                memo=f"{'Returned payment fee' if code == 'returned-payment' else 'Collection fee'}"
                f" ({payment.receipt_number})",
                returned_payment=record,
            )
    if payment.to_arrears:
        # The plan's share came back out of arrears: a plan this payment completed resumes.
        plan = (
            account.debt_plans.filter(status=DebtPlan.Status.COMPLETED).order_by("-ended_on", "-id").first()
        )
        if plan is not None and active_plan(account) is None and account_balances(account).arrears > 0:
            plan_move(plan, DebtPlan.Status.ACTIVE, ended_on=None)
    events.publish(PaymentReturned(payment_id=payment.pk, fee=fees or None))
    return record
