"""Writes for meters, their installations and the service orders that open and close their switches."""

import datetime
import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_q import tasks as q

from accounts.models import Account
from coop.validators import check_texts
from meters.exceptions import HeadEndPermanentError, HeadEndTransientError, IllegalOrderTransition
from meters.headend import adapter_for, adapter_for_meter
from meters.models import Meter, MeterInstallation, ServiceOrder

logger = logging.getLogger(__name__)


@transaction.atomic
def meter_create(*, actor=None, **fields) -> Meter:
    meter = Meter(**fields)
    meter._history_user = actor
    meter.full_clean()
    meter.save()
    return meter


@transaction.atomic
def meter_install(*, actor=None, meter: Meter, location, installed_on: datetime.date) -> MeterInstallation:
    """Install a meter at a location. A meter is installed at one place at a time."""
    Meter.objects.select_for_update().get(pk=meter.pk)  # serialize installs of the same meter
    current = MeterInstallation.objects.filter(meter=meter, removed_on__isnull=True).first()
    if current is not None:
        raise ValidationError(
            {"meter": f"Meter {meter.serial} is still installed at {current.location}; remove it first."}
        )
    installation = MeterInstallation(meter=meter, location=location, installed_on=installed_on)
    installation.full_clean()
    installation.save()
    return installation


@transaction.atomic
def meter_remove(
    *, actor=None, installation: MeterInstallation, removed_on: datetime.date
) -> MeterInstallation:
    installation = MeterInstallation.objects.select_for_update().get(pk=installation.pk)
    if installation.removed_on is not None:
        raise ValidationError({"removed_on": f"Meter {installation.meter} was already removed."})
    installation.removed_on = removed_on
    installation.full_clean()
    installation.save(update_fields=["removed_on"])
    return installation


# --- Service orders (disconnect / reconnect) ------------------------------------------------------
#
# An order is requested (QUEUED), sent through its head-end adapter (SENT: the head-end accepted it,
# or it is on the field list) and confirmed once the switch has moved (CONFIRMED); only then does the
# account's status change. A send that fails is FAILED and retried with backoff; a request of the
# opposite kind cancels an open order that is not confirmed. Adapters: meters/headend.py.
#
# Settings (optional, read when used): HEADEND_MAX_ATTEMPTS (5), HEADEND_RETRY_BASE_SECONDS (60),
# HEADEND_RETRY_MAX_SECONDS (3600), HEADEND_SEND_SWEEP_SECONDS (60).

S = ServiceOrder.Status
K = ServiceOrder.Kind

# Every move an order's status may make; `_move` is the one place that changes it.
ORDER_TRANSITIONS: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.SENT, S.FAILED, S.CANCELLED}),
    # SENT -> SENT: an order in flight at the head-end moved to the field list.
    S.SENT: frozenset({S.SENT, S.CONFIRMED, S.FAILED, S.CANCELLED}),
    # FAILED -> FAILED: another attempt failed.
    S.FAILED: frozenset({S.SENT, S.FAILED, S.CANCELLED}),
    S.CONFIRMED: frozenset(),
    S.CANCELLED: frozenset(),
}
OPPOSITE = {K.DISCONNECT: K.RECONNECT, K.RECONNECT: K.DISCONNECT}


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def max_attempts() -> int:
    return _setting("HEADEND_MAX_ATTEMPTS", 5)


def retry_delay(attempts: int) -> datetime.timedelta:
    """The wait after the `attempts`th failed send: base, 2 x base, 4 x base ... up to the cap."""
    base = _setting("HEADEND_RETRY_BASE_SECONDS", 60)
    cap = _setting("HEADEND_RETRY_MAX_SECONDS", 3600)
    return datetime.timedelta(seconds=min(cap, base * 2 ** max(attempts - 1, 0)))


def _move(order: ServiceOrder, to_status: str) -> None:
    from_status = S(order.status)
    to_status = S(to_status)
    if to_status not in ORDER_TRANSITIONS[from_status]:
        allowed = ", ".join(sorted(s.label.lower() for s in ORDER_TRANSITIONS[from_status])) or "nothing"
        raise IllegalOrderTransition(
            f"{order.get_kind_display()} order #{order.pk} for account {order.account.number} is "
            f"{from_status.label.lower()} and cannot become {to_status.label.lower()} "
            f"(from {from_status.label.lower()} it can become: {allowed})."
        )
    order.status = to_status


def _locked(order_id) -> ServiceOrder:
    # of=("self",): lock the order row only (the meter is on the nullable side of an outer join,
    # which PostgreSQL cannot lock).
    return (
        ServiceOrder.objects.select_for_update(of=("self",))
        .select_related("account", "meter")
        .get(pk=order_id)
    )


def _lock_account_then_order(order_id) -> ServiceOrder:
    """Lock the order's account, then the order: the order every writer that touches both takes
    (order_request locks the account first too), so two of them never deadlock."""
    account_id = ServiceOrder.objects.values_list("account_id", flat=True).get(pk=order_id)
    list(Account.objects.select_for_update().filter(pk=account_id).values_list("pk", flat=True))
    return _locked(order_id)


def _enqueue_send(order_id: int) -> None:
    # Only once the order is committed: a worker must find it, and an order in a transaction that
    # rolls back must never reach the head-end.
    transaction.on_commit(lambda: q.async_task("meters.tasks.order_send_task", order_id))


def current_meter(location_id) -> Meter | None:
    """The meter installed now at a service location (the latest installed, if several)."""
    installation = (
        MeterInstallation.objects.filter(location_id=location_id, removed_on__isnull=True)
        .select_related("meter")
        .order_by("-installed_on", "-id")
        .first()
    )
    return installation.meter if installation else None


def open_order(*, account_id, kind: str) -> ServiceOrder | None:
    return ServiceOrder.objects.filter(
        account_id=account_id, kind=kind, status__in=ServiceOrder.OPEN_STATUSES
    ).first()


@transaction.atomic
def order_request(*, account, kind: str, reason: str, actor=None, due_by=None) -> ServiceOrder:
    """Request a disconnect or reconnect order for an account; it is sent after commit.

    Idempotent: while an order of this kind is open (queued, sent or failed) for the account, that
    order is returned and nothing new is made (the database allows one open order per account and
    kind). An open order of the opposite kind that is not confirmed is cancelled first: a payment
    that restores a member before the disconnect went through cancels the disconnect.
    The adapter follows the meter installed at the account's location: the AMI head-end when it
    has a remote switch, a field order otherwise (or when no meter is installed).
    """
    check_texts(reason=reason)
    kind = K(kind)
    if not reason or not reason.strip():
        raise IllegalOrderTransition("Say why the service order is requested.")
    # The account's row lock serializes requests for one account (a payment's reconnect check and the
    # disconnect step), so the open-order check below cannot race the partial unique index.
    account = Account.objects.select_for_update().get(pk=account.pk)
    now = timezone.now()
    opposite = open_order(account_id=account.pk, kind=OPPOSITE[kind])
    if opposite is not None:
        _cancel_locked(
            _locked(opposite.pk),
            actor=actor,
            reason=f"superseded by a {kind.label.lower()} request: {reason}",
        )
    existing = open_order(account_id=account.pk, kind=kind)
    if existing is not None:
        return existing
    meter = current_meter(account.location_id)
    order = ServiceOrder.objects.create(
        account=account,
        meter=meter,
        kind=kind,
        status=S.QUEUED,
        adapter=adapter_for_meter(meter),
        reason=reason.strip()[:300],
        requested_at=now,
        due_by=due_by,
        # If the send task is lost (broker down), orders_retry_due sends it after this.
        next_attempt_at=now + datetime.timedelta(seconds=_setting("HEADEND_SEND_SWEEP_SECONDS", 60)),
        requested_by=actor,
    )
    _enqueue_send(order.pk)
    return order


def _send_locked(order: ServiceOrder, *, now) -> None:
    """Send a locked order through its adapter and record the outcome (not saved)."""
    adapter = adapter_for(order)
    order.attempts += 1
    try:
        adapter.send(order)
    except HeadEndPermanentError as exc:
        _fail_locked(order, error=str(exc), permanent=True, now=now)
    except HeadEndTransientError as exc:
        _fail_locked(order, error=str(exc), permanent=False, now=now)
    else:
        _move(order, S.SENT)
        order.sent_at = now
        order.next_attempt_at = None
        order.last_error = ""


def _fail_locked(order: ServiceOrder, *, error: str, permanent: bool, now) -> None:
    _move(order, S.FAILED)
    order.last_error = f"Attempt {order.attempts} at {timezone.localtime(now):%Y-%m-%d %H:%M}: {error}"
    if permanent or order.attempts >= max_attempts():
        order.next_attempt_at = None  # no more automatic attempts: listed for staff
    else:
        order.next_attempt_at = now + retry_delay(order.attempts)
    logger.warning("Service order %s failed (attempt %s): %s", order.pk, order.attempts, error)


def order_send(*, order_id, force: bool = False, now=None) -> ServiceOrder:
    """Send an order through its head-end adapter. Safe to run twice: an order already sent,
    confirmed or cancelled is left as it is, and a failed one waits for its next attempt time
    (`force`, a clerk's "retry", sends it now, even after the last automatic attempt).

    The head-end is called while the order's row is locked, so two workers never send it twice;
    a head-end error is recorded on the order (FAILED, next attempt with backoff), not raised.
    """
    now = now or timezone.now()
    with transaction.atomic():
        order = _locked(order_id)
        if order.status not in (S.QUEUED, S.FAILED):
            return order
        if (
            order.status == S.FAILED
            and not force
            and (order.next_attempt_at is None or order.next_attempt_at > now)
        ):
            return order
        _send_locked(order, now=now)
        order.save()
    return order


@transaction.atomic
def order_fail(*, order_id, error: str, permanent: bool = False, now=None) -> ServiceOrder:
    """The head-end reports that an order it had accepted could not be carried out: FAILED, and
    retried with backoff unless `permanent` or out of attempts."""
    order = _locked(order_id)
    _fail_locked(order, error=error, permanent=permanent, now=now or timezone.now())
    order.save()
    return order


@transaction.atomic
def order_confirm(*, order_id, actor=None) -> ServiceOrder:
    """The switch has moved: the order is CONFIRMED (with who and when) and the account's status
    follows through account_change_status: active -> disconnected for a disconnect, disconnected ->
    active for a reconnect. An account already in the target status (or closed meanwhile) is left
    as it is. Confirming a confirmed order again does nothing.

    A field order still queued (its send task has not run) is put on the list and confirmed at
    once: the crew's report is what matters.
    """
    from accounts.services import account_change_status
    from notifications.events import notify_disconnected, notify_restored

    order = _lock_account_then_order(order_id)
    if order.status == S.CONFIRMED:
        return order
    now = timezone.now()
    if order.adapter == ServiceOrder.Adapter.FIELD and order.status == S.QUEUED:
        _send_locked(order, now=now)
    _move(order, S.CONFIRMED)
    order.confirmed_at = now
    order.confirmed_by = actor
    order.next_attempt_at = None
    order.save()
    account = Account.objects.get(pk=order.account_id)  # locked above
    # Kept short: the account's history keeps the reason in a 100-character column
    # (simple-history's history_change_reason), which PostgreSQL enforces.
    how = "by the head-end" if order.adapter == ServiceOrder.Adapter.SIMULATED_AMI else "by the line crew"
    if order.kind == K.DISCONNECT and account.status == Account.Status.ACTIVE:
        account_change_status(
            account=account,
            to_status=Account.Status.DISCONNECTED,
            actor=actor,
            reason=f"Service order #{order.pk}: disconnect confirmed {how}",
        )
        # The member hears of it once the cut is confirmed, with what it takes to restore.
        notify_disconnected(account_id=account.pk)
    elif order.kind == K.RECONNECT and account.status == Account.Status.DISCONNECTED:
        account_change_status(
            account=account,
            to_status=Account.Status.ACTIVE,
            actor=actor,
            reason=f"Service order #{order.pk}: reconnect confirmed {how}",
        )
        notify_restored(account_id=account.pk)
    return order


def order_confirm_from_headend(*, order_id, adapter: str) -> ServiceOrder | None:
    """A head-end's confirmation (the simulator's task, a real head-end's callback): confirms the
    order if it is still SENT through that head-end. Anything else is a late or duplicate answer
    (the order was cancelled, moved to the field list or already confirmed) and is ignored."""
    with transaction.atomic():
        order = _lock_account_then_order(order_id)
        if order.status != S.SENT or order.adapter != adapter:
            logger.info("Ignored a confirmation of order %s (%s, %s).", order.pk, order.status, order.adapter)
            return None
        return order_confirm(order_id=order_id)


def _cancel_locked(order: ServiceOrder, *, actor, reason: str) -> None:
    _move(order, S.CANCELLED)
    by = f" by {actor.get_username()}" if actor is not None else ""
    order.last_error = f"Cancelled{by} at {timezone.localtime():%Y-%m-%d %H:%M}: {reason}"[:2000]
    order.next_attempt_at = None
    order.save()


@transaction.atomic
def order_cancel(*, order_id, reason: str, actor=None) -> ServiceOrder:
    """Cancel an open order (queued, sent or failed) with the reason recorded on it. A head-end's
    late confirmation of a cancelled order is ignored (order_confirm_from_headend)."""
    check_texts(reason=reason)
    if not reason or not reason.strip():
        raise IllegalOrderTransition("Say why the order is cancelled.")
    order = _locked(order_id)
    _cancel_locked(order, actor=actor, reason=reason.strip())
    return order


@transaction.atomic
def order_move_to_field(*, order_id, actor=None) -> ServiceOrder:
    """Hand an open order to a line crew: it becomes a field order, on the field list (SENT) at
    once, whatever the head-end made of it. For meters the head-end cannot reach, or orders that
    failed for good."""
    order = _locked(order_id)
    if order.status not in ServiceOrder.OPEN_STATUSES:
        raise IllegalOrderTransition(
            f"Order #{order.pk} is {order.get_status_display().lower()}; "
            "only open orders go to the field list."
        )
    if order.adapter == ServiceOrder.Adapter.FIELD and order.status == S.SENT:
        return order
    previous, previous_error = order.get_adapter_display(), order.last_error
    order.adapter = ServiceOrder.Adapter.FIELD
    _send_locked(order, now=timezone.now())
    by = f" by {actor.get_username()}" if actor is not None else ""
    order.last_error = f"Moved to the field list{by} from {previous}. {previous_error}".strip()
    order.save()
    return order


def orders_retry_due(*, now=None, limit: int = 500) -> int:
    """Send every queued or failed order whose next attempt time has come (oldest first, at most
    `limit` per run); returns how many were attempted. Run every minute by the schedule
    (billing.tasks.orders_retry_task). Orders out of attempts have no next attempt time and stay
    FAILED for staff (admin → Service orders → Needs attention)."""
    now = now or timezone.now()
    ids = list(
        ServiceOrder.objects.filter(status__in=(S.QUEUED, S.FAILED), next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    for order_id in ids:  # one head-end call each: there is no set-based way to talk to a meter
        order_send(order_id=order_id, now=now)
    return len(ids)
