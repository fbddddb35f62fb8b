"""Background jobs for service orders (django-q2). Each takes ids and calls one service; each is
safe to run twice (sending a sent order, or confirming a confirmed one, does nothing).

    meters.tasks.order_send_task(order_id)      enqueued after commit by order_request
    meters.tasks.order_confirm_task(order_id)   the simulated head-end's confirmation (after
                                                HEADEND_SIMULATOR_CONFIRM_DELAY_SECONDS)
    meters.tasks.orders_retry_task()            the every-minute retry sweep (coop/schedules.py)
"""

import time

from django.utils import timezone

from meters import headend, services
from meters.models import ServiceOrder


def order_send_task(order_id: int) -> str:
    return services.order_send(order_id=order_id).status


def orders_retry_task() -> int:
    """Orders whose retry time has come are sent to the head-end again."""
    return services.orders_retry_due(now=timezone.now())


def order_confirm_task(order_id: int) -> str | None:
    delay = headend.confirm_delay_seconds()
    if delay:
        time.sleep(
            delay
        )  # the simulated head-end is slow to answer (HEADEND_SIMULATOR_CONFIRM_DELAY_SECONDS)
    order = services.order_confirm_from_headend(order_id=order_id, adapter=ServiceOrder.Adapter.SIMULATED_AMI)
    return order.status if order else None
