import datetime
import random
from decimal import Decimal

import pytest
import time_machine
from django.core.management import CommandError, call_command

from accounts.models import Account
from accounts.tests import factories
from billing import daily, services
from billing.daily import daily_run
from billing.exceptions import DailyRunError, RatesError
from billing.models import DailyRun, Deduction, LedgerAccount, Leg
from billing.rates import month_prices, monthly_bill
from billing.selectors import account_balances
from billing.tests import factories as bf
from meters.models import MeterRead

pytestmark = pytest.mark.django_db
D = Decimal
CHICAGO_NOON = "2026-12-15 18:00:00+00:00"


def policy(**fields):
    return factories.policy(effective_from=datetime.date(2020, 1, 1), **fields)


def pay(account, amount, ref):
    services.payment_post(account=account, amount=D(amount), tender="cash", reference=ref)


def days_of(year, month):
    day = datetime.date(year, month, 1)
    while day.month == month:
        yield day
        day += datetime.timedelta(days=1)


@pytest.fixture
def blocks_tariff():
    """Winter: 0.10 for the first 500 kWh of the month, 0.12 above; summer 0.11 flat; a PCA rider
    and 5.5% tax."""
    return bf.tariff(
        customer_charge=D("31.00"),
        blocks=((500, D("0.100000")), (None, D("0.120000"))),
        summer_blocks=((None, D("0.110000")),),
        rider=D("0.003125"),
        tax_percent=D("5.5000"),
    )


def test_a_months_daily_charges_add_up_to_the_monthly_bill_to_the_cent(blocks_tariff):
    policy()
    account = bf.prepaid_account()
    pay(account, "500.00", "start")
    rng = random.Random(7)
    month_kwh = D(0)
    with time_machine.travel(CHICAGO_NOON, tick=False):
        for day in days_of(2026, 1):
            kwh = D(rng.randrange(5000, 40000)) / 1000
            month_kwh += kwh
            bf.read(account.meter, day, kwh)
        for day in days_of(2026, 1):
            daily_run(day=day)
    rows = Deduction.objects.filter(account=account)
    assert rows.count() == 31
    bill = monthly_bill(month_prices(datetime.date(2026, 1, 1)), kwh=month_kwh)
    assert sum(r.energy for r in rows) * 100 == bill.energy
    assert sum(r.customer_charge for r in rows) == D("31.00")
    assert sum(r.riders for r in rows) * 100 == bill.riders
    assert sum(r.tax for r in rows) * 100 == bill.tax
    assert sum(r.total for r in rows) * 100 == bill.total
    assert month_kwh > 500  # the month crossed into the second block
    assert account_balances(account).prepaid_credit == D("500.00") - sum(r.total for r in rows)
    # Every cent is in the ledger and the stored balances equal the sums of their legs.
    call_command("ledger_audit")


def test_block_boundaries_apply_to_month_to_date_kwh(blocks_tariff):
    policy()
    account = bf.prepaid_account()
    with time_machine.travel(CHICAGO_NOON, tick=False):
        bf.read(account.meter, datetime.date(2026, 2, 1), "490")
        bf.read(account.meter, datetime.date(2026, 2, 2), "20")
        daily_run(day=datetime.date(2026, 2, 1))
        daily_run(day=datetime.date(2026, 2, 2))
    second = Deduction.objects.get(account=account, service_day=datetime.date(2026, 2, 2))
    # 10 kWh at 0.10 and 10 kWh at 0.12 = 2.20.
    assert second.energy == D("2.20")
    # The customer charge telescopes too: round(2 x 31.00 / 28) - round(31.00 / 28) = 2.21 - 1.11.
    assert second.customer_charge == D("1.10")
    assert second.mtd_wh == 510_000


def test_running_a_day_again_posts_nothing_and_changes_no_balance(blocks_tariff):
    policy()
    accounts = [bf.prepaid_account() for _ in range(3)]
    for i, account in enumerate(accounts):
        pay(account, "80.00", f"r{i}")
    day = datetime.date(2026, 12, 14)
    with time_machine.travel(CHICAGO_NOON, tick=False):
        for account in accounts:
            bf.read(account.meter, day, "12.5")
        first = daily_run(day=day)
        balances = [account_balances(a).prepaid_credit for a in accounts]
        legs = Leg.objects.count()
        second = daily_run(day=day)
    # The run's count is the day's total; the second attempt added none.
    assert first.deductions == 3 and second.deductions == 3
    assert second.attempts == 2 and second.status == DailyRun.Status.FINISHED
    assert [account_balances(a).prepaid_credit for a in accounts] == balances
    assert Leg.objects.count() == legs
    assert Deduction.objects.filter(service_day=day).count() == 3


def test_a_run_killed_halfway_finishes_every_account_exactly_once_when_run_again(blocks_tariff, monkeypatch):
    policy()
    accounts = [bf.prepaid_account() for _ in range(5)]
    day = datetime.date(2026, 12, 14)
    for account in accounts:
        bf.read(account.meter, day, "10")
    real_chunk = daily._run_chunk
    calls = []

    def dies_on_third_chunk(ctx, lo, hi):
        calls.append(lo)
        if len(calls) == 3:
            raise SystemExit("killed")  # the process dies: nothing after this runs
        return real_chunk(ctx, lo, hi)

    monkeypatch.setattr(daily, "_run_chunk", dies_on_third_chunk)
    with time_machine.travel(CHICAGO_NOON, tick=False):
        with pytest.raises(SystemExit):
            daily_run(day=day, chunk_size=1)
        assert Deduction.objects.filter(service_day=day).count() == 2
        monkeypatch.setattr(daily, "_run_chunk", real_chunk)
        run = daily_run(day=day, chunk_size=2)
    assert run.status == DailyRun.Status.FINISHED and run.deductions == 5 and run.attempts == 2
    for account in accounts:
        assert Deduction.objects.filter(account=account, service_day=day).count() == 1
        assert account_balances(account).prepaid_credit == -Deduction.objects.get(account=account).total
    call_command("ledger_audit")


def test_customer_charges_continue_while_disconnected_only_if_the_policy_says_so(blocks_tariff):
    day = datetime.date(2026, 12, 13)
    policy(charges_continue_while_disconnected=True)
    factories.policy_scheduled(effective_from=datetime.date(2026, 12, 14), name="stops")
    continues = bf.prepaid_account(status=Account.Status.DISCONNECTED)
    with time_machine.travel(CHICAGO_NOON, tick=False):
        daily_run(day=day)
        stops = bf.prepaid_account(status=Account.Status.DISCONNECTED)
        daily_run(day=datetime.date(2026, 12, 14))
    assert Deduction.objects.get(account=continues, service_day=day).customer_charge == D("1.00")
    assert Deduction.objects.get(account=stops).total == D("0.00")
    assert Deduction.objects.get(account=stops).transaction is None


def test_inactive_pending_and_postpaid_accounts_are_not_deducted(blocks_tariff):
    policy()
    bf.prepaid_account(status=Account.Status.PENDING)
    from accounts.tests import factories

    factories.account(billing_mode=Account.BillingMode.POSTPAID)
    with time_machine.travel(CHICAGO_NOON, tick=False):
        run = daily_run(day=datetime.date(2026, 12, 14))
    assert run.accounts_total == 0 and Deduction.objects.count() == 0


def test_an_estimate_is_trued_up_by_a_new_transaction_when_the_actual_read_arrives(blocks_tariff):
    policy()
    account = bf.prepaid_account()
    d1, d2, d3 = (datetime.date(2026, 12, n) for n in (1, 2, 3))
    with time_machine.travel(CHICAGO_NOON, tick=False):
        bf.read(account.meter, d1, "20")
        daily_run(day=d1)
        daily_run(day=d2)  # no read: estimated
        estimated = Deduction.objects.get(account=account, service_day=d2)
        assert estimated.read_quality == "estimated"
        original = (estimated.total, estimated.transaction_id)
        read = MeterRead.objects.get(meter=account.meter, day=d2)
        read.estimated_kwh, read.kwh, read.quality = read.kwh, D("30"), MeterRead.Quality.ACTUAL
        read.save()
        bf.read(account.meter, d3, "10")
        run = daily_run(day=d3)
    assert run.true_ups == 1
    estimated.refresh_from_db()
    assert (estimated.total, estimated.transaction_id) == original  # never edited
    true_up = Deduction.objects.get(kind=Deduction.Kind.TRUE_UP)
    assert true_up.settles == estimated
    assert true_up.kwh == D("30") - read.estimated_kwh
    assert true_up.transaction_id not in (None, estimated.transaction_id)
    # Priced at the month-to-date position: the month still adds up to the monthly bill.
    rows = Deduction.objects.filter(account=account)
    bill = monthly_bill(month_prices(d1), kwh=D("60"), days=3)
    assert sum(r.total for r in rows) * 100 == bill.total
    call_command("ledger_audit")


def test_balance_and_days_remaining_are_known_after_the_run(blocks_tariff):
    policy(low_balance_threshold_default=D("20.00"))
    account = bf.prepaid_account()
    pay(account, "30.00", "p1")
    with time_machine.travel(CHICAGO_NOON, tick=False):
        for n in (1, 2, 3):
            bf.read(account.meter, datetime.date(2026, 12, n), "40")
            run = daily_run(day=datetime.date(2026, 12, n))
    last = Deduction.objects.get(account=account, service_day=datetime.date(2026, 12, 3))
    assert last.balance_after == account_balances(account).prepaid_credit
    assert last.days_remaining == int(last.balance_after * 100) // last.avg_daily_cents
    assert run.low_balance == 1


def test_a_dst_day_and_february_29_each_produce_exactly_one_deduction(blocks_tariff):
    policy()
    account = bf.prepaid_account()
    with time_machine.travel("2028-11-06 18:00:00+00:00", tick=False):
        for day in (datetime.date(2028, 2, 29), datetime.date(2028, 3, 12), datetime.date(2028, 11, 5)):
            bf.read(account.meter, day, "24")
            daily_run(day=day)
            daily_run(day=day)
            assert Deduction.objects.filter(account=account, service_day=day).count() == 1
    feb29 = Deduction.objects.get(service_day=datetime.date(2028, 2, 29))
    assert feb29.customer_charge == D("1.07")  # 31.00 / 29 days in February 2028


def test_the_run_refuses_a_day_not_over_yet_out_of_order_or_without_a_tariff():
    policy()
    with time_machine.travel(CHICAGO_NOON, tick=False):
        with pytest.raises(RatesError, match="No RES tariff"):
            daily_run(day=datetime.date(2026, 12, 14))
        bf.tariff()
        with pytest.raises(DailyRunError, match="once that day is over"):
            daily_run(day=datetime.date(2026, 12, 15))
        daily_run(day=datetime.date(2026, 12, 14))
        with pytest.raises(DailyRunError, match="date order"):
            daily_run(day=datetime.date(2026, 12, 13))
        with pytest.raises(CommandError, match="date order"):
            call_command("run_daily", "--date", "2026-12-13")
        with pytest.raises(CommandError, match="is not a date"):
            call_command("run_daily", "--date", "13/12/2026")


def test_run_daily_defaults_to_yesterday_in_the_cooperatives_zone(blocks_tariff, capsys):
    policy()
    bf.prepaid_account()
    # 03:00 UTC on the 15th is still the evening of the 14th in Chicago: yesterday is the 13th.
    with time_machine.travel("2026-12-15 03:00:00+00:00", tick=False):
        call_command("run_daily")
    assert "run_daily 2026-12-13 finished: accounts=1 deductions=1" in capsys.readouterr().out


def test_the_run_posts_one_balanced_transaction_per_chunk(blocks_tariff):
    policy()
    accounts = [bf.prepaid_account() for _ in range(4)]
    day = datetime.date(2026, 12, 14)
    with time_machine.travel(CHICAGO_NOON, tick=False):
        for account in accounts:
            bf.read(account.meter, day, "10")
        daily_run(day=day, chunk_size=2)
    txns = {d.transaction_id for d in Deduction.objects.all()}
    assert len(txns) == 2
    for txn in txns:
        legs = Leg.objects.filter(transaction_id=txn)
        assert sum(leg.amount for leg in legs) == 0
        purposes = sorted(leg.ledger_account.purpose for leg in legs)
        assert purposes == ["energy_revenue", "prepaid_credit", "prepaid_credit", "tax_payable"]
    revenue = LedgerAccount.objects.get(purpose="energy_revenue")
    assert -revenue.balance == sum(d.energy + d.customer_charge + d.riders for d in Deduction.objects.all())
