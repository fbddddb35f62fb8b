"""A funded account is never cut (issue 5, point 2).

An account decided for disconnection at -$1.00 that then receives $20 (above the $0.00 cut level,
below program B's $25 restore level) keeps its service: the credit cancels the open disconnect
order; the order is re-checked under the account's lock before it is sent and again when the
head-end confirms; a cut the head-end carried out anyway is reversed by a reconnect order at once.
The sequential cases run on SQLite; the races between a payment and a slow head-end run on
PostgreSQL with real threads.
"""

import datetime
import threading
import time
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.db import connection
from django.urls import reverse
from django_q import tasks as q_tasks
from django_q.conf import Conf

from accounts.models import Account, AccountStatusChange, ServiceHold
from accounts.tests import factories
from billing import prepaid, services
from billing.prepaid import disconnect_run
from billing.selectors import account_balances
from coop.calendar import coop_zone, local_today
from coop.services import weather_hold_create
from meters import tasks as meter_tasks
from meters.exceptions import IllegalOrderTransition
from meters.models import ServiceOrder
from meters.services import order_confirm, order_move_to_field, order_send
from notifications.models import Message, Notice

D = Decimal
K, S = ServiceOrder.Kind, ServiceOrder.Status
MONDAY_10 = datetime.datetime(2026, 11, 23, 10, 0, tzinfo=coop_zone())


_numbers = iter(range(1, 100_000))


def prepaid_account(balance="-1.00", *, start="10.00", remote=True):
    """An active prepaid account with an AMI meter that paid `start` and used energy down to
    `balance`, through the services."""
    account = factories.account_with_meter(remote=remote)
    services.payment_post(account=account, amount=start, tender="cash", reference=f"start-{account.pk}")
    services.fee_charge(account=account, code="energy", amount=D(start) - D(balance), memo="energy used")
    account.refresh_from_db()
    assert account_balances(account).prepaid_credit == D(balance)
    return account


def pay(account, amount="20.00"):
    return services.payment_post(
        account=account, amount=amount, tender="card", reference=f"pay-{next(_numbers)}"
    )[0]


def decide(account):
    """The disconnect step decides the cut: the order is requested (and queued)."""
    summary = disconnect_run()
    assert summary.ordered >= 1
    return ServiceOrder.objects.get(account=account, kind=K.DISCONNECT)


def status(account):
    account.refresh_from_db()
    return account.status


def reconnects(account):
    return list(ServiceOrder.objects.filter(account=account, kind=K.RECONNECT).order_by("id"))


def meter_is_on(account) -> bool:
    """The switch as the head-end left it: the kind of the last order it reported carried out
    (a cancelled disconnect it carried out anyway has `confirmed_at` too)."""
    last = (
        ServiceOrder.objects.filter(account=account, confirmed_at__isnull=False)
        .order_by("confirmed_at", "id")
        .last()
    )
    return last is None or last.kind == K.RECONNECT


def disconnect_notices(account):
    return Message.objects.filter(account=account, notice=Notice.DISCONNECTED).count()


# --- The credit cancels the order (SQLite) -----------------------------------------------------


@pytest.mark.django_db
def test_a_20_payment_cancels_the_disconnect_decided_at_minus_1_before_it_is_sent(queued):
    factories.policy("B")
    account = prepaid_account("-1.00")
    order = decide(account)
    assert order.status == S.QUEUED
    pay(account, "20.00")
    order.refresh_from_db()
    assert order.status == S.CANCELLED
    assert order.last_error.endswith("Prepaid balance $19.00 is above the disconnect level $0.00")
    assert order.sent_at is None and order.attempts == 0
    assert reconnects(account) == []  # nothing reached the meter: nothing to undo
    # The send task (enqueued when the order was decided) runs late: nothing goes out.
    order_send(order_id=order.pk)
    order.refresh_from_db()
    assert order.status == S.CANCELLED and order.attempts == 0 and order.external_id == ""
    assert status(account) == Account.Status.ACTIVE


@pytest.mark.django_db
def test_a_payment_that_leaves_the_balance_at_the_cut_level_cancels_nothing(queued):
    factories.policy("B")
    account = prepaid_account("-11.00")
    order = decide(account)
    pay(account, "10.00")  # -1.00: still at the disconnect level
    order.refresh_from_db()
    assert order.status == S.QUEUED


def _credit_adjustment(account, manager):
    services.adjustment_post(account=account, amount="20.00", actor=manager, reason="billing error")


def _deposit_applied(account, manager):
    services.deposit_collect(account=account, amount="20.00", tender="cash", reference=f"dep-{account.pk}")
    services.deposit_apply(account=account, actor=manager, reason="member asked")


@pytest.mark.django_db
@pytest.mark.parametrize("credit", [_credit_adjustment, _deposit_applied], ids=["adjustment", "deposit"])
def test_every_credit_that_lifts_the_balance_cancels_the_open_disconnect(queued, manager, credit):
    factories.policy("B")
    account = prepaid_account("-1.00")
    order = decide(account)
    credit(account, manager)
    order.refresh_from_db()
    assert account_balances(account).prepaid_credit == D("19.00")
    assert order.status == S.CANCELLED
    assert "Prepaid balance $19.00 is above the disconnect level $0.00" in order.last_error


@pytest.mark.django_db
def test_a_waived_fee_that_lifts_the_balance_cancels_the_open_disconnect(queued, manager):
    factories.policy("B")
    account = prepaid_account("4.00")
    fee = services.fee_charge(account=account, code="late", amount="5.00", memo="Late fee")  # -1.00
    order = decide(account)
    services.fee_waive(fee=fee, actor=manager, reason="first time")
    order.refresh_from_db()
    assert order.status == S.CANCELLED
    assert "Prepaid balance $4.00 is above the disconnect level $0.00" in order.last_error


@pytest.mark.django_db
def test_reversing_a_debit_adjustment_keyed_in_wrong_cancels_the_open_disconnect(queued, manager):
    factories.policy("B")
    account = prepaid_account("19.00", start="20.00")
    # The -1.00 comes from a debit adjustment keyed in wrong; reversing it brings back 20.00.
    debit = services.adjustment_post(account=account, amount="-20.00", actor=manager, reason="meter test")
    order = decide(account)
    services.adjustment_reverse(adjustment=debit, actor=manager, reason="wrong account")
    order.refresh_from_db()
    assert order.status == S.CANCELLED
    assert "Prepaid balance $19.00 is above the disconnect level $0.00" in order.last_error


# --- The head-end already has it (SQLite) ------------------------------------------------------


@pytest.mark.django_db
def test_a_payment_after_the_head_end_took_the_cut_cancels_it_and_reconnects_at_once(queued):
    factories.policy("B")
    account = prepaid_account("-1.00")
    order = decide(account)
    order_send(order_id=order.pk)  # the head-end accepted it; its confirmation is not back yet
    pay(account, "20.00")
    order.refresh_from_db()
    (reconnect,) = reconnects(account)
    assert order.status == S.CANCELLED
    assert "superseded by a reconnect request" in order.last_error
    assert reconnect.reason == (
        f"Disconnect #{order.pk} was already with the head-end; "
        "prepaid balance $19.00 is above the disconnect level $0.00"
    )
    # The head-end had acted before the cancel arrived: its confirmation comes in now.
    meter_tasks.order_confirm_task(order.pk)
    order.refresh_from_db()
    assert order.confirmed_at is not None and "Carried out by the head-end anyway" in order.last_error
    assert status(account) == Account.Status.DISCONNECTED  # the records follow the meter
    assert disconnect_notices(account) == 0  # reversed at once: the member is not told of a cut
    assert reconnects(account) == [reconnect]  # the reconnect already on its way does it
    order_send(order_id=reconnect.pk)
    meter_tasks.order_confirm_task(reconnect.pk)
    assert status(account) == Account.Status.ACTIVE and meter_is_on(account)
    assert list(
        AccountStatusChange.objects.filter(account=account).order_by("id").values_list("to_status", flat=True)
    ) == ["active", "disconnected", "active"]


# --- Re-checked immediately before sending (SQLite) --------------------------------------------


@pytest.mark.django_db
def test_a_credit_that_did_not_cancel_the_order_is_still_caught_before_sending(queued, monkeypatch):
    factories.policy("B")
    account = prepaid_account("-1.00")
    order = decide(account)
    # As if the balance rose by a path that does not cancel orders (a true-up credit of the daily run).
    monkeypatch.setattr(prepaid, "credit_posted", lambda account: None)
    pay(account, "20.00")
    assert ServiceOrder.objects.get(pk=order.pk).status == S.QUEUED
    order = order_send(order_id=order.pk)
    assert order.status == S.CANCELLED and order.sent_at is None and order.attempts == 0
    assert order.last_error.endswith("not sent, prepaid balance $19.00 is above the disconnect level $0.00")


@pytest.mark.django_db
def test_a_hold_entered_after_the_decision_stops_the_send(queued, manager):
    factories.policy("B")
    account = prepaid_account("-1.00")
    order = decide(account)
    today = local_today()
    ServiceHold.objects.create(
        account=account, kind=ServiceHold.Kind.MEDICAL, starts_on=today, expires_on=today, entered_by=manager
    )
    order = order_send(order_id=order.pk)
    assert order.status == S.CANCELLED and order.attempts == 0
    assert order.last_error.endswith(f"not sent, Medical certificate hold until {today:%Y-%m-%d}")


@pytest.mark.django_db
def test_a_weather_hold_declared_after_the_decision_stops_the_send(queued, manager):
    factories.policy("E")
    with time_machine.travel(MONDAY_10, tick=False):
        account = prepaid_account("-1.00")
        order = decide(account)
        weather_hold_create(
            actor=manager, start_date=MONDAY_10.date(), end_date=MONDAY_10.date(), reason="ice storm"
        )
        order = order_send(order_id=order.pk)
    assert order.status == S.CANCELLED and order.attempts == 0
    assert order.last_error.endswith("not sent, weather hold: ice storm")


@pytest.mark.django_db
def test_a_failed_cut_is_not_retried_after_the_window_closes(queued, settings):
    factories.policy("E")  # 10:00-11:00 on weekdays
    with time_machine.travel(MONDAY_10 + datetime.timedelta(minutes=59), tick=False):
        account = prepaid_account("-1.00")
        settings.HEADEND_SIMULATOR_FAIL = "all"
        order = order_send(order_id=decide(account).pk)
    assert order.status == S.FAILED and order.attempts == 1
    settings.HEADEND_SIMULATOR_FAIL = ""
    with time_machine.travel(MONDAY_10 + datetime.timedelta(minutes=61), tick=False):
        order = order_send(order_id=order.pk, force=True)
    assert order.status == S.CANCELLED and order.attempts == 1
    assert order.last_error.endswith("not sent, outside the disconnect window 10:00-11:00")


# --- Re-checked when the head-end confirms (SQLite) --------------------------------------------


@pytest.mark.django_db
def test_a_cut_confirmed_after_a_hold_was_entered_is_reversed_at_once(queued, manager):
    factories.policy("B")
    account = prepaid_account("-1.00")
    order = order_send(order_id=decide(account).pk)
    assert order.status == S.SENT
    today = local_today()
    ServiceHold.objects.create(
        account=account, kind=ServiceHold.Kind.CRITICAL_CARE, starts_on=today, expires_on=today
    )
    meter_tasks.order_confirm_task(order.pk)
    order.refresh_from_db()
    (reconnect,) = reconnects(account)
    assert order.status == S.CONFIRMED  # the switch did open
    assert status(account) == Account.Status.DISCONNECTED
    assert reconnect.reason == (
        f"Reversing disconnect #{order.pk}: Critical care (life support) hold until {today:%Y-%m-%d}"
    )
    assert reconnect.status == S.QUEUED and disconnect_notices(account) == 0
    order_send(order_id=reconnect.pk)
    meter_tasks.order_confirm_task(reconnect.pk)
    assert status(account) == Account.Status.ACTIVE and meter_is_on(account)


@pytest.mark.django_db
def test_a_field_cut_confirmed_by_a_clerk_after_the_balance_rose_is_reversed(queued, monkeypatch):
    factories.policy("B")
    account = prepaid_account("-1.00", remote=False)
    order = order_send(order_id=decide(account).pk)  # no remote switch: on the line crew's list
    assert (order.adapter, order.status) == (ServiceOrder.Adapter.FIELD, S.SENT)
    monkeypatch.setattr(prepaid, "credit_posted", lambda account: None)  # a credit that cancels nothing
    pay(account, "20.00")
    clerk = get_user_model().objects.create_user("clerk", password="x", is_staff=True)
    order_confirm(order_id=order.pk, actor=clerk)  # the crew cut it anyway
    (reconnect,) = reconnects(account)
    assert status(account) == Account.Status.DISCONNECTED
    assert reconnect.adapter == ServiceOrder.Adapter.FIELD and reconnect.requested_by == clerk
    assert reconnect.reason == (
        f"Reversing disconnect #{order.pk}: prepaid balance $19.00 is above the disconnect level $0.00"
    )


@pytest.mark.django_db
def test_an_unfunded_cut_is_confirmed_as_before_and_the_member_told(queued):
    factories.policy("B")
    account = prepaid_account("-1.00")
    order = order_send(order_id=decide(account).pk)
    meter_tasks.order_confirm_task(order.pk)
    assert status(account) == Account.Status.DISCONNECTED
    assert reconnects(account) == [] and not meter_is_on(account)
    assert disconnect_notices(account) == 1


# --- Races with a slow head-end (PostgreSQL, real threads) -------------------------------------


def _in_thread(target, errors):
    def run():
        try:
            target()
        except Exception as exc:  # noqa: BLE001 - asserted by the test
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _wait_for(condition, *, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_20_payment_while_the_head_end_is_slow_to_confirm_the_cut_leaves_service_on(monkeypatch, settings):
    """The disconnect step decides and sends the cut; the simulated head-end takes 1.5 s to say the
    switch opened. Meanwhile the member pays $20 in another thread."""
    monkeypatch.setattr(Conf, "SYNC", True)  # each task runs at once, in the thread that enqueued it
    settings.HEADEND_SIMULATOR_CONFIRM_DELAY_SECONDS = 1.5
    factories.policy("B")
    account = prepaid_account("-1.00")
    errors = []
    cutter = _in_thread(disconnect_run, errors)  # decides, sends, then waits for the head-end
    _wait_for(lambda: ServiceOrder.objects.filter(account=account, kind=K.DISCONNECT, status=S.SENT).exists())
    payer = _in_thread(lambda: pay(account, "20.00"), errors)
    for thread in (cutter, payer):
        thread.join(timeout=60)
    assert errors == []
    disconnect = ServiceOrder.objects.get(account=account, kind=K.DISCONNECT)
    assert disconnect.status == S.CANCELLED
    assert "prepaid balance $19.00 is above the disconnect level $0.00" in disconnect.last_error
    # The head-end had acted before the cancel arrived; the reconnect put the switch back.
    assert "Carried out by the head-end anyway" in disconnect.last_error
    assert reconnects(account) and all(r.status == S.CONFIRMED for r in reconnects(account))
    assert status(account) == Account.Status.ACTIVE and meter_is_on(account)
    assert account_balances(account).prepaid_credit == D("19.00")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("head_start", ["send", "payment"])
def test_a_payment_and_the_send_at_the_same_moment_never_leave_a_funded_account_cut(
    monkeypatch, settings, head_start
):
    """The order task and a $20 payment race for the account's row lock; whichever wins, the
    account ends in service with the meter on."""
    monkeypatch.setattr(Conf, "SYNC", True)
    settings.HEADEND_SIMULATOR_CONFIRM_DELAY_SECONDS = 0.5
    factories.policy("B")
    accounts = [prepaid_account("-1.00") for _ in range(3)]
    with monkeypatch.context() as m:
        m.setattr(q_tasks, "async_task", lambda *a, **k: None)  # decide only; the threads send
        disconnect_run()
    orders = {a.pk: ServiceOrder.objects.get(account=a, kind=K.DISCONNECT) for a in accounts}
    barrier, errors = threading.Barrier(2 * len(accounts)), []

    def send(account):
        barrier.wait(timeout=10)
        if head_start == "payment":
            time.sleep(0.05)
        order_send(order_id=orders[account.pk].pk)

    def payment(account):
        barrier.wait(timeout=10)
        if head_start == "send":
            time.sleep(0.05)
        pay(account, "20.00")

    threads = [_in_thread(lambda a=a: send(a), errors) for a in accounts]
    threads += [_in_thread(lambda a=a: payment(a), errors) for a in accounts]
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    for account in accounts:
        order = ServiceOrder.objects.get(pk=orders[account.pk].pk)
        assert order.status == S.CANCELLED
        assert status(account) == Account.Status.ACTIVE and meter_is_on(account)
        assert all(r.status == S.CONFIRMED for r in reconnects(account))


@pytest.mark.django_db
def test_a_failed_cut_of_a_funded_account_is_not_moved_to_the_field_list(queued, settings, monkeypatch):
    factories.policy("B")
    account = prepaid_account("-1.00")
    settings.HEADEND_SIMULATOR_FAIL = "all"
    order = order_send(order_id=decide(account).pk)
    assert order.status == S.FAILED
    monkeypatch.setattr(prepaid, "credit_posted", lambda account: None)  # a credit that cancels nothing
    pay(account, "20.00")
    with pytest.raises(
        IllegalOrderTransition, match=f"Disconnect order #{order.pk} must not go ahead: prepaid"
    ):
        order_move_to_field(order_id=order.pk)
    order.refresh_from_db()
    assert (order.status, order.adapter) == (S.FAILED, ServiceOrder.Adapter.SIMULATED_AMI)


@pytest.mark.django_db
def test_a_late_report_of_a_cancelled_cut_after_its_reconnect_was_carried_out_is_ignored(queued):
    factories.policy("B")
    account = prepaid_account("-1.00")
    order = order_send(order_id=decide(account).pk)
    pay(account, "20.00")  # cancels it, and a reconnect follows
    (reconnect,) = reconnects(account)
    order_send(order_id=reconnect.pk)
    meter_tasks.order_confirm_task(reconnect.pk)  # the head-end works in order: the switch is closed
    meter_tasks.order_confirm_task(order.pk)  # the earlier cut's report, arriving late
    order.refresh_from_db()
    assert order.last_error.endswith(f"after order #{reconnect.pk}: overtaken, ignored.")
    assert order.confirmed_at is None and reconnects(account) == [reconnect]
    assert status(account) == Account.Status.ACTIVE and meter_is_on(account)


@pytest.mark.django_db
def test_a_clerks_retry_of_a_cut_that_may_no_longer_happen_says_it_was_cancelled(
    queued, settings, monkeypatch, client, manager
):
    factories.policy("B")
    account = prepaid_account("-1.00")
    settings.HEADEND_SIMULATOR_FAIL = "all"
    order = order_send(order_id=decide(account).pk)
    settings.HEADEND_SIMULATOR_FAIL = ""
    monkeypatch.setattr(prepaid, "credit_posted", lambda account: None)  # a credit that cancels nothing
    pay(account, "20.00")
    client.force_login(manager)
    response = client.post(
        reverse("admin:meters_serviceorder_changelist"),
        {"action": "retry", "_selected_action": [order.pk], "index": 0},
        follow=True,
    )
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert any(m.startswith(f"Order #{order.pk}: not sent and cancelled: Cancelled at") for m in shown), shown
    order.refresh_from_db()
    assert order.status == S.CANCELLED and order.attempts == 1
