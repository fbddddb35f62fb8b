"""Service orders: requesting, sending through the head-end adapters, retrying, the field list."""

import datetime

import pytest
import time_machine
from django.urls import reverse

from accounts.models import Account, AccountStatusChange
from accounts.services import account_change_status
from accounts.tests import factories
from coop import roles
from meters import services, tasks
from meters.exceptions import IllegalOrderTransition
from meters.models import ServiceOrder

pytestmark = pytest.mark.django_db

S = ServiceOrder.Status
K = ServiceOrder.Kind
T0 = datetime.datetime(2026, 11, 23, 16, 0, tzinfo=datetime.UTC)  # Monday 10:00 in Chicago
CHANGELIST = reverse("admin:meters_serviceorder_changelist")
FIELD_LIST = reverse("admin:meters_serviceorder_field_list")


def active_account(*, serial, remote=True, line1=None, city="Hawkins", status=Account.Status.ACTIVE):
    location = factories.location(**({"line1": line1} if line1 else {}), city=city)
    account = factories.account_with_meter(serial=serial, remote=remote, location=location)
    if status == Account.Status.DISCONNECTED:
        account_change_status(account=account, to_status=status, actor=None, reason="test setup")
    account.refresh_from_db()
    return account


def request(account, kind=K.DISCONNECT, **kw):
    return services.order_request(account=account, kind=kind, reason="Prepaid balance $0.00", **kw)


# --- Requesting -------------------------------------------------------------------------------


def test_a_remote_capable_meter_gets_the_simulated_head_end_and_a_plain_one_a_field_order(queued):
    remote = request(active_account(serial="AMI1"))
    manual = request(active_account(serial="OLD1", remote=False))
    assert (remote.adapter, remote.meter.serial) == (ServiceOrder.Adapter.SIMULATED_AMI, "AMI1")
    assert (manual.adapter, manual.meter.serial) == (ServiceOrder.Adapter.FIELD, "OLD1")
    assert remote.status == manual.status == S.QUEUED


def test_a_second_request_of_the_same_kind_returns_the_open_order(queued):
    account = active_account(serial="AMI1")
    first = request(account)
    again = request(account)
    assert again.pk == first.pk
    assert ServiceOrder.objects.filter(account=account).count() == 1


def test_a_reconnect_request_cancels_an_open_disconnect_and_vice_versa(queued):
    account = active_account(serial="AMI1")
    disconnect = request(account)
    reconnect = request(account, K.RECONNECT)
    disconnect.refresh_from_db()
    assert disconnect.status == S.CANCELLED
    assert "superseded by a reconnect request" in disconnect.last_error
    assert reconnect.status == S.QUEUED
    again = request(account)
    reconnect.refresh_from_db()
    assert reconnect.status == S.CANCELLED and again.status == S.QUEUED and again.pk != disconnect.pk


def test_the_send_task_is_enqueued_only_after_commit(queued, django_capture_on_commit_callbacks):
    account = active_account(serial="AMI1")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        order = request(account)
    assert queued == []  # nothing reaches the cluster inside the transaction
    assert len(callbacks) == 1
    callbacks[0]()
    assert queued == [("meters.tasks.order_send_task", (order.pk,), {})]


# --- The simulated head-end ---------------------------------------------------------------------


def test_the_simulated_head_end_confirms_and_the_account_becomes_disconnected(
    q_sync, django_capture_on_commit_callbacks
):
    account = active_account(serial="AMI1")
    with django_capture_on_commit_callbacks(execute=True):
        order = request(account)
    order.refresh_from_db()
    account.refresh_from_db()
    assert order.status == S.CONFIRMED
    assert order.external_id == f"SIM-{order.pk}-1" and order.attempts == 1
    assert order.sent_at is not None and order.confirmed_at is not None and order.confirmed_by is None
    assert account.status == Account.Status.DISCONNECTED
    change = AccountStatusChange.objects.filter(account=account).first()
    assert change.to_status == Account.Status.DISCONNECTED
    assert f"Service order #{order.pk}: disconnect confirmed by the head-end" in change.reason


def test_a_reconnect_confirmation_makes_a_disconnected_account_active(
    q_sync, django_capture_on_commit_callbacks
):
    account = active_account(serial="AMI1", status=Account.Status.DISCONNECTED)
    with django_capture_on_commit_callbacks(execute=True):
        order = request(account, K.RECONNECT)
    order.refresh_from_db()
    account.refresh_from_db()
    assert order.status == S.CONFIRMED and account.status == Account.Status.ACTIVE


def test_the_send_and_confirm_tasks_are_safe_to_run_twice(queued, django_capture_on_commit_callbacks):
    account = active_account(serial="AMI1")
    order = request(account)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.order_send_task(order.pk) == S.SENT
        assert tasks.order_send_task(order.pk) == S.SENT
    order.refresh_from_db()
    assert order.attempts == 1
    assert [c[0] for c in queued].count("meters.tasks.order_confirm_task") == 1
    assert tasks.order_confirm_task(order.pk) == S.CONFIRMED
    assert tasks.order_confirm_task(order.pk) is None  # already confirmed: ignored
    assert AccountStatusChange.objects.filter(account=account, to_status="disconnected").count() == 1


def test_a_cancelled_disconnect_the_head_end_carried_out_anyway_is_reversed_at_once(queued):
    # Until issue 5 a late confirmation of a cancelled disconnect was ignored, leaving the meter
    # off while the records said "in service".
    account = active_account(serial="AMI1")
    order = request(account)
    services.order_send(order_id=order.pk)
    services.order_cancel(order_id=order.pk, reason="member paid")
    assert tasks.order_confirm_task(order.pk) == S.CANCELLED  # the head-end acted before the cancel
    order.refresh_from_db()
    account.refresh_from_db()
    (reconnect,) = ServiceOrder.objects.filter(account=account, kind=K.RECONNECT)
    assert order.status == S.CANCELLED and order.confirmed_at is not None
    assert order.last_error.startswith("Cancelled at ") and ": member paid Carried out by" in order.last_error
    assert order.last_error.endswith(f"reversed by reconnect order #{reconnect.pk}.")
    assert account.status == Account.Status.DISCONNECTED  # the meter is off: the records say so
    assert reconnect.status == S.QUEUED
    assert (
        reconnect.reason
        == f"Reversing disconnect #{order.pk}: carried out by the head-end after it was cancelled"
    )
    # A second report of the same cut changes nothing more.
    assert tasks.order_confirm_task(order.pk) is None
    assert ServiceOrder.objects.filter(account=account, kind=K.RECONNECT).count() == 1
    services.order_send(order_id=reconnect.pk)
    tasks.order_confirm_task(reconnect.pk)
    account.refresh_from_db()
    assert account.status == Account.Status.ACTIVE


def test_a_late_confirmation_of_a_cancelled_reconnect_is_ignored(queued):
    account = active_account(serial="AMI1", status=Account.Status.DISCONNECTED)
    order = request(account, K.RECONNECT)
    services.order_send(order_id=order.pk)
    services.order_cancel(order_id=order.pk, reason="payment returned")
    assert tasks.order_confirm_task(order.pk) is None
    account.refresh_from_db()
    assert account.status == Account.Status.DISCONNECTED


def test_a_cancelled_order_cannot_be_confirmed(queued):
    order = request(active_account(serial="AMI1"))
    services.order_cancel(order_id=order.pk, reason="entered by mistake")
    with pytest.raises(IllegalOrderTransition, match="is cancelled and cannot become confirmed"):
        services.order_confirm(order_id=order.pk)


def test_a_failing_head_end_is_retried_with_backoff_then_left_failed_for_staff(queued, settings, client):
    settings.HEADEND_SIMULATOR_FAIL = "ami9, OTHER"
    settings.HEADEND_MAX_ATTEMPTS = 3
    settings.HEADEND_RETRY_BASE_SECONDS = 60
    minute = datetime.timedelta(minutes=1)
    with time_machine.travel(T0, tick=False):
        order = request(active_account(serial="AMI9"))
        services.order_send(order_id=order.pk)
    order.refresh_from_db()
    assert (order.status, order.attempts, order.next_attempt_at) == (S.FAILED, 1, T0 + minute)
    assert "did not answer (HEADEND_SIMULATOR_FAIL)" in order.last_error

    assert services.order_send(order_id=order.pk, now=T0 + minute / 2).attempts == 1  # not yet due
    assert services.orders_retry_due(now=T0 + minute / 2) == 0
    assert services.orders_retry_due(now=T0 + minute) == 1
    order.refresh_from_db()
    assert (order.attempts, order.next_attempt_at) == (2, T0 + 3 * minute)  # waits 2 minutes now
    assert services.orders_retry_due(now=T0 + 3 * minute) == 1
    order.refresh_from_db()
    assert (order.status, order.attempts, order.next_attempt_at) == (S.FAILED, 3, None)  # out of attempts
    assert services.orders_retry_due(now=T0 + datetime.timedelta(days=1)) == 0

    client.force_login(factories.superuser())
    response = client.get(CHANGELIST, {"attention": "failed"})
    assert response.status_code == 200
    assert [o.pk for o in response.context["cl"].result_list] == [order.pk]
    assert f'href="{FIELD_LIST}"' in response.content.decode()  # the printable list is one click away


def test_a_permanent_head_end_error_is_not_retried(queued, settings):
    settings.HEADEND_SIMULATOR_FAIL_PERMANENT = "all"
    order = request(active_account(serial="AMI1"))
    services.order_send(order_id=order.pk)
    order.refresh_from_db()
    assert (order.status, order.attempts, order.next_attempt_at) == (S.FAILED, 1, None)
    assert "unknown to the head-end" in order.last_error


def test_a_queued_order_whose_send_task_was_lost_is_sent_by_the_retry_sweep(queued):
    with time_machine.travel(T0, tick=False):
        order = request(active_account(serial="AMI1"))
    assert services.orders_retry_due(now=T0 + datetime.timedelta(seconds=59)) == 0
    assert services.orders_retry_due(now=T0 + datetime.timedelta(seconds=60)) == 1
    order.refresh_from_db()
    assert order.status == S.SENT


def test_illegal_moves_are_refused():
    assert S.CONFIRMED not in services.ORDER_TRANSITIONS[S.QUEUED]
    assert services.ORDER_TRANSITIONS[S.CONFIRMED] == services.ORDER_TRANSITIONS[S.CANCELLED] == frozenset()


# --- Field orders ---------------------------------------------------------------------------------


def test_a_meter_without_a_remote_switch_goes_to_the_field_list_and_a_clerk_confirms_it(
    queued, client, django_capture_on_commit_callbacks
):
    north = active_account(serial="OLD2", remote=False, line1="N500 Pine St", city="Ladysmith")
    south = active_account(serial="OLD1", remote=False, line1="S100 Oak Rd", city="Hawkins")
    orders = [request(north), request(south)]
    with django_capture_on_commit_callbacks(execute=True):
        for order in orders:
            tasks.order_send_task(order.pk)
    assert {o.status for o in ServiceOrder.objects.all()} == {S.SENT}
    assert not [c for c in queued if c[0] == "meters.tasks.order_confirm_task"]  # nobody confirms by itself

    clerk = factories.staff(roles.CLERK, "clerk")
    client.force_login(clerk)
    response = client.get(FIELD_LIST)
    assert response.status_code == 200
    assert [o.account.number for o in response.context["orders"]] == [south.number, north.number]  # by town
    page = response.content.decode()
    assert "@media print" in page and "S100 Oak Rd" in page and "OLD1" in page
    assert south.member.full_name in page and "Prepaid balance $0.00" in page

    confirm = reverse("admin:meters_serviceorder_field_confirm", args=[orders[1].pk])
    assert client.post(confirm).status_code == 302
    done = ServiceOrder.objects.get(pk=orders[1].pk)
    south.refresh_from_db()
    assert (done.status, done.confirmed_by, done.confirmed_at is not None) == (S.CONFIRMED, clerk, True)
    assert south.status == Account.Status.DISCONNECTED
    assert "confirmed by the line crew" in south.status_changes.first().reason
    assert south.status_changes.first().actor == clerk
    assert [o.pk for o in client.get(FIELD_LIST).context["orders"]] == [orders[0].pk]


def test_an_auditor_sees_the_field_list_but_cannot_confirm(queued, client):
    order = request(active_account(serial="OLD1", remote=False))
    client.force_login(factories.staff(roles.AUDITOR, "audit"))
    response = client.get(FIELD_LIST)
    assert response.status_code == 200 and "Confirm done" not in response.content.decode()
    confirm = reverse("admin:meters_serviceorder_field_confirm", args=[order.pk])
    assert client.post(confirm).status_code == 403


def test_staff_move_a_failed_order_to_the_field_list_and_confirm_it_with_the_action(queued, settings, client):
    settings.HEADEND_SIMULATOR_FAIL_PERMANENT = "AMI1"
    account = active_account(serial="AMI1")
    order = request(account)
    services.order_send(order_id=order.pk)
    clerk = factories.staff(roles.CLERK, "clerk")
    client.force_login(clerk)
    client.post(CHANGELIST, {"action": "move_to_field", "_selected_action": [order.pk]})
    order.refresh_from_db()
    assert (order.adapter, order.status) == (ServiceOrder.Adapter.FIELD, S.SENT)
    assert order.last_error.startswith("Moved to the field list by clerk from Simulated AMI head-end.")
    client.post(CHANGELIST, {"action": "confirm_field_orders", "_selected_action": [order.pk]})
    order.refresh_from_db()
    account.refresh_from_db()
    assert (order.status, order.confirmed_by) == (S.CONFIRMED, clerk)
    assert account.status == Account.Status.DISCONNECTED


def test_the_cancel_action_needs_a_reason(queued, client):
    order = request(active_account(serial="AMI1"))
    client.force_login(factories.staff(roles.CLERK, "clerk"))
    client.post(CHANGELIST, {"action": "cancel", "_selected_action": [order.pk], "reason": ""})
    order.refresh_from_db()
    assert order.status == S.QUEUED
    client.post(CHANGELIST, {"action": "cancel", "_selected_action": [order.pk], "reason": "wrong account"})
    order.refresh_from_db()
    assert order.status == S.CANCELLED and "wrong account" in order.last_error


def test_the_order_pages_are_read_only(queued, client):
    order = request(active_account(serial="AMI1"))
    client.force_login(factories.superuser())
    response = client.get(reverse("admin:meters_serviceorder_change", args=[order.pk]))
    assert response.status_code == 200
    assert response.context["adminform"].form.fields == {}
    assert client.get(reverse("admin:meters_serviceorder_add")).status_code == 403
