"""A credit the daily run posts (a true-up of an estimate that was too high) is a credit like any
other: if it lifts the balance above the disconnect level, an open disconnect order is cancelled
(issue 10, point 2: "a payment or credit that lifts the balance above the disconnect level
cancels any open disconnect order that has not been carried out")."""

import datetime
from decimal import Decimal

import pytest
import time_machine

from accounts.tests import factories
from billing import services
from billing.daily import daily_run
from billing.selectors import account_balances
from billing.tests import factories as bf
from meters.models import MeterRead, ServiceOrder
from meters.services import order_move_to_field, order_request

pytestmark = pytest.mark.django_db
D = Decimal
K, S = ServiceOrder.Kind, ServiceOrder.Status
CHICAGO_NOON = "2026-12-15 18:00:00+00:00"


def test_a_true_up_credit_that_funds_the_account_cancels_its_disconnect_on_the_crews_list():
    factories.policy(effective_from=datetime.date(2020, 1, 1))
    bf.tariff(
        customer_charge=D("31.00"), blocks=((None, D("0.100000")),), summer_blocks=((None, D("0.100000")),)
    )
    account = bf.prepaid_account()
    d1, d2, d3 = (datetime.date(2026, 12, n) for n in (1, 2, 3))
    with time_machine.travel(CHICAGO_NOON, tick=False):
        bf.read(account.meter, d1, "20")
        daily_run(day=d1)
        daily_run(day=d2)  # no read: estimated from day 1, about 20 kWh
        # Cut for the negative balance; the crew has it on the list (sent, not carried out).
        order = order_request(account=account, kind=K.DISCONNECT, reason="Prepaid balance below the level")
        order_move_to_field(order_id=order.pk)
        # A payment that leaves the balance at -$0.50: still at the disconnect level.
        short = -account_balances(account).prepaid_credit
        services.payment_post(account=account, amount=short - D("0.50"), tender="cash", reference="part")
        order.refresh_from_db()
        assert order.status == S.SENT
        # Day 2's actual read was 0 kWh: its true-up credits about $2, more than day 3's charge.
        read = MeterRead.objects.get(meter=account.meter, day=d2)
        read.estimated_kwh, read.kwh, read.quality = read.kwh, D("0"), MeterRead.Quality.ACTUAL
        read.save()
        bf.read(account.meter, d3, "0")
        run = daily_run(day=d3)
    assert run.true_ups == 1
    balance = account_balances(account).prepaid_credit
    assert balance > 0, balance
    order.refresh_from_db()
    assert order.status == S.CANCELLED
    assert "above the disconnect level" in order.last_error
    # It was with the crew: a reconnect order follows in case the switch was already opened.
    assert ServiceOrder.objects.filter(
        account=account, kind=K.RECONNECT, status__in=ServiceOrder.OPEN_STATUSES
    ).exists()
