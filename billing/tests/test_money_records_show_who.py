"""Who did it, always (issue 5, point 9): every money record shows in the admin who made it, when,
and (for anything but a plain payment) why; a service that needs a reason refuses an empty one."""

import datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import formats, timezone

from accounts.models import Account
from accounts.tests import factories
from billing import services
from billing.exceptions import BillingError
from billing.models import ChargedFee, DebtPlan, Payment, RefundPayout, ReturnedPayment, Transaction
from coop import roles

D = Decimal
POSTPAID = Account.BillingMode.POSTPAID
NOW = datetime.datetime(2026, 11, 20, 16, 0, tzinfo=datetime.UTC)


pytestmark = [
    pytest.mark.django_db,
    pytest.mark.policy(debt_plan_share_percent=D("35"), returned_payment_fee=D("15.00")),
    pytest.mark.frozen(NOW),
    pytest.mark.usefixtures("policy"),
]


@pytest.fixture
def auditor(client, auditor):
    """Reads every money record (the auditor role); the pages below are the auditor's."""
    client.force_login(auditor)
    return client


def _page(client, model, obj=None, **query):
    name = f"admin:billing_{model._meta.model_name}_{'change' if obj else 'changelist'}"
    response = client.get(reverse(name, args=[obj.pk] if obj else None), query)
    assert response.status_code == 200
    return response.content.decode()


def _when(value) -> str:
    """A date or time as the admin shows it."""
    if isinstance(value, datetime.datetime):
        value = timezone.localtime(value)
    return formats.localize(value)


def test_a_returned_payment_shows_who_returned_it_when_and_why(auditor, clerk):
    payment, _ = services.payment_post(
        account=factories.account(), amount="40.00", tender="check", reference="CK 1", actor=clerk
    )
    record = services.payment_return(payment=payment, reason="nsf", note="bank code R01", actor=clerk)

    for page in (_page(auditor, ReturnedPayment), _page(auditor, ReturnedPayment, record)):
        assert "Cleo Clark" in page or ">clerk<" in page
        assert _when(record.returned_on) in page and _when(record.created_at) in page
        assert "Insufficient funds" in page and "bank code R01" in page


def test_a_return_for_another_reason_needs_a_note(clerk):
    payment, _ = services.payment_post(
        account=factories.account(), amount="40.00", tender="check", reference="CK 1", actor=clerk
    )
    with pytest.raises(BillingError, match="needs a note"):
        services.payment_return(payment=payment, reason="other", note=" ", actor=clerk)
    with pytest.raises(BillingError, match="'bounced' is not a return reason"):
        services.payment_return(payment=payment, reason="bounced", actor=clerk)
    assert not ReturnedPayment.objects.exists()


def test_a_fee_and_its_waiver_show_who_when_and_why(auditor, clerk, manager):
    account = factories.account()
    fee = services.fee_charge(account=account, code="x", amount="25.00", memo="Trouble call", actor=clerk)
    services.fee_waive(fee=fee, actor=manager, reason="Our truck was late")
    fee.refresh_from_db()

    listing = _page(auditor, ChargedFee)
    assert (
        "Cleo Clark" in listing and "Trouble call" in listing and _when(fee.transaction.posted_at) in listing
    )
    assert "Mona Manning" in listing and "Our truck was late" in listing
    detail = _page(auditor, ChargedFee, fee)
    assert "Our truck was late" in detail and _when(fee.charged_on) in detail
    waiver = _page(auditor, Transaction, fee.waiver_transaction)
    assert "Waived: Our truck was late" in waiver and _when(fee.waiver_transaction.posted_at) in waiver


def test_a_plan_shows_who_enrolled_and_who_cancelled_it_and_why(auditor, manager):
    account = factories.account()
    services.debt_transfer_to_arrears(account=account, amount="90", actor=manager, reason="old bill")
    plan = services.plan_enroll(
        account=account, actor=manager, share_percent="50", override_reason="hardship"
    )
    boss = factories.staff(roles.MANAGER, "boss", first_name="Bo", last_name="Boss")
    services.plan_cancel(plan=plan, actor=boss, reason="member moved")
    plan.refresh_from_db()

    assert plan.cancelled_by == boss
    for page in (_page(auditor, DebtPlan), _page(auditor, DebtPlan, plan)):
        assert "hardship" in page and "member moved" in page
        assert _when(plan.enrolled_on) in page and _when(plan.ended_on) in page
    listing = _page(auditor, DebtPlan)
    assert "Mona Manning" in listing and "Bo Boss" in listing


def test_every_ledger_transaction_shows_who_when_and_why(auditor, clerk, manager):
    """Deposits, adjustments, write-offs, refunds and their payouts are ledger transactions: the
    list and each transaction's page show the actor, the time posted and the memo that says why."""
    account = factories.account(billing_mode=POSTPAID)
    services.deposit_collect(account=account, amount="100.00", tender="cash", reference="D-1", actor=clerk)
    services.fee_charge(account=account, code="x", amount="30.00", memo="Final bill fee", actor=clerk)
    services.deposit_apply(account=account, actor=clerk, reason="final bill", amount="30.00")
    services.adjustment_post(account=account, amount="-12.00", actor=manager, reason="meter tampering")
    services.debt_transfer_to_arrears(account=account, amount="12.00", actor=manager, reason="to collections")
    services.arrears_write_off(account=account, actor=manager, reason="member deceased")
    refund = services.deposit_refund(account=account, actor=manager, reason="account closed")
    services.refund_pay(refund=refund, actor=manager, reference="CK 900")
    whys = [
        "Deposit, Cash D-1",
        "Deposit applied: final bill",
        "Debit adjustment: meter tampering",
        "Debt moved to arrears: to collections",
        "Written off: member deceased",
        "Deposit refunded: account closed",
        f"Refund #{refund.pk} paid, check CK 900",
    ]

    listing = _page(auditor, Transaction, q=account.number)
    for txn in Transaction.objects.filter(account=account):
        page = _page(auditor, Transaction, txn)
        who = "clerk" if txn.actor == clerk else "manager"
        assert who in page and _when(txn.posted_at) in page and txn.memo in page
        assert txn.memo in listing
    assert all(why in listing for why in whys)
    assert "Cleo Clark" in listing and "Mona Manning" in listing
    # The account page's money panel too (its newest 20 transactions, with who and the day).
    panel = auditor.get(reverse("admin:accounts_account_change", args=[account.pk])).content.decode()
    assert all(why in panel for why in whys) and "Cleo Clark" in panel and "Mona Manning" in panel
    assert "Nov 20, 2026" in panel  # the panel's own date format (M j, Y)
    payout = RefundPayout.objects.get()
    for page in (_page(auditor, RefundPayout), _page(auditor, RefundPayout, payout)):
        assert "CK 900" in page and _when(payout.paid_on) in page and _when(payout.created_at) in page
    assert "Mona Manning" in _page(auditor, RefundPayout)


def test_an_imported_payment_shows_its_operator(auditor, clerk, tmp_path):
    account = factories.account()
    path = tmp_path / "p.csv"
    path.write_text(
        f"account_number,amount,tender,reference,received_at\n{account.number},20,ach,A1,2026-11-19\n"
    )
    call_command("import_payments", str(path), "--operator", "clerk", stdout=StringIO())
    payment = Payment.objects.get()

    for page in (_page(auditor, Payment), _page(auditor, Payment, payment)):
        assert "Cleo Clark" in page and _when(payment.received_at) in page


@pytest.mark.parametrize(
    "call",
    [
        lambda a, m: services.deposit_apply(account=a, actor=m, reason=" "),
        lambda a, m: services.deposit_refund(account=a, actor=m, reason=""),
    ],
    ids=["deposit_apply", "deposit_refund"],
)
def test_a_deposit_applied_or_refunded_needs_a_reason(manager, call):
    account = factories.account(billing_mode=POSTPAID)
    services.deposit_collect(account=account, amount="60.00", tender="cash", reference="D-9")
    before = Transaction.objects.count()
    with pytest.raises(BillingError, match="Say why the deposit is"):
        call(account, manager)
    assert Transaction.objects.count() == before
