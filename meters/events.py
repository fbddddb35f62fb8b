"""What meters announces (coop/events.py) when the head-end or the crew confirms an order that
moved an account's status: order_confirm publishes these in its transaction, and notifications
tells the member after it commits."""

from dataclasses import dataclass

from coop.events import Event


@dataclass(frozen=True)
class AccountDisconnected(Event):
    """A disconnect order was confirmed and the account moved to disconnected."""

    account_id: int


@dataclass(frozen=True)
class AccountRestored(Event):
    """A reconnect order was confirmed and the account moved from disconnected back to active
    (not a new account's first connection)."""

    account_id: int
