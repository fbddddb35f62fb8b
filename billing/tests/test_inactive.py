"""The inactive sweep: accounts disconnected too long are made inactive and final-billed."""

import datetime
import io
import logging
import threading
import zoneinfo
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection

from accounts.models import Account, AccountStatusChange
from accounts.services import account_change_status
from accounts.tests import factories
from billing import inactive, services
from billing.inactive import inactive_sweep
from billing.ledger import coop_ledger_account, ledger_post, member_ledger_account
from billing.models import DebtPlan, LedgerAccount, Transaction
from billing.selectors import Balances, account_balances
from coop.calendar import local_date

pytestmark = pytest.mark.django_db
D = Decimal
P = LedgerAccount.Purpose
CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
ACTIVE, DISCONNECTED, INACTIVE = Account.Status.ACTIVE, Account.Status.DISCONNECTED, Account.Status.INACTIVE


def at(day: int, hour: int = 9, minute: int = 0, month: int = 3) -> datetime.datetime:
    return datetime.datetime(2026, month, day, hour, minute, tzinfo=CHICAGO)


def march(day: int) -> datetime.date:
    return datetime.date(2026, 3, day)


def activate(account):
    with time_machine.travel(at(1, 8), tick=False):
        account_change_status(account=account, to_status=ACTIVE, actor=None, reason="enrolled")
    return account


def disconnect(account, when: datetime.datetime):
    with time_machine.travel(when, tick=False):
        account_change_status(account=account, to_status=DISCONNECTED, actor=None, reason="balance at $0")
    account.refresh_from_db()
    return account


def pay(account, amount, ref, when):
    return services.payment_post(
        account=account, amount=amount, tender="cash", reference=ref, received_at=when
    )[0]


def use_energy(account, amount, day: datetime.date):
    """A day's energy charge as the daily run posts it: the prepaid balance down, revenue up."""
    ledger_post(
        kind=Transaction.Kind.ENERGY,
        legs=[
            (member_ledger_account(account, P.PREPAID_CREDIT), D(amount)),
            (coop_ledger_account(P.ENERGY_REVENUE), -D(amount)),
        ],
        idempotency_key=f"test-energy:{account.pk}:{day}",
        effective_date=day,
        account=account,
    )


def sweep(day: datetime.date, **kw) -> int:
    # The sweep runs at 07:00 on the day it is given (the schedule's time).
    with time_machine.travel(datetime.datetime.combine(day, datetime.time(7, 0), tzinfo=CHICAGO), tick=False):
        return inactive_sweep(today=day, **kw)


def refunds_payable() -> Decimal:
    return coop_ledger_account(P.REFUNDS_PAYABLE).natural_balance


def audit_ok() -> str:
    out = io.StringIO()
    call_command("ledger_audit", stdout=out)  # raises SystemExit(1) on any violation
    return out.getvalue()


def status(account) -> str:
    account.refresh_from_db()
    return account.status


def key(account, prefix) -> str:
    return f"{prefix}:{account.pk}"


# --- Program B: inactive after 7 days off --------------------------------------------------------


def converted_b_member(manager):
    """A member converting to prepaid under B with a $100.00 deposit and $80.00 of old debt in the
    35% plan, who pays the $50.00 minimum, uses $55.52 in two days and is cut off at -$5.52 late
    on 2 March; daily charges of $1.85 continue for the six days 3-8 March."""
    account = activate(factories.account())
    with time_machine.travel(at(1, 8, 30), tick=False):
        services.deposit_collect(
            account=account, amount="100.00", tender="cash", reference="dep-1", actor=manager
        )
        services.debt_transfer_to_arrears(account=account, amount="80.00", actor=manager, reason="converted")
        services.plan_enroll(account=account, actor=manager)
    pay(account, "50.00", "start", at(1, 10))  # the initial $50 minimum is never split
    use_energy(account, "30.12", march(1))
    use_energy(account, "25.40", march(2))
    disconnect(account, at(2, 23, 30))  # 05:30 UTC on 3 March: still 2 March in Chicago
    for day in range(3, 9):
        use_energy(account, "1.85", march(day))
    balances = account_balances(account)
    assert (balances.prepaid_credit, balances.arrears, balances.deposit_held) == (
        D("-16.62"),
        D("80.00"),
        D("100.00"),
    )
    return account


def test_program_b_account_becomes_inactive_on_the_seventh_local_day_off_with_its_final_bill(manager):
    factories.policy("B")
    account = converted_b_member(manager)

    assert sweep(march(8)) == 0  # 6 days off (the UTC date of the cut, 3 March, is not counted)
    assert status(account) == DISCONNECTED
    assert sweep(march(9)) == 1  # 7 days off
    assert status(account) == INACTIVE
    assert local_date(account.status_changed_at) == march(9)
    change = AccountStatusChange.objects.filter(account=account).first()
    assert (change.from_status, change.to_status) == (DISCONNECTED, INACTIVE)
    assert change.reason == "Disconnected 7 days (policy: inactive after 7)"

    # The final bill: the $16.62 used on credit moves to arrears (80.00 -> 96.62).
    bill = Transaction.objects.get(idempotency_key=key(account, "final-bill"))
    assert bill.effective_date == march(9)
    assert bill.memo == "Final bill: $16.62 used on credit moved to arrears"
    assert sorted((leg.ledger_account.purpose, leg.amount) for leg in bill.legs.all()) == [
        (P.ARREARS, D("16.62")),
        (P.PREPAID_CREDIT, D("-16.62")),
    ]
    # The deposit pays the $96.62 of arrears, the plan is complete, the $3.38 left is refunded.
    applied = Transaction.objects.get(account=account, kind=Transaction.Kind.DEPOSIT_APPLY)
    assert sorted((leg.ledger_account.purpose, leg.amount) for leg in applied.legs.all()) == [
        (P.ARREARS, D("-96.62")),
        (P.DEPOSIT_HELD, D("96.62")),
    ]
    refund = Transaction.objects.get(account=account, kind=Transaction.Kind.DEPOSIT_REFUND)
    assert refund.legs.get(ledger_account__purpose=P.REFUNDS_PAYABLE).amount == D("-3.38")
    assert refunds_payable() == D("3.38")
    assert account_balances(account) == Balances(
        prepaid_credit=D("0.00"), arrears=D("0.00"), deposit_held=D("0.00"), amount_due=D("0.00")
    )
    plan = DebtPlan.objects.get(account=account)
    assert (plan.status, plan.ended_on) == (DebtPlan.Status.COMPLETED, march(9))
    assert "ledger_audit ok" in audit_ok()


def test_a_second_sweep_posts_nothing_and_changes_nothing(manager):
    factories.policy("B")
    account = converted_b_member(manager)
    assert sweep(march(9)) == 1
    transactions, changes = Transaction.objects.count(), AccountStatusChange.objects.count()

    assert sweep(march(9)) == 0
    assert sweep(march(10)) == 0
    assert (Transaction.objects.count(), AccountStatusChange.objects.count()) == (transactions, changes)
    assert status(account) == INACTIVE
    assert refunds_payable() == D("3.38")
    assert "ledger_audit ok" in audit_ok()


def test_credit_left_on_a_disconnected_account_first_pays_its_arrears(manager):
    """Program B: paid $15.00 after the cut (restore needs $25), with $30.00 of old debt."""
    factories.policy("B")
    account = activate(factories.account())
    with time_machine.travel(at(1, 8, 30), tick=False):
        services.debt_transfer_to_arrears(account=account, amount="30.00", actor=manager, reason="converted")
    pay(account, "50.00", "start", at(1, 10))
    use_energy(account, "53.00", march(1))
    disconnect(account, at(2, 7))
    pay(account, "15.00", "partial", at(3, 12))  # credit 12.00, still below the $25 restore level

    assert sweep(march(9)) == 1
    bill = Transaction.objects.get(idempotency_key=key(account, "final-bill"))
    assert bill.memo == "Final bill: $12.00 of prepaid credit applied to arrears"
    balances = account_balances(account)
    assert (balances.prepaid_credit, balances.arrears) == (D("0.00"), D("18.00"))  # still owed
    assert refunds_payable() == D("0.00")
    assert not Transaction.objects.filter(account=account, kind=Transaction.Kind.REFUND).exists()
    assert "ledger_audit ok" in audit_ok()


# --- Program E: inactive after more than 15 days off ---------------------------------------------


def e_account(*, paid_after_cut=None):
    """$40.00 paid, $45.50 used: $5.50 negative, cut off at 10:30 on 2 March (E's window)."""
    account = activate(factories.account())
    pay(account, "40.00", f"start-{account.pk}", at(1, 10))
    use_energy(account, "45.50", march(1))
    disconnect(account, at(2, 10, 30))
    if paid_after_cut:
        pay(account, paid_after_cut, f"late-{account.pk}", at(5, 12))
    return account


def test_program_e_account_is_inactive_on_day_16_not_day_15_and_its_debt_goes_to_arrears():
    factories.policy("E")
    account = e_account()

    assert sweep(march(17)) == 0  # 15 days off: not "more than fifteen"
    assert status(account) == DISCONNECTED
    assert sweep(march(18)) == 1  # 16 days off
    assert status(account) == INACTIVE
    bill = Transaction.objects.get(idempotency_key=key(account, "final-bill"))
    assert bill.memo == "Final bill: $5.50 used on credit moved to arrears"
    balances = account_balances(account)
    assert (balances.prepaid_credit, balances.arrears, balances.deposit_held) == (
        D("0.00"),
        D("5.50"),
        D("0.00"),
    )
    assert refunds_payable() == D("0.00")
    assert "ledger_audit ok" in audit_ok()


def test_program_e_refunds_credit_paid_after_the_cut_that_never_reached_the_restore_level():
    factories.policy("E")
    account = e_account(paid_after_cut="10.00")  # 4.50 credit; restore needs $20 + $5.50
    assert account_balances(account).prepaid_credit == D("4.50")

    assert sweep(march(18)) == 1
    assert not Transaction.objects.filter(idempotency_key=key(account, "final-bill")).exists()  # nothing owed
    refund = Transaction.objects.get(idempotency_key=key(account, "final-refund"))
    assert (refund.kind, refund.memo, refund.effective_date) == (
        Transaction.Kind.REFUND,
        "Final bill: remaining credit refunded",
        march(18),
    )
    assert account_balances(account).prepaid_credit == D("0.00")
    assert refunds_payable() == D("4.50")
    assert "ledger_audit ok" in audit_ok()


# --- Other policies --------------------------------------------------------------------------------


def test_without_refund_on_final_bill_the_deposit_only_pays_the_debt_and_the_rest_stays_held(manager):
    factories.policy(
        name="keep",
        inactive_after_days=7,
        refund_credit_on_final_bill=False,
    )
    account = activate(factories.account())
    with time_machine.travel(at(1, 8, 30), tick=False):
        services.deposit_collect(
            account=account, amount="50.00", tender="cash", reference="dep-k", actor=manager
        )
    use_energy(account, "10.25", march(1))
    disconnect(account, at(2, 9))

    assert sweep(march(9)) == 1
    balances = account_balances(account)
    assert (balances.prepaid_credit, balances.arrears, balances.deposit_held) == (
        D("0.00"),
        D("0.00"),
        D("39.75"),
    )
    assert refunds_payable() == D("0.00")
    assert "ledger_audit ok" in audit_ok()


def test_a_policy_without_an_inactive_period_makes_no_account_inactive():
    factories.policy("A")  # program A says nothing about inactivity
    account = activate(factories.account())
    use_energy(account, "5.00", march(1))
    disconnect(account, at(1, 9))
    assert sweep(march(30)) == 0
    assert status(account) == DISCONNECTED


def test_only_disconnected_prepaid_accounts_are_candidates():
    factories.policy("B")
    off = disconnect(activate(factories.account()), at(1, 9))
    on = activate(factories.account())
    postpaid = activate(factories.account(billing_mode=Account.BillingMode.POSTPAID))
    disconnect(postpaid, at(1, 9))
    assert sweep(march(20)) == 1
    assert (status(off), status(on), status(postpaid)) == (INACTIVE, ACTIVE, DISCONNECTED)


def test_an_account_without_status_changed_at_is_dated_by_its_audit_trail():
    factories.policy("B")
    old = disconnect(activate(factories.account()), at(2, 9))
    recent = disconnect(activate(factories.account()), at(5, 9))
    Account.objects.filter(pk__in=[old.pk, recent.pk]).update(status_changed_at=None)
    assert sweep(march(9)) == 1
    assert (status(old), status(recent)) == (INACTIVE, DISCONNECTED)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_one_account_that_fails_is_rolled_back_and_reported_and_the_others_go_on(monkeypatch, caplog):
    factories.policy("B")
    first, broken, last = (e_account() for _ in range(3))  # each $5.50 negative, cut on 2 March
    real = inactive.final_bill

    def final_bill(*, account, **kw):
        real(account=account, **kw)
        if account.pk == broken.pk:
            raise RuntimeError("head-end unreachable")

    monkeypatch.setattr(inactive, "final_bill", final_bill)
    with caplog.at_level(logging.INFO, logger="billing.inactive"):
        assert sweep(march(9)) == 2
    assert (status(first), status(broken), status(last)) == (INACTIVE, DISCONNECTED, INACTIVE)
    assert not Transaction.objects.filter(idempotency_key=key(broken, "final-bill")).exists()
    assert account_balances(broken).prepaid_credit == D("-5.50")  # nothing of it was kept
    assert f"account {broken.number} could not be final-billed" in caplog.text
    assert f"2 made inactive, 1 failed (accounts {broken.number})" in caplog.text

    monkeypatch.setattr(inactive, "final_bill", real)
    assert sweep(march(10)) == 1  # the next run picks it up
    assert status(broken) == INACTIVE
    assert "ledger_audit ok" in audit_ok()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_sweeps_at_once_final_bill_each_account_once():
    factories.policy("B")
    accounts = [e_account(paid_after_cut="10.00") for _ in range(5)]
    barrier, results, errors = threading.Barrier(2), [], []

    def run():
        try:
            barrier.wait()
            results.append(inactive_sweep(today=march(9)))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(results) == 5
    assert all(status(a) == INACTIVE for a in accounts)
    assert Transaction.objects.filter(kind=Transaction.Kind.REFUND).count() == 5
    assert refunds_payable() == D("22.50")
    assert "ledger_audit ok" in audit_ok()
