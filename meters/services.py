"""Writes for meters, their installations and the service orders that open and close their switches."""

import datetime
import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_q import tasks as q

from accounts.models import Account, ServiceHold
from accounts.services import account_change_status
from coop import events
from coop.calendar import local_today
from coop.history import change_with_history, create_with_history, editable_fields
from coop.lifecycle import check_transition
from coop.validators import check_texts
from meters.events import AccountDisconnected, AccountRestored
from meters.exceptions import HeadEndPermanentError, HeadEndTransientError, IllegalOrderTransition
from meters.headend import adapter_for, adapter_for_meter
from meters.models import Meter, MeterInstallation, ServiceOrder

logger = logging.getLogger(__name__)


@transaction.atomic
def meter_create(*, actor=None, **fields) -> Meter:
    editable_fields(Meter, fields)
    return create_with_history(Meter(**fields), actor=actor)


@transaction.atomic
def meter_update(*, actor, meter: Meter, **fields) -> Meter:
    """Correct a meter's details (serial, maker, model, remote switch)."""
    editable_fields(Meter, fields)
    return change_with_history(meter, actor=actor, fields=fields)


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
    return create_with_history(installation, actor=actor)


@transaction.atomic
def meter_remove(
    *, actor=None, installation: MeterInstallation, removed_on: datetime.date
) -> MeterInstallation:
    def not_removed(locked: MeterInstallation) -> None:
        if locked.removed_on is not None:
            raise ValidationError({"removed_on": f"Meter {locked.meter} was already removed."})

    return change_with_history(
        installation, actor=actor, fields={"removed_on": removed_on}, check=not_removed
    )


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

# Every move an order's status may make (the map lives on the model); `_move` is the one place
# that changes it.
ORDER_TRANSITIONS = ServiceOrder.TRANSITIONS
OPPOSITE = {K.DISCONNECT: K.RECONNECT, K.RECONNECT: K.DISCONNECT}

# "May this disconnect still go ahead?" Callables `check(order=..., at=...) -> str | None` that
# apps above meters register at start-up (billing.apps: the prepaid rules, billing.prepaid.
# disconnect_objection), the way ACCOUNT_PAGE_PANELS works in accounts/admin.py, so meters never
# imports billing. Each returns why the cut must not happen (a funded balance, a hold, grace, the
# window) or None. They are asked with the account's row locked, immediately before a disconnect
# order is sent (`at` = now) and again when its confirmation comes (`at` = when it was sent).
DISCONNECT_CHECKS: list[Callable[..., str | None]] = []


def disconnect_objection(order: ServiceOrder, *, at: datetime.datetime) -> str | None:
    """The first registered check's objection to carrying out a disconnect order, or None."""
    for check in DISCONNECT_CHECKS:
        reason = check(order=order, at=at)
        if reason:
            return reason
    return None


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
    """The one place an order's status changes (the caller holds the order's row lock, `_locked`,
    and saves it): refuses a move ServiceOrder.TRANSITIONS does not allow, changing nothing."""
    check_transition(
        ServiceOrder.TRANSITIONS,
        order.status,
        to_status,
        what=f"{order.get_kind_display()} order #{order.pk} for account {order.account.number}",
        choices=S,
        error=IllegalOrderTransition,
    )
    order.status = S(to_status)


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


def meter_left_off(account) -> str | None:
    """Why the meter at a (pending) account's location is switched off, or None: the last order
    carried out on the meter installed there now (with none on the books, the last one carried
    out at the location) was a disconnect (confirmed, or cancelled but carried out anyway),
    whichever account it was for. Registered in
    accounts.services.ACTIVATION_CHECKS by meters.apps."""
    meter = current_meter(account.location_id)
    carried_out = ServiceOrder.objects.filter(confirmed_at__isnull=False).select_related("account", "meter")
    if meter is not None:
        last, where = (
            carried_out.filter(meter=meter).order_by("-confirmed_at", "-id").first(),
            "at this location",
        )
    else:
        # No meter on the books here (its installation recorded as removed, moved or deleted): the
        # last order carried out for an account at this location says whether the meter that was
        # here was left off. Taking a meter off the books does not switch it on.
        last = (
            carried_out.filter(account__location_id=account.location_id)
            .order_by("-confirmed_at", "-id")
            .first()
        )
        meter, where = (last.meter if last else None), "(the last one at this location, now off the books)"
    if last is None or last.kind != K.DISCONNECT:
        return None
    return (
        f"{f'meter {meter.serial}' if meter else 'the meter'} {where} was switched off by order #{last.pk} "
        f"(account {last.account.number}) and has not been switched on since"
    )


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


RECONNECT_UNFUNDED_PERMISSION = "meters.reconnect_unfunded"


def reconnect_unfunded_applies(account) -> bool:
    """Whether a manager's reconnect without funds is for this account: a disconnected one, or a
    pending one whose meter the last account at the location left switched off."""
    if account.status == Account.Status.DISCONNECTED:
        return True
    return account.status == Account.Status.PENDING and meter_left_off(account) is not None


@transaction.atomic
def order_reconnect_unfunded(
    *, account, actor, reason: str, hold_until: datetime.date | None = None
) -> ServiceOrder:
    """A billing manager's override: reconnect a disconnected account whatever its balance (or
    switch on the meter of a pending account that the last account there left off), with
    the reason (required) on the reconnect order, who asked in `requested_by`. The account becomes
    active when the order is confirmed, like any reconnect (order_confirm); until then it stays
    disconnected. With `hold_until`, a management hardship deferral (ServiceHold) keeps the
    disconnect step from cutting it again through that day; without one, an account still at the
    disconnect level is cut again by the next disconnect run.
    """
    if actor is None or not actor.has_perm(RECONNECT_UNFUNDED_PERMISSION):
        raise IllegalOrderTransition("Only a billing manager may reconnect an account without funds.")
    reason = (reason or "").strip()
    if not reason:
        raise IllegalOrderTransition("Say why the account is reconnected without funds.")
    account = Account.objects.select_for_update().get(pk=account.pk)
    if not reconnect_unfunded_applies(account):
        raise IllegalOrderTransition(
            f"Account {account.number} is {account.get_status_display().lower()}; only a "
            "disconnected account (or a pending one whose meter was left switched off) is reconnected."
        )
    today = local_today()
    if hold_until is not None:
        if hold_until < today:
            raise ValidationError({"hold_until": f"The hold cannot end before today ({today:%Y-%m-%d})."})
        hold = ServiceHold(
            account=account,
            kind=ServiceHold.Kind.MANAGEMENT,
            starts_on=today,
            expires_on=hold_until,
            note=f"Reconnected without funds: {reason}"[:300],
            entered_by=actor,
        )
        hold._history_user = actor
        hold.full_clean()
        hold.save()
    who = actor.get_username()
    order = order_request(
        account=account,
        kind=K.RECONNECT,
        reason=f"Manager's override by {who} (reconnect without funds): {reason}",
        actor=actor,
        due_by=timezone.now(),
    )
    logger.info(
        "Account %s: reconnect without funds requested by %s (order %s).", account.number, who, order.pk
    )
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
        # The account's lock, not only the order's: a payment takes it too, so none can commit
        # between the re-check below and the head-end call (held for that call's few seconds).
        order = _lock_account_then_order(order_id)
        if order.status not in (S.QUEUED, S.FAILED):
            return order
        if (
            order.status == S.FAILED
            and not force
            and (order.next_attempt_at is None or order.next_attempt_at > now)
        ):
            return order
        if order.kind == K.DISCONNECT:
            objection = disconnect_objection(order, at=now)
            if objection:
                # Not sent: the next disconnect run decides afresh if the account is still due.
                _cancel_locked(order, actor=None, reason=f"not sent, {objection}")
                logger.info("Disconnect order %s cancelled before sending: %s", order.pk, objection)
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


def _how(order: ServiceOrder) -> str:
    return "by the head-end" if order.adapter == ServiceOrder.Adapter.SIMULATED_AMI else "by the line crew"


def _reverse_cut(order: ServiceOrder, *, account: Account, actor, why: str) -> ServiceOrder:
    """The switch opened although the cut must not stand (`why`): the account's status follows
    the meter (disconnected, with the reason) and a reconnect order is requested at once; the
    account becomes active again when that is confirmed. No disconnect notice: the member hears
    that service is restored. Call with the account and the order locked."""
    if account.status == Account.Status.ACTIVE:
        account_change_status(
            account=account,
            to_status=Account.Status.DISCONNECTED,
            actor=actor,
            reason=f"Order #{order.pk}: cut {_how(order)}, to be reversed at once",
        )
    reconnect = order_request(
        account=account,
        kind=K.RECONNECT,
        reason=f"Reversing disconnect #{order.pk}: {why}",
        actor=actor,
        due_by=timezone.now(),
    )
    logger.warning("Disconnect order %s reversed by reconnect order %s: %s", order.pk, reconnect.pk, why)
    return reconnect


def _cut_after_cancel(order: ServiceOrder, *, actor, now) -> ServiceOrder:
    """The head-end (or a crew) carried out a disconnect that had been cancelled: it acted before
    the cancel arrived. The order stays cancelled; `confirmed_at` records when the cut was
    reported and its note says so and names the reconnect order that reverses it."""
    account = Account.objects.get(pk=order.account_id)  # locked by the caller
    cancelled = order.last_error
    # A head-end carries out one meter's orders in the order it took them. If a later order has
    # been carried out already (the reconnect that followed this one, or a new cut), this report
    # is about a switch position since overtaken: noted, nothing else.
    later = (
        ServiceOrder.objects.filter(account_id=order.account_id, pk__gt=order.pk)
        .filter(Q(confirmed_at__isnull=False) | Q(kind=K.DISCONNECT, status__in=ServiceOrder.OPEN_STATUSES))
        .order_by("pk")
        .first()
    )
    if later is not None:
        order.last_error = (
            f"{cancelled} Reported carried out {_how(order)} at {timezone.localtime(now):%Y-%m-%d %H:%M}, "
            f"after order #{later.pk}: overtaken, ignored."
        )[:2000]
        order.save(update_fields=["last_error"])
        logger.info(
            "Ignored a late confirmation of cancelled order %s (order %s came later).", order.pk, later.pk
        )
        return order
    reconnect = _reverse_cut(
        order, account=account, actor=actor, why=f"carried out {_how(order)} after it was cancelled"
    )
    order.confirmed_at = now
    order.confirmed_by = actor
    order.last_error = (
        f"{cancelled} Carried out {_how(order)} anyway (reported {timezone.localtime(now):%Y-%m-%d %H:%M}); "
        f"reversed by reconnect order #{reconnect.pk}."
    )[:2000]
    order.save(update_fields=["confirmed_at", "confirmed_by", "last_error"])
    return order


@transaction.atomic
def order_confirm(*, order_id, actor=None) -> ServiceOrder:
    """The switch has moved: the order is CONFIRMED (with who and when) and the account's status
    follows through account_change_status: active -> disconnected for a disconnect, disconnected ->
    active for a reconnect. An account already in the target status (or closed meanwhile) is left
    as it is. Confirming a confirmed order again does nothing.

    A disconnect is asked again whether it may stand (`disconnect_objection`, the rules judged
    as of when it was sent): if the balance was funded or a hold entered meanwhile, the cut is
    reversed at once (`_reverse_cut`). A disconnect that was cancelled but carried out anyway is
    reversed the same way (`_cut_after_cancel`), unless a later order of the account was carried
    out first (the report is then overtaken and only noted).

    A field order still queued (its send task has not run) is put on the list and confirmed at
    once: the crew's report is what matters.
    """
    order = _lock_account_then_order(order_id)
    if order.status == S.CONFIRMED:
        return order
    now = timezone.now()
    # Only one that reached the head-end or the field list can have been carried out.
    if order.status == S.CANCELLED and order.kind == K.DISCONNECT and order.sent_at is not None:
        if order.confirmed_at is not None:
            return order  # its cut was already reported and reversed
        return _cut_after_cancel(order, actor=actor, now=now)
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
    how = _how(order)
    if order.kind == K.DISCONNECT and account.status == Account.Status.ACTIVE:
        objection = disconnect_objection(order, at=order.sent_at or now)
        if objection:
            _reverse_cut(order, account=account, actor=actor, why=objection)
            return order
        account_change_status(
            account=account,
            to_status=Account.Status.DISCONNECTED,
            actor=actor,
            reason=f"Service order #{order.pk}: disconnect confirmed {how}",
        )
        # The member hears of it once the cut is confirmed, with what it takes to restore.
        events.publish(AccountDisconnected(account_id=account.pk))
    elif order.kind == K.RECONNECT and account.status in (
        Account.Status.DISCONNECTED,
        Account.Status.PENDING,
    ):
        restored = account.status == Account.Status.DISCONNECTED
        account_change_status(
            account=account,
            to_status=Account.Status.ACTIVE,
            actor=actor,
            reason=f"Service order #{order.pk}: reconnect confirmed {how}",
        )
        if restored:  # a new account's first connection is not a restoration
            events.publish(AccountRestored(account_id=account.pk))
    return order


def order_confirm_from_headend(*, order_id, adapter: str) -> ServiceOrder | None:
    """A head-end's confirmation (the simulator's task, a real head-end's callback): confirms the
    order if it is still SENT through that head-end. A confirmation of a disconnect that was
    sent and then cancelled means the head-end acted before the cancel arrived: the cut is
    reversed at once (order_confirm). Anything else is a late or duplicate answer (moved to the
    field list, already confirmed) and is ignored."""
    with transaction.atomic():
        order = _lock_account_then_order(order_id)
        cut_after_cancel = (
            order.status == S.CANCELLED
            and order.kind == K.DISCONNECT
            and order.sent_at is not None
            and order.confirmed_at is None
        )
        if order.adapter != adapter or not (order.status == S.SENT or cut_after_cancel):
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
    failed for good. A disconnect is re-checked first, as before any send: one that must not
    go ahead any more (disconnect_objection) is refused with the reason, to be cancelled."""
    order = _lock_account_then_order(order_id)
    if order.status not in ServiceOrder.OPEN_STATUSES:
        raise IllegalOrderTransition(
            f"Order #{order.pk} is {order.get_status_display().lower()}; "
            "only open orders go to the field list."
        )
    if order.adapter == ServiceOrder.Adapter.FIELD and order.status == S.SENT:
        return order
    if order.kind == K.DISCONNECT:
        objection = disconnect_objection(order, at=timezone.now())
        if objection:
            raise IllegalOrderTransition(
                f"Disconnect order #{order.pk} must not go ahead: {objection}. Cancel it instead."
            )
    previous, previous_error = order.get_adapter_display(), order.last_error
    order.adapter = ServiceOrder.Adapter.FIELD
    _send_locked(order, now=timezone.now())
    by = f" by {actor.get_username()}" if actor is not None else ""
    order.last_error = f"Moved to the field list{by} from {previous}. {previous_error}".strip()
    order.save()
    return order


def order_retry(*, order_id, actor) -> ServiceOrder:
    """A clerk's "retry now" of a queued or failed order, even after its last automatic attempt,
    noted on the order with who asked. Raises IllegalOrderTransition, saying why, when the order
    is not queued or failed, when the re-check before sending cancelled it, or when the head-end
    refused it again. Not one transaction, like order_send: the head-end call cannot be rolled
    back, so its outcome is committed (by order_send) before an error is raised."""
    order = ServiceOrder.objects.get(pk=order_id)
    if order.status not in (S.QUEUED, S.FAILED):
        raise IllegalOrderTransition(
            f"it is {order.get_status_display().lower()}; only queued or failed orders are retried."
        )
    sent = order_send(order_id=order.pk, force=True)
    outcome = sent.last_error
    with transaction.atomic():
        noted = _locked(order_id)
        noted.last_error = f"Retried by {actor.get_username()}. {noted.last_error}".strip()[:2000]
        noted.save(update_fields=["last_error"])
    if sent.status == S.CANCELLED:  # the re-check before sending stopped it
        raise IllegalOrderTransition(f"not sent and cancelled: {outcome}")
    if sent.status == S.FAILED:
        raise IllegalOrderTransition(f"the head-end refused it again: {outcome}")
    return noted


@transaction.atomic
def order_confirm_by_hand(*, order_id, actor) -> ServiceOrder:
    """A clerk confirms a field order the line crew reports done (order_confirm records who).
    A head-end order is confirmed by its head-end, never by hand."""
    order = ServiceOrder.objects.get(pk=order_id)
    if order.adapter != ServiceOrder.Adapter.FIELD:
        raise IllegalOrderTransition(
            "only field orders are confirmed by hand; the head-end confirms its own."
        )
    return order_confirm(order_id=order_id, actor=actor)


def orders_retry_due(*, now=None, limit: int = 500) -> int:
    """Send every queued or failed order whose next attempt time has come (oldest first, at most
    `limit` per run); returns how many were attempted. Run every minute by the schedule
    (meters.tasks.orders_retry_task). Orders out of attempts have no next attempt time and stay
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
