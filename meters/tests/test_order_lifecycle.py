"""A service order's status moves only along ServiceOrder.TRANSITIONS, through meters.services._move."""

import pytest

from coop.lifecycle import IllegalTransition, map_problems
from meters import services
from meters.exceptions import IllegalOrderTransition
from meters.models import ServiceOrder
from meters.tests.test_orders import active_account, request

pytestmark = pytest.mark.django_db
S = ServiceOrder.Status


def test_the_map_covers_every_order_status_and_names_no_other():
    assert map_problems(ServiceOrder.TRANSITIONS, S.values) == []
    assert services.ORDER_TRANSITIONS is ServiceOrder.TRANSITIONS


def test_a_cancelled_order_cannot_be_sent_and_nothing_changes(queued):  # noqa: F811
    order = request(active_account(serial="AMI1"))
    services.order_cancel(order_id=order.pk, reason="entered by mistake")
    order.refresh_from_db()
    with pytest.raises(IllegalOrderTransition) as exc:
        services._move(order, S.SENT)
    assert isinstance(exc.value, IllegalTransition)
    assert str(exc.value) == (
        f"Disconnect order #{order.pk} for account {order.account.number} is cancelled and cannot become "
        "sent. From cancelled it can become: none."
    )
    assert order.status == S.CANCELLED
    order.refresh_from_db()
    assert order.status == S.CANCELLED
