"""Writes that move members' money. Each is one database transaction posting to the ledger."""

import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Account
from billing import prepaid
from billing.events import DebtPlanChanged, DepositChanged, PaymentPosted, PaymentReturned
from billing.exceptions import BillingError, DuplicateReference, IllegalPlanTransition, PaymentRefused
from billing.ledger import (
    coop_ledger_account,
    ledger_post,
    ledger_reverse,
    ledger_same_as_before,
    member_ledger_account,
)
from billing.limits import payment_amount_check, refuse_above_maximum
from billing.models import (
    Allocation,
    ChargedFee,
    Credit,
    DebtPlan,
    LedgerAccount,
    Payment,
    Receivable,
    RefundPayout,
    ReturnedPayment,
    Transaction,
)
from billing.selectors import account_balances, active_plan, check_restricted_until
from coop import events
from coop.lifecycle import check_transition
from coop.models import FeeScheduleEntry, Policy
from coop.money import split, to_cents
from coop.validators import check_texts, refuse_bad_text

P = LedgerAccount.Purpose
ZERO = Decimal("0.00")


def _lock_account(account) -> Account:
    """Serialize money movements of one member account (payments, returns, fees, plan changes)."""
    return Account.objects.select_for_update().select_related("member").get(pk=account.pk)


def _receivable_purpose(account) -> str:
    """Where a charge lands: prepaid charges come off the prepaid balance; postpaid ones are due."""
    return P.PREPAID_CREDIT if account.billing_mode == Account.BillingMode.PREPAID else P.AMOUNT_DUE


def _is_postpaid(account) -> bool:
    return account.billing_mode == Account.BillingMode.POSTPAID


# --- Postpaid receivables: keeping the items in step with AMOUNT_DUE ------------------------------
#
# Every service that debits a postpaid account's AMOUNT_DUE adds a Receivable, every one that
# credits it adds a Credit, and every reversal cancels the item it reverses; each then calls
# `_allocate`. All of it runs under the account's row lock (`_lock_account`), so two payments to
# one account cannot allocate the same open amount. New amounts are computed in Python Decimal from
# the values read under the lock and written back, never as `open_amount - x` in SQL (SQLite would
# do that in floating point). See the models' comment for the invariant this keeps.


def _add_receivable(account, *, kind, txn, amount, due_date, description) -> Receivable:
    receivable = Receivable.objects.create(
        account=account,
        kind=kind,
        description=description[:200],
        due_date=due_date,
        amount=amount,
        open_amount=amount,
        transaction=txn,
    )
    _allocate(account)
    receivable.refresh_from_db()  # `_allocate` worked on its own copy
    return receivable


def _add_credit(account, *, kind, txn, amount, payment=None) -> Credit | None:
    if amount <= 0:
        return None
    credit = Credit.objects.create(
        account=account, kind=kind, amount=amount, unallocated=amount, transaction=txn, payment=payment
    )
    _allocate(account)
    credit.refresh_from_db()  # `_allocate` worked on its own copy
    return credit


def _allocate(account) -> list[Allocation]:
    """Allocate the account's unallocated credit to its open receivables: oldest due date first,
    then oldest id; the credit received first is used first. Exact to the cent: each allocation is
    the smaller of the two open amounts."""
    credits = list(Credit.objects.filter(account=account, unallocated__gt=0).order_by("id"))
    if not credits:
        return []
    receivables = list(
        Receivable.objects.filter(account=account, open_amount__gt=0).order_by("due_date", "id")
    )
    made, ci, ri = [], 0, 0
    while ci < len(credits) and ri < len(receivables):
        credit, receivable = credits[ci], receivables[ri]
        part = min(credit.unallocated, receivable.open_amount)
        made.append(Allocation(credit=credit, receivable=receivable, amount=part))
        credit.unallocated -= part
        receivable.open_amount -= part
        ci += not credit.unallocated
        ri += not receivable.open_amount
    if made:
        Allocation.objects.bulk_create(made)
        Credit.objects.bulk_update(credits[: ci + 1], ["unallocated"])
        Receivable.objects.bulk_update(receivables[: ri + 1], ["open_amount"])
    return made


def _cancel_receivable(receivable: Receivable, *, by: Transaction) -> None:
    """A reversal took the receivable off the account: nothing is owed on it, and what had been
    paid on it goes back to the credits that paid it, as unallocated credit."""
    live = list(receivable.allocations.filter(released_by__isnull=True))
    credits = Credit.objects.in_bulk({a.credit_id for a in live})
    for allocation in live:
        credits[allocation.credit_id].unallocated += allocation.amount
    Allocation.objects.filter(pk__in=[a.pk for a in live]).update(released_by=by)
    Credit.objects.bulk_update(list(credits.values()), ["unallocated"])
    receivable.open_amount, receivable.cancelled_by = ZERO, by
    receivable.save(update_fields=["open_amount", "cancelled_by"])


def _cancel_credit(credit: Credit, *, by: Transaction) -> None:
    """A reversal took the credit back (a returned payment): the receivables it paid are open
    again for exactly the amounts it paid, and its unallocated part is gone."""
    live = list(credit.allocations.filter(released_by__isnull=True))
    receivables = Receivable.objects.in_bulk({a.receivable_id for a in live})
    for allocation in live:
        receivables[allocation.receivable_id].open_amount += allocation.amount
    Allocation.objects.filter(pk__in=[a.pk for a in live]).update(released_by=by)
    Receivable.objects.bulk_update(list(receivables.values()), ["open_amount"])
    credit.unallocated, credit.cancelled_by = ZERO, by
    credit.save(update_fields=["unallocated", "cancelled_by"])


def _cancel_items(account, *, original: Transaction, by: Transaction) -> None:
    """`by` reversed `original`: cancel the receivable or credit `original` made (a transaction
    makes at most one), then allocate whatever that freed."""
    receivable = Receivable.objects.filter(transaction=original).first()
    if receivable is not None:
        _cancel_receivable(receivable, by=by)
    credit = Credit.objects.filter(transaction=original).first()
    if credit is not None:
        _cancel_credit(credit, by=by)
    _allocate(account)


def _initial_minimum_unpaid(account, policy) -> Decimal:
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
        arrears = account_balances(account).arrears
        splittable = amount - min(amount, _initial_minimum_unpaid(account, policy))
        share, _ = split(splittable, plan.share_percent)
        to_arrears = min(share, max(arrears, ZERO))
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
    from billing.prepaid import reconnect_check_after_commit

    reconnect_check_after_commit(account)
    return payment, True


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
):
    """Charge a fee from the fee schedule (or a policy fee with its amount given) to fee revenue.

    On a postpaid account the fee is also a receivable, due the day it is charged unless
    `due_date` says otherwise; any credit on the account pays it at once.
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


def plan_move(plan: DebtPlan, to_status: str, **fields) -> DebtPlan:
    """The one place a debt plan's status changes: refuses a move DebtPlan.TRANSITIONS does not
    allow (IllegalPlanTransition, nothing written), else sets the status and `fields` (ended_on,
    cancel_reason ...) and saves them. The caller holds the plan's row lock or its account's (every
    plan write happens under the account's lock, `_lock_account`, or the plan's own)."""
    if "status" in fields:  # the status is `to_status`, checked; never a field set beside it
        raise TypeError("plan_move() takes the new status as to_status, not as a field.")
    check_transition(
        DebtPlan.TRANSITIONS,
        plan.status,
        to_status,
        what=lambda: f"Debt plan #{plan.pk} of account {plan.account.number}",
        choices=DebtPlan.Status,
        error=IllegalPlanTransition,
    )
    plan.status = DebtPlan.Status(to_status)
    for name, value in fields.items():
        setattr(plan, name, value)
    plan.save(update_fields=["status", *fields])
    return plan


@transaction.atomic
def plan_enroll(*, account, actor, share_percent=None, override_reason: str = "", on=None) -> DebtPlan:
    """Enroll an account's arrears in a debt-management plan (managers only)."""
    check_texts(override_reason=override_reason)
    on = on or timezone.localdate()
    account = _lock_account(account)
    policy = Policy.objects.in_force(on)
    if active_plan(account) is not None:
        raise BillingError(f"Account {account.number} already has an active plan.")
    arrears = account_balances(account).arrears
    if arrears <= 0:
        raise BillingError(f"Account {account.number} has no arrears to put in a plan.")
    share = Decimal(share_percent) if share_percent is not None else policy.debt_plan_share_percent
    if share != policy.debt_plan_share_percent and not override_reason.strip():
        raise BillingError(
            f"The policy's share is {policy.debt_plan_share_percent}%; say why this plan takes {share}%."
        )
    if not 0 < share <= 100:
        raise BillingError(f"A plan's share must be more than 0% and at most 100% (got {share}%).")
    plan = DebtPlan.objects.create(
        account=account,
        share_percent=share,
        share_override_reason=override_reason.strip(),
        enrolled_amount=arrears,
        enrolled_on=on,
        enrolled_by=actor,
    )
    events.publish(DebtPlanChanged(plan_id=plan.pk))
    return plan


@transaction.atomic
def plan_cancel(*, plan: DebtPlan, actor, reason: str) -> DebtPlan:
    check_texts(reason=reason)
    if not reason.strip():
        raise BillingError("Say why the plan is cancelled.")
    plan = DebtPlan.objects.select_for_update().get(pk=plan.pk)
    plan_move(
        plan,
        DebtPlan.Status.CANCELLED,
        ended_on=timezone.localdate(),
        cancel_reason=reason.strip(),
        cancelled_by=actor,
    )
    events.publish(DebtPlanChanged(plan_id=plan.pk))
    return plan


@transaction.atomic
def debt_transfer_to_arrears(*, account, amount, actor, reason: str, on=None) -> Transaction:
    """Move old debt into arrears, for example when a member converts to prepaid and enrolls the
    debt in a plan (program B: outstanding fees and unbilled energy paid in full or put in the
    debt-management program).

    What the account has due (its postpaid amount due) moves first; any remainder is debt not yet
    billed (unbilled energy, outstanding fees) and is recognised as energy revenue now. So the
    amount due never goes below zero by a transfer.
    """
    check_texts(reason=reason)
    refuse_above_maximum(amount, on=on)
    amount = to_cents(amount)
    if amount <= 0 or not reason.strip():
        raise BillingError("A transfer needs an amount above $0.00 and a reason.")
    account = _lock_account(account)
    on = on or timezone.localdate()
    from_due = min(amount, max(account_balances(account).amount_due, ZERO))
    txn, _ = ledger_post(
        kind=Transaction.Kind.ADJUSTMENT,
        legs=[
            (member_ledger_account(account, P.ARREARS), amount),
            (member_ledger_account(account, P.AMOUNT_DUE), -from_due),
            (coop_ledger_account(P.ENERGY_REVENUE), -(amount - from_due)),
        ],
        idempotency_key=_next_key(account, "arrears-transfer"),
        effective_date=on,
        actor=actor,
        memo=f"Debt moved to arrears: {reason.strip()}",
        account=account,
    )
    if from_due and _is_postpaid(account):
        # The debt now in arrears is no longer due: it pays the oldest receivables.
        _add_credit(account, kind=Credit.Kind.ARREARS_TRANSFER, txn=txn, amount=from_due)
    return txn


def _require_manager(actor, what: str):
    if actor is None or not actor.has_perm("billing.post_adjustment"):
        raise BillingError(f"Only a billing manager may {what}.")


def _next_key(account, prefix: str) -> str:
    """A per-account sequence key for staff-initiated postings (the account row is locked)."""
    return f"{prefix}:{account.pk}:{Transaction.objects.filter(account=account).count() + 1}"


# --- Deposits ------------------------------------------------------------------------------------


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


# --- Adjustments, refunds, write-offs (managers) -------------------------------------------------


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


# --- Postpaid bills ------------------------------------------------------------------------------

# Which revenue each kind of receivable added by `receivable_add` is earned as. Fees, adjustments
# and refunds have their own services (fee_charge, adjustment_post, credit_refund).
_REVENUE_OF = {Receivable.Kind.BILL: (P.ENERGY_REVENUE, Transaction.Kind.BILL)}


@transaction.atomic
def receivable_add(
    *,
    account,
    amount,
    due_date: datetime.date,
    description: str,
    kind: str = Receivable.Kind.BILL,
    actor=None,
    on: datetime.date | None = None,
    idempotency_key: str | None = None,
) -> tuple[Receivable, bool]:
    """Add a postpaid bill: Dr the account's AMOUNT_DUE, Cr energy revenue, and a receivable due
    on `due_date`. Returns (receivable, created).

    This is the entry point for postpaid billing: one call per bill, with `on` the bill date (the
    ledger's effective date) and `due_date` the date printed on the bill. Pass an
    `idempotency_key` that names the bill (for example `f"bill:{account.number}:{bill_date}"`):
    calling again with the same key returns the receivable already added and posts nothing, so a
    billing run can be re-run safely. Any credit on the account pays the new bill at once.
    """
    check_texts(description=description)
    refuse_above_maximum(amount, on=on)
    kind = Receivable.Kind(kind)
    if kind not in _REVENUE_OF:
        raise BillingError(
            f"A {kind.label.lower()} is added by its own service "
            "(fee_charge, adjustment_post, credit_refund)."
        )
    amount = to_cents(amount)
    if amount <= 0:
        raise BillingError(f"A bill must be more than $0.00 (got ${amount}).")
    description = (description or "").strip()
    if not description:
        raise BillingError("Say what the bill is for.")
    account = _lock_account(account)
    if not _is_postpaid(account):
        raise BillingError(f"Account {account.number} is prepaid; it has no bills with due dates.")
    revenue, txn_kind = _REVENUE_OF[kind]
    if idempotency_key:
        earlier = ledger_same_as_before(
            idempotency_key=idempotency_key,
            kind=txn_kind,
            account=account,
            amount=amount,
            what=f"Bill {idempotency_key}",
        )
        if earlier is not None:
            return Receivable.objects.get(transaction=earlier), False
    on = on or timezone.localdate()
    txn, created = ledger_post(
        kind=txn_kind,
        legs=[
            (member_ledger_account(account, P.AMOUNT_DUE), amount),
            (coop_ledger_account(revenue), -amount),
        ],
        idempotency_key=idempotency_key or _next_key(account, "bill"),
        effective_date=on,
        actor=actor,
        memo=description,
        account=account,
    )
    if not created:
        raise BillingError(f"Key {idempotency_key} was already used by transaction #{txn.pk}.")
    receivable = _add_receivable(
        account, kind=kind, txn=txn, amount=amount, due_date=due_date, description=description
    )
    return receivable, True
