"""The daily run's notices are heard by notifications after the run (coop.events); when they
fail, the run's own page says so, as it did when the run called them itself."""

import datetime
from decimal import Decimal

import pytest
import time_machine

from billing import services
from billing.daily import daily_run
from billing.models import DailyRun
from billing.tests import factories as bf
from notifications import events

pytestmark = pytest.mark.django_db


def test_notices_that_fail_after_the_run_mark_the_run_finished_with_failures(policy, monkeypatch):
    bf.tariff()
    account = bf.prepaid_account()
    services.payment_post(account=account, amount=Decimal("30.00"), tender="cash", reference="r1")
    day = datetime.date(2026, 12, 14)

    def broken(*, service_day):
        raise RuntimeError("template missing")

    monkeypatch.setattr(events, "notices_after_daily_run", broken)
    with time_machine.travel("2026-12-15 18:00:00+00:00", tick=False):
        bf.read(account.meter, day, "10")
        run = daily_run(day=day)
    assert run.deductions == 1  # the money stands
    assert run.status == DailyRun.Status.FAILED
    assert run.failures == 1
    assert run.failure_detail == "notices: template missing (run the day again to queue them)"


def test_a_run_whose_notices_are_queued_is_finished(policy, monkeypatch):
    bf.tariff()
    account = bf.prepaid_account()
    services.payment_post(account=account, amount=Decimal("30.00"), tender="cash", reference="r1")
    heard = []
    monkeypatch.setattr(events, "notices_after_daily_run", lambda *, service_day: heard.append(service_day))
    day = datetime.date(2026, 12, 14)
    with time_machine.travel("2026-12-15 18:00:00+00:00", tick=False):
        bf.read(account.meter, day, "10")
        run = daily_run(day=day)
    assert heard == [day]
    assert (run.status, run.failures, run.failure_detail) == (DailyRun.Status.FINISHED, 0, "")
