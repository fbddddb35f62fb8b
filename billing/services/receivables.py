"""Postpaid receivables and credits kept in step with AMOUNT_DUE (the allocation internals), and
postpaid bills (`receivable_add`)."""

import datetime

from django.db import transaction
from django.utils import timezone

from billing.exceptions import BillingError
from billing.ledger import coop_ledger_account, ledger_post, ledger_same_as_before, member_ledger_account
from billing.limits import refuse_above_maximum
from billing.models import Allocation, Credit, Receivable, Transaction
from billing.services._common import ZERO, P, _is_postpaid, _lock_account, _next_key
from coop.money import to_cents
from coop.validators import check_texts

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
