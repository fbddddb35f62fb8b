import datetime
from decimal import Decimal

import pytest

from accounts.models import Account
from accounts.tests import factories
from billing import services
from billing.exceptions import BillingError, DuplicatePayment, PaymentRefused
from billing.models import DebtPlan, Payment, ReturnedPayment
from billing.selectors import account_balances, check_restricted_until
from coop import roles

pytestmark = pytest.mark.django_db
D = Decimal
NOON = datetime.datetime(2026, 11, 20, 18, 0, tzinfo=datetime.UTC)


def with_arrears(amount, manager, **account_fields):
    account = factories.account(**account_fields)
    services.debt_transfer_to_arrears(account=account, amount=amount, actor=manager, reason="converted")
    return account


def pay(account, amount, ref, tender="cash", **kw):
    return services.payment_post(
        account=account, amount=amount, tender=tender, reference=ref, received_at=NOON, **kw
    )[0]


def test_program_b_takes_35_percent_of_a_payment_to_arrears(manager):
    factories.policy("B")
    account = with_arrears(D("500.00"), manager)
    services.plan_enroll(account=account, actor=manager)
    pay(account, "50.00", "start")  # the initial $50 minimum is never split
    payment = pay(account, "100.00", "r2")
    assert (payment.to_arrears, payment.to_credit) == (D("35.00"), D("65.00"))
    balances = account_balances(account)
    assert balances.prepaid_credit == D("115.00")
    assert balances.arrears == D("465.00")


def test_program_e_takes_20_percent(manager):
    factories.policy("E")
    account = with_arrears(D("80.00"), manager)
    services.plan_enroll(account=account, actor=manager)
    payment = pay(account, "25.50", "e1")
    assert (payment.to_arrears, payment.to_credit) == (D("5.10"), D("20.40"))


def test_the_first_50_starting_balance_is_never_split(manager):
    factories.policy("B")
    account = with_arrears(D("500.00"), manager)
    services.plan_enroll(account=account, actor=manager)
    first = pay(account, "30.00", "a")
    second = pay(account, "40.00", "b")  # $20 completes the minimum, 35% of the other $20 is split
    assert (first.to_arrears, first.to_credit) == (D("0.00"), D("30.00"))
    assert (second.to_arrears, second.to_credit) == (D("7.00"), D("33.00"))


def test_a_split_of_33_33_at_35_percent_sums_to_exactly_33_33(manager):
    factories.policy(debt_plan_share_percent=D("35"), debt_plan_exempts_initial_minimum=False)
    account = with_arrears(D("500.00"), manager)
    services.plan_enroll(account=account, actor=manager)
    payment = pay(account, "33.33", "x")
    assert payment.to_arrears == D("11.67")  # 11.6655 rounded half up
    assert payment.to_arrears + payment.to_credit == D("33.33")


def test_the_plan_completes_when_arrears_reach_zero_and_takes_no_more_than_owed(manager):
    factories.policy(debt_plan_share_percent=D("50"), debt_plan_exempts_initial_minimum=False)
    account = with_arrears(D("10.00"), manager)
    plan = services.plan_enroll(account=account, actor=manager)
    payment = pay(account, "100.00", "big")
    assert (payment.to_arrears, payment.to_credit) == (D("10.00"), D("90.00"))
    plan.refresh_from_db()
    assert plan.status == DebtPlan.Status.COMPLETED
    assert pay(account, "100.00", "next").to_arrears == D("0.00")


def test_payment_below_the_prepaid_minimum_is_refused():
    factories.policy(prepaid_minimum_payment=D("10.00"))
    account = factories.account()
    with pytest.raises(PaymentRefused, match=r"minimum prepaid payment is \$10.00; \$9.99 is less"):
        pay(account, "9.99", "m")
    assert Payment.objects.count() == 0


def test_the_same_tender_and_reference_posts_once():
    factories.policy()
    account = factories.account()
    first = pay(account, "20.00", "CHK 1001", tender="check")
    again, created = services.payment_post(
        account=account, amount="20.00", tender="check", reference="CHK 1001", received_at=NOON
    )
    assert not created and again.pk == first.pk
    assert account_balances(account).prepaid_credit == D("20.00")
    with pytest.raises(DuplicatePayment, match="already posted as receipt"):
        pay(factories.account(), "20.00", "CHK 1001", tender="check")


def test_a_returned_check_reverses_the_payment_and_its_split_and_charges_fees_at_once(manager):
    factories.policy(
        debt_plan_share_percent=D("35"),
        debt_plan_exempts_initial_minimum=False,
        returned_payment_fee=D("15.00"),
        returned_payment_collection_fee=D("45.00"),
    )
    account = with_arrears(D("500.00"), manager)
    services.plan_enroll(account=account, actor=manager)
    payment = pay(account, "100.00", "CHK 77", tender="check")
    services.payment_return(payment=payment, reason=ReturnedPayment.Reason.INSUFFICIENT_FUNDS)
    balances = account_balances(account)
    assert balances.arrears == D("500.00")
    assert balances.prepaid_credit == D("-60.00")  # $15 service fee + $45 collection fee
    payment.refresh_from_db()
    assert payment.status == Payment.Status.RETURNED


def test_two_returned_checks_in_12_months_bar_checks_for_12_months_after_the_latest():
    factories.policy(
        check_restriction_returns=2, check_restriction_window_months=12, check_restriction_months=12
    )
    account = factories.account()
    member = account.member
    first = pay(account, "20.00", "c1", tender="check")
    services.payment_return(payment=first, reason="nsf", returned_on=datetime.date(2026, 3, 10))
    assert check_restricted_until(member, today=datetime.date(2026, 3, 11)) is None
    second = pay(account, "20.00", "c2", tender="check")
    services.payment_return(payment=second, reason="nsf", returned_on=datetime.date(2026, 11, 2))
    assert check_restricted_until(member, today=datetime.date(2026, 11, 20)) == datetime.date(2027, 11, 2)
    with pytest.raises(PaymentRefused, match="may not pay by check until November 2, 2027"):
        pay(account, "20.00", "c3", tender="check")
    pay(account, "20.00", "cash-ok")  # cash is still taken
    assert check_restricted_until(member, today=datetime.date(2027, 11, 3)) is None


def test_a_fee_waived_by_a_manager_is_reversed_and_a_clerk_cannot_waive(manager, clerk):
    factories.policy()
    account = factories.account(billing_mode=Account.BillingMode.POSTPAID)
    fee = services.fee_charge(account=account, code="trouble-call", amount="85.00", memo="Trouble call")
    assert account_balances(account).amount_due == D("85.00")
    with pytest.raises(BillingError, match="Only a billing manager"):
        services.fee_waive(fee=fee, actor=clerk, reason="goodwill")
    services.fee_waive(fee=fee, actor=manager, reason="co-op equipment at fault")
    assert account_balances(account).amount_due == D("0.00")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_fifty_clerks_posting_payments_to_one_account_at_once_post_fifty_exactly():
    import threading

    from django.db import connection

    factories.policy(debt_plan_share_percent=D("35"), debt_plan_exempts_initial_minimum=False)
    manager = factories.staff(roles.MANAGER, "mgr2")
    account = with_arrears(D("10000.00"), manager)
    services.plan_enroll(account=account, actor=manager)
    barrier, errors = threading.Barrier(50), []

    def clerk(i):
        try:
            barrier.wait()
            services.payment_post(account=account, amount="33.33", tender="card", reference=f"web-{i}")
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=clerk, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Payment.objects.filter(account=account).count() == 50
    balances = account_balances(account)
    assert balances.arrears == D("10000.00") - 50 * D("11.67")
    assert balances.prepaid_credit == 50 * D("21.66")


def test_a_returned_payment_that_empties_the_balance_makes_a_disconnect_candidate():
    from accounts.services import account_change_status
    from billing.selectors import disconnect_candidates

    factories.policy(returned_payment_fee=D("20.00"))
    account = factories.account()
    other = factories.account()
    for a in (account, other):
        account_change_status(account=a, to_status="active", actor=None, reason="enrolled")
    first = pay(account, "30.00", "chk-1", tender="check")
    pay(other, "30.00", "cash-2")
    assert list(disconnect_candidates(on=datetime.date(2026, 11, 20))) == []
    services.payment_return(payment=first, reason="nsf", returned_on=datetime.date(2026, 11, 20))
    assert list(disconnect_candidates(on=datetime.date(2026, 11, 20))) == [account]
