"""Restoring prepaid service (billing/prepaid.py): the amount needed, and the payment hook."""

import datetime
from decimal import Decimal

import pytest
from django.db import transaction
from django.urls import reverse

from accounts.models import Account
from accounts.services import account_change_status
from accounts.tests import factories
from billing import services
from billing.prepaid import reconnect_if_restored, restore_amount_needed
from billing.selectors import account_balances
from coop.calendar import coop_zone
from meters.models import ServiceOrder
from meters.services import order_request, order_send

D = Decimal
K, S = ServiceOrder.Kind, ServiceOrder.Status
NOW = datetime.datetime(2026, 11, 23, 14, 5, tzinfo=coop_zone())  # Monday afternoon, Chicago
RECONNECT_TASK = "billing.prepaid.reconnect_if_restored"
NOTICES_TASK = "notifications.tasks.messages_send_task"  # the payment's receipt


pytestmark = [pytest.mark.frozen(NOW)]


_refs = iter(range(1, 10_000))


def pay(account, amount):
    return services.payment_post(
        account=account, amount=amount, tender="card", reference=f"ref-{next(_refs)}"
    )[0]


def prepaid(balance, *, status=Account.Status.DISCONNECTED, start="50.00"):
    """A prepaid account with an AMI meter that paid `start`, then used energy down to `balance`."""
    account = factories.account_with_meter()
    if D(start):
        pay(account, start)
    used = D(start) - D(balance)
    if used:
        services.fee_charge(account=account, code="energy", amount=used, memo="energy used")
    if status == Account.Status.DISCONNECTED:
        account_change_status(account=account, to_status=status, actor=None, reason="disconnect confirmed")
    account.refresh_from_db()
    assert account_balances(account).prepaid_credit == D(balance)
    return account


def with_plan(account, manager, arrears):
    services.debt_transfer_to_arrears(account=account, amount=arrears, actor=manager, reason="converted")
    return services.plan_enroll(account=account, actor=manager)


def reconnects(account):
    return list(ServiceOrder.objects.filter(account=account, kind=K.RECONNECT))


# --- How much is needed -----------------------------------------------------------------------


@pytest.mark.django_db
def test_program_e_needs_20_plus_the_debt_used_while_negative():
    factories.policy("E")
    assert restore_amount_needed(prepaid("-5.50")) == D("25.50")  # the seed's own example


@pytest.mark.django_db
def test_program_a_needs_a_50_credit_counting_what_was_used_below_zero():
    factories.policy("A")
    assert restore_amount_needed(prepaid("-3.20")) == D("53.20")
    assert restore_amount_needed(prepaid("0.00")) == D("50.00")


@pytest.mark.django_db
def test_program_b_with_a_35_percent_plan_is_grossed_up_so_25_reaches_the_balance(manager):
    factories.policy("B")
    account = prepaid("0.00")
    with_plan(account, manager, D("500.00"))
    needed = restore_amount_needed(account)
    assert needed == D("38.46")  # 35% of 38.46 is 13.46 for the debt, 25.00 for the balance
    # A cent less would not do: the split rounds the debt's share half up.
    payment = pay(account, "38.45")
    assert (payment.to_arrears, payment.to_credit) == (D("13.46"), D("24.99"))


@pytest.mark.django_db
def test_the_grossed_up_amount_really_restores_service(manager, queued):
    factories.policy("B")
    account = prepaid("0.00")
    with_plan(account, manager, D("500.00"))
    payment = pay(account, restore_amount_needed(account))
    assert (payment.to_arrears, payment.to_credit) == (D("13.46"), D("25.00"))
    assert account_balances(account).prepaid_credit == D("25.00")
    assert restore_amount_needed(account) == D("0.00")


@pytest.mark.django_db
def test_program_e_with_its_20_percent_plan(manager):
    factories.policy("E")
    account = prepaid("-5.50")
    with_plan(account, manager, D("80.00"))
    assert restore_amount_needed(account) == D("31.87")  # 20% of 31.87 is 6.37; 25.50 credited


@pytest.mark.django_db
def test_a_plan_never_takes_more_than_the_arrears(manager):
    factories.policy("B")
    account = prepaid("0.00")
    with_plan(account, manager, D("2.00"))
    assert restore_amount_needed(account) == D("27.00")


@pytest.mark.django_db
def test_at_least_the_minimum_payment_and_nothing_when_already_enough():
    factories.policy("B")
    assert restore_amount_needed(prepaid("20.00")) == D("10.00")  # $5 short, $10 minimum payment
    assert restore_amount_needed(prepaid("25.00")) == D("0.00")


@pytest.mark.django_db
def test_the_account_page_shows_the_amount_needed_to_restore_service(client):
    factories.policy("E")
    account = prepaid("-5.50")
    client.force_login(factories.superuser())
    page = client.get(reverse("admin:accounts_account_change", args=[account.pk])).content.decode()
    assert "Amount needed to restore service: $25.50" in page
    active = prepaid("-5.50", status=Account.Status.ACTIVE)
    page = client.get(reverse("admin:accounts_account_change", args=[active.pk])).content.decode()
    assert "Amount needed to restore service" not in page


# --- The payment hook and the reconnect order -------------------------------------------------


@pytest.mark.django_db
def test_a_payment_that_restores_service_sends_a_reconnect_order_at_once(
    q_sync, django_capture_on_commit_callbacks
):
    factories.policy("E")
    account = prepaid("-5.50")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        pay(account, "25.50")
    assert callbacks  # the check ran only on commit
    (order,) = reconnects(account)
    account.refresh_from_db()
    assert order.due_by == NOW + datetime.timedelta(minutes=15)  # the policy's restore_within_minutes
    assert order.sent_at == NOW and order.status == S.CONFIRMED  # sent (and confirmed) within the minute
    assert order.reason == "Prepaid balance $20.00 reaches the restore level $20.00"
    assert account.status == Account.Status.ACTIVE


@pytest.mark.django_db
def test_the_payment_enqueues_the_reconnect_check_with_the_account_id(
    queued, django_capture_on_commit_callbacks
):
    factories.policy("E")
    account = prepaid("-5.50")
    with django_capture_on_commit_callbacks(execute=True):
        pay(account, "25.50")
    assert (RECONNECT_TASK, (), {"account_id": account.pk}) in queued
    assert sorted(func for func, _, _ in queued) == [RECONNECT_TASK, NOTICES_TASK]


@pytest.mark.django_db
def test_a_payment_short_of_the_level_orders_nothing(q_sync, django_capture_on_commit_callbacks):
    factories.policy("E")
    account = prepaid("-5.50")
    with django_capture_on_commit_callbacks(execute=True):
        pay(account, "25.49")
    assert reconnects(account) == []
    assert restore_amount_needed(account) == D("0.01")


@pytest.mark.django_db
def test_a_payment_to_an_active_account_enqueues_no_reconnect_check(
    queued, django_capture_on_commit_callbacks
):
    factories.policy("E")
    account = prepaid("10.00", status=Account.Status.ACTIVE)
    with django_capture_on_commit_callbacks(execute=True):
        pay(account, "20.00")
    assert [func for func, _, _ in queued] == [NOTICES_TASK]


@pytest.mark.django_db
def test_a_payment_before_the_disconnect_was_sent_only_cancels_it(queued, django_capture_on_commit_callbacks):
    factories.policy("E")
    account = prepaid("-5.50", status=Account.Status.ACTIVE)
    disconnect = order_request(account=account, kind=K.DISCONNECT, reason="negative balance")
    with django_capture_on_commit_callbacks(execute=True):
        pay(account, "30.00")
    reconnect_if_restored(account_id=account.pk)  # what the enqueued task runs
    disconnect.refresh_from_db()
    assert disconnect.status == S.CANCELLED and reconnects(account) == []


@pytest.mark.django_db
def test_a_payment_after_the_head_end_took_the_disconnect_cancels_it_and_reconnects(queued):
    factories.policy("E")
    account = prepaid("-5.50", status=Account.Status.ACTIVE)
    disconnect = order_request(account=account, kind=K.DISCONNECT, reason="negative balance")
    order_send(order_id=disconnect.pk)  # the switch may already be open
    pay(account, "30.00")
    order = reconnect_if_restored(account_id=account.pk)
    disconnect.refresh_from_db()
    assert disconnect.status == S.CANCELLED
    assert order.kind == K.RECONNECT and order.status == S.QUEUED


@pytest.mark.django_db
def test_the_reconnect_check_is_safe_to_run_twice(queued):
    factories.policy("E")
    account = prepaid("-5.50")
    pay(account, "25.50")
    first = reconnect_if_restored(account_id=account.pk)
    again = reconnect_if_restored(account_id=account.pk)
    assert first.pk == again.pk and len(reconnects(account)) == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_committed_payment_enqueues_the_reconnect_check_after_commit(queued):
    factories.policy("E")
    account = prepaid("-5.50")
    queued.clear()
    with transaction.atomic():
        pay(account, "25.50")
        assert queued == []  # not while the payment may still roll back
    assert (RECONNECT_TASK, (), {"account_id": account.pk}) in queued
    assert sorted(func for func, _, _ in queued) == [RECONNECT_TASK, NOTICES_TASK]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_rolled_back_payment_queues_nothing(queued):
    factories.policy("E")
    account = prepaid("-5.50")
    queued.clear()
    with pytest.raises(RuntimeError), transaction.atomic():
        pay(account, "25.50")
        raise RuntimeError("the clerk's batch failed after this payment")
    assert queued == []
    assert account_balances(account).prepaid_credit == D("-5.50")
    assert reconnects(account) == []
