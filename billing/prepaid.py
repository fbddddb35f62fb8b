"""Prepaid service: cutting it when the balance reaches the policy's disconnect level, and bringing
it back when the member has paid enough. The orders themselves are carried out by meters
(meters.services.order_request and the head-end adapters in meters/headend.py).

Disconnect (`disconnect_run`, run by the schedule every 15 minutes)
    Candidates are billing.selectors.disconnect_candidates on the cooperative's local day: prepaid,
    active, at or below the policy's disconnect level, here without an open disconnect order. Service
    is cut only outside every grace period the policy grants (weekends, holidays and office
    closures, weather holds: coop.calendar.disconnect_grace_reason), inside the policy's window (no
    window: any time) and when no ServiceHold (medical, critical care, management deferral) is in
    force that day. So program E cuts on the first non-holiday weekday 10:00-11:00, and programs A
    and B cut at any hour of any day, weather or not ("business day" is whatever the grace flags
    make it). Each skipped candidate gets a DisconnectDecision(skipped, reason) once per account,
    day and reason; each cut a DisconnectDecision(ordered, order).

Restore (`restore_amount_needed`, `reconnect_if_restored`)
    Service comes back when the prepaid balance reaches the policy's restore level (and is no longer
    at the disconnect level). Usage while the balance was negative stays in the prepaid balance in
    this ledger (it goes below zero), so "the balance reaches the level" already includes the debt
    accrued since credit ran out, which is program E's rule, restore_adds_accrued_debt=True ($20
    plus the $5.50 used while negative: $25.50 from a balance of -5.50). Programs A ("until the
    account has at least a $50 credit") and B ("recharged to a minimum balance of $25") speak of
    the balance too, so with restore_adds_accrued_debt=False the rule is the same balance test: a
    member at -3.20 under A pays $53.20. The flag therefore changes no number today; it records the
    program's rule and is where a change that moved that debt out of the prepaid balance (into
    arrears, say) would have to add it back.
    billing.services.payment_post enqueues `reconnect_if_restored` after the payment commits; the
    cluster runs it at once, and the reconnect order it requests is sent by another task at once,
    so the head-end has it within seconds (the policy's restore_within_minutes is its due_by).
    meters.tasks.orders_retry_task (every minute) sends any order whose send task was lost.
"""

import datetime
import logging
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.db.models import Exists, OuterRef, Subquery
from django.utils import timezone
from django_q import tasks as q

from accounts.models import Account, ServiceHold
from billing.models import DisconnectDecision
from billing.selectors import (
    account_balances,
    active_plan,
    disconnect_candidates,
    initial_minimum_unpaid,
    plan_share,
)
from coop.calendar import (
    SEARCH_LIMIT_DAYS,
    NoBusinessDayFound,
    coop_zone,
    disconnect_grace_reason,
    local_date,
    local_today,
    to_local,
)
from coop.models import Policy
from coop.money import CENT
from meters.models import ServiceOrder
from meters.services import open_order, order_cancel, order_request

logger = logging.getLogger(__name__)

ZERO = Decimal("0.00")
ONE_DAY = datetime.timedelta(days=1)
K = ServiceOrder.Kind


# --- Disconnect ----------------------------------------------------------------------------------


@dataclass
class DisconnectSummary:
    """What one disconnect_run did."""

    at: datetime.datetime
    day: datetime.date  # the cooperative's local day
    day_reason: str | None = None  # why nobody is cut this run (grace or window), if so
    candidates: int = 0  # candidates without an open disconnect order
    ordered: int = 0  # disconnect orders requested
    skipped: int = 0  # candidates not cut
    decisions_recorded: int = 0  # new skipped decisions (first time that account, day and reason)
    skip_reasons: Counter = field(default_factory=Counter)


def _window_reason(policy: Policy, local: datetime.datetime) -> str | None:
    if not policy.has_disconnect_window:
        return None
    start, end = policy.disconnect_window_start, policy.disconnect_window_end
    if start <= local.time() < end:
        return None
    return f"outside the disconnect window {start:%H:%M}-{end:%H:%M}"


def _hold_reason(kind: str, expires_on: datetime.date) -> str:
    return f"{ServiceHold.Kind(kind).label} hold until {expires_on:%Y-%m-%d}"


def _record_skips(*, policy: Policy, day, now, skips: dict[int, tuple[str, Decimal]]) -> int:
    """Record each skip not yet recorded for that account, day and reason; returns how many."""
    if not skips:
        return 0
    with transaction.atomic():
        # Two runs at once (a slow run overlapping the next) would both find a decision missing;
        # the policy version's row lock serializes them. It is read-only once in force, so nobody
        # else waits on it.
        list(Policy.objects.select_for_update().filter(pk=policy.pk).values_list("pk", flat=True))
        # All of the day's skips, through the (day, outcome) index: no list of thousands of ids.
        done = set(
            DisconnectDecision.objects.filter(
                day=day, outcome=DisconnectDecision.Outcome.SKIPPED
            ).values_list("account_id", "reason")
        )
        new = [
            DisconnectDecision(
                account_id=account_id,
                day=day,
                decided_at=now,
                outcome=DisconnectDecision.Outcome.SKIPPED,
                reason=reason,
                balance=balance,
            )
            for account_id, (reason, balance) in skips.items()
            if (account_id, reason) not in done
        ]
        DisconnectDecision.objects.bulk_create(new, batch_size=1000)
    return len(new)


def _cut(*, account_id: int, policy: Policy, day, now, actor) -> ServiceOrder | None:
    """Request the disconnect order for one candidate, re-checked under the account's lock: a
    payment (which takes the same lock) may have committed since the candidates were read."""
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account_id)
        if account.status != Account.Status.ACTIVE:
            return None
        balance = account_balances(account).prepaid_credit
        if not policy.is_disconnect_level(balance):
            return None
        if open_order(account_id=account_id, kind=K.DISCONNECT) is not None:
            return None  # another run got here first
        rule = "at or below" if policy.disconnect_rule == Policy.DisconnectRule.AT_OR_BELOW else "below"
        reason = f"Prepaid balance ${balance} is {rule} the disconnect level ${policy.disconnect_level}"
        order = order_request(account=account, kind=K.DISCONNECT, reason=reason, actor=actor)
        DisconnectDecision.objects.create(
            account=account,
            day=day,
            decided_at=now,
            outcome=DisconnectDecision.Outcome.ORDERED,
            reason=reason,
            balance=balance,
            order=order,
        )
        return order


def disconnect_run(*, now: datetime.datetime | None = None, actor=None) -> DisconnectSummary:
    """The disconnect step (see the module doc). Safe to run as often as the schedule likes: an
    account with an open disconnect order is no longer a candidate, and a skip is recorded once per
    account, day and reason.

    Queries: the policy, the grace decision (at most two), the candidates with their holds (one),
    the day's recorded skips (one); then a few per account actually cut, each in its own
    transaction so a payment waits on one account's lock for milliseconds, not the whole run.
    """
    now = now or timezone.now()
    local = to_local(now)
    day = local.date()
    policy = Policy.objects.in_force(day)
    summary = DisconnectSummary(at=now, day=day)
    summary.day_reason = disconnect_grace_reason(day) or _window_reason(policy, local)

    hold = ServiceHold.objects.filter(
        account=OuterRef("pk"), starts_on__lte=day, expires_on__gte=day
    ).order_by("-expires_on", "-id")
    open_disconnect = ServiceOrder.objects.filter(
        account=OuterRef("pk"), kind=K.DISCONNECT, status__in=ServiceOrder.OPEN_STATUSES
    )
    rows = list(
        disconnect_candidates(on=day)
        .filter(~Exists(open_disconnect))
        .annotate(
            hold_kind=Subquery(hold.values("kind")[:1]), hold_expires=Subquery(hold.values("expires_on")[:1])
        )
        .order_by("pk")
        .values_list("pk", "debit_balance", "hold_kind", "hold_expires")
    )
    summary.candidates = len(rows)
    skips: dict[int, tuple[str, Decimal]] = {}
    cuts: list[int] = []
    for account_id, debit_balance, hold_kind, hold_expires in rows:
        if summary.day_reason:
            reason = summary.day_reason
        elif hold_kind:
            reason = _hold_reason(hold_kind, hold_expires)
        else:
            cuts.append(account_id)
            continue
        skips[account_id] = (reason[:300], -debit_balance)
        summary.skip_reasons[reason] += 1
    summary.skipped = len(skips)
    summary.decisions_recorded = _record_skips(policy=policy, day=day, now=now, skips=skips)
    for account_id in cuts:
        if _cut(account_id=account_id, policy=policy, day=day, now=now, actor=actor) is not None:
            summary.ordered += 1
    logger.info(
        "Disconnect run %s: %s candidates, %s ordered, %s skipped (%s new decisions)%s",
        local.strftime("%Y-%m-%d %H:%M"),
        summary.candidates,
        summary.ordered,
        summary.skipped,
        summary.decisions_recorded,
        f": {summary.day_reason}" if summary.day_reason else "",
    )
    return summary


def disconnect_objection(*, order: ServiceOrder, at: datetime.datetime) -> str | None:
    """Why a disconnect order this step decided must not be carried out (any more), or None: the
    rules `disconnect_run` applied, judged again with the account's row locked (the caller,
    meters.services, holds it). Registered in meters.services.DISCONNECT_CHECKS by billing.apps,
    and asked immediately before the order is sent (`at` = now) and when the head-end confirms
    it (`at` = when it was sent; the balance and the holds as they are now).

    Orders this step did not decide (no DisconnectDecision points at them) are not its to judge.
    """
    decision = (
        DisconnectDecision.objects.filter(order_id=order.pk, outcome=DisconnectDecision.Outcome.ORDERED)
        .select_related("account")
        .first()
    )
    if decision is None:
        return None
    local = to_local(at)
    day = local.date()
    policy = Policy.objects.in_force(day)
    balance = account_balances(decision.account).prepaid_credit
    if not policy.is_disconnect_level(balance):
        return _funded_reason(balance, policy)
    hold = (
        ServiceHold.objects.filter(account_id=order.account_id, starts_on__lte=day, expires_on__gte=day)
        .order_by("-expires_on", "-id")
        .first()
    )
    if hold is not None:
        return _hold_reason(hold.kind, hold.expires_on)
    return disconnect_grace_reason(day) or _window_reason(policy, local)


def _funded_reason(balance: Decimal, policy: Policy) -> str:
    return f"prepaid balance ${balance} is above the disconnect level ${policy.disconnect_level}"


def _at(day: datetime.date, time: datetime.time) -> datetime.datetime:
    return datetime.datetime.combine(day, time, tzinfo=coop_zone())


def next_disconnect_window(*, after: datetime.datetime) -> tuple[datetime.datetime, datetime.datetime]:
    """The next stretch of time, from `after` on, in which service could be cut under the calendar
    and the policy in force each day (aware datetimes in the cooperative's zone): the first day
    without grace, inside its window; without a window, the rest of that day (to the next
    midnight). If `after` falls inside such a stretch, it starts at `after`. Per-account holds are
    not considered. For the pending-disconnect notice: "service will be cut on <date> between
    <start> and <end>".

    Two or three queries per day looked at (a long weekend: a handful); raises NoBusinessDayFound
    after SEARCH_LIMIT_DAYS days of grace (a calendar entered wrong).
    """
    day = local_date(after)
    for _ in range(SEARCH_LIMIT_DAYS):
        if disconnect_grace_reason(day) is None:
            policy = Policy.objects.in_force(day)
            if policy.has_disconnect_window:
                start, end = _at(day, policy.disconnect_window_start), _at(day, policy.disconnect_window_end)
            else:
                start, end = _at(day, datetime.time(0)), _at(day + ONE_DAY, datetime.time(0))
            if end > after:
                return max(start, to_local(after)), end
        day += ONE_DAY
    raise NoBusinessDayFound(
        f"No day without disconnect grace in the {SEARCH_LIMIT_DAYS} days from {local_date(after):%Y-%m-%d}. "
        "Check the weather holds and office closures for a wrong end date."
    )


# --- Restore -------------------------------------------------------------------------------------


def _restore_target(policy: Policy) -> Decimal:
    """The lowest balance that restores service: the restore level, or a cent above it when the
    restore level is itself at the disconnect level (restore 0.00, cut "at or below" 0.00)."""
    level = policy.restore_level
    return level + CENT if policy.is_disconnect_level(level) else level


def is_restored(balance: Decimal, policy: Policy) -> bool:
    return balance >= _restore_target(policy)


def _credited(payment: Decimal, *, share_percent, exempt: Decimal, arrears: Decimal) -> Decimal:
    """What of `payment` reaches the prepaid balance: billing.services.payment_post's split."""
    return payment - plan_share(payment, share_percent=share_percent, exempt=exempt, arrears=arrears)


def _grossed_up(short: Decimal, *, share_percent, exempt: Decimal, arrears: Decimal) -> Decimal:
    """The smallest payment (to the cent) whose credited part is at least `short`. Paying `short`
    plus all the arrears always suffices (the plan never takes more than the arrears), and the
    credited part never falls as the payment grows, so a binary search over cents finds it."""
    lo, hi = int(short / CENT), int((short + max(arrears, ZERO)) / CENT)
    while lo < hi:
        mid = (lo + hi) // 2
        if _credited(mid * CENT, share_percent=share_percent, exempt=exempt, arrears=arrears) >= short:
            hi = mid
        else:
            lo = mid + 1
    return lo * CENT


def restore_amount_needed(account, *, on: datetime.date | None = None) -> Decimal:
    """What the member must still pay for service to be restored: enough that the prepaid balance
    reaches the policy's restore level (the debt accrued while negative included, see the module
    doc), grossed up when an active debt plan takes a share of each payment so that the credited
    part reaches the level, and at least the policy's minimum prepaid payment. 0.00 when the
    balance is already enough.

    E: balance -5.50, restore level 20.00 -> 25.50. B with a 35% plan: 25.00 short -> 38.46
    (35% of 38.46 is 13.46 to arrears, 25.00 to the balance).
    """
    on = on or local_today()
    policy = Policy.objects.in_force(on)
    balances = account_balances(account)
    short = _restore_target(policy) - balances.prepaid_credit
    if short <= 0:
        return ZERO
    plan = active_plan(account)
    needed = short
    if plan is not None and balances.arrears > 0:
        needed = _grossed_up(
            short,
            share_percent=plan.share_percent,
            exempt=initial_minimum_unpaid(account, policy),
            arrears=balances.arrears,
        )
    return max(needed, policy.prepaid_minimum_payment)


@transaction.atomic
def reconnect_if_restored(*, account_id: int) -> ServiceOrder | None:
    """After a payment: if the account is disconnected (or a disconnect order is still open) and
    its balance now restores service, request a reconnect order, due within the policy's
    restore_within_minutes; it is sent right after commit. Returns the reconnect order, or None
    when nothing was needed.

    A disconnect order that never reached the meter (queued or failed) is only cancelled. One the
    head-end has accepted (sent) is cancelled *and* followed by a reconnect order, because the
    switch may already be open. Run as a task (django-q2) by billing.services.payment_post; safe to
    run twice (the open reconnect order is returned).
    """
    account = Account.objects.select_for_update().get(pk=account_id)
    if account.billing_mode != Account.BillingMode.PREPAID:
        return None
    reconnect = open_order(account_id=account.pk, kind=K.RECONNECT)
    if reconnect is not None:
        return reconnect  # already on its way (credit_posted, or this task run before)
    disconnect = open_order(account_id=account.pk, kind=K.DISCONNECT)
    if account.status != Account.Status.DISCONNECTED and disconnect is None:
        return None
    now = timezone.now()
    policy = Policy.objects.in_force(local_date(now))
    balance = account_balances(account).prepaid_credit
    if not is_restored(balance, policy):
        return None
    reason = f"Prepaid balance ${balance} reaches the restore level ${policy.restore_level}"
    if (
        account.status != Account.Status.DISCONNECTED
        and disconnect is not None
        and disconnect.status != ServiceOrder.Status.SENT
    ):
        order_cancel(order_id=disconnect.pk, reason=reason)
        return None
    if account.status not in (Account.Status.DISCONNECTED, Account.Status.ACTIVE):
        return None  # inactive or closed: a reconnect is a new enrollment, not this
    return order_request(
        account=account,
        kind=K.RECONNECT,
        reason=reason,
        due_by=now + datetime.timedelta(minutes=policy.restore_within_minutes),
    )


def credit_posted(account) -> None:
    """billing.services' hook after anything that may raise a prepaid balance (a payment, a credit
    adjustment or the reversal of a debit one, a deposit applied, a fee waived), called in the
    same transaction, under the account's row lock, after the posting:

    - an open disconnect order for an account whose balance is now above the disconnect level is
      cancelled at once, the reason on the order. One not yet at the head-end (queued, or failed
      and waiting for a retry) never goes out. One the head-end has accepted (sent) may already
      have opened the switch, so a reconnect order follows it; a confirmation of the cancelled
      order that comes later is reversed too (meters.services.order_confirm);
    - once committed, reconnect_if_restored is enqueued for a prepaid account that is
      disconnected or still has an open disconnect order. Nothing is enqueued if the posting's
      transaction rolls back.
    """
    if account.billing_mode != Account.BillingMode.PREPAID:
        return
    disconnect = open_order(account_id=account.pk, kind=K.DISCONNECT)
    if disconnect is not None:
        policy = Policy.objects.in_force(local_today())
        balance = account_balances(account).prepaid_credit
        if not policy.is_disconnect_level(balance):
            reason = _funded_reason(balance, policy)
            if disconnect.status == ServiceOrder.Status.SENT:
                order_request(
                    account=account,
                    kind=K.RECONNECT,
                    reason=f"Disconnect #{disconnect.pk} was already with the head-end; {reason}",
                    due_by=timezone.now() + datetime.timedelta(minutes=policy.restore_within_minutes),
                )  # cancels the disconnect first, the reason on it
            else:
                order_cancel(order_id=disconnect.pk, reason=reason[0].upper() + reason[1:])
            disconnect = None
    if account.status != Account.Status.DISCONNECTED and disconnect is None:
        return
    account_id = account.pk
    transaction.on_commit(
        lambda: q.async_task("billing.prepaid.reconnect_if_restored", account_id=account_id)
    )


def funded_disconnects_cancel() -> int:
    """credit_posted for every account with an open disconnect order that is now above the
    disconnect level; returns how many were funded. For the credits no service posts one by one:
    the daily run's true-ups of estimates that were too high (billing.daily). Each account is
    judged under its row lock, as a payment would; the open orders are a handful a day (one query).
    """
    account_ids = list(
        ServiceOrder.objects.filter(kind=K.DISCONNECT, status__in=ServiceOrder.OPEN_STATUSES)
        .order_by("account_id")
        .values_list("account_id", flat=True)
        .distinct()
    )
    if not account_ids:
        return 0
    policy = Policy.objects.in_force(local_today())
    funded = 0
    for account_id in account_ids:
        with transaction.atomic():
            account = Account.objects.select_for_update().get(pk=account_id)
            if not policy.is_disconnect_level(account_balances(account).prepaid_credit):
                credit_posted(account)
                funded += 1
    return funded
