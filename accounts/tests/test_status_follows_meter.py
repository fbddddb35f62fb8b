"""Status follows the meter (issue 5, point 3): a clerk's status change never makes a move only
the meter's switch may make; a manager's reconnect of an unfunded account is its own button, and it
requests the reconnect order."""

import datetime

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from accounts import services
from accounts.exceptions import IllegalStatusTransition
from accounts.models import Account, AccountStatusChange, ServiceHold
from accounts.tests import factories
from accounts.tests.test_admin import _run_status_action
from coop import roles
from coop.calendar import local_today
from meters import services as meter_services
from meters import tasks as meter_tasks
from meters.models import ServiceOrder

pytestmark = pytest.mark.django_db

S = Account.Status
ACCOUNTS = reverse("admin:accounts_account_changelist")


def _messages(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def account_in(status):
    """An account in `status`, moved there the way the records allow, with an AMI meter."""
    account = factories.account()
    meter = meter_services.meter_create(serial=f"AMI-{account.pk}")
    meter_services.meter_install(
        meter=meter, location=account.location, installed_on=datetime.date(2026, 1, 5)
    )
    path = {
        S.PENDING: [],
        S.ACTIVE: [S.ACTIVE],
        S.DISCONNECTED: [S.ACTIVE, S.DISCONNECTED],
        S.INACTIVE: [S.ACTIVE, S.DISCONNECTED, S.INACTIVE],
    }[status]
    for step in path:
        services.account_change_status(account=account, to_status=step, actor=None, reason="setup")
    account.refresh_from_db()
    return account


def status_changes(account):
    return AccountStatusChange.objects.filter(account=account).exclude(reason="setup").count()


def status_post(client, account, to_status, reason="Member says the power is on"):
    return client.post(
        reverse("admin:accounts_account_status", args=[account.pk]),
        {"to_status": to_status, "reason": reason},
        follow=True,
    )


# --- The transition map ------------------------------------------------------------------------


def test_the_moves_by_hand_are_the_lifecycle_without_the_meter_moves():
    for status, allowed in Account.ALLOWED_TRANSITIONS.items():
        meter_moves = {to for (start, to) in Account.METER_TRANSITIONS if start == status}
        assert Account.MANUAL_TRANSITIONS[status] == allowed - meter_moves
    assert set(Account.METER_TRANSITIONS) <= {
        (start, to) for start, allowed in Account.ALLOWED_TRANSITIONS.items() for to in allowed
    }


@pytest.mark.parametrize(
    "start, to, says",
    [
        (S.DISCONNECTED, S.ACTIVE, "Service comes back only by a reconnect order"),
        (S.ACTIVE, S.DISCONNECTED, "Service is cut only by a disconnect order"),
        (S.ACTIVE, S.CLOSED, "it must be disconnected first"),
    ],
)
def test_a_move_only_the_meter_makes_is_refused_by_hand(clerk, start, to, says):
    account = account_in(start)
    with pytest.raises(IllegalStatusTransition, match=says) as refused:
        services.account_change_status_by_hand(account=account, to_status=to, actor=clerk, reason="asked")
    assert str(refused.value).startswith(
        f"Account {account.number} is {start.label.lower()} and cannot be made {to.label.lower()} by hand."
    )
    account.refresh_from_db()
    assert account.status == start and status_changes(account) == 0


@pytest.mark.parametrize(
    "start, to", [(S.PENDING, S.CLOSED), (S.PENDING, S.ACTIVE), (S.DISCONNECTED, S.INACTIVE)]
)
def test_a_move_with_no_meter_action_is_made_by_hand_with_its_audit_record(clerk, start, to):
    account = account_in(start)
    services.account_change_status_by_hand(account=account, to_status=to, actor=clerk, reason="asked")
    account.refresh_from_db()
    change = AccountStatusChange.objects.filter(account=account).exclude(reason="setup").get()
    assert account.status == to
    assert (change.from_status, change.to_status, change.actor, change.reason) == (start, to, clerk, "asked")


# --- The admin's "Change status" ---------------------------------------------------------------


def test_a_clerk_cannot_set_a_disconnected_account_active_on_its_page(client, clerk):
    account = account_in(S.DISCONNECTED)
    client.force_login(clerk)
    page = client.get(reverse("admin:accounts_account_change", args=[account.pk]))
    assert [value for value, _ in page.context["status_form"].fields["to_status"].widget.choices] == [
        "inactive"
    ]
    response = status_post(client, account, "active")  # a hand-made post
    assert any(
        m.startswith(f"Account {account.number} is disconnected and cannot be made active by hand.")
        for m in _messages(response)
    )
    account.refresh_from_db()
    assert account.status == S.DISCONNECTED and status_changes(account) == 0
    assert not ServiceOrder.objects.filter(account=account).exists()


def test_an_active_account_page_offers_no_status_change_at_all(client, clerk):
    account = account_in(S.ACTIVE)
    client.force_login(clerk)
    page = client.get(reverse("admin:accounts_account_change", args=[account.pk]))
    assert "status_form" not in page.context
    for to in ("disconnected", "closed"):
        status_post(client, account, to)
    account.refresh_from_db()
    assert account.status == S.ACTIVE and status_changes(account) == 0


def _bulk(client, accounts, to_status, reason="Cleanup"):
    return _run_status_action(client, accounts, to_status, reason)


def test_the_list_action_refuses_meter_moves_and_changes_none(client, clerk):
    off, pending = account_in(S.DISCONNECTED), account_in(S.PENDING)
    client.force_login(clerk)
    page = client.get(ACCOUNTS)
    offered = [v for v, _ in page.context["action_form"].fields["to_status"].widget.choices]
    assert offered == ["", "active", "inactive", "closed"]  # never "disconnected"
    response = _bulk(client, [off, pending], "active", "Paid at the window")
    messages = _messages(response)
    assert any(
        m.startswith(f"Account {off.number} is disconnected and cannot be made active") for m in messages
    )
    assert "Nothing was changed. Deselect those accounts and try again." in messages
    for account in (off, pending):
        before = account.status
        account.refresh_from_db()
        assert account.status == before
    response = _bulk(client, [pending], "closed", "Withdrawn")
    pending.refresh_from_db()
    assert pending.status == S.CLOSED


# --- The manager's override --------------------------------------------------------------------


def test_only_billing_managers_hold_the_reconnect_without_funds_permission():
    permission = Permission.objects.get(codename="reconnect_unfunded", content_type__app_label="meters")
    holders = set(permission.group_set.values_list("name", flat=True))
    assert holders == {roles.MANAGER}


def _override_url(account):
    return reverse("admin:meters_serviceorder_reconnect_unfunded", args=[account.pk])


def test_a_manager_reconnects_an_unfunded_account_with_a_reason_and_the_order_does_the_rest(client, manager):
    account = account_in(S.DISCONNECTED)
    client.force_login(manager)
    page = client.get(reverse("admin:accounts_account_change", args=[account.pk])).content.decode()
    assert "Reconnect without funds" in page and _override_url(account) in page
    # A rare override: below the form beside "Change status", not above the daily money work.
    assert page.index('id="account-status"') < page.index('id="reconnect-unfunded"')
    until = local_today() + datetime.timedelta(days=7)
    response = client.post(
        _override_url(account),
        {"reason": "Hospital discharge, pays Friday", "hold_until": until},
        follow=True,
    )
    (order,) = ServiceOrder.objects.filter(account=account, kind=ServiceOrder.Kind.RECONNECT)
    assert f"Reconnect order #{order.pk} requested for account {account.number}" in " ".join(
        _messages(response)
    )
    assert order.requested_by == manager and order.status == ServiceOrder.Status.QUEUED
    assert order.reason == (
        "Manager's override by manager (reconnect without funds): Hospital discharge, pays Friday"
    )
    hold = ServiceHold.objects.get(account=account)
    assert (hold.kind, hold.starts_on, hold.expires_on, hold.entered_by) == (
        ServiceHold.Kind.MANAGEMENT,
        local_today(),
        until,
        manager,
    )
    assert LogEntry.objects.filter(object_id=str(order.pk), user=manager).exists()
    account.refresh_from_db()
    assert account.status == S.DISCONNECTED  # until the meter confirms
    meter_services.order_send(order_id=order.pk)
    meter_tasks.order_confirm_task(order.pk)
    account.refresh_from_db()
    change = AccountStatusChange.objects.filter(account=account).latest("id")
    assert account.status == S.ACTIVE
    assert change.reason == f"Service order #{order.pk}: reconnect confirmed by the head-end"


def test_the_override_needs_a_reason(client, manager):
    account = account_in(S.DISCONNECTED)
    client.force_login(manager)
    response = client.post(_override_url(account), {"reason": "  "}, follow=True)
    assert "Reason: This field is required." in _messages(response)
    assert not ServiceOrder.objects.filter(account=account).exists()


def test_a_clerk_is_neither_offered_the_override_nor_allowed_it(client, clerk):
    account = account_in(S.DISCONNECTED)
    client.force_login(clerk)
    page = client.get(reverse("admin:accounts_account_change", args=[account.pk])).content.decode()
    assert "Reconnect without funds" not in page
    assert client.post(_override_url(account), {"reason": "asked nicely"}).status_code == 403
    with pytest.raises(meter_services.IllegalOrderTransition, match="Only a billing manager"):
        meter_services.order_reconnect_unfunded(account=account, actor=clerk, reason="asked nicely")
    assert not ServiceOrder.objects.filter(account=account).exists()


def test_the_override_is_only_for_a_disconnected_account(client, manager):
    account = account_in(S.INACTIVE)
    client.force_login(manager)
    response = client.post(_override_url(account), {"reason": "mistake"}, follow=True)
    assert (
        f"Account {account.number} is inactive; only a disconnected account (or a pending one whose "
        "meter was left switched off) is reconnected."
    ) in _messages(response)
    assert not ServiceOrder.objects.filter(account=account).exists()


def _meter_left_off():
    """The last account at a location was cut (the disconnect confirmed), then closed; a new
    member's account there is pending, its meter still switched off."""
    old = account_in(S.ACTIVE)
    cut = meter_services.order_request(account=old, kind=ServiceOrder.Kind.DISCONNECT, reason="moved out")
    meter_services.order_send(order_id=cut.pk)
    meter_tasks.order_confirm_task(cut.pk)
    for step in (S.INACTIVE, S.CLOSED):
        services.account_change_status(account=old, to_status=step, actor=None, reason="setup")
    return cut, factories.account(location=old.location)


def test_a_pending_account_whose_meter_was_left_off_is_not_made_active_by_hand(clerk):
    cut, new = _meter_left_off()
    with pytest.raises(IllegalStatusTransition) as refused:
        services.account_change_status_by_hand(
            account=new, to_status=S.ACTIVE, actor=clerk, reason="Meter set"
        )
    assert str(refused.value).startswith(
        f"Account {new.number} cannot be made active by hand: meter {cut.meter.serial} at this location was "
        f"switched off by order #{cut.pk} (account {cut.account.number}) and has not been switched on since."
    )
    new.refresh_from_db()
    assert new.status == S.PENDING
    # Closing it instead needs nothing from the meter.
    services.account_change_status_by_hand(account=new, to_status=S.CLOSED, actor=clerk, reason="withdrawn")


@pytest.mark.parametrize("how", ["removed", "deleted", "moved"])
def test_taking_the_switched_off_meter_off_the_books_does_not_let_the_account_be_made_active_by_hand(
    clerk, how
):
    """Recording the meter as removed, deleting its installation (a manager may) or moving the
    installation to another location (a clerk may edit it) leaves the location with no meter on
    the books; none of it switches the meter on, so the account still needs a reconnect order."""
    from meters.models import MeterInstallation

    cut, new = _meter_left_off()
    installation = MeterInstallation.objects.get(meter=cut.meter, removed_on__isnull=True)
    if how == "removed":
        meter_services.meter_remove(installation=installation, removed_on=datetime.date(2026, 2, 1))
    elif how == "deleted":
        installation.delete()
    else:
        installation.location = factories.location()
        installation.save()
    assert meter_services.current_meter(new.location_id) is None
    with pytest.raises(IllegalStatusTransition, match=f"meter {cut.meter.serial} .* was switched off"):
        services.account_change_status_by_hand(
            account=new, to_status=S.ACTIVE, actor=clerk, reason="Meter set"
        )
    new.refresh_from_db()
    assert new.status == S.PENDING


def test_a_manager_switches_on_the_meter_of_such_a_pending_account_and_it_becomes_active(client, manager):
    cut, new = _meter_left_off()
    client.force_login(manager)
    page = client.get(reverse("admin:accounts_account_change", args=[new.pk])).content.decode()
    assert _override_url(new) in page
    client.post(_override_url(new), {"reason": "New member, deposit paid"})
    (order,) = ServiceOrder.objects.filter(account=new)
    assert (order.kind, order.meter, order.requested_by) == (ServiceOrder.Kind.RECONNECT, cut.meter, manager)
    meter_services.order_send(order_id=order.pk)
    meter_tasks.order_confirm_task(order.pk)
    new.refresh_from_db()
    assert new.status == S.ACTIVE and new.opened_on is not None
    assert meter_services.meter_left_off(new) is None


def test_a_pending_account_with_its_meter_on_gets_no_override_box(client, manager):
    account = account_in(S.PENDING)
    client.force_login(manager)
    page = client.get(reverse("admin:accounts_account_change", args=[account.pk])).content.decode()
    assert _override_url(account) not in page
