"""What billing announces (coop/events.py): published inside the transaction that made the
change, heard after it commits. notifications subscribes to each (the member's notices)."""

import datetime
from dataclasses import dataclass
from decimal import Decimal

from coop.events import Event


@dataclass(frozen=True)
class PaymentPosted(Event):
    """A payment was posted (payment_post, when it created one)."""

    payment_id: int


@dataclass(frozen=True)
class PaymentReturned(Event):
    """A posted payment came back (payment_return). `fee`: the returned-payment fee charged for
    it, if any."""

    payment_id: int
    fee: Decimal | None = None


@dataclass(frozen=True)
class DebtPlanChanged(Event):
    """A debt-management plan started, was completed or was cancelled."""

    plan_id: int


@dataclass(frozen=True)
class DepositChanged(Event):
    """A deposit was collected, applied or refunded: the transaction that moved it."""

    transaction_id: int


@dataclass(frozen=True)
class DailyRunFinished(Event):
    """The prepaid run for `service_day` has finished (its deductions are posted)."""

    service_day: datetime.date


@dataclass(frozen=True)
class DisconnectsPending(Event):
    """These accounts are at the disconnect level: service will be cut between `window_start` and
    `window_end` (aware datetimes, billing.prepaid.next_disconnect_window) unless they pay."""

    account_ids: tuple[int, ...]
    window_start: datetime.datetime
    window_end: datetime.datetime
