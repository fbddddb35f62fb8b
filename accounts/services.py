"""Writes for members, service locations, accounts and disconnect holds. Each validates fully
before saving (bad input raises ValidationError naming the field, and nothing is saved) and
records who did it (and why, where there is a reason) in the row's django-simple-history trail
(coop/history.py), in the same transaction; an account's status moves also keep their own trail
(AccountStatusChange)."""

import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.exceptions import BulkStatusChangeRefused, IllegalStatusTransition
from accounts.models import Account, AccountStatusChange, Member, ServiceHold, ServiceLocation
from coop.calendar import local_today
from coop.history import change_with_history, create_with_history, editable_fields
from coop.lifecycle import check_transition
from coop.validators import ValueRefused, check_texts


@transaction.atomic
def member_create(*, actor=None, **fields) -> Member:
    """Create a member. Bad input (an invalid phone number for the region, a malformed email)
    raises ValidationError naming the field, and nothing is saved."""
    editable_fields(Member, fields, fixed=("created_at",))
    return create_with_history(Member(**fields), actor=actor)


@transaction.atomic
def member_update(*, actor, member: Member, **fields) -> Member:
    """Change a member's name, contact details, mailing address or login."""
    editable_fields(Member, fields, fixed=("created_at",))
    return change_with_history(member, actor=actor, fields=fields)


@transaction.atomic
def location_create(*, actor=None, **fields) -> ServiceLocation:
    editable_fields(ServiceLocation, fields)
    return create_with_history(ServiceLocation(**fields), actor=actor)


@transaction.atomic
def location_update(*, actor, location: ServiceLocation, **fields) -> ServiceLocation:
    """Change a service location's address or its service (phase, amperage, base, rate class)."""
    editable_fields(ServiceLocation, fields)
    return change_with_history(location, actor=actor, fields=fields)


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
    return create_with_history(account, actor=actor)


@transaction.atomic
def account_change_cycle(*, actor, account: Account, billing_cycle) -> Account:
    """Put a postpaid account on another billing cycle (the one thing edited on an account's
    page: a member or location change is a transfer, a billing mode change a conversion)."""

    def postpaid(locked: Account) -> None:
        if locked.billing_mode == Account.BillingMode.PREPAID:
            raise ValidationError({"billing_cycle": "A prepaid account has no billing cycle."})

    return change_with_history(account, actor=actor, fields={"billing_cycle": billing_cycle}, check=postpaid)


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


@transaction.atomic
def accounts_change_status_by_hand(*, accounts: list[Account], to_status: str, actor, reason: str) -> None:
    """The same move for several accounts (the admin's list action), every one or none: a clerk
    who sees an error knows nothing changed. Raises BulkStatusChangeRefused with every refusal."""
    errors = []
    for account in accounts:
        try:
            with transaction.atomic():
                account_change_status_by_hand(
                    account=account, to_status=to_status, actor=actor, reason=reason
                )
        except (IllegalStatusTransition, ValueRefused) as e:  # ValueRefused: a card number
            errors.append(str(e))
    if errors:
        raise BulkStatusChangeRefused(errors)


# --- Disconnect holds ------------------------------------------------------------------------


HOLD_FIELDS = ("kind", "starts_on", "expires_on", "note")


@transaction.atomic
def hold_create(
    *,
    actor,
    account: Account,
    kind: str,
    starts_on: datetime.date,
    expires_on: datetime.date,
    note: str = "",
) -> ServiceHold:
    """A manager's hold on disconnecting an account, in force from `starts_on` through
    `expires_on` (required, so no hold outlives its certificate unseen)."""
    hold = ServiceHold(
        account=account, kind=kind, starts_on=starts_on, expires_on=expires_on, note=note, entered_by=actor
    )
    return create_with_history(hold, actor=actor)


@transaction.atomic
def hold_update(*, actor, hold: ServiceHold, **fields) -> ServiceHold:
    """Correct or extend a hold: its kind, dates or note (not its account or who entered it)."""
    editable_fields(ServiceHold, fields, fixed=("account", "entered_by", "entered_at"))
    return change_with_history(hold, actor=actor, fields=fields)


@transaction.atomic
def hold_end(*, actor, hold: ServiceHold, reason: str = "") -> ServiceHold:
    """End a hold before its expiry: its last day becomes yesterday, so the disconnect step sees
    no hold from today on. A hold not started before today is corrected (its dates), not ended."""
    check_texts(reason=reason)
    yesterday = local_today() - datetime.timedelta(days=1)

    def endable(locked: ServiceHold) -> None:
        if locked.expires_on <= yesterday:
            raise ValidationError({"expires_on": f"This hold already ended on {locked.expires_on:%Y-%m-%d}."})
        if locked.starts_on > yesterday:
            starts = f"{locked.starts_on:%Y-%m-%d}"
            raise ValidationError(
                {"starts_on": f"This hold starts on {starts}: change its dates, not end it."}
            )

    return change_with_history(
        hold, actor=actor, fields={"expires_on": yesterday}, reason=reason, check=endable
    )
