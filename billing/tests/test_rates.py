import datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from billing.rates import (
    Block,
    MonthPrices,
    energy_nano,
    month_to_date,
    monthly_bill,
    round_div,
    tariff_blocks_problem,
)


def prices(blocks, *, customer_cents=3100, divisor=31, rider=3125, tax_ppm=55000):
    return MonthPrices(
        month_start=datetime.date(2026, 1, 1),
        days_in_month=31,
        tariff_id=1,
        customer_charge_cents=customer_cents,
        customer_divisor=divisor,
        blocks=tuple(blocks),
        rider_micro=rider,
        tax_ppm=tax_ppm,
    )


def test_round_div_rounds_half_away_from_zero_like_to_cents():
    assert [round_div(n, 10) for n in (14, 15, 16, -14, -15, -16)] == [1, 2, 2, -1, -2, -2]


def test_energy_is_priced_by_block_on_month_to_date_kwh():
    p = prices([Block(0, 500_000, 100_000), Block(500_000, None, 120_000)])
    assert energy_nano(p, 500_000) == 500 * 100_000 * 1000
    assert energy_nano(p, 510_000) == 500 * 100_000 * 1000 + 10 * 120_000 * 1000


def test_a_bill_for_600_kwh_in_two_blocks_with_rider_and_tax():
    p = prices([Block(0, 500_000, 100_000), Block(500_000, None, 120_000)])
    bill = monthly_bill(p, kwh=Decimal("600"))
    # 500 x 0.10 + 100 x 0.12 = 62.00; customer 31.00; rider 600 x 0.003125 = 1.875 -> 1.88;
    # tax 5.5% of 94.88 = 5.2184 -> 5.22.
    assert (bill.energy, bill.customer, bill.riders, bill.tax, bill.total) == (6200, 3100, 188, 522, 10010)


def test_tariff_ladders_are_checked():
    assert tariff_blocks_problem([]) == "no energy rate for this month."
    assert "no upper limit" in tariff_blocks_problem([(500, Decimal("0.1"))])
    assert "rising" in tariff_blocks_problem([(500, 1), (400, 1), (None, 1)])
    assert tariff_blocks_problem([(500, 1), (None, 1)]) == ""


@given(
    daily_wh=st.lists(st.integers(min_value=0, max_value=200_000), min_size=28, max_size=31),
    first_block_kwh=st.integers(min_value=1, max_value=3000),
    rates=st.tuples(st.integers(1, 400_000), st.integers(1, 400_000)),
    customer_cents=st.integers(0, 10_000),
    rider=st.integers(-20_000, 20_000),
    tax_ppm=st.integers(0, 150_000),
)
def test_daily_parts_telescope_to_the_monthly_bill_for_any_month(
    daily_wh, first_block_kwh, rates, customer_cents, rider, tax_ppm
):
    p = prices(
        [Block(0, first_block_kwh * 1000, rates[0]), Block(first_block_kwh * 1000, None, rates[1])],
        customer_cents=customer_cents,
        divisor=len(daily_wh),
        rider=rider,
        tax_ppm=tax_ppm,
    )
    before = month_to_date(p, wh=0, days=0)
    total_days = 0
    wh = 0
    days_sum = 0
    for n, used in enumerate(daily_wh, start=1):
        wh += used
        after = month_to_date(p, wh=wh, days=n)
        day_total = after.total - before.total
        days_sum += day_total
        before = after
        total_days = n
    assert days_sum == month_to_date(p, wh=sum(daily_wh), days=total_days).total
    assert month_to_date(p, wh=sum(daily_wh), days=total_days).customer == customer_cents
