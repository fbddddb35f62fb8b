"""Writes for members, service locations and accounts. Each validates fully before saving."""

import datetime

from django.db import transaction
from django.utils import timezone

from accounts.exceptions import IllegalStatusTransition
from accounts.models import Account, AccountStatusChange, Member, ServiceLocation
from coop.lifecycle import check_transition
from coop.validators import check_texts


def _save_new(instance):
    instance.full_clean()
    instance.save()
    return instance


@transaction.atomic
def member_create(*, actor=None, **fields) -> Member:
    """Create a member. Bad input (an invalid phone number for the region, a malformed email)
    raises ValidationError naming the field, and nothing is saved."""
    member = Member(**fields)
    member._history_user = actor
    return _save_new(member)


@transaction.atomic
def location_create(*, actor=None, **fields) -> ServiceLocation:
    location = ServiceLocation(**fields)
    location._history_user = actor
    return _save_new(location)


def next_account_number() -> str:
    """Account numbers are seven digits, allocated in order after the highest numeric one."""
    last = (
        Account.objects.filter(number__regex=r"^[0-9]{7}$")
        .order_by("-number")
        .values_list("number", flat=True)
    ).first()
    return f"{int(last) + 1 if last else 1000001:07d}"


@transaction.atomic
def account_open(
    *,
    actor,
    member: Member,
    location: ServiceLocation,
    billing_mode: str,
    billing_cycle=None,
    number: str | None = None,
    opened_on: datetime.date | None = None,
) -> Account:
    """Open a new account in status pending. It becomes active through account_change_status
    once enrollment is complete (deposit or starting balance received, meter set)."""
    account = Account(
        number=number or next_account_number(),
        member=member,
        location=location,
        billing_mode=billing_mode,
        billing_cycle=billing_cycle,
        opened_on=opened_on,
        status=Account.Status.PENDING,
        status_changed_at=timezone.now(),
    )
    account._history_user = actor
    return _save_new(account)


@transaction.atomic
def account_change_status(*, account: Account, to_status: str, actor, reason: str) -> Account:
    """Move an account to another status along the allowed lifecycle, with an audit record.

    The account row is locked first so two clerks (or a clerk and the daily run) cannot both
    move it from the same starting status.
    """
    check_texts(reason=reason)
    if not reason or not reason.strip():
        raise IllegalStatusTransition("Say why the status is changing.")
    locked = Account.objects.select_for_update().get(pk=account.pk)
    from_status = Account.Status(locked.status)
    to_status = Account.Status(to_status)
    check_transition(
        Account.ALLOWED_TRANSITIONS,
        from_status,
        to_status,
        what=f"Account {locked.number}",
        choices=Account.Status,
        error=IllegalStatusTransition,
    )
    now = timezone.now()
    locked.status = to_status
    locked.status_changed_at = now
    today = timezone.localdate(now)
    if to_status == Account.Status.ACTIVE and locked.opened_on is None:
        locked.opened_on = today
    if to_status == Account.Status.CLOSED:
        locked.closed_on = today
    locked._history_user = actor
    # The history's reason column holds 100 characters; the full reason is in AccountStatusChange.
    locked._change_reason = reason.strip()[:100]
    locked.save()
    AccountStatusChange.objects.create(
        account=locked,
        from_status=from_status,
        to_status=to_status,
        changed_at=now,
        actor=actor,
        reason=reason.strip(),
    )
    account.refresh_from_db()
    return locked


# What a clerk is told instead of a move only the meter may make (Account.METER_TRANSITIONS).
_METER_MOVE_HELP = {
    (Account.Status.ACTIVE, Account.Status.DISCONNECTED): (
        "Service is cut only by a disconnect order; the account becomes disconnected when the "
        "meter's switch is confirmed open."
    ),
    (Account.Status.DISCONNECTED, Account.Status.ACTIVE): (
        "Service comes back only by a reconnect order: a payment that reaches the restore level "
        'requests one, or a billing manager\'s "Reconnect without funds" on the account page. '
        "The account becomes active when the meter's switch is confirmed closed."
    ),
    (Account.Status.ACTIVE, Account.Status.CLOSED): (
        "Closing it would leave its meter on with nobody billed: it must be disconnected first "
        "(a disconnect order), then it can be made inactive and closed."
    ),
}


# "Is this pending account's meter switched off?" Callables `check(account) -> str | None` that
# meters registers at start-up (meters.apps: meters.services.meter_left_off), so accounts never
# imports meters. A pending account whose meter was left switched off (by the last account at the
# location) needs a reconnect order, not a clerk's hand, to become active.
ACTIVATION_CHECKS = []


@transaction.atomic
def account_change_status_by_hand(*, account: Account, to_status: str, actor, reason: str) -> Account:
    """A clerk's status change (the admin's "Change status" box and list action): only the moves
    that need nothing from the meter (Account.MANUAL_TRANSITIONS, such as closing a pending
    account). A move the meter's switch must make is refused with what to do instead; it
    happens when the service order is confirmed (meters.services.order_confirm)."""
    locked = Account.objects.select_for_update().get(pk=account.pk)
    from_status = Account.Status(locked.status)
    to_status = Account.Status(to_status)
    if (from_status, to_status) in Account.METER_TRANSITIONS:
        raise IllegalStatusTransition(
            f"Account {locked.number} is {from_status.label.lower()} and cannot be made "
            f"{to_status.label.lower()} by hand. {_METER_MOVE_HELP[from_status, to_status]}"
        )
    if (from_status, to_status) == (Account.Status.PENDING, Account.Status.ACTIVE):
        for check in ACTIVATION_CHECKS:
            if off := check(locked):
                raise IllegalStatusTransition(
                    f"Account {locked.number} cannot be made active by hand: {off}. A billing manager "
                    'connects it with "Reconnect without funds" on its page; it becomes active when '
                    "the meter's switch is confirmed closed."
                )
    check_transition(
        Account.MANUAL_TRANSITIONS,
        from_status,
        to_status,
        what=f"Account {locked.number}",
        choices=Account.Status,
        error=IllegalStatusTransition,
    )
    return account_change_status(account=account, to_status=to_status, actor=actor, reason=reason)
