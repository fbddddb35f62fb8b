"""The only code that writes ledger rows.

`ledger_post` writes one balanced transaction and moves the stored balances of the ledger accounts
it touches, all in one database transaction and under row locks on those accounts, so a stored
balance always equals the sum of its legs. `ledger_reverse` corrects a transaction by posting its
mirror image. Nothing here updates or deletes a leg.
"""

import datetime
from collections import defaultdict
from decimal import Decimal

from django.db import IntegrityError, connection, transaction

from billing.exceptions import DuplicateReference, LedgerError
from billing.models import LedgerAccount, Leg, Payment, Transaction
from coop.money import to_cents
from coop.validators import check_texts

# The largest balance a MoneyField (12 digits, 2 of them cents) holds.
MAX_BALANCE = Decimal("9999999999.99")


def member_ledger_account(account, purpose: str) -> LedgerAccount:
    """The ledger account of `purpose` for a member account, created on first use."""
    purpose = LedgerAccount.Purpose(purpose)
    if purpose not in LedgerAccount.MEMBER_PURPOSES:
        raise LedgerError(f"{purpose.label} is not a member ledger account.")
    ledger_account, _ = LedgerAccount.objects.get_or_create(
        account=account,
        purpose=purpose,
        defaults={
            "code": f"member:{account.number}:{purpose.value}",
            "name": f"{account.number} {purpose.label.lower()}",
            "kind": LedgerAccount.KIND_OF[purpose],
        },
    )
    return ledger_account


def coop_ledger_account(purpose: str, *, tender: str = "") -> LedgerAccount:
    """One of the cooperative's own ledger accounts (cash clearing is kept per tender)."""
    purpose = LedgerAccount.Purpose(purpose)
    if purpose in LedgerAccount.MEMBER_PURPOSES:
        raise LedgerError(f"{purpose.label} belongs to a member account.")
    if (purpose == LedgerAccount.Purpose.CASH_CLEARING) != bool(tender):
        raise LedgerError("Cash clearing, and only cash clearing, is kept per tender.")
    code = f"coop:{purpose.value}" + (f":{tender}" if tender else "")
    name = purpose.label + (f" ({tender})" if tender else "")
    ledger_account, _ = LedgerAccount.objects.get_or_create(
        code=code,
        defaults={"name": name, "kind": LedgerAccount.KIND_OF[purpose], "purpose": purpose, "tender": tender},
    )
    return ledger_account


def _normalise(legs) -> list[tuple[LedgerAccount, Decimal]]:
    """Round each leg to the cent, merge legs on the same account, drop zero legs, and check the
    transaction balances."""
    merged: dict[int, Decimal] = defaultdict(Decimal)
    by_id = {}
    for ledger_account, amount in legs:
        if isinstance(amount, float):
            raise LedgerError("Ledger amounts must be Decimal, never float.")
        merged[ledger_account.pk] += to_cents(amount)
        by_id[ledger_account.pk] = ledger_account
    result = [(by_id[pk], amount) for pk, amount in merged.items() if amount]
    if len(result) < 2:
        raise LedgerError("A transaction needs at least two non-zero legs.")
    total = sum((amount for _, amount in result), Decimal("0.00"))
    if total != 0:
        raise LedgerError(f"A transaction's legs must sum to zero; these sum to {total}.")
    return result


def _amount_and_tender(legs) -> tuple[Decimal, str]:
    """What a transaction moves, from its (purpose, tender, amount) legs: the sum of its debits (=
    minus the sum of its credits), and the tender of its cash-clearing leg ("" when it has none)."""
    amount = sum((a for _, _, a in legs if a > 0), Decimal("0.00"))
    tender = next((t for p, t, _ in legs if p == LedgerAccount.Purpose.CASH_CLEARING), "")
    return amount, tender


def ledger_same_as_before(
    *, idempotency_key: str, kind: str, account, amount, tender: str = "", memo: str | None = None, what=""
) -> Transaction | None:
    """The transaction already posted under `idempotency_key`, if any, provided it is the same money:
    the same kind, member account, amount and tender (and `memo`, when given). A key used before for
    anything else raises DuplicateReference naming the earlier record (its receipt or transaction
    number, account, amount and day), so a retry is harmless but a reused reference never silently
    swallows a second, different posting. `what` names the key for the message ("Check reference
    1234"); every service that takes an external reference calls this before posting, and
    `ledger_post` calls it again for every key it is given."""
    earlier = Transaction.objects.filter(idempotency_key=idempotency_key).select_related("account").first()
    if earlier is None:
        return None
    legs = list(earlier.legs.values_list("ledger_account__purpose", "ledger_account__tender", "amount"))
    amount_then, tender_then = _amount_and_tender(legs)
    then = (earlier.kind, earlier.account_id, amount_then, tender_then)
    now = (kind, account.pk if account is not None else None, to_cents(amount), tender or "")
    if then == now and (memo is None or memo[:300] == earlier.memo):
        return earlier
    payment = Payment.objects.filter(transaction=earlier).only("receipt_number").first()
    if payment is not None:
        record, memo_then = f"receipt {payment.receipt_number}", ""
    else:
        record = f"transaction #{earlier.pk}, {earlier.get_kind_display().lower()}"
        memo_then = f": {earlier.memo}" if earlier.memo else ""
    to = f" to account {earlier.account.number}" if earlier.account else ""
    raise DuplicateReference(
        f"{what or f'Key {idempotency_key}'} was already posted as {record} "
        f"(${amount_then}{to} on {earlier.effective_date:%B %-d, %Y}{memo_then})."
    )


@transaction.atomic
def ledger_post(
    *,
    kind: str,
    legs,
    idempotency_key: str,
    effective_date: datetime.date,
    actor=None,
    memo: str = "",
    account=None,
    reverses: Transaction | None = None,
) -> tuple[Transaction, bool]:
    """Post one balanced transaction. Returns (transaction, created).

    Idempotent on `idempotency_key`: posting the same key again returns the transaction already
    posted and changes nothing, even when two processes race to post it. The same key for other
    money (another kind, account, amount or tender) is refused (`ledger_same_as_before`).
    """
    check_texts(memo=memo)  # the memo can never be changed: no card number reaches it
    legs = _normalise(legs)
    amount, tender = _amount_and_tender([(la.purpose, la.tender, a) for la, a in legs])
    same = {"kind": kind, "account": account, "amount": amount, "tender": tender}
    existing = ledger_same_as_before(idempotency_key=idempotency_key, **same)
    if existing is not None:
        return existing, False
    # Lock the touched ledger accounts in id order (a fixed order cannot deadlock) before reading or
    # moving their balances.
    ids = sorted(la.pk for la, _ in legs)
    balances = dict(
        LedgerAccount.objects.select_for_update()
        .filter(pk__in=ids)
        .order_by("pk")
        .values_list("pk", "balance")
    )
    # A stored balance holds 12 digits: refuse a posting that would overflow one, rather than have
    # PostgreSQL fail it (numeric field overflow) or SQLite store a value it cannot read back.
    for la, leg_amount in legs:
        if abs(balances[la.pk] + leg_amount) > MAX_BALANCE:
            error = LedgerError(
                f"${abs(leg_amount):,} is too large: {la} would hold more than ${MAX_BALANCE:,}."
            )
            error.field = "amount"  # what every caller's form and file call the amount posted
            raise error
    try:
        with transaction.atomic():
            txn = Transaction.objects.create(
                kind=kind,
                effective_date=effective_date,
                actor=actor,
                memo=memo[:300],
                idempotency_key=idempotency_key,
                account=account,
                reverses=reverses,
            )
    except IntegrityError:
        # Another process posted the same key between our check and our insert.
        existing = ledger_same_as_before(idempotency_key=idempotency_key, **same)
        if existing is None:
            raise
        return existing, False
    Leg.objects.bulk_create([Leg(transaction=txn, ledger_account=la, amount=amount) for la, amount in legs])
    # New balances are computed here, in Decimal, from the values read under the lock: SQLite would
    # do `balance + amount` in floating point.
    for la, amount in legs:
        LedgerAccount.objects.filter(pk=la.pk).update(balance=balances[la.pk] + amount)
    return txn, True


@transaction.atomic
def ledger_reverse(
    *, original: Transaction, actor=None, memo: str = "", kind: str | None = None
) -> Transaction:
    """Post the mirror image of `original`, linked to it. A transaction is reversed at most once."""
    original = Transaction.objects.select_for_update().get(pk=original.pk)
    if original.reverses_id is not None:
        raise LedgerError(f"Transaction #{original.pk} is itself a reversal and cannot be reversed.")
    if Transaction.objects.filter(reverses=original).exists():
        raise LedgerError(f"Transaction #{original.pk} has already been reversed.")
    legs = [(leg.ledger_account, -leg.amount) for leg in original.legs.select_related("ledger_account")]
    txn, _ = ledger_post(
        kind=kind or Transaction.Kind.REVERSAL,
        legs=legs,
        idempotency_key=f"reversal:{original.pk}",
        effective_date=original.effective_date,
        actor=actor,
        memo=memo or f"Reverses #{original.pk}",
        account=original.account,
        reverses=original,
    )
    return txn


# --- Bulk writers (the daily run, the demo) -------------------------------------------------------
# Rows written by SQL rather than through ledger_post. Money in SQL is computed in whole cents:
# SQLite stores decimals as floating point.


def sql_round_int(expr: str) -> str:
    """`expr` rounded to a whole number, as an integer, in SQL for the current database."""
    integer = "BIGINT" if connection.vendor == "postgresql" else "INTEGER"
    return f"CAST(ROUND({expr}) AS {integer})"


def sql_cents(column: str) -> str:
    """A decimal money column as whole cents, in SQL for the current database."""
    return sql_round_int(f"{column} * 100")


def sql_decimal(integer_expr: str, scale: int) -> str:
    """Whole units of 1/scale as a decimal, in SQL (cents -> dollars with scale 100)."""
    if connection.vendor == "postgresql":
        return f"CAST({integer_expr} AS NUMERIC) / {scale}"
    return f"({integer_expr}) / {scale}.0"


def ledger_apply_legs(*, transaction_id: int, ledger_account_ids: list[int] | None = None) -> None:
    """Move the stored balance of every ledger account a bulk-written transaction touches (or of
    those in `ledger_account_ids`) by the sum of its legs there, in one statement. The caller
    holds those accounts' row locks, taken in id order, in the same database transaction as the
    legs."""
    only = ""
    params: list = [transaction_id]
    if ledger_account_ids is not None:
        if not ledger_account_ids:
            return
        only = f" AND ledger_account_id IN ({', '.join(['%s'] * len(ledger_account_ids))})"
        params += list(ledger_account_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE billing_ledgeraccount
            SET balance = {sql_decimal(f"{sql_cents('billing_ledgeraccount.balance')} + s.cents", 100)}
            FROM (SELECT ledger_account_id, SUM({sql_cents("amount")}) AS cents
                  FROM billing_leg WHERE transaction_id = %s{only} GROUP BY ledger_account_id) s
            WHERE billing_ledgeraccount.id = s.ledger_account_id
            """,
            params,
        )
