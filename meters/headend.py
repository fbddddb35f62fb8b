"""Head-end adapters: what carries a service order (meters.models.ServiceOrder) to the meter, and how
the answer comes back.

The interface is one method, `send(order) -> None`. `meters.services.order_send` calls it while it
holds the order's row lock, so two workers running the same task never send one order twice. The
adapter either accepts the order (returns) or raises:

- `HeadEndTransientError`: may work later (timeout, head-end busy, meter not answering). The order
  becomes FAILED with a `next_attempt_at`; `meters.services.orders_retry_due` (the every-minute
  task) sends it again with exponential backoff until HEADEND_MAX_ATTEMPTS, after which it stays
  FAILED with no next attempt and is listed for staff ("Needs attention" in the admin).
- `HeadEndPermanentError`: will never work as it is (no meter, no remote switch). FAILED at once,
  no retry; staff move it to the field list or cancel it.

Accepting is not doing. The meter's switch has moved only when the confirmation comes back through
`meters.services.order_confirm`, which also moves the account's status:

- Simulated AMI head-end (`SimulatedAMIHeadEnd`, the adapter of every remote-capable meter): accepts
  the order and, after the sending transaction commits, enqueues `meters.tasks.order_confirm_task`,
  which the cluster runs at once, as a real head-end's "switch operated" callback would arrive a
  moment later. It fails on demand (settings below) so the retry path can be exercised.
- Field order (`FieldHeadEnd`, for meters without a remote switch or orders staff move to the
  field): "sending" puts the order on the printable field list (admin → Service orders → Field
  list); a clerk confirms it there or with the list action once the line crew reports the work
  done, and the order records who (`confirmed_by`) and when.
- A real AMI head-end would take the simulator's place: `send` posts the order (its idempotency
  key the order id, so a resend after a crash is recognised), and its webhook view or poll task
  calls `order_confirm` / `order_fail` with the order found by `external_id`.

Settings read (all optional; read on every send so a test or an operator can change them):

    HEADEND_SIMULATOR_FAIL            comma-separated meter serials, or "all": the simulator refuses
                                      orders for those meters with a transient error (retried).
    HEADEND_SIMULATOR_FAIL_PERMANENT  the same, but a permanent error (not retried).

Both accept a list/tuple of serials as well as a string. Serials compare case-insensitively.

    HEADEND_SIMULATOR_CONFIRM_DELAY_SECONDS  how long the simulator's confirmation task waits
                                      before it reports the switch operated (default 0; may be
                                      a fraction). A real head-end answers seconds to minutes
                                      later; the delay lets tests (and a demo) see a payment or a
                                      cancel arrive while the cut is in flight. The simulator has
                                      no cancel: it carries out every order it accepted, so a
                                      cancelled disconnect it confirms was "carried out before the
                                      cancel arrived" and is reversed (meters.services).
"""

from django.conf import settings
from django.db import transaction
from django_q import tasks as q

from meters.exceptions import HeadEndPermanentError, HeadEndTransientError
from meters.models import ServiceOrder

Adapter = ServiceOrder.Adapter


def _serials(setting_name: str) -> set[str]:
    value = getattr(settings, setting_name, "") or ""
    items = value.split(",") if isinstance(value, str) else list(value)
    return {str(item).strip().upper() for item in items if str(item).strip()}


def confirm_delay_seconds() -> float:
    return max(0.0, float(getattr(settings, "HEADEND_SIMULATOR_CONFIRM_DELAY_SECONDS", 0) or 0))


def _listed(setting_name: str, serial: str) -> bool:
    serials = _serials(setting_name)
    return "ALL" in serials or serial.upper() in serials


class HeadEnd:
    """The adapter interface. `adapter` is the ServiceOrder.Adapter value it serves."""

    adapter: str = ""

    def send(self, order: ServiceOrder) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class SimulatedAMIHeadEnd(HeadEnd):
    """Stands in for the AMI head-end: accepts at once, confirms asynchronously (see module doc)."""

    adapter = Adapter.SIMULATED_AMI

    def send(self, order: ServiceOrder) -> None:
        meter = order.meter
        if meter is None:
            raise HeadEndPermanentError(
                f"Order #{order.pk}: no meter is installed at the service address, so the head-end has "
                "nothing to switch. Install the meter, or move the order to the field list."
            )
        if not meter.remote_disconnect_capable:
            raise HeadEndPermanentError(
                f"Order #{order.pk}: meter {meter.serial} has no remote switch. Move the order to the "
                "field list."
            )
        if _listed("HEADEND_SIMULATOR_FAIL_PERMANENT", meter.serial):
            raise HeadEndPermanentError(
                f"Simulated head-end: meter {meter.serial} is unknown to the head-end "
                "(HEADEND_SIMULATOR_FAIL_PERMANENT)."
            )
        if _listed("HEADEND_SIMULATOR_FAIL", meter.serial):
            raise HeadEndTransientError(
                f"Simulated head-end: meter {meter.serial} did not answer (HEADEND_SIMULATOR_FAIL); "
                "the order will be sent again."
            )
        order.external_id = f"SIM-{order.pk}-{order.attempts}"
        order_id = order.pk
        # The confirmation may only be looked for once the SENT status is committed; the cluster
        # runs it at once (a real head-end's callback would come a few seconds later).
        transaction.on_commit(lambda: q.async_task("meters.tasks.order_confirm_task", order_id))


class FieldHeadEnd(HeadEnd):
    """A line crew: the order goes on the printable field list and a clerk confirms it."""

    adapter = Adapter.FIELD

    def send(self, order: ServiceOrder) -> None:
        # Nothing to transmit: SENT is "on the field list". A field order cannot fail to be sent.
        order.external_id = ""


ADAPTERS: dict[str, HeadEnd] = {a.adapter: a for a in (SimulatedAMIHeadEnd(), FieldHeadEnd())}


def adapter_for(order: ServiceOrder) -> HeadEnd:
    return ADAPTERS[order.adapter]


def adapter_for_meter(meter) -> str:
    """The adapter a new order for `meter` uses: the AMI head-end when the meter has a remote
    switch, a field order otherwise (or when no meter is installed)."""
    if meter is not None and meter.remote_disconnect_capable:
        return Adapter.SIMULATED_AMI
    return Adapter.FIELD
