"""Postpaid receivables: payments pay amounts due oldest first, and every cent is accounted for."""

import datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from accounts.models import Account
from accounts.services import account_change_status
from accounts.tests import factories
from billing import services
from billing.exceptions import BillingError
from billing.models import Allocation, Credit, LedgerAccount, Payment, Receivable, Transaction
from billing.selectors import (
    account_balances,
    amount_past_due,
    open_receivables,
    receivables_audit,
    receivables_summary,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("policy")]
D = Decimal
POSTPAID = Account.BillingMode.POSTPAID
JAN, FEB, MAR = datetime.date(2026, 1, 28), datetime.date(2026, 2, 28), datetime.date(2026, 3, 28)
NOON = datetime.datetime(2026, 3, 2, 18, 0, tzinfo=datetime.UTC)


@pytest.fixture
def account():
    return factories.account(billing_mode=POSTPAID)


def bill(account, amount, due, **kw):
    receivable, _ = services.receivable_add(
        account=account,
        amount=amount,
        due_date=due,
        description=f"Electric service, due {due:%b %-d}",
        on=due - datetime.timedelta(days=21),
        **kw,
    )
    return receivable


def pay(account, amount, ref, **kw):
    payment, _ = services.payment_post(
        account=account, amount=amount, tender="cash", reference=ref, received_at=NOON, **kw
    )
    return payment


def allocations(payment):
    """(receivable, amount) of the payment's live allocations, in the order they were made."""
    return [
        (a.receivable, a.amount)
        for a in Allocation.objects.filter(credit__payment=payment, released_by__isnull=True).select_related(
            "receivable"
        )
    ]


def opened(*receivables):
    for r in receivables:
        r.refresh_from_db()
    return [r.open_amount for r in receivables]


def assert_adds_up(account):
    assert receivables_audit(account) == []


def test_a_payment_pays_the_january_bill_and_part_of_february_and_leaves_march_open(account):
    jan, feb, mar = bill(account, "100.00", JAN), bill(account, "80.00", FEB), bill(account, "60.00", MAR)
    payment = pay(account, "130.00", "p1")
    assert payment.to_amount_due == D("130.00")
    assert allocations(payment) == [(jan, D("100.00")), (feb, D("30.00"))]
    assert opened(jan, feb, mar) == [D("0.00"), D("50.00"), D("60.00")]
    assert list(open_receivables(account)) == [feb, mar]
    assert account_balances(account).amount_due == D("110.00")
    assert_adds_up(account)


def test_a_bill_added_later_but_due_earlier_is_paid_first(account):
    mar = bill(account, "60.00", MAR)
    jan = bill(account, "100.00", JAN)
    same_day = bill(account, "10.00", JAN)  # same due date: the older one goes first
    payment = pay(account, "105.00", "p1")
    assert allocations(payment) == [(jan, D("100.00")), (same_day, D("5.00"))]
    assert opened(jan, same_day, mar) == [D("0.00"), D("5.00"), D("60.00")]


@pytest.mark.policy(returned_payment_fee=D("15.00"), returned_payment_collection_fee=D("45.00"))
def test_a_returned_payment_reopens_exactly_what_it_paid_and_its_fees_are_due_that_day(account, policy):
    jan, feb, mar = bill(account, "100.00", JAN), bill(account, "80.00", FEB), bill(account, "60.00", MAR)
    first = pay(account, "130.00", "chk-1")
    second = pay(account, "20.00", "chk-2")  # pays February's remaining $50 in part
    assert allocations(second) == [(feb, D("20.00"))]
    returned_on = datetime.date(2026, 3, 9)
    record = services.payment_return(payment=first, reason="nsf", returned_on=returned_on)
    # January and the $30 of February are open again; the second payment still pays February.
    assert opened(jan, feb, mar) == [D("100.00"), D("60.00"), D("60.00")]
    assert allocations(first) == []
    released = Allocation.objects.filter(credit__payment=first)
    assert sorted((a.receivable_id, a.amount, a.released_by_id) for a in released) == [
        (jan.pk, D("100.00"), record.transaction_id),
        (feb.pk, D("30.00"), record.transaction_id),
    ]
    fees = list(Receivable.objects.filter(account=account, kind=Receivable.Kind.FEE))
    assert [(f.amount, f.open_amount, f.due_date) for f in fees] == [
        (D("15.00"), D("15.00"), returned_on),
        (D("45.00"), D("45.00"), returned_on),
    ]
    assert account_balances(account).amount_due == D("280.00")  # 240 billed + 60 fees - 20 paid
    assert_adds_up(account)


def test_an_overpayment_leaves_a_credit_that_pays_the_next_bill(account):
    jan = bill(account, "100.00", JAN)
    payment = pay(account, "150.00", "p1")
    assert account_balances(account).amount_due == D("-50.00")
    assert receivables_summary(account).unallocated_credit == D("50.00")
    feb = bill(account, "80.00", FEB)
    assert allocations(payment) == [(jan, D("100.00")), (feb, D("50.00"))]
    assert opened(feb) == [D("30.00")]
    assert receivables_summary(account).unallocated_credit == D("0.00")
    assert account_balances(account).amount_due == D("30.00")
    assert_adds_up(account)


def test_returning_an_overpayment_also_takes_back_the_credit_it_left_on_the_next_bill(account):
    jan = bill(account, "100.00", JAN)
    payment = pay(account, "150.00", "p1")
    feb = bill(account, "80.00", FEB)
    services.payment_return(payment=payment, reason="nsf", returned_on=datetime.date(2026, 3, 9))
    assert opened(jan, feb) == [D("100.00"), D("80.00")]
    assert account_balances(account).amount_due == D("180.00")
    assert_adds_up(account)


def test_waiving_a_partly_paid_fee_turns_its_paid_part_into_credit_for_the_next_bill(account, manager):
    fee = services.fee_charge(
        account=account,
        code="trouble-call",
        amount="85.00",
        on=datetime.date(2026, 1, 5),
        memo="Trouble call",
    )
    receivable = fee.transaction.receivable
    assert (receivable.kind, receivable.due_date, receivable.open_amount) == (
        Receivable.Kind.FEE,
        datetime.date(2026, 1, 5),
        D("85.00"),
    )
    payment = pay(account, "30.00", "p1")
    fee = services.fee_waive(fee=fee, actor=manager, reason="co-op equipment at fault")
    receivable.refresh_from_db()
    assert (receivable.open_amount, receivable.cancelled_by_id) == (D("0.00"), fee.waiver_transaction_id)
    assert receivable.paid == D("0.00")
    assert allocations(payment) == []  # the $30 is the payment's again, unallocated
    assert account_balances(account).amount_due == D("-30.00")
    feb = bill(account, "100.00", FEB)
    assert allocations(payment) == [(feb, D("30.00"))]
    assert opened(feb) == [D("70.00")]
    assert_adds_up(account)


def test_the_paid_part_of_a_waived_fee_pays_an_older_open_bill_at_once(account, manager):
    fee = services.fee_charge(
        account=account,
        code="trouble-call",
        amount="85.00",
        memo="Trouble call",
        due_date=datetime.date(2026, 1, 5),
    )
    jan = bill(account, "100.00", JAN)
    payment = pay(account, "100.00", "p1")
    assert allocations(payment) == [(fee.transaction.receivable, D("85.00")), (jan, D("15.00"))]
    services.fee_waive(fee=fee, actor=manager, reason="goodwill")
    assert allocations(payment) == [(jan, D("15.00")), (jan, D("85.00"))]
    assert opened(jan) == [D("0.00")]
    assert account_balances(account).amount_due == D("0.00")
    assert_adds_up(account)


def test_a_fee_on_a_postpaid_account_is_due_the_day_charged_unless_given_a_due_date(account):
    today = services.fee_charge(account=account, code="x", amount="10.00", on=datetime.date(2026, 2, 3))
    later = services.fee_charge(
        account=account, code="y", amount="20.00", on=datetime.date(2026, 2, 3), due_date=FEB
    )
    assert today.transaction.receivable.due_date == datetime.date(2026, 2, 3)
    assert later.transaction.receivable.due_date == FEB


def test_a_bill_posts_to_energy_revenue_once_per_key(account):
    key = f"bill:{account.number}:2026-01-07"
    first = bill(account, "123.45", JAN, idempotency_key=key)
    again, created = services.receivable_add(
        account=account, amount="123.45", due_date=JAN, description="again", idempotency_key=key
    )
    assert not created and again.pk == first.pk
    txn = first.transaction
    assert (txn.kind, txn.effective_date, txn.idempotency_key) == (
        Transaction.Kind.BILL,
        datetime.date(2026, 1, 7),
        key,
    )
    assert sorted((leg.ledger_account.purpose, leg.amount) for leg in txn.legs.all()) == [
        (LedgerAccount.Purpose.AMOUNT_DUE, D("123.45")),
        (LedgerAccount.Purpose.ENERGY_REVENUE, D("-123.45")),
    ]
    with pytest.raises(BillingError, match="Bill .* was already posted as transaction"):
        services.receivable_add(
            account=account, amount="99.00", due_date=JAN, description="other", idempotency_key=key
        )
    assert Receivable.objects.count() == 1
    assert account_balances(account).amount_due == D("123.45")


def test_only_bills_are_added_directly_and_only_to_postpaid_accounts(account):
    with pytest.raises(BillingError, match="own service"):
        services.receivable_add(
            account=account, amount="5.00", due_date=JAN, description="x", kind=Receivable.Kind.FEE
        )
    prepaid = factories.account()
    with pytest.raises(BillingError, match="prepaid"):
        services.receivable_add(account=prepaid, amount="5.00", due_date=JAN, description="x")
    services.fee_charge(account=prepaid, code="x", amount="5.00")
    pay(prepaid, "20.00", "pp")
    assert not Receivable.objects.exists() and not Credit.objects.exists()


@pytest.mark.policy(debt_plan_share_percent=D("35"))
def test_the_debt_plan_share_comes_off_before_the_rest_pays_the_oldest_bill(account, manager, policy):
    old = bill(account, "500.00", datetime.date(2025, 12, 28))
    services.debt_transfer_to_arrears(account=account, amount="500.00", actor=manager, reason="old debt")
    assert opened(old) == [D("0.00")]  # the debt is in arrears now, no longer due
    services.plan_enroll(account=account, actor=manager)
    jan, feb = bill(account, "100.00", JAN), bill(account, "80.00", FEB)
    payment = pay(account, "200.00", "p1")
    assert (payment.to_arrears, payment.to_amount_due) == (D("70.00"), D("130.00"))
    assert allocations(payment) == [(jan, D("100.00")), (feb, D("30.00"))]
    assert_adds_up(account)


def test_adjustments_deposits_and_arrears_transfers_are_credits_and_debits_like_any_other(account, manager):
    jan, feb = bill(account, "100.00", JAN), bill(account, "80.00", FEB)
    credit = services.adjustment_post(account=account, amount="40.00", actor=manager, reason="outage")
    assert opened(jan, feb) == [D("60.00"), D("80.00")]
    services.deposit_collect(account=account, amount="70.00", tender="check", reference="dep-1")
    services.deposit_apply(account=account, actor=manager, reason="final bill")
    assert opened(jan, feb) == [D("0.00"), D("70.00")]
    services.debt_transfer_to_arrears(account=account, amount="50.00", actor=manager, reason="to plan")
    assert opened(jan, feb) == [D("0.00"), D("20.00")]
    debit = services.adjustment_post(account=account, amount="-12.00", actor=manager, reason="misread")
    assert debit.receivable.kind == Receivable.Kind.ADJUSTMENT
    assert debit.receivable.open_amount == D("12.00")
    # The outage credit was keyed wrong: reversing it reopens the January bill it paid.
    services.adjustment_reverse(adjustment=credit, actor=manager, reason="wrong account")
    assert opened(jan, feb) == [D("40.00"), D("20.00")]
    assert account_balances(account).amount_due == D("72.00")
    assert_adds_up(account)


def test_the_amount_past_due_counts_what_is_open_on_receivables_due_before_the_day(account):
    bill(account, "100.00", JAN)
    bill(account, "80.00", FEB)
    bill(account, "60.00", MAR)
    pay(account, "130.00", "p1")
    assert amount_past_due(account, on=FEB) == D("0.00")  # due today is not yet past due
    assert amount_past_due(account, on=FEB + datetime.timedelta(days=1)) == D("50.00")
    assert amount_past_due(account, on=MAR + datetime.timedelta(days=1)) == D("110.00")


@pytest.mark.policy(returned_payment_fee=D("20.00"))
def test_every_cent_adds_up(account, manager, policy):
    jan, feb, mar = bill(account, "100.01", JAN), bill(account, "80.02", FEB), bill(account, "60.03", MAR)
    fee = services.fee_charge(
        account=account, code="meter-check", amount="45.00", on=datetime.date(2026, 2, 10)
    )
    assert_adds_up(account)
    p1 = pay(account, "33.33", "p1")
    p2 = pay(account, "150.00", "p2")
    p3 = pay(account, "200.00", "p3")  # overpays
    assert_adds_up(account)
    services.payment_return(payment=p2, reason="nsf", returned_on=datetime.date(2026, 3, 9))
    assert_adds_up(account)
    services.fee_waive(fee=fee, actor=manager, reason="meter was at fault")
    assert_adds_up(account)
    apr = bill(account, "75.55", datetime.date(2026, 4, 28))
    assert_adds_up(account)

    billed = [jan, feb, mar, apr]
    for r in Receivable.objects.filter(account=account):
        live = sum((a.amount for a in r.allocations.all() if a.is_live), D("0.00"))
        assert r.open_amount + live == (D("0.00") if r.cancelled_by_id else r.amount)
    for p in (p1, p3):
        credit = Credit.objects.get(payment=p)
        live = sum((a.amount for a in credit.allocations.all() if a.is_live), D("0.00"))
        assert live + credit.unallocated == p.to_amount_due == p.amount
    # Charged and still owed: 4 bills + the $20 return fee; paid by p1 and p3 (p2 came back, the
    # fee was waived).
    charged = sum((r.amount for r in billed), D("0.00")) + D("20.00")
    assert charged == D("335.61")
    summary = receivables_summary(account)
    assert summary.amount_due == charged - D("233.33") == D("102.28")
    assert summary.open_total - summary.unallocated_credit == summary.amount_due
    assert [r.open_amount for r in open_receivables(account)] == [D("6.73"), D("20.00"), D("75.55")]

    # The member pays off, overpays by a cent and leaves: the cent is refunded, and nothing is
    # left open or unallocated.
    pay(account, "102.29", "p4")
    account_change_status(account=account, to_status="closed", actor=manager, reason="moved away")
    refund = services.credit_refund(account=account, actor=manager)
    assert refund.receivable.kind == Receivable.Kind.REFUND
    assert refund.receivable.open_amount == D("0.00")
    assert receivables_summary(account) == receivables_summary(account).__class__(D("0"), D("0"), D("0"))
    assert_adds_up(account)
    assert Payment.objects.filter(account=account, status="posted").count() == 3


def test_the_database_refuses_an_open_amount_outside_the_amount(account):
    jan = bill(account, "100.00", JAN)
    for bad in (D("100.01"), D("-0.01")):
        with pytest.raises(IntegrityError), transaction.atomic():
            Receivable.objects.filter(pk=jan.pk).update(open_amount=bad)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_twenty_payments_to_one_postpaid_account_at_once_pay_its_bills_oldest_first_exactly():
    import threading

    from django.db import connection

    account = factories.account(billing_mode=POSTPAID)
    jan, feb, mar = bill(account, "100.00", JAN), bill(account, "50.00", FEB), bill(account, "75.00", MAR)
    barrier, errors = threading.Barrier(20), []

    def clerk(i):
        try:
            barrier.wait()
            services.payment_post(account=account, amount="10.00", tender="card", reference=f"web-{i}")
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=clerk, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert opened(jan, feb, mar) == [D("0.00"), D("0.00"), D("25.00")]
    assert Allocation.objects.filter(receivable__account=account).count() == 20
    assert account_balances(account).amount_due == D("25.00")
    assert_adds_up(account)
