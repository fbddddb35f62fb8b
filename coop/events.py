"""What happened, announced by a lower app and heard by the higher ones (docs/ARCHITECTURE.md,
"Layers"): billing must not import notifications to have a receipt sent, so it publishes
`PaymentPosted` and notifications, which subscribed, queues the receipt.

- An event is a frozen dataclass that subclasses `Event` and carries ids and plain values,
  never model instances (a handler reads what it needs, as it is after the commit). Each app
  defines the events it publishes (`billing/events.py`, `meters/events.py`).
- `subscribe(EventType, handler)` in the subscribing app's `AppConfig.ready()`; `handler(event)`.
- `publish(event)` inside the transaction that made the change: the subscribers hear of it only
  after that transaction commits (`transaction.on_commit`), at once when none is open, and never
  when it rolls back. Each handler runs in its own transaction; one that fails is logged and
  rolled back alone: the other handlers still run and the change it announces stands.
- `muted()`: what is published inside it is delivered to no one (the demo builds past payments
  and days; they must not text anyone today). Decided when published, as the commit may come
  after the block has ended.

No Django model signals: a publish is an explicit line in the service that made the change.
"""

import contextlib
import contextvars
import dataclasses
import functools
import logging
from collections.abc import Callable

from django.db import models, transaction

logger = logging.getLogger(__name__)

_subscribers: dict[type, list[Callable]] = {}
_MUTED = contextvars.ContextVar("coop_events_muted", default=False)


class Event:
    """Base of every event type; subclasses are `@dataclass(frozen=True)`."""


def _check_event_type(event_type) -> None:
    if not (
        isinstance(event_type, type)
        and issubclass(event_type, Event)
        and dataclasses.is_dataclass(event_type)
        and event_type.__dataclass_params__.frozen
    ):
        raise TypeError(f"{event_type!r} is not an event type (a frozen dataclass subclassing Event).")


def subscribe(event_type: type[Event], handler: Callable[[Event], object]) -> None:
    """Have `handler(event)` called after each `event_type` published from now on. Subscribing
    the same handler again changes nothing."""
    _check_event_type(event_type)
    handlers = _subscribers.setdefault(event_type, [])
    if handler not in handlers:
        handlers.append(handler)


def subscribers(event_type: type[Event]) -> list[Callable]:
    return list(_subscribers.get(event_type, ()))


def publish(event: Event) -> None:
    """Announce `event`: its subscribers hear of it after the surrounding transaction commits."""
    _check_event_type(type(event))
    for field in dataclasses.fields(event):
        if isinstance(getattr(event, field.name), models.Model):
            raise TypeError(f"{type(event).__name__}.{field.name} is a model instance; events carry ids.")
    if _MUTED.get():
        return
    _after_commit(functools.partial(deliver, event))


def _after_commit(delivery: Callable[[], None]) -> None:
    """The one place a delivery waits for the commit (conftest.py emulates the commit of the code
    under test inside the test case's transaction, which never commits)."""
    transaction.on_commit(delivery)


def deliver(event: Event) -> None:
    """Call every subscriber of `event`'s type now, each in its own transaction."""
    for handler in subscribers(type(event)):
        try:
            with transaction.atomic():
                handler(event)
        except Exception:
            name = getattr(handler, "__qualname__", repr(handler))
            logger.exception("%s could not handle %r; the change it announces stands", name, event)


@contextlib.contextmanager
def muted():
    """Deliver nothing published inside this block, to anyone."""
    token = _MUTED.set(True)
    try:
        yield
    finally:
        _MUTED.reset(token)
