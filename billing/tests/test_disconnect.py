"""The prepaid disconnect step (billing/prepaid.py): grace days, windows, holds, decisions."""

import datetime
import threading
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.urls import reverse
from django_q.conf import Conf

from accounts.models import Account, ServiceHold
from accounts.tests import factories
from billing import services
from billing.models import DisconnectDecision
from billing.prepaid import disconnect_run, next_disconnect_window
from coop import roles
from coop.calendar import coop_zone
from coop.services import weather_hold_create
from meters.models import ServiceOrder

pytestmark = pytest.mark.django_db
D = Decimal
SKIPPED, ORDERED = DisconnectDecision.Outcome.SKIPPED, DisconnectDecision.Outcome.ORDERED


def chicago(*args) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=coop_zone())


MONDAY = datetime.date(2026, 11, 23)
SATURDAY = datetime.date(2026, 11, 28)
THANKSGIVING = datetime.date(2026, 11, 26)


def prepaid(balance, *, on=MONDAY):
    """An active prepaid account with an AMI meter and the given balance, made through the services."""
    account = factories.account_with_meter()
    balance = D(balance)
    with time_machine.travel(chicago(on.year, on.month, on.day, 7, 0), tick=False):
        if balance > 0:
            services.payment_post(
                account=account, amount=balance, tender="cash", reference=f"start-{account.pk}"
            )
        elif balance < 0:
            services.fee_charge(account=account, code="energy", amount=-balance, memo="energy used on credit")
    return account


def run_at(*args, **kw):
    with time_machine.travel(chicago(*args), tick=False):
        return disconnect_run(**kw)


def decisions(account):
    return list(DisconnectDecision.objects.filter(account=account).values_list("day", "outcome", "reason"))


def orders(account):
    return list(ServiceOrder.objects.filter(account=account, kind=ServiceOrder.Kind.DISCONNECT))


# --- Program E: grace days and the 10:00-11:00 window -------------------------------------------


def test_program_e_cuts_a_negative_balance_on_a_weekday_in_the_window(queued):
    factories.policy("E")
    negative, zero = prepaid("-5.50"), prepaid("0.00")
    summary = run_at(2026, 11, 23, 10, 0)
    (order,) = orders(negative)
    assert (order.status, order.adapter) == (ServiceOrder.Status.QUEUED, ServiceOrder.Adapter.SIMULATED_AMI)
    assert order.reason == "Prepaid balance $-5.50 is below the disconnect level $0.00"
    decision = DisconnectDecision.objects.get(account=negative)
    assert (decision.outcome, decision.order, decision.balance, decision.day) == (
        ORDERED,
        order,
        D("-5.50"),
        MONDAY,
    )
    assert orders(zero) == [] and decisions(zero) == []  # $0.00 is not negative under E
    assert (summary.candidates, summary.ordered, summary.skipped) == (1, 1, 0)


def test_program_e_never_cuts_on_a_weekend(queued):
    factories.policy("E")
    account = prepaid("-5.50")
    summary = run_at(2026, 11, 28, 10, 30)
    assert orders(account) == []
    assert decisions(account) == [(SATURDAY, SKIPPED, "weekend")]
    assert summary.day_reason == "weekend" and summary.skipped == 1


def test_program_e_never_cuts_on_thanksgiving(queued):
    factories.policy("E")
    account = prepaid("-5.50")
    run_at(2026, 11, 26, 10, 30)
    assert orders(account) == []
    assert decisions(account) == [(THANKSGIVING, SKIPPED, "holiday: Thanksgiving Day")]


def test_program_e_never_cuts_during_a_weather_hold(queued, manager):
    factories.policy("E")
    weather_hold_create(
        actor=manager, start_date=MONDAY, end_date=MONDAY, reason="Extreme cold: -25F wind chill"
    )
    account = prepaid("-5.50")
    run_at(2026, 11, 23, 10, 30)
    assert orders(account) == []
    assert decisions(account) == [(MONDAY, SKIPPED, "weather hold: Extreme cold: -25F wind chill")]


@pytest.mark.parametrize(
    "hour, minute, cut",
    [(9, 59, False), (10, 0, True), (10, 59, True), (11, 0, False)],
)
def test_program_e_cuts_only_between_10_and_11_chicago_time(queued, hour, minute, cut):
    factories.policy("E")
    account = prepaid("-5.50")
    run_at(2026, 11, 23, hour, minute)
    assert bool(orders(account)) is cut
    if not cut:
        assert decisions(account) == [(MONDAY, SKIPPED, "outside the disconnect window 10:00-11:00")]


def test_a_medical_hold_in_force_spares_one_account_while_others_are_cut(queued, manager):
    factories.policy("E")
    held, other = prepaid("-5.50"), prepaid("-1.00")
    ServiceHold.objects.create(
        account=held,
        kind=ServiceHold.Kind.MEDICAL,
        starts_on=datetime.date(2026, 11, 1),
        expires_on=datetime.date(2026, 12, 1),
        entered_by=manager,
    )
    ServiceHold.objects.create(  # expired: no protection
        account=other,
        kind=ServiceHold.Kind.CRITICAL_CARE,
        starts_on=datetime.date(2026, 10, 1),
        expires_on=datetime.date(2026, 11, 22),
        entered_by=manager,
    )
    run_at(2026, 11, 23, 10, 15)
    assert orders(held) == []
    assert decisions(held) == [(MONDAY, SKIPPED, "Medical certificate hold until 2026-12-01")]
    assert len(orders(other)) == 1


# --- Programs A and B: any time ----------------------------------------------------------------


def test_program_a_cuts_at_any_hour_even_on_a_weekend_in_a_weather_hold(queued, manager):
    factories.policy("A")
    weather_hold_create(actor=manager, start_date=SATURDAY, end_date=SATURDAY, reason="Heat wave")
    account = prepaid("0.00")  # A cuts at exactly $0
    summary = run_at(2026, 11, 28, 3, 17)
    assert len(orders(account)) == 1 and summary.day_reason is None
    assert decisions(account)[0][1] == ORDERED


def test_program_a_cuts_on_thanksgiving(queued):
    factories.policy("A")
    account = prepaid("-0.01")
    run_at(2026, 11, 26, 23, 45)
    assert len(orders(account)) == 1


# --- Repeated runs ------------------------------------------------------------------------------


def test_a_skip_is_recorded_once_per_account_day_and_reason(queued):
    factories.policy("E")
    account = prepaid("-5.50")
    for hour, minute in [(8, 0), (8, 15), (9, 45)]:
        summary = run_at(2026, 11, 23, hour, minute)
    assert summary.skipped == 1 and summary.decisions_recorded == 0
    for day in (28, 29):  # Saturday, Sunday: a new day records again
        for minute in (0, 15, 30, 45):
            run_at(2026, 11, day, 10, minute)
    assert sorted(decisions(account)) == [
        (MONDAY, SKIPPED, "outside the disconnect window 10:00-11:00"),
        (SATURDAY, SKIPPED, "weekend"),
        (datetime.date(2026, 11, 29), SKIPPED, "weekend"),
    ]


def test_running_twice_creates_one_order(queued):
    factories.policy("E")
    account = prepaid("-5.50")
    first = run_at(2026, 11, 23, 10, 0)
    second = run_at(2026, 11, 23, 10, 15)
    assert len(orders(account)) == 1
    assert [d[1] for d in decisions(account)] == [ORDERED]
    assert (first.ordered, second.ordered, second.candidates) == (1, 0, 0)


def test_a_candidate_that_paid_since_the_candidates_were_read_is_not_cut(queued, monkeypatch):
    """The cut re-reads the balance under the account's lock, which payment_post also takes."""
    import billing.prepaid as prepaid_module

    factories.policy("E")
    account = prepaid("-5.50")
    real = prepaid_module._record_skips

    def pay_meanwhile(**kw):
        services.payment_post(account=account, amount="30.00", tender="cash", reference="meanwhile")
        return real(**kw)

    monkeypatch.setattr(prepaid_module, "_record_skips", pay_meanwhile)
    summary = run_at(2026, 11, 23, 10, 0)
    assert (summary.candidates, summary.ordered) == (1, 0)
    assert orders(account) == []


def test_the_grace_decision_costs_the_same_queries_for_many_candidates(queued, django_assert_max_num_queries):
    factories.policy("E")
    for _ in range(30):
        prepaid("-2.00")
    with django_assert_max_num_queries(12):
        summary = run_at(2026, 11, 28, 10, 0)
    assert summary.skipped == 30 and summary.decisions_recorded == 30


def test_the_disconnect_order_is_carried_out_and_the_account_disconnected(
    monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(Conf, "SYNC", True)  # django-q2 runs the send and confirm tasks at once
    factories.policy("E")
    account = prepaid("-5.50")
    # The send and confirm tasks run on commit, still at 10:00 (the send re-checks the window).
    with time_machine.travel(chicago(2026, 11, 23, 10, 0)), django_capture_on_commit_callbacks(execute=True):
        disconnect_run()
    account.refresh_from_db()
    (order,) = orders(account)
    assert order.status == ServiceOrder.Status.CONFIRMED
    assert account.status == Account.Status.DISCONNECTED


# --- When the next cut can happen (for the pending-disconnect notice) --------------------------


@pytest.mark.parametrize(
    "after, window",
    [
        # Inside Friday's window (the day after Thanksgiving is a working day in Wisconsin).
        (chicago(2026, 11, 27, 10, 30), (chicago(2026, 11, 27, 10, 30), chicago(2026, 11, 27, 11, 0))),
        # After it: the weekend is grace, so Monday.
        (chicago(2026, 11, 27, 11, 0), (chicago(2026, 11, 30, 10, 0), chicago(2026, 11, 30, 11, 0))),
        # Wednesday afternoon: Thanksgiving is a holiday, so Friday.
        (chicago(2026, 11, 25, 14, 0), (chicago(2026, 11, 27, 10, 0), chicago(2026, 11, 27, 11, 0))),
        # Early morning: the same day's window.
        (chicago(2026, 11, 24, 6, 0), (chicago(2026, 11, 24, 10, 0), chicago(2026, 11, 24, 11, 0))),
    ],
)
def test_next_disconnect_window_under_program_e(after, window):
    factories.policy("E")
    assert next_disconnect_window(after=after) == window


def test_next_disconnect_window_across_the_end_of_daylight_saving_time():
    factories.policy("E")
    start, end = next_disconnect_window(after=chicago(2026, 10, 30, 12, 0))  # Friday, CDT
    assert start == datetime.datetime(2026, 11, 2, 16, 0, tzinfo=datetime.UTC)  # Monday 10:00 CST
    assert end == datetime.datetime(2026, 11, 2, 17, 0, tzinfo=datetime.UTC)
    assert start.tzinfo == coop_zone()


def test_next_disconnect_window_skips_a_weather_hold(manager):
    factories.policy("E")
    weather_hold_create(actor=manager, start_date=MONDAY, end_date=datetime.date(2026, 11, 24), reason="Cold")
    start, _ = next_disconnect_window(after=chicago(2026, 11, 21, 9, 0))
    assert start == chicago(2026, 11, 25, 10, 0)


def test_next_disconnect_window_under_program_a_is_the_rest_of_the_day():
    factories.policy("A")
    after = chicago(2026, 11, 28, 15, 0)
    assert next_disconnect_window(after=after) == (after, chicago(2026, 11, 29, 0, 0))


# --- Holds in the admin -------------------------------------------------------------------------


def test_a_manager_enters_a_medical_hold_and_a_clerk_only_sees_it(client, manager):
    factories.policy("E")
    account = prepaid("-5.50")
    client.force_login(manager)
    response = client.post(
        reverse("admin:accounts_servicehold_add"),
        {
            "account": account.pk,
            "kind": ServiceHold.Kind.MEDICAL,
            "starts_on": "2026-11-20",
            "expires_on": "2026-12-20",
            "note": "Oxygen concentrator, certificate on file",
        },
    )
    assert response.status_code == 302
    hold = ServiceHold.objects.get(account=account)
    assert hold.entered_by == manager
    page = client.get(reverse("admin:accounts_account_change", args=[account.pk])).content.decode()
    assert "disconnect holds" in page.lower() and "Oxygen concentrator" in page

    clerk = factories.staff(roles.CLERK, "clerk")
    client.force_login(clerk)
    assert client.get(reverse("admin:accounts_servicehold_add")).status_code == 403
    assert (
        client.get(reverse("admin:accounts_servicehold_changelist"), {"in_force": "today"}).status_code == 200
    )


# --- Concurrency (PostgreSQL) -------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_disconnect_runs_at_once_order_once_and_record_each_skip_once(queued):
    factories.policy("E")
    cut = [prepaid("-5.50") for _ in range(4)]
    held = prepaid("-2.00")
    ServiceHold.objects.create(
        account=held, kind=ServiceHold.Kind.CRITICAL_CARE, starts_on=MONDAY, expires_on=MONDAY
    )
    barrier = threading.Barrier(2)
    errors = []

    def run():
        try:
            barrier.wait(timeout=10)
            disconnect_run(now=chicago(2026, 11, 23, 10, 0))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert ServiceOrder.objects.filter(kind=ServiceOrder.Kind.DISCONNECT).count() == len(cut)
    assert DisconnectDecision.objects.filter(outcome=ORDERED).count() == len(cut)
    assert decisions(held) == [(MONDAY, SKIPPED, "Critical care (life support) hold until 2026-11-23")]
    assert sorted(c[0] for c in queued) == ["meters.tasks.order_send_task"] * len(cut)
