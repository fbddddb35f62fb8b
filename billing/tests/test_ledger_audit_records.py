"""`ledger_audit` proves each money record against its ledger transaction: a payment's amount and
split, a return, a fee and its waiver, a deposit's legs on deposit held.

Each test tampers with the stored rows the way only someone past the database's guards could: on
PostgreSQL as the superuser with the session's triggers off (the append-only triggers of
billing/migrations/0013 refuse it otherwise, see test_db_guards.py), on SQLite with plain SQL."""

import datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from accounts.models import Account
from accounts.tests import factories
from billing import services
from billing.models import ChargedFee, LedgerAccount, Leg, Payment, RefundPayout, Transaction
from coop import roles

pytestmark = pytest.mark.django_db
D = Decimal
P = LedgerAccount.Purpose


def audit() -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("ledger_audit", stdout=out)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue()


def tamper(statement, params=None):
    """Change stored rows behind the services' and the database's backs."""
    with connection.cursor() as c:
        if connection.vendor == "postgresql":
            # The records were committed before anyone tampers with them: make the checks due at
            # commit now (the test's own transaction never commits).
            c.execute("SET CONSTRAINTS ALL IMMEDIATE")
            c.execute("SET CONSTRAINTS ALL DEFERRED")
            c.execute("SET LOCAL session_replication_role = replica")  # superuser only
        c.execute(statement, params)
        if connection.vendor == "postgresql":
            c.execute("SET LOCAL session_replication_role = DEFAULT")


@pytest.fixture
def records():
    """Every kind of money record, posted through the services: a payment split between prepaid
    credit and a debt plan's arrears, a postpaid payment, a returned check with its fee, a waived
    fee, and a deposit collected, partly applied and refunded."""
    factories.policy(
        returned_payment_fee=D("15.00"),
        debt_plan_share_percent=D("35.00"),
    )
    manager = factories.staff(roles.MANAGER, "mgr")
    prepaid = factories.account()
    services.debt_transfer_to_arrears(account=prepaid, amount=D("200.00"), actor=manager, reason="converted")
    services.plan_enroll(account=prepaid, actor=manager)
    split, _ = services.payment_post(account=prepaid, amount=D("100.00"), tender="card", reference="c1")
    bounced, _ = services.payment_post(account=prepaid, amount=D("20.00"), tender="check", reference="101")
    returned = services.payment_return(payment=bounced, reason="nsf", actor=manager)
    waived = services.fee_charge(account=prepaid, code="trip", amount=D("9.00"), memo="Trip charge")
    services.fee_waive(fee=waived, actor=manager, reason="our mistake")

    postpaid = factories.account(billing_mode=Account.BillingMode.POSTPAID)
    services.receivable_add(
        account=postpaid, amount=D("80.00"), due_date=datetime.date(2026, 12, 1), description="Bill"
    )
    due, _ = services.payment_post(account=postpaid, amount=D("30.00"), tender="cash", reference="k1")
    collected = services.deposit_collect(
        account=postpaid, amount=D("60.00"), tender="cash", reference="dep", actor=manager
    )
    applied = services.deposit_apply(account=postpaid, actor=manager, reason="final bill", amount=D("20.00"))
    refunded = services.deposit_refund(account=postpaid, actor=manager, reason="moved away")
    services.refund_pay(refund=refunded, actor=manager, reference="5001")
    assert split.to_arrears == D("35.00") and split.to_credit == D("65.00")
    assert due.to_amount_due == D("30.00")
    return {
        "split": split,
        "bounced": bounced,
        "returned": returned,
        "fee": ChargedFee.objects.get(code="returned-payment"),
        "waived": ChargedFee.objects.get(pk=waived.pk),
        "collected": collected,
        "applied": applied,
        "refunded": refunded,
        "payout": RefundPayout.objects.get(refund=refunded),
        "prepaid": prepaid,
        "postpaid": postpaid,
    }


def test_every_kind_of_record_posted_by_the_services_passes(records):
    code, out = audit()
    assert code == 0, out
    assert out.strip().splitlines()[-1].startswith("ledger_audit ok")


def test_a_payment_amount_changed_is_reported(records):
    # The issue's own example: it used to leave `ledger_audit ok`.
    p = records["split"]
    tamper("UPDATE billing_payment SET amount = 9999 WHERE id = %s", [p.pk])
    code, out = audit()
    assert code == 1
    assert (
        f"payment {p.receipt_number} (#{p.pk}): 9999.00 = credit 65.00 + arrears 35.00 + amount due 0.00, "
        f"but transaction #{p.transaction_id} (payment) posts cash 100.00, credit 65.00, arrears 35.00, "
        "amount due 0.00 in 3 legs"
    ) in out


def test_a_payment_split_moved_between_credit_and_arrears_is_reported(records):
    p = records["split"]
    tamper("UPDATE billing_payment SET to_credit = 70, to_arrears = 30 WHERE id = %s", [p.pk])
    code, out = audit()
    assert code == 1
    assert f"payment {p.receipt_number} (#{p.pk}): 100.00 = credit 70.00 + arrears 30.00" in out


def test_a_payment_moved_to_another_tender_or_account_is_reported(records):
    p = records["split"]
    tamper("UPDATE billing_payment SET tender = 'cash' WHERE id = %s", [p.pk])
    assert f"payment {p.receipt_number} (#{p.pk})" in audit()[1]
    tamper(
        "UPDATE billing_payment SET tender = 'card', account_id = %s WHERE id = %s",
        [records["postpaid"].pk, p.pk],
    )
    code, out = audit()
    assert code == 1
    assert f"payment {p.receipt_number} (#{p.pk}): 100.00 = credit 65.00 + arrears 35.00" in out


def test_a_deleted_payment_is_reported(records):
    p = records["split"]
    tamper("DELETE FROM billing_payment WHERE id = %s", [p.pk])
    code, out = audit()
    assert code == 1
    assert f"payment transaction #{p.transaction_id} (Card c1) has no payment" in out


def test_a_deleted_or_repointed_return_is_reported(records):
    r, bounced = records["returned"], records["bounced"]
    tamper(
        "UPDATE billing_returnedpayment SET transaction_id = %s WHERE id = %s",
        [records["collected"].pk, r.pk],
    )
    code, out = audit()
    assert code == 1
    assert (
        f"return #{r.pk} of payment {bounced.receipt_number} (returned): transaction "
        f"#{records['collected'].pk} (deposit_collect) reverses #None, "
        f"not the payment's #{bounced.transaction_id}"
    ) in out
    tamper("DELETE FROM billing_returnedpayment WHERE id = %s", [r.pk])
    code, out = audit()
    assert f"payment {bounced.receipt_number}: returned, but there is no return record" in out
    assert f"transaction {r.transaction_id}: returned, but there is no return record" in out


def test_a_payment_marked_posted_again_after_its_return_is_reported(records):
    r, bounced = records["returned"], records["bounced"]
    tamper("UPDATE billing_payment SET status = 'posted' WHERE id = %s", [bounced.pk])
    code, out = audit()
    assert code == 1
    assert f"return #{r.pk} of payment {bounced.receipt_number} (posted)" in out


def test_a_fee_changed_deleted_or_unwaived_is_reported(records):
    fee, waived = records["fee"], records["waived"]
    tamper("UPDATE billing_chargedfee SET amount = 1.50 WHERE id = %s", [fee.pk])
    code, out = audit()
    assert code == 1
    assert (
        f"fee #{fee.pk} (Returned payment fee ({records['bounced'].receipt_number})) 1.50: transaction "
        f"#{fee.transaction_id} (fee) posts fee revenue 15.00 in 2 legs"
    ) in out
    tamper("DELETE FROM billing_chargedfee WHERE id = %s", [fee.pk])
    assert f"fee transaction #{fee.transaction_id} has no charged fee" in audit()[1]
    tamper(
        "UPDATE billing_chargedfee SET waiver_transaction_id = NULL, waive_reason = '', waived_by_id = NULL"
        " WHERE id = %s",
        [waived.pk],
    )
    assert f"fee_waiver transaction #{waived.waiver_transaction_id} has no charged fee" in audit()[1]


def test_a_waiver_pointed_at_another_transaction_or_without_its_reason_is_reported(records):
    waived = records["waived"]
    tamper("UPDATE billing_chargedfee SET waive_reason = '' WHERE id = %s", [waived.pk])
    code, out = audit()
    assert code == 1
    assert f"fee #{waived.pk} (Trip charge) 9.00" in out
    tamper(
        "UPDATE billing_chargedfee SET waive_reason = 'x', waiver_transaction_id = %s WHERE id = %s",
        [records["returned"].transaction_id, waived.pk],
    )
    assert f"waiver #{records['returned'].transaction_id} (payment_return) reverses" in audit()[1]


def test_a_deposit_leg_moved_to_another_account_is_reported(records):
    collected = records["collected"]
    other = LedgerAccount.objects.create(
        code="member:x:deposit_held",
        name="x",
        kind="liability",
        purpose=P.DEPOSIT_HELD,
        account=records["prepaid"],
    )
    leg = Leg.objects.get(transaction=collected, ledger_account__purpose=P.DEPOSIT_HELD)
    tamper("UPDATE billing_leg SET ledger_account_id = %s WHERE id = %s", [other.pk, leg.pk])
    code, out = audit()
    assert code == 1
    assert (
        f"deposit_collect transaction #{collected.pk} (account #{records['postpaid'].pk}) moves deposit held "
        "by 0.00 in 0 legs, its counterpart by 60.00"
    ) in out


def test_a_deposit_refunded_twice_leaves_deposit_held_below_zero(records):
    refunded = records["refunded"]
    held = Leg.objects.get(transaction=refunded, ledger_account__purpose=P.DEPOSIT_HELD)
    tamper("UPDATE billing_leg SET amount = amount + 10 WHERE id = %s", [held.pk])
    tamper(
        "UPDATE billing_leg SET amount = amount - 10 WHERE transaction_id = %s AND id <> %s",
        [refunded.pk, held.pk],
    )
    tamper("UPDATE billing_ledgeraccount SET balance = balance + 10 WHERE id = %s", [held.ledger_account_id])
    refunds = LedgerAccount.objects.get(purpose=P.REFUNDS_PAYABLE)
    tamper("UPDATE billing_ledgeraccount SET balance = balance - 10 WHERE id = %s", [refunds.pk])
    code, out = audit()
    assert code == 1
    assert f"ledger account member:{records['postpaid'].number}:deposit_held: deposit held -10.00" in out
    # The refund's check was written for what it owed before: the payout no longer matches it.
    assert f"refund payout #{records['payout'].pk} (check 5001) 40.00:" in out
    assert out.strip().splitlines()[-1] == "ledger_audit FAILED violations=2"


def test_a_reversal_that_no_longer_mirrors_its_original_is_reported(records):
    r = records["returned"]
    legs = list(Leg.objects.filter(transaction_id=r.transaction_id).order_by("amount"))
    # Still balanced, so only the mirror check can see it.
    tamper("UPDATE billing_leg SET amount = amount - 5 WHERE id = %s", [legs[0].pk])
    tamper("UPDATE billing_leg SET amount = amount + 5 WHERE id = %s", [legs[-1].pk])
    for leg in (legs[0], legs[-1]):
        sign = -5 if leg is legs[0] else 5
        tamper(
            "UPDATE billing_ledgeraccount SET balance = balance + %s WHERE id = %s",
            [sign, leg.ledger_account_id],
        )
    code, out = audit()
    assert code == 1
    assert f"reversal #{r.transaction_id} of transaction #{records['bounced'].transaction_id} leaves" in out
    assert Transaction.objects.filter(pk=r.transaction_id, kind="payment_return").exists()
    assert Payment.objects.get(pk=records["bounced"].pk).status == "returned"


def test_a_refund_payout_changed_or_deleted_is_reported(records):
    payout = records["payout"]
    tamper("UPDATE billing_refundpayout SET amount = 9999 WHERE id = %s", [payout.pk])
    code, out = audit()
    assert code == 1
    assert f"refund payout #{payout.pk} (check 5001) 9999.00:" in out
    tamper("DELETE FROM billing_refundpayout WHERE id = %s", [payout.pk])
    code, out = audit()
    assert code == 1
    assert (
        f"refund payout transaction #{payout.transaction_id} (Refund #{payout.refund_id} paid, check 5001)"
        in out
    )
