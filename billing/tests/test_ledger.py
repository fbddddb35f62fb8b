import datetime
import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError

from accounts.tests import factories
from billing.exceptions import LedgerError
from billing.ledger import coop_ledger_account, ledger_post, ledger_reverse, member_ledger_account
from billing.models import LedgerAccount, Leg, Transaction

P = LedgerAccount.Purpose
DAY = datetime.date(2026, 11, 20)


def post(key, pairs, **kw):
    return ledger_post(
        kind=Transaction.Kind.ADJUSTMENT, legs=pairs, idempotency_key=key, effective_date=DAY, **kw
    )


@pytest.fixture
def books(db):
    account = factories.account()
    return {
        "account": account,
        "credit": member_ledger_account(account, P.PREPAID_CREDIT),
        "cash": coop_ledger_account(P.CASH_CLEARING, tender="cash"),
        "revenue": coop_ledger_account(P.ENERGY_REVENUE),
    }


def test_a_balanced_transaction_moves_both_balances(books):
    txn, created = post("k1", [(books["cash"], Decimal("100.00")), (books["credit"], Decimal("-100.00"))])
    assert created
    books["credit"].refresh_from_db()
    books["cash"].refresh_from_db()
    assert books["credit"].natural_balance == Decimal("100.00")  # the co-op owes the member $100 of energy
    assert books["cash"].natural_balance == Decimal("100.00")
    assert sorted(txn.legs.values_list("amount", flat=True)) == [Decimal("-100.00"), Decimal("100.00")]


@pytest.mark.parametrize(
    "amounts, message",
    [
        ((Decimal("10.00"), Decimal("-9.99")), "sum to zero"),
        ((Decimal("10.00"),), "at least two"),
        ((Decimal("0.00"), Decimal("0.00")), "at least two"),
        ((10.0, -10.0), "never float"),
    ],
)
def test_bad_transactions_are_refused_and_nothing_is_written(books, amounts, message):
    accounts = [books["cash"], books["credit"]]
    with pytest.raises(LedgerError, match=message):
        post("bad", list(zip(accounts, amounts, strict=False)))
    assert Transaction.objects.count() == 0 and Leg.objects.count() == 0
    assert LedgerAccount.objects.filter(balance__gt=0).count() == 0


def test_posting_the_same_key_twice_posts_once(books):
    legs = [(books["cash"], Decimal("25.00")), (books["credit"], Decimal("-25.00"))]
    first, created1 = post("receipt-1", legs)
    second, created2 = post("receipt-1", legs)
    assert (created1, created2) == (True, False)
    assert first.pk == second.pk
    books["credit"].refresh_from_db()
    assert books["credit"].natural_balance == Decimal("25.00")


def test_amounts_are_rounded_half_up_to_the_cent_before_saving(books):
    post("r", [(books["cash"], Decimal("10.005")), (books["credit"], Decimal("-10.005"))])
    assert set(Leg.objects.values_list("amount", flat=True)) == {Decimal("10.01"), Decimal("-10.01")}


def test_a_reversal_mirrors_the_original_and_points_at_it(books):
    original, _ = post("p", [(books["cash"], Decimal("40.00")), (books["credit"], Decimal("-40.00"))])
    reversal = ledger_reverse(original=original, memo="keyed twice")
    assert reversal.reverses == original
    books["credit"].refresh_from_db()
    assert books["credit"].balance == 0
    with pytest.raises(LedgerError, match="already been reversed"):
        ledger_reverse(original=original)
    with pytest.raises(LedgerError, match="itself a reversal"):
        ledger_reverse(original=reversal)


@pytest.mark.postgres
def test_postgres_refuses_a_raw_update_or_delete_of_a_posted_leg(books):
    post("p", [(books["cash"], Decimal("40.00")), (books["credit"], Decimal("-40.00"))])
    leg_id = Leg.objects.first().pk
    for sql in ("UPDATE billing_leg SET amount = 1 WHERE id = %s", "DELETE FROM billing_leg WHERE id = %s"):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as c,
        ):
            c.execute(sql, [leg_id])
    assert Leg.objects.get(pk=leg_id).amount == Decimal("40.00")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_postgres_refuses_an_unbalanced_transaction_inserted_with_raw_sql_at_commit():
    account = factories.account()
    credit = member_ledger_account(account, P.PREPAID_CREDIT)
    cash = coop_ledger_account(P.CASH_CLEARING, tender="cash")
    with pytest.raises(DatabaseError, match="unbalanced"), transaction.atomic(), connection.cursor() as c:
        c.execute(
            "INSERT INTO billing_transaction (kind, effective_date, posted_at, memo, idempotency_key)"
            " VALUES ('payment', '2026-11-20', now(), '', 'raw') RETURNING id"
        )
        txn_id = c.fetchone()[0]
        c.execute(
            "INSERT INTO billing_leg (transaction_id, ledger_account_id, amount)"
            " VALUES (%s, %s, 10), (%s, %s, -9)",
            [txn_id, cash.pk, txn_id, credit.pk],
        )
    assert Transaction.objects.count() == 0 and Leg.objects.count() == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_fifty_threads_posting_to_one_account_leave_exact_balances():
    account = factories.account()
    credit = member_ledger_account(account, P.PREPAID_CREDIT)
    cash = coop_ledger_account(P.CASH_CLEARING, tender="card")
    errors = []
    barrier = threading.Barrier(50)

    def worker(i):
        try:
            barrier.wait()
            post(f"t{i}", [(cash, Decimal("1.01")), (credit, Decimal("-1.01"))])
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    credit.refresh_from_db()
    assert Transaction.objects.count() == 50
    assert credit.natural_balance == Decimal("50.50")
