"""Story tests for the prepaid programs (docs/ARCHITECTURE.md: "one member's month under each
preset, asserting every cent"): programs A, B and E of docs/POLICIES.md, loaded from their presets.

Every story uses the same simple prices, so each cent can be checked by hand:

    customer charge $31.00 a month; December 2026 has 31 days, so the month-to-date customer
    charge after n charged days is round(3100 x n / 31) cents = exactly n dollars: $1.00 a day;
    energy $0.100000 per kWh flat, no rider: 20 kWh is $2.00, 10 kWh $1.00, 1 kWh $0.10;
    so an ordinary day of 20 kWh costs $3.00 (program A adds a 5.5% sales tax, worked out there).

Time is frozen (time-machine, tick=False) and moved through the month the way the schedule moves
it: at 06:00 Chicago each morning yesterday's read arrives and `daily_run` prices yesterday; the
disconnect step (`disconnect_run`, every 15 minutes in production) is called at the moments that
matter. The django-q2 cluster is replaced by `Cluster` below, which queues each task the services
enqueue after commit and runs it when the story says so, so every step of a disconnect or reconnect
(requested, sent to the head-end, confirmed) can be looked at on its own.

December 2026: Tuesday the 1st; Sat/Sun 5-6, 12-13, 19-20, 26-27; Wisconsin holidays Thursday 24
(Christmas Eve), Friday 25 (Christmas Day) and Thursday 31 (New Year's Eve).
"""

import datetime
import io
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.utils.module_loading import import_string
from django_q import tasks as q_tasks

from accounts.models import Account, AccountStatusChange
from billing import services
from billing.daily import daily_run
from billing.exceptions import PaymentRefused
from billing.inactive import inactive_sweep
from billing.models import DailyRun, DebtPlan, Deduction, DisconnectDecision, Payment, Transaction
from billing.prepaid import disconnect_run, next_disconnect_window, restore_amount_needed
from billing.rates import month_prices, monthly_bill
from billing.selectors import Balances, account_balances
from billing.tests import factories as bf
from coop.calendar import coop_zone, disconnect_grace_reason, holiday_name
from coop.models import Policy
from coop.services import policy_load_presets, weather_hold_create
from meters.models import ServiceOrder
from notifications.models import Message
from notifications.notices import Channel, Notice

pytestmark = pytest.mark.django_db

D = Decimal
ZERO = D("0.00")
K, S = ServiceOrder.Kind, ServiceOrder.Status
SKIPPED, ORDERED = DisconnectDecision.Outcome.SKIPPED, DisconnectDecision.Outcome.ORDERED
ACTIVE, DISCONNECTED, INACTIVE = Account.Status.ACTIVE, Account.Status.DISCONNECTED, Account.Status.INACTIVE
RECONNECT_CHECK = "billing.prepaid.reconnect_if_restored"
SEND = "meters.tasks.order_send_task"
CONFIRM = "meters.tasks.order_confirm_task"
NOTICES_SEND = "notifications.tasks.messages_send_task"
RECEIPT, LOW, PENDING = Notice.PAYMENT_RECEIPT, Notice.LOW_BALANCE, Notice.PENDING_DISCONNECT
CUT_NOTICE, RESTORED_NOTICE, PLAN_NOTICE = Notice.DISCONNECTED, Notice.RESTORED, Notice.PLAN_CHANGE
FLAT_10_CENTS = ((None, D("0.100000")),)


def at(month: int, day: int, hour: int = 0, minute: int = 0, *, year: int = 2026) -> datetime.datetime:
    """An instant on the cooperative's clock (America/Chicago)."""
    return datetime.datetime(year, month, day, hour, minute, tzinfo=coop_zone())


def dec(day: int) -> datetime.date:
    return datetime.date(2026, 12, day)


ONE_DAY = datetime.timedelta(days=1)


# --- The cluster, the clock and the people ------------------------------------------------------


class Cluster:
    """Stands in for the django-q2 cluster. `async_task` only queues the call (the services enqueue
    after commit); `run_next` runs the oldest queued task the way a worker would, as its own
    committed transaction, so the tasks it enqueues in turn are queued behind it.

    The members' notices (payment receipts, disconnect and restore emails...) are handed to
    send tasks after commit too. Those are kept apart, as the message ids of each send task, in
    `notices`, and never run: `queue` holds the steps of a disconnect or reconnect the story runs
    one by one, and what was sent to whom is asserted from `notices`."""

    def __init__(self, capture_on_commit):
        self.capture_on_commit = capture_on_commit
        self.queue: list[tuple[str, tuple, dict]] = []
        self.notices: list[list[int]] = []

    def async_task(self, func, *args, **kwargs):
        if func == NOTICES_SEND:
            (message_ids,) = args
            self.notices.append(list(message_ids))
            return f"notices-{len(self.notices)}"
        self.queue.append((func, args, kwargs))
        return f"task-{len(self.queue)}"

    def run_next(self, expected: tuple[str, tuple, dict]):
        assert self.queue and self.queue[0] == expected, f"queued: {self.queue}"
        func, args, kwargs = self.queue.pop(0)
        with self.capture_on_commit(execute=True):
            return import_string(func)(*args, **kwargs)

    def notices_sent(self) -> list[tuple[str, datetime.date]]:
        """(notice, day) of each message handed to a send task so far, in order. The member has an
        email address and no mobile number, so each notice is one email."""
        ids = [pk for batch in self.notices for pk in batch]
        messages = Message.objects.in_bulk(ids)
        assert {messages[pk].channel for pk in ids} <= {Channel.EMAIL}
        return [(messages[pk].notice, messages[pk].notice_day) for pk in ids]


@pytest.fixture
def cluster(monkeypatch, django_capture_on_commit_callbacks):
    fake = Cluster(django_capture_on_commit_callbacks)
    monkeypatch.setattr(q_tasks, "async_task", fake.async_task)
    return fake


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run a block as a committed transaction: its on-commit callbacks (the enqueues) run at the end."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def clock():
    with time_machine.travel(at(11, 30, 8, 0), tick=False) as traveller:
        yield traveller


def start_program(name: str, **tariff) -> Account:
    """The program's preset in force all year, the tariff, and the member's prepaid account (active,
    AMI meter with a remote switch installed)."""
    policy_load_presets(names=[name], effective_from=datetime.date(2026, 1, 1))
    bf.tariff(customer_charge="31.00", blocks=FLAT_10_CENTS, **tariff)
    account = bf.prepaid_account()
    assert account.status == ACTIVE
    return account


def morning_run(clock, committed, account, service_day: datetime.date, kwh) -> tuple:
    """06:00 the next morning: the day's read arrives and the daily run prices the day (committed:
    the low-balance and pending-disconnect notices it queues are handed to their send tasks).
    Returns the day's deduction as (kWh, energy, customer charge, tax, total, balance after)."""
    clock.move_to(datetime.datetime.combine(service_day + ONE_DAY, datetime.time(6, 0), tzinfo=coop_zone()))
    bf.read(account.meter, service_day, kwh)
    with committed():
        run = daily_run(day=service_day)
    assert run.status == DailyRun.Status.FINISHED and run.failures == 0
    row = Deduction.objects.get(account=account, service_day=service_day, kind=Deduction.Kind.DAILY)
    assert row.riders == ZERO
    assert row.balance_after == balance(account)
    return (row.kwh, row.energy, row.customer_charge, row.tax, row.total, row.balance_after)


def disconnect_step(clock, committed, when: datetime.datetime):
    clock.move_to(when)
    with committed():
        return disconnect_run(now=when)


def pay(clock, committed, account, amount: str, reference: str, when: datetime.datetime) -> Payment:
    clock.move_to(when)
    with committed():
        payment, created = services.payment_post(
            account=account, amount=D(amount), tender="card", reference=reference
        )
    assert created
    return payment


def balance(account) -> Decimal:
    return account_balances(account).prepaid_credit


def status(account) -> str:
    account.refresh_from_db()
    return account.status


def decisions(account) -> list[tuple]:
    return [
        (d.day, d.outcome, d.reason, d.balance, d.order_id)
        for d in DisconnectDecision.objects.filter(account=account).order_by("decided_at", "id")
    ]


def orders(account, kind) -> list[ServiceOrder]:
    return list(ServiceOrder.objects.filter(account=account, kind=kind).order_by("id"))


def status_changes(account) -> list[tuple]:
    return [
        (c.from_status, c.to_status, c.changed_at, c.reason)
        for c in AccountStatusChange.objects.filter(account=account).order_by("changed_at", "id")
    ]


def carry_out(cluster, order: ServiceOrder) -> ServiceOrder:
    """The order's send task (queued when it committed) reaches the simulated head-end, which
    accepts it (SENT) and queues its confirmation; the confirmation moves the switch (CONFIRMED)."""
    cluster.run_next((SEND, (order.pk,), {}))
    order.refresh_from_db()
    assert order.status == S.SENT and order.adapter == ServiceOrder.Adapter.SIMULATED_AMI
    assert order.external_id == f"SIM-{order.pk}-1" and order.attempts == 1
    cluster.run_next((CONFIRM, (order.pk,), {}))
    order.refresh_from_db()
    assert order.status == S.CONFIRMED
    assert cluster.queue == []
    return order


def month_sums(account, month_start: datetime.date) -> tuple:
    rows = list(
        Deduction.objects.filter(
            account=account, service_day__gte=month_start, service_day__lt=month_start + 31 * ONE_DAY
        )
    )
    return (
        len(rows),
        sum((r.kwh for r in rows), D(0)),
        sum((r.energy for r in rows), ZERO),
        sum((r.customer_charge for r in rows), ZERO),
        sum((r.tax for r in rows), ZERO),
        sum((r.total for r in rows), ZERO),
    )


def monthly_bill_dollars(month_start: datetime.date, *, kwh, days) -> tuple:
    bill = monthly_bill(month_prices(month_start), kwh=D(kwh), days=days)
    return tuple(D(cents) / 100 for cents in (bill.energy, bill.customer, bill.tax, bill.total))


def assert_ledger_audit_passes():
    out = io.StringIO()
    call_command("ledger_audit", stdout=out)  # exits 1 on any broken invariant
    assert "ledger_audit ok" in out.getvalue()


# --- Program E ------------------------------------------------------------------------------------


def test_program_e_member_runs_out_before_christmas_and_is_cut_on_the_first_weekday_window(
    clock, cluster, committed, manager
):
    """Program E: service is cut when the balance goes negative, but never on a weekend, a holiday
    or in a weather hold, and only 10:00-11:00 on the first weekday after the grace. Restored at
    $20 plus the debt used since credit ran out, within 15 minutes.

    The member prepays $66.00, exactly 22 ordinary days. The balance is $0.00 (not negative) after
    Tuesday 22 December and goes negative with Wednesday 23's charge, posted on the morning of
    Christmas Eve. Christmas Eve, Christmas Day, the weekend and Monday 28 (a weather hold the
    manager entered on Saturday) pass without a cut, while the member keeps using energy on credit;
    on Tuesday 29 the 09:59 run still waits, the 10:00 run cuts. On Wednesday 30 the member pays a
    cent less than needed (nothing happens), then the last cent (the reconnect is due 15 minutes
    later and the head-end confirms it at once).

    Timeline (Chicago)                          charge  balance
      Mon 30 Nov 08:00  pays $66.00                       66.00
      Dec 1-22          20 kWh a day             3.00      0.00 after the 22nd (not negative)
      Thu 24 06:00      charge for Wed 23         3.00     -3.00  holiday: Christmas Eve
      Fri 25 06:00      charge for Thu 24         3.00     -6.00  holiday: Christmas Day
      Sat 26 06:00      charge for Fri 25         3.00     -9.00  weekend; 14:00 weather hold for Mon 28
      Sun 27 06:00      charge for Sat 26         3.00    -12.00  weekend
      Mon 28 06:00      charge for Sun 27         3.00    -15.00  weather hold
      Tue 29 06:00      charge for Mon 28         3.00    -18.00  09:59 outside the window; 10:00 cut
      Wed 30 06:00      Tue 29: 10 kWh + customer charge (on until 10:00)    2.00  -20.00
      Wed 30 12:00      pays $39.99 (one cent short of 20.00 + 20.00)        19.99  stays off
      Wed 30 12:30      pays $0.01: reconnect due 12:45, confirmed 12:30      20.00  active
      Thu 31 06:00      Wed 30: 10 kWh + customer charge           2.00      18.00
      Fri  1 Jan 06:00  Thu 31: 20 kWh                             3.00      15.00
    """
    account = start_program("E")
    policy = Policy.objects.in_force(dec(1))
    assert (policy.disconnect_rule, policy.disconnect_level) == (Policy.DisconnectRule.BELOW, ZERO)
    assert (policy.grace_on_weekends, policy.grace_on_holidays, policy.grace_on_weather_holds) == (
        True,
        True,
        True,
    )
    assert (policy.disconnect_window_start, policy.disconnect_window_end) == (
        datetime.time(10, 0),
        datetime.time(11, 0),
    )
    assert (policy.restore_level, policy.restore_adds_accrued_debt, policy.restore_within_minutes) == (
        D("20.00"),
        True,
        15,
    )
    # E's preset does not continue daily charges while disconnected (the seed is silent on it).
    assert policy.charges_continue_while_disconnected is False
    # The calendar the story relies on (the `holidays` package, Wisconsin).
    assert (holiday_name(dec(23)), holiday_name(dec(24)), holiday_name(dec(25))) == (
        None,
        "Christmas Eve",
        "Christmas Day",
    )
    assert (holiday_name(dec(26)), holiday_name(dec(28)), holiday_name(dec(29))) == (None, None, None)

    pay(clock, committed, account, "66.00", "E-start", at(11, 30, 8, 0))
    assert cluster.queue == []  # an active account: no reconnect check
    assert cluster.notices_sent() == [(RECEIPT, datetime.date(2026, 11, 30))]  # but a receipt
    assert balance(account) == D("66.00")

    # Dec 1-22: $3.00 a day (20 kWh x 0.10 = 2.00 energy; customer charge n - (n - 1) = 1.00).
    # The 10:15 disconnect step finds nobody; after the 22nd the balance is exactly $0.00, which
    # is not negative under E.
    expected = D("66.00")
    for day in range(1, 23):
        expected -= D("3.00")
        assert morning_run(clock, committed, account, dec(day), 20) == (
            D("20"),
            D("2.00"),
            D("1.00"),
            ZERO,
            D("3.00"),
            expected,
        )
        summary = disconnect_step(clock, committed, at(12, day + 1, 10, 15))
        assert (summary.candidates, summary.ordered, summary.skipped) == (0, 0, 0)
    assert expected == ZERO and balance(account) == ZERO
    assert decisions(account) == []

    # Thu 24 (Christmas Eve), 06:00: Wednesday's $3.00 takes the balance to -3.00.
    assert morning_run(clock, committed, account, dec(23), 20) == (
        D("20"),
        D("2.00"),
        D("1.00"),
        ZERO,
        D("3.00"),
        D("-3.00"),
    )
    # The pending-disconnect notice: Christmas Eve, Christmas Day and the weekend are grace, so
    # (before any weather hold) the first window is Monday 28, 10:00-11:00.
    assert next_disconnect_window(after=at(12, 24, 6, 0)) == (at(12, 28, 10, 0), at(12, 28, 11, 0))
    # The step runs all day; the skip is recorded once for the day, whatever the hour.
    for hour, minute, recorded in ((6, 15, 1), (10, 15, 0), (10, 45, 0)):
        summary = disconnect_step(clock, committed, at(12, 24, hour, minute))
        assert (summary.day_reason, summary.candidates, summary.skipped, summary.ordered) == (
            "holiday: Christmas Eve",
            1,
            1,
            0,
        )
        assert summary.decisions_recorded == recorded

    # Fri 25 (Christmas Day).
    assert morning_run(clock, committed, account, dec(24), 20)[-2:] == (D("3.00"), D("-6.00"))
    assert disconnect_step(clock, committed, at(12, 25, 10, 15)).day_reason == "holiday: Christmas Day"

    # Sat 26: weekend. At 14:00 the manager enters a weather hold for Monday (forecast).
    assert morning_run(clock, committed, account, dec(25), 20)[-2:] == (D("3.00"), D("-9.00"))
    assert disconnect_step(clock, committed, at(12, 26, 10, 15)).day_reason == "weekend"
    clock.move_to(at(12, 26, 14, 0))
    hold = weather_hold_create(
        actor=manager, start_date=dec(28), end_date=dec(28), reason="Extreme cold: -30F wind chill"
    )
    assert (hold.entered_by, hold.entered_at) == (manager, at(12, 26, 14, 0))
    # The notice's window, asked again from Thursday 06:00, now skips Monday: Tuesday 29.
    assert next_disconnect_window(after=at(12, 24, 6, 0)) == (at(12, 29, 10, 0), at(12, 29, 11, 0))

    # Sun 27: weekend.
    assert morning_run(clock, committed, account, dec(26), 20)[-2:] == (D("3.00"), D("-12.00"))
    assert disconnect_step(clock, committed, at(12, 27, 10, 15)).day_reason == "weekend"

    # Mon 28: a weekday and no holiday, but the weather hold.
    assert morning_run(clock, committed, account, dec(27), 20)[-2:] == (D("3.00"), D("-15.00"))
    assert disconnect_grace_reason(dec(28)) == "weather hold: Extreme cold: -30F wind chill"
    summary = disconnect_step(clock, committed, at(12, 28, 10, 15))
    assert summary.day_reason == "weather hold: Extreme cold: -30F wind chill" and summary.skipped == 1

    # Tue 29: no grace. 09:59 is outside the window; 10:00 cuts.
    assert morning_run(clock, committed, account, dec(28), 20)[-2:] == (D("3.00"), D("-18.00"))
    assert disconnect_grace_reason(dec(29)) is None
    summary = disconnect_step(clock, committed, at(12, 29, 9, 59))
    assert (summary.day_reason, summary.skipped, summary.ordered) == (
        "outside the disconnect window 10:00-11:00",
        1,
        0,
    )
    assert orders(account, K.DISCONNECT) == []
    summary = disconnect_step(clock, committed, at(12, 29, 10, 0))
    assert (summary.day_reason, summary.candidates, summary.ordered, summary.skipped) == (None, 1, 1, 0)
    (cut,) = orders(account, K.DISCONNECT)
    assert (cut.status, cut.requested_at, cut.reason) == (
        S.QUEUED,
        at(12, 29, 10, 0),
        "Prepaid balance $-18.00 is below the disconnect level $0.00",
    )
    assert status(account) == ACTIVE  # not until the head-end confirms
    cut = carry_out(cluster, cut)
    assert (cut.sent_at, cut.confirmed_at) == (at(12, 29, 10, 0), at(12, 29, 10, 0))
    assert status(account) == DISCONNECTED

    # Why each day went as it did.
    assert decisions(account) == [
        (dec(24), SKIPPED, "holiday: Christmas Eve", D("-3.00"), None),
        (dec(25), SKIPPED, "holiday: Christmas Day", D("-6.00"), None),
        (dec(26), SKIPPED, "weekend", D("-9.00"), None),
        (dec(27), SKIPPED, "weekend", D("-12.00"), None),
        (dec(28), SKIPPED, "weather hold: Extreme cold: -30F wind chill", D("-15.00"), None),
        (dec(29), SKIPPED, "outside the disconnect window 10:00-11:00", D("-18.00"), None),
        (
            dec(29),
            ORDERED,
            "Prepaid balance $-18.00 is below the disconnect level $0.00",
            D("-18.00"),
            cut.pk,
        ),
    ]

    # Wed 30, 06:00: Tuesday's 10 kWh (used before the switch opened at 10:00) costs $1.00, and
    # Tuesday carries the customer charge: the member had service for part of it (the run decides
    # from when the status changed, not from the status at run time).
    assert morning_run(clock, committed, account, dec(29), 10) == (
        D("10"),
        D("1.00"),
        D("1.00"),
        ZERO,
        D("2.00"),
        D("-20.00"),
    )

    # Restore: $20.00 plus the $20.00 used since credit ran out (3.00 x 6 days + 2.00) = $40.00.
    clock.move_to(at(12, 30, 11, 0))
    assert restore_amount_needed(account) == D("40.00")
    # 12:00: one cent short. The reconnect check runs after commit and orders nothing.
    pay(clock, committed, account, "39.99", "E-short", at(12, 30, 12, 0))
    assert balance(account) == D("19.99")
    assert cluster.run_next((RECONNECT_CHECK, (), {"account_id": account.pk})) is None
    assert cluster.queue == [] and orders(account, K.RECONNECT) == []
    assert status(account) == DISCONNECTED
    assert restore_amount_needed(account) == D("0.01")
    # 12:30: the last cent. The check (queued at commit) requests the reconnect, due in 15 minutes,
    # and its send task is queued as that commits.
    pay(clock, committed, account, "0.01", "E-cent", at(12, 30, 12, 30))
    assert balance(account) == D("20.00")
    reconnect = cluster.run_next((RECONNECT_CHECK, (), {"account_id": account.pk}))
    assert (reconnect.kind, reconnect.status, reconnect.requested_at, reconnect.due_by) == (
        K.RECONNECT,
        S.QUEUED,
        at(12, 30, 12, 30),
        at(12, 30, 12, 45),
    )
    assert reconnect.reason == "Prepaid balance $20.00 reaches the restore level $20.00"
    assert cluster.queue == [(SEND, (reconnect.pk,), {})]
    reconnect = carry_out(cluster, reconnect)
    assert reconnect.sent_at == at(12, 30, 12, 30)
    assert reconnect.confirmed_at == at(12, 30, 12, 30) <= reconnect.due_by
    assert status(account) == ACTIVE
    assert restore_amount_needed(account) == ZERO

    # Thu 31: Wednesday, 10 kWh after the reconnect, and its customer charge (active at the end of
    # the day): round(3100 x 30 / 31) - round(3100 x 29 / 31) = 30.00 - 29.00.
    assert morning_run(clock, committed, account, dec(30), 10) == (
        D("10"),
        D("1.00"),
        D("1.00"),
        ZERO,
        D("2.00"),
        D("18.00"),
    )
    # Fri 1 Jan: Thursday 31, 20 kWh.
    assert morning_run(clock, committed, account, dec(31), 20) == (
        D("20"),
        D("2.00"),
        D("1.00"),
        ZERO,
        D("3.00"),
        D("15.00"),
    )
    assert disconnect_step(clock, committed, at(1, 1, 10, 15, year=2027)).candidates == 0

    assert status_changes(account)[-2:] == [
        (
            ACTIVE,
            DISCONNECTED,
            at(12, 29, 10, 0),
            f"Service order #{cut.pk}: disconnect confirmed by the head-end",
        ),
        (
            DISCONNECTED,
            ACTIVE,
            at(12, 30, 12, 30),
            f"Service order #{reconnect.pk}: reconnect confirmed by the head-end",
        ),
    ]
    # The month: 28 x 20 + 10 + 10 + 20 = 600 kWh = $60.00; customer charge for all 31 days (the
    # member had service on every one of them, if only for part of the 29th) = $31.00; $91.00 in
    # all, the monthly bill for 600 kWh. Paid 66.00 + 39.99 + 0.01 = 106.00; 106.00 - 91.00 = 15.00.
    assert month_sums(account, dec(1)) == (31, D("600"), D("60.00"), D("31.00"), ZERO, D("91.00"))
    assert monthly_bill_dollars(dec(1), kwh="600", days=31) == (D("60.00"), D("31.00"), ZERO, D("91.00"))
    assert account_balances(account) == Balances(
        prepaid_credit=D("15.00"), arrears=ZERO, deposit_held=ZERO, amount_due=ZERO
    )
    # What the member was told, one email each: every payment's receipt, the low-balance warning
    # when the balance first fell below the $20.00 default level (18.00 after the 16th), the
    # pending-disconnect notice for Monday 28's window, again for Tuesday 29's once the weather hold
    # moved it, the disconnect, the restore, and the warning again at 18.00 after the 30th.
    assert cluster.notices_sent() == [
        (RECEIPT, datetime.date(2026, 11, 30)),
        (LOW, dec(16)),
        (PENDING, dec(28)),
        (PENDING, dec(29)),
        (CUT_NOTICE, dec(29)),
        (RECEIPT, dec(30)),
        (RECEIPT, dec(30)),
        (RESTORED_NOTICE, dec(30)),
        (LOW, dec(30)),
    ]
    assert_ledger_audit_passes()


# --- Program A ------------------------------------------------------------------------------------


def test_program_a_member_reaches_exactly_zero_on_a_saturday_and_is_cut_on_sunday_despite_the_weather(
    clock, cluster, committed, manager
):
    """Program A: "if your balance reaches zero, power is automatically disconnected", at any hour
    of any day; "weather conditions will not postpone disconnection". Restored once the account
    has at least a $50 credit.

    The member prepays $60.14, which is exactly 19 ordinary days with the 5.5% tax, so Saturday
    19 December's charge (posted Sunday 06:00) leaves exactly $0.00. The manager has declared a
    weather hold for Saturday to Monday; A ignores it (and the weekend): the 06:15 step on Sunday
    cuts. On Monday the member pays one cent less than needed for a $50.00 credit (nothing
    happens), then the cent (reconnected).

    Tax: after n ordinary days the month-to-date amount before tax is 300n cents and the tax
    round(0.055 x 300n) = round(16.5n) cents, so the day's tax part is 0.17 on odd n (16.5n ends
    in .5 and rounds up) and 0.16 on even n: the days cost 3.17, 3.16, 3.17, ...

    Timeline (Chicago)                          charge  balance
      Mon 30 Nov 08:00  pays $60.14                       60.14
      Dec 1-18          20 kWh a day         3.17/3.16     3.17 after the 18th (9 x 6.33 = 56.97)
      Fri 18 09:00      manager: weather hold Sat 19 - Mon 21
      Sat 19 06:15      disconnect step: balance 3.17, nobody to cut
      Sun 20 06:00      charge for Sat 19 (n = 19)  3.17   0.00
      Sun 20 06:15      cut (weekend and weather hold do not matter), confirmed at once
      Mon 21 06:00      Sun 20: 1 kWh before the cut + customer charge, tax part 0.06
                                                   1.16   -1.16
      Mon 21 08:00      pays $51.15 (one cent short of 50.00 + 1.16)         49.99  stays off
      Mon 21 08:05      pays $0.01: reconnect due 08:20, confirmed 08:05      50.00  active
      Dec 21-31         20 kWh a day         3.16/3.17    15.19 after the 31st
    """
    account = start_program("A", tax_percent=D("5.5000"))
    policy = Policy.objects.in_force(dec(1))
    assert (policy.disconnect_rule, policy.disconnect_level) == (Policy.DisconnectRule.AT_OR_BELOW, ZERO)
    assert (policy.grace_on_weekends, policy.grace_on_holidays, policy.grace_on_weather_holds) == (
        False,
        False,
        False,
    )
    assert (policy.disconnect_window_start, policy.disconnect_window_end) == (None, None)
    assert (policy.restore_level, policy.restore_adds_accrued_debt, policy.prepaid_minimum_payment) == (
        D("50.00"),
        False,
        ZERO,
    )
    assert policy.charges_continue_while_disconnected is False

    pay(clock, committed, account, "60.14", "A-start", at(11, 30, 8, 0))

    # Dec 1-18: 2.00 energy + 1.00 customer charge + 0.17 (odd n) or 0.16 (even n) tax.
    expected = D("60.14")
    for day in range(1, 19):
        tax = D("0.17") if day % 2 else D("0.16")
        expected -= D("3.00") + tax
        assert morning_run(clock, committed, account, dec(day), 20) == (
            D("20"),
            D("2.00"),
            D("1.00"),
            tax,
            D("3.00") + tax,
            expected,
        )
        summary = disconnect_step(clock, committed, at(12, day + 1, 6, 15))
        assert (summary.day_reason, summary.candidates, summary.ordered) == (None, 0, 0)
        if day == 17:  # Fri 18, 09:00: extreme cold forecast for the weekend
            clock.move_to(at(12, 18, 9, 0))
            weather_hold_create(
                actor=manager, start_date=dec(19), end_date=dec(21), reason="Extreme cold: -30F wind chill"
            )
    # 18 days: 54.00 before tax, tax round(16.5 x 18) = 297 cents: 56.97; 60.14 - 56.97 = 3.17.
    assert expected == D("3.17") == balance(account)
    assert decisions(account) == []  # Saturday's 06:15 step found a positive balance

    # Sun 20, 06:00: Saturday's charge, n = 19: tax round(16.5 x 19) - 297 = 314 - 297 = 17 cents.
    assert morning_run(clock, committed, account, dec(19), 20) == (
        D("20"),
        D("2.00"),
        D("1.00"),
        D("0.17"),
        D("3.17"),
        ZERO,
    )
    # A grants no grace: not for the weekend, not for the weather hold in force today.
    assert disconnect_grace_reason(dec(20)) is None
    summary = disconnect_step(clock, committed, at(12, 20, 6, 15))
    assert (summary.day_reason, summary.candidates, summary.ordered, summary.skipped) == (None, 1, 1, 0)
    (cut,) = orders(account, K.DISCONNECT)
    assert (cut.requested_at, cut.reason) == (
        at(12, 20, 6, 15),
        "Prepaid balance $0.00 is at or below the disconnect level $0.00",
    )
    cut = carry_out(cluster, cut)
    assert cut.confirmed_at == at(12, 20, 6, 15)
    assert status(account) == DISCONNECTED
    assert decisions(account) == [
        (dec(20), ORDERED, "Prepaid balance $0.00 is at or below the disconnect level $0.00", ZERO, cut.pk)
    ]

    # Mon 21, 06:00: Sunday's 1 kWh (before 06:15) is 0.10, and Sunday carries the customer charge
    # (service until 06:15). Tax: before tax 57.00 + 1.10 = 5810 cents, tax round(319.55) = 320,
    # after Saturday's 314: 0.06.
    assert morning_run(clock, committed, account, dec(20), 1) == (
        D("1"),
        D("0.10"),
        D("1.00"),
        D("0.06"),
        D("1.16"),
        D("-1.16"),
    )
    # The weather hold still in force on Monday changes nothing under A either.
    assert disconnect_grace_reason(dec(21)) is None

    # Restore: a $50.00 credit from -1.16 needs $51.16.
    clock.move_to(at(12, 21, 7, 30))
    assert restore_amount_needed(account) == D("51.16")
    pay(clock, committed, account, "51.15", "A-short", at(12, 21, 8, 0))
    assert balance(account) == D("49.99")
    assert cluster.run_next((RECONNECT_CHECK, (), {"account_id": account.pk})) is None
    assert cluster.queue == [] and orders(account, K.RECONNECT) == []
    assert status(account) == DISCONNECTED and restore_amount_needed(account) == D("0.01")
    pay(clock, committed, account, "0.01", "A-cent", at(12, 21, 8, 5))
    reconnect = cluster.run_next((RECONNECT_CHECK, (), {"account_id": account.pk}))
    assert (reconnect.kind, reconnect.requested_at, reconnect.due_by, reconnect.reason) == (
        K.RECONNECT,
        at(12, 21, 8, 5),
        at(12, 21, 8, 20),  # A's restore_within_minutes is the model default, 15
        "Prepaid balance $50.00 reaches the restore level $50.00",
    )
    reconnect = carry_out(cluster, reconnect)
    assert reconnect.confirmed_at == at(12, 21, 8, 5)
    assert status(account) == ACTIVE

    # Dec 21-31: ordinary days again, m = 1..11 after Sunday. Before tax 5810 + 300m cents, tax
    # round(319.55 + 16.5m): 336 (m = 1), 353, 369, ... so the tax parts are 16 (odd m), 17 (even m).
    # Customer charge on the 21st: 21 charged days, round(3100 x 21 / 31) - 2000 = 100 cents.
    expected = D("50.00")
    for m, day in enumerate(range(21, 32), start=1):
        tax = D("0.16") if m % 2 else D("0.17")
        expected -= D("3.00") + tax
        assert morning_run(clock, committed, account, dec(day), 20) == (
            D("20"),
            D("2.00"),
            D("1.00"),
            tax,
            D("3.00") + tax,
            expected,
        )
    # 11 days: 33.00 + 6 x 0.16 + 5 x 0.17 = 34.81; 50.00 - 34.81 = 15.19.
    assert expected == D("15.19")

    # The month: 19 x 20 + 1 + 11 x 20 = 601 kWh = 60.10; customer charge 31 days = 31.00;
    # tax round(0.055 x 9110) = round(501.05) = 5.01; 96.11 in all, the monthly bill exactly.
    # Paid 60.14 + 51.15 + 0.01 = 111.30; 111.30 - 96.11 = 15.19.
    assert month_sums(account, dec(1)) == (31, D("601"), D("60.10"), D("31.00"), D("5.01"), D("96.11"))
    assert monthly_bill_dollars(dec(1), kwh="601", days=31) == (D("60.10"), D("31.00"), D("5.01"), D("96.11"))
    assert account_balances(account) == Balances(
        prepaid_credit=D("15.19"), arrears=ZERO, deposit_held=ZERO, amount_due=ZERO
    )
    # What the member was told, one email each: the receipts, the low-balance warning, the
    # pending-disconnect notice the morning of the cut, the disconnect, the restore, and the
    # warning again after the 30th.
    assert cluster.notices_sent() == [
        (RECEIPT, datetime.date(2026, 11, 30)),
        (LOW, dec(13)),
        (PENDING, dec(20)),
        (CUT_NOTICE, dec(20)),
        (RECEIPT, dec(21)),
        (RECEIPT, dec(21)),
        (RESTORED_NOTICE, dec(21)),
        (LOW, dec(30)),
    ]
    assert_ledger_audit_passes()


# --- Program B ------------------------------------------------------------------------------------


def test_program_b_member_with_a_debt_plan_is_cut_restored_cut_again_and_made_inactive_after_7_days(
    clock, cluster, committed, manager
):
    """Program B: "automated disconnection at any time the credit balance reaches zero"; restored
    when "recharged to a minimum balance of $25.00"; $10.00 minimum payment; 35% of each payment
    goes to the debt-management plan, never from the initial $50.00 minimum; disconnected seven
    days, the account is inactive, and daily charges continue meanwhile.

    The member converts with $100.00 of old debt in a 35% plan and pays the $50.00 minimum (not
    split), later a $10.00 top-up (3.50 to the debt, 6.50 to the balance). Saturday 19's charge
    takes the balance to -0.50 and Sunday's 06:15 step cuts. While off, the customer charge goes
    on. A $10.00 payment leaves the balance at 4.80, short of $25.00; the restore amount is
    grossed up for the plan's share ($31.07: 10.87 to the debt, 20.20 to the balance) and
    restores. On Tuesday 29's charge the balance is below zero again and Wednesday's step cuts;
    the member does not pay, and on the 7th day off (Wednesday 6 January, not Tuesday 5) the
    inactive sweep makes the account inactive and the final bill moves the $8.20 used on credit
    to the debt.

    Timeline (Chicago)                     to debt  to balance  charge  balance  debt
      Mon 30 Nov 08:00  plan: $100.00 of old debt at 35%                            100.00
      Mon 30 Nov 08:30  pays $50.00          0.00     50.00               50.00
      Dec 1-7           20 kWh a day                            3.00     29.00
      Tue  8 12:00      $9.99 refused; pays $10.00  3.50  6.50            35.50      96.50
      Dec 8-18                                                  3.00      2.50
      Sun 20 06:00      charge for Sat 19                       3.00     -0.50
      Sun 20 06:15      cut (a Sunday: any time)
      Mon 21 06:00      Sun 20: 2 kWh + customer charge (continues)  1.20  -1.70
      Mon 21 12:00      pays $10.00          3.50      6.50               4.80      93.00  stays off
      Mon 21 18:00      pays $31.07         10.87     20.20              25.00      82.13  reconnected
      Tue 22 06:00      Mon 21: 10 kWh                          2.00     23.00
      Dec 22-29                                                 3.00     -1.00
      Wed 30 06:15      cut again
      Dec 30            2 kWh + customer charge                 1.20     -2.20
      Dec 31, Jan 1-5   0 kWh, customer charge only             1.00     -8.20 after Jan 5
      Tue  5 Jan 07:00  sweep: 6 days off, still disconnected
      Wed  6 Jan 07:00  sweep: 7 days off -> inactive; final bill: 8.20 to the debt     90.33
      Thu  7 Jan 06:00  no charge for Wed 6 (inactive)
    """
    account = start_program("B")
    policy = Policy.objects.in_force(dec(1))
    assert (policy.disconnect_rule, policy.disconnect_level) == (Policy.DisconnectRule.AT_OR_BELOW, ZERO)
    assert (policy.grace_on_weekends, policy.grace_on_holidays, policy.grace_on_weather_holds) == (
        False,
        False,
        False,
    )
    assert (policy.disconnect_window_start, policy.restore_level, policy.prepaid_minimum_payment) == (
        None,
        D("25.00"),
        D("10.00"),
    )
    assert (policy.debt_plan_share_percent, policy.debt_plan_exempts_initial_minimum) == (D("35.00"), True)
    assert (policy.prepaid_minimum_starting_balance, policy.inactive_after_days) == (D("50.00"), 7)
    assert policy.charges_continue_while_disconnected is True

    def money() -> tuple[Decimal, Decimal]:
        balances = account_balances(account)
        return balances.prepaid_credit, balances.arrears

    # Mon 30 Nov: conversion. The old debt goes to arrears and into the plan; the first $50.00 is
    # the initial minimum balance and is not split.
    clock.move_to(at(11, 30, 8, 0))
    with committed():
        services.debt_transfer_to_arrears(
            account=account,
            amount=D("100.00"),
            actor=manager,
            reason="unbilled energy and fees at conversion",
        )
        plan = services.plan_enroll(account=account, actor=manager)
    assert (plan.share_percent, plan.enrolled_amount, plan.enrolled_on) == (
        D("35.00"),
        D("100.00"),
        datetime.date(2026, 11, 30),
    )
    start = pay(clock, committed, account, "50.00", "B-start", at(11, 30, 8, 30))
    assert (start.to_credit, start.to_arrears) == (D("50.00"), ZERO)
    assert money() == (D("50.00"), D("100.00"))

    def ordinary_days(first: int, last: int, expected: Decimal) -> Decimal:
        """20 kWh a day, $3.00, no tax; the 06:15 step finds nobody while the balance is positive."""
        for day in range(first, last + 1):
            expected -= D("3.00")
            assert morning_run(clock, committed, account, dec(day), 20) == (
                D("20"),
                D("2.00"),
                D("1.00"),
                ZERO,
                D("3.00"),
                expected,
            )
            if expected > 0:
                assert disconnect_step(clock, committed, at(12, day + 1, 6, 15)).candidates == 0
        return expected

    # Dec 1-7: 50.00 - 7 x 3.00 = 29.00.
    assert ordinary_days(1, 7, D("50.00")) == D("29.00")

    # Tue 8, 12:00: below the $10.00 minimum is refused; $10.00 is split 35% = 3.50 / 6.50.
    clock.move_to(at(12, 8, 12, 0))
    with pytest.raises(PaymentRefused, match=r"minimum prepaid payment is \$10\.00; \$9\.99 is less"):
        services.payment_post(account=account, amount=D("9.99"), tender="card", reference="B-too-little")
    top_up = pay(clock, committed, account, "10.00", "B-top-up", at(12, 8, 12, 0))
    assert (top_up.to_credit, top_up.to_arrears) == (D("6.50"), D("3.50"))
    assert money() == (D("35.50"), D("96.50"))

    # Dec 8-18: 35.50 - 11 x 3.00 = 2.50 (Saturday 19's 06:15 step: still positive).
    assert ordinary_days(8, 18, D("35.50")) == D("2.50")

    # Sun 20, 06:00: Saturday's 3.00 takes the balance to -0.50; 06:15 cuts (no grace at all).
    assert morning_run(clock, committed, account, dec(19), 20)[-2:] == (D("3.00"), D("-0.50"))
    assert disconnect_grace_reason(dec(20)) is None
    summary = disconnect_step(clock, committed, at(12, 20, 6, 15))
    assert (summary.day_reason, summary.candidates, summary.ordered) == (None, 1, 1)
    (first_cut,) = orders(account, K.DISCONNECT)
    first_cut = carry_out(cluster, first_cut)
    assert first_cut.confirmed_at == at(12, 20, 6, 15)
    assert status(account) == DISCONNECTED

    # Mon 21, 06:00: Sunday's 2 kWh (before 06:15) = 0.20, and the customer charge continues: 1.20.
    assert morning_run(clock, committed, account, dec(20), 2) == (
        D("2"),
        D("0.20"),
        D("1.00"),
        ZERO,
        D("1.20"),
        D("-1.70"),
    )

    # Mon 21, 12:00: $10.00 while disconnected: 3.50 to the debt, 6.50 credited; 4.80 < 25.00.
    partial = pay(clock, committed, account, "10.00", "B-partial", at(12, 21, 12, 0))
    assert (partial.to_credit, partial.to_arrears) == (D("6.50"), D("3.50"))
    assert money() == (D("4.80"), D("93.00"))
    assert cluster.run_next((RECONNECT_CHECK, (), {"account_id": account.pk})) is None
    assert orders(account, K.RECONNECT) == [] and status(account) == DISCONNECTED
    # 25.00 - 4.80 = 20.20 must reach the balance; the plan takes 35% of the payment, so the
    # smallest payment X with X - round(0.35 X) >= 20.20: X = 31.07 (0.35 x 31.07 = 10.8745 ->
    # 10.87; 31.07 - 10.87 = 20.20), while 31.06 leaves 31.06 - 10.87 = 20.19.
    assert restore_amount_needed(account) == D("31.07")

    # Mon 21, 18:00: the exact amount restores.
    restore = pay(clock, committed, account, "31.07", "B-restore", at(12, 21, 18, 0))
    assert (restore.to_credit, restore.to_arrears) == (D("20.20"), D("10.87"))
    assert money() == (D("25.00"), D("82.13"))
    reconnect = cluster.run_next((RECONNECT_CHECK, (), {"account_id": account.pk}))
    assert (reconnect.requested_at, reconnect.due_by, reconnect.reason) == (
        at(12, 21, 18, 0),
        at(12, 21, 18, 15),
        "Prepaid balance $25.00 reaches the restore level $25.00",
    )
    reconnect = carry_out(cluster, reconnect)
    assert status(account) == ACTIVE

    # Tue 22, 06:00: Monday, 10 kWh = 1.00 + 1.00 customer charge: 23.00.
    assert morning_run(clock, committed, account, dec(21), 10) == (
        D("10"),
        D("1.00"),
        D("1.00"),
        ZERO,
        D("2.00"),
        D("23.00"),
    )
    # Dec 22-29: 23.00 - 8 x 3.00 = -1.00 (Christmas Eve and Day included: B has no grace).
    assert ordinary_days(22, 29, D("23.00")) == D("-1.00")

    # Wed 30, 06:15: cut again.
    summary = disconnect_step(clock, committed, at(12, 30, 6, 15))
    assert (summary.day_reason, summary.candidates, summary.ordered) == (None, 1, 1)
    second_cut = orders(account, K.DISCONNECT)[-1]
    second_cut = carry_out(cluster, second_cut)
    assert status(account) == DISCONNECTED
    assert decisions(account) == [
        (
            dec(20),
            ORDERED,
            "Prepaid balance $-0.50 is at or below the disconnect level $0.00",
            D("-0.50"),
            first_cut.pk,
        ),
        (
            dec(30),
            ORDERED,
            "Prepaid balance $-1.00 is at or below the disconnect level $0.00",
            D("-1.00"),
            second_cut.pk,
        ),
    ]

    # While off, the charges continue: Dec 30 2 kWh + 1.00, then 1.00 a day (January's customer
    # charge is 31.00 / 31 = 1.00 a day too).
    assert morning_run(clock, committed, account, dec(30), 2) == (
        D("2"),
        D("0.20"),
        D("1.00"),
        ZERO,
        D("1.20"),
        D("-2.20"),
    )
    assert morning_run(clock, committed, account, dec(31), 0) == (
        D("0"),
        ZERO,
        D("1.00"),
        ZERO,
        D("1.00"),
        D("-3.20"),
    )

    # December: 19 x 20 + 2 + 10 + 8 x 20 + 2 + 0 = 554 kWh = 55.40, customer charge every day of
    # the month (it continued while off) 31.00: 86.40, the monthly bill. Credited 50.00 + 6.50 +
    # 6.50 + 20.20 = 83.20; 83.20 - 86.40 = -3.20.
    assert month_sums(account, dec(1)) == (31, D("554"), D("55.40"), D("31.00"), ZERO, D("86.40"))
    assert monthly_bill_dollars(dec(1), kwh="554", days=31) == (D("55.40"), D("31.00"), ZERO, D("86.40"))

    expected = D("-3.20")
    for day in range(1, 5):  # Jan 1-4, run the next morning
        expected -= D("1.00")
        jan = datetime.date(2027, 1, day)
        assert morning_run(clock, committed, account, jan, 0) == (
            D("0"),
            ZERO,
            D("1.00"),
            ZERO,
            D("1.00"),
            expected,
        )
    assert expected == D("-7.20")

    # Tue 5 Jan, 07:00: disconnected on 30 December, 6 days ago: not yet.
    clock.move_to(at(1, 5, 7, 0, year=2027))
    assert inactive_sweep(today=datetime.date(2027, 1, 5)) == 0
    assert status(account) == DISCONNECTED
    # Wed 6 Jan: Tuesday's 1.00 (-8.20), then at 07:00 the 7th day off: inactive and final-billed.
    assert morning_run(clock, committed, account, datetime.date(2027, 1, 5), 0)[-2:] == (
        D("1.00"),
        D("-8.20"),
    )
    clock.move_to(at(1, 6, 7, 0, year=2027))
    assert inactive_sweep(today=datetime.date(2027, 1, 6)) == 1
    assert status(account) == INACTIVE
    assert status_changes(account)[-1] == (
        DISCONNECTED,
        INACTIVE,
        at(1, 6, 7, 0, year=2027),
        "Disconnected 7 days (policy: inactive after 7)",
    )
    bill = Transaction.objects.get(idempotency_key=f"final-bill:{account.pk}")
    assert (bill.memo, bill.effective_date) == (
        "Final bill: $8.20 used on credit moved to arrears",
        datetime.date(2027, 1, 6),
    )
    # 82.13 + 8.20 = 90.33 still owed, in the plan, for collection; no credit to refund.
    assert account_balances(account) == Balances(
        prepaid_credit=ZERO, arrears=D("90.33"), deposit_held=ZERO, amount_due=ZERO
    )
    plan.refresh_from_db()
    assert plan.status == DebtPlan.Status.ACTIVE
    assert not Transaction.objects.filter(account=account, kind=Transaction.Kind.REFUND).exists()

    # Thu 7 Jan: an inactive account is no longer charged.
    clock.move_to(at(1, 7, 6, 0, year=2027))
    bf.read(account.meter, datetime.date(2027, 1, 6), 0)
    daily_run(day=datetime.date(2027, 1, 6))
    assert not Deduction.objects.filter(account=account, service_day=datetime.date(2027, 1, 6)).exists()

    # Every payment and where it went.
    assert list(
        Payment.objects.filter(account=account)
        .order_by("received_at")
        .values_list("amount", "to_credit", "to_arrears")
    ) == [
        (D("50.00"), D("50.00"), ZERO),
        (D("10.00"), D("6.50"), D("3.50")),
        (D("10.00"), D("6.50"), D("3.50")),
        (D("31.07"), D("20.20"), D("10.87")),
    ]
    # What the member was told, one email each: the plan, the receipts (not for the refused
    # $9.99), the low-balance warnings, each cut announced the morning it came and confirmed, the
    # restore. Becoming inactive sends nothing.
    assert cluster.notices_sent() == [
        (PLAN_NOTICE, datetime.date(2026, 11, 30)),
        (RECEIPT, datetime.date(2026, 11, 30)),
        (RECEIPT, dec(8)),
        (LOW, dec(13)),
        (PENDING, dec(20)),
        (CUT_NOTICE, dec(20)),
        (RECEIPT, dec(21)),
        (RECEIPT, dec(21)),
        (RESTORED_NOTICE, dec(21)),
        (LOW, dec(23)),
        (PENDING, dec(30)),
        (CUT_NOTICE, dec(30)),
    ]
    assert_ledger_audit_passes()
