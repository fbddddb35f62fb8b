import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import Account
from accounts.services import account_change_status
from accounts.tests import factories
from billing import services
from billing.exceptions import BillingError
from billing.models import Transaction
from billing.selectors import account_balances

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def schedule_c():
    return factories.policy(
        name="C",
        prepaid_deposit_waived=True,
        deposit_first_meter_favorable=D("60"),
        deposit_first_meter_unfavorable=D("250"),
        deposit_additional_meter_favorable=D("0"),
        deposit_additional_meter_unfavorable=D("250"),
        long_disconnect_days=7,
        long_disconnect_deposit=D("500"),
    )


POSTPAID = Account.BillingMode.POSTPAID


def test_required_deposit_follows_credit_reference_and_meter_count(schedule_c):
    good = factories.member(favorable_credit_reference=True)
    poor = factories.member(favorable_credit_reference=False)
    assert services.deposit_required(account=factories.account(member=good, billing_mode=POSTPAID)) == D("60")
    assert services.deposit_required(account=factories.account(member=good, billing_mode=POSTPAID)) == D("0")
    assert services.deposit_required(account=factories.account(member=poor, billing_mode=POSTPAID)) == D(
        "250"
    )
    assert services.deposit_required(account=factories.account(member=poor, billing_mode=POSTPAID)) == D(
        "250"
    )
    assert services.deposit_required(account=factories.account(member=factories.member())) == D(
        "0"
    )  # prepaid


def test_a_long_disconnection_requires_the_larger_deposit(schedule_c, clerk):
    account = factories.account(
        billing_mode=POSTPAID, member=factories.member(favorable_credit_reference=True)
    )
    account_change_status(account=account, to_status="active", actor=clerk, reason="on")
    account_change_status(account=account, to_status="disconnected", actor=clerk, reason="nonpay")
    account.refresh_from_db()
    off_since = timezone.localdate(account.status_changed_at)  # the co-op's day, not UTC's
    assert services.deposit_required(account=account, on=off_since + datetime.timedelta(days=6)) == D("60")
    assert services.deposit_required(account=account, on=off_since + datetime.timedelta(days=7)) == D("500")


def test_a_deposit_is_collected_held_applied_and_refunded_each_as_a_ledger_transaction(schedule_c, manager):
    account = factories.account(billing_mode=POSTPAID)
    services.deposit_collect(
        account=account, amount="250.00", tender="check", reference="CK 5", actor=manager
    )
    assert account_balances(account).deposit_held == D("250.00")
    services.fee_charge(account=account, code="x", amount="40.00", memo="Final bill")
    services.deposit_apply(account=account, actor=manager, reason="final bill", amount="40.00")
    assert account_balances(account) == account_balances(account).__class__(
        prepaid_credit=D("0.00"), arrears=D("0.00"), deposit_held=D("210.00"), amount_due=D("0.00")
    )
    refund = services.deposit_refund(account=account, actor=manager, reason="moved away")
    assert account_balances(account).deposit_held == D("0.00")
    services.refund_pay(refund=refund, actor=manager, reference="CK 9001")
    with pytest.raises(BillingError, match="payout of refund #[0-9]+ was already posted"):
        services.refund_pay(refund=refund, actor=manager, reference="CK 9002")
    kinds = list(account.transactions.order_by("id").values_list("kind", flat=True))
    assert kinds == ["deposit_collect", "fee", "deposit_apply", "deposit_refund", "refund"]
    with pytest.raises(BillingError, match="holds a deposit of \\$0.00"):
        services.deposit_refund(account=account, actor=manager, reason="moved away")


def test_a_deposit_applied_on_conversion_to_prepaid_pays_arrears_first(schedule_c, manager):
    account = factories.account()
    services.deposit_collect(account=account, amount="100.00", tender="cash", reference="d1")
    services.debt_transfer_to_arrears(account=account, amount="30.00", actor=manager, reason="old bill")
    services.deposit_apply(account=account, actor=manager, reason="converted to prepaid")
    b = account_balances(account)
    assert (b.deposit_held, b.arrears, b.prepaid_credit) == (D("0.00"), D("0.00"), D("70.00"))


def test_adjustments_refunds_and_write_offs_are_for_managers_only(schedule_c, manager, clerk):
    account = factories.account()
    for call in (
        lambda a: services.adjustment_post(account=account, amount="5.00", actor=a, reason="meter misread"),
        lambda a: services.arrears_write_off(account=account, actor=a, reason="bankruptcy"),
        lambda a: services.credit_refund(account=account, actor=a),
    ):
        with pytest.raises(BillingError, match="Only a billing manager"):
            call(clerk)
    assert Transaction.objects.count() == 0


def test_credit_and_debit_adjustments_move_the_prepaid_balance(schedule_c, manager):
    account = factories.account()
    services.adjustment_post(account=account, amount="12.50", actor=manager, reason="outage credit")
    services.adjustment_post(account=account, amount="-2.50", actor=manager, reason="misapplied credit")
    assert account_balances(account).prepaid_credit == D("10.00")


def test_uncollectable_arrears_are_written_off(schedule_c, manager):
    account = factories.account()
    services.debt_transfer_to_arrears(account=account, amount="80.00", actor=manager, reason="old bill")
    with pytest.raises(BillingError, match="cannot write off \\$90.00"):
        services.arrears_write_off(account=account, actor=manager, reason="x", amount="90.00")
    services.arrears_write_off(account=account, actor=manager, reason="deceased, no estate")
    assert account_balances(account).arrears == D("0.00")


def test_remaining_credit_is_refunded_when_an_account_closes(schedule_c, manager, clerk):
    account = factories.account()
    services.payment_post(account=account, amount="60.00", tender="cash", reference="p1")
    with pytest.raises(BillingError, match="refunded when it closes"):
        services.credit_refund(account=account, actor=manager)
    account_change_status(account=account, to_status="closed", actor=clerk, reason="moved away")
    refund = services.credit_refund(account=account, actor=manager)
    assert account_balances(account).prepaid_credit == D("0.00")
    services.refund_pay(refund=refund, actor=manager, reference="CK 1")


def test_a_debt_transfer_moves_what_is_due_and_books_the_unbilled_rest_as_revenue(schedule_c, manager):
    from billing.ledger import coop_ledger_account
    from billing.models import LedgerAccount

    account = factories.account(billing_mode=POSTPAID)
    services.receivable_add(
        account=account, amount="30.00", due_date=datetime.date(2026, 2, 1), description="Bill"
    )
    revenue = coop_ledger_account(LedgerAccount.Purpose.ENERGY_REVENUE)
    revenue.refresh_from_db()
    revenue_before = revenue.natural_balance
    services.debt_transfer_to_arrears(account=account, amount="50.00", actor=manager, reason="converting")
    b = account_balances(account)
    assert (b.amount_due, b.arrears) == (D("0.00"), D("50.00"))  # never a negative amount due
    revenue.refresh_from_db()
    assert revenue.natural_balance - revenue_before == D("20.00")  # unbilled energy recognised
