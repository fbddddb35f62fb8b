"""Pricing energy: the tariff, riders and taxes in force for a month, in whole numbers.

How a prepaid day is priced so that a month's days add up to the monthly bill
----------------------------------------------------------------------------
Every part of a bill is a function of the month-to-date position: energy and riders of the
month-to-date kWh (block boundaries apply to month-to-date kWh, not to one day's), the customer
charge of the number of days charged so far, and the tax of the month-to-date amount before tax.
Each day's part is

    round(part(month to date after the day)) - round(part(month to date before the day))

so the days telescope: on the month's last day their sum is exactly the rounded monthly amount for
the month's usage, to the cent. The rounding remainder is settled a little every day instead of in
one lump on the last day, which also keeps every day's charge within a cent of its true cost.

The arithmetic is done in integers so that PostgreSQL and SQLite give the same answer (SQLite would
compute decimals in floating point): kWh as whole Wh, rates as micro-dollars per kWh, so Wh x rate
is nano-dollars; a cent is 10,000,000 nano-dollars. Rounding is half away from zero, like
`coop.money.to_cents`. `billing/daily.py` builds its SQL from the same `MonthPrices` with the
`*_sql` functions here; the Python functions are the reference the tests compare against and the
monthly (postpaid) bill.
"""

import calendar
import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import Q

from billing.exceptions import RatesError
from billing.models import Rider, Tariff, TaxRate, parse_months
from coop.models import Policy

NANO_PER_CENT = 10_000_000
MICRO = 1_000_000


@dataclass(frozen=True)
class Block:
    lo_wh: int
    hi_wh: int | None  # None: no upper limit
    rate_micro: int  # micro-dollars per kWh


@dataclass(frozen=True)
class MonthPrices:
    """Everything needed to price any day of one month, as integers."""

    month_start: datetime.date
    days_in_month: int
    tariff_id: int
    customer_charge_cents: int
    customer_divisor: int  # days in the month, or 30, as the policy says
    blocks: tuple[Block, ...]
    rider_micro: int  # the month's riders together, micro-dollars per kWh
    tax_ppm: int  # the month's taxes together, parts per million of the amount before tax


def _in_force(model, day):
    return model.objects.filter(
        Q(effective_to__isnull=True) | Q(effective_to__gte=day), effective_from__lte=day
    )


def month_prices(day: datetime.date, *, code: str = "RES") -> MonthPrices:
    """The prices in force for the month containing `day`. Raises RatesError, saying what to fix,
    when no tariff is in force or a month has no complete set of energy blocks."""
    month_start = day.replace(day=1)
    days_in_month = calendar.monthrange(day.year, day.month)[1]
    tariff = Tariff.objects.filter(code=code, effective_from__lte=day).order_by("-effective_from").first()
    if tariff is None:
        raise RatesError(f"No {code} tariff is in force on {day}: add one in the admin under Tariffs.")
    blocks = []
    for block in tariff.blocks.all():
        if day.month in parse_months(block.months):
            blocks.append(block)
    blocks.sort(key=lambda b: (b.up_to_kwh is None, b.up_to_kwh or 0))
    problem = tariff_blocks_problem([(b.up_to_kwh, b.rate) for b in blocks])
    if problem:
        raise RatesError(f"Tariff {tariff} in {day:%B}: {problem}")
    lo = 0
    priced = []
    for block in blocks:
        hi = None if block.up_to_kwh is None else block.up_to_kwh * 1000
        priced.append(Block(lo_wh=lo, hi_wh=hi, rate_micro=int(block.rate * MICRO)))
        lo = hi or 0
    policy = Policy.objects.in_force(day)
    divisor = (
        30
        if policy.customer_charge_proration == Policy.CustomerChargeProration.THIRTY_DAYS
        else days_in_month
    )
    riders = sum((r.rate for r in _in_force(Rider, day)), Decimal(0))
    taxes = sum((t.percent for t in _in_force(TaxRate, day)), Decimal(0))
    return MonthPrices(
        month_start=month_start,
        days_in_month=days_in_month,
        tariff_id=tariff.pk,
        customer_charge_cents=int(tariff.customer_charge * 100),
        customer_divisor=divisor,
        blocks=tuple(priced),
        rider_micro=int(riders * MICRO),
        tax_ppm=int(taxes * 10_000),
    )


def tariff_blocks_problem(blocks: list[tuple[int | None, Decimal]]) -> str:
    """What is wrong with one month's blocks [(up_to_kwh, rate)] in order, or '' when they are a
    complete ladder: rising limits and exactly one block without a limit, last."""
    if not blocks:
        return "no energy rate for this month."
    limits = [up for up, _ in blocks]
    if limits.count(None) != 1 or limits[-1] is not None:
        return "exactly one block must have no upper limit (the last one)."
    bounded = limits[:-1]
    if any(b <= a for a, b in zip(bounded, bounded[1:], strict=False)) or any(b <= 0 for b in bounded):
        return "block limits must be positive and rising."
    return ""


# --- The reference arithmetic (Python) ------------------------------------------------------------


def round_div(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half away from zero (denominator > 0)."""
    magnitude = (abs(numerator) * 2 + denominator) // (2 * denominator)
    return magnitude if numerator >= 0 else -magnitude


def energy_nano(prices: MonthPrices, wh: int) -> int:
    total = 0
    for b in prices.blocks:
        used = max(wh - b.lo_wh, 0)
        if b.hi_wh is not None:
            used = min(used, b.hi_wh - b.lo_wh)
        total += b.rate_micro * used
    return total


@dataclass(frozen=True)
class MonthToDate:
    """Rounded month-to-date amounts in cents."""

    energy: int
    customer: int
    riders: int
    tax: int

    @property
    def total(self) -> int:
        return self.energy + self.customer + self.riders + self.tax


def month_to_date(prices: MonthPrices, *, wh: int, days: int) -> MonthToDate:
    energy = round_div(energy_nano(prices, wh), NANO_PER_CENT)
    customer = round_div(prices.customer_charge_cents * days, prices.customer_divisor)
    riders = round_div(prices.rider_micro * wh, NANO_PER_CENT)
    tax = round_div((energy + customer + riders) * prices.tax_ppm, MICRO)
    return MonthToDate(energy=energy, customer=customer, riders=riders, tax=tax)


def monthly_bill(prices: MonthPrices, *, kwh: Decimal, days: int | None = None) -> MonthToDate:
    """A whole month's bill for `kwh` (the postpaid bill, and what a prepaid month adds up to)."""
    return month_to_date(prices, wh=int(kwh * 1000), days=prices.days_in_month if days is None else days)


# --- The same arithmetic as SQL, for the set-based daily run -------------------------------------


def _least(a: str, b: str) -> str:
    return f"{'LEAST' if connection.vendor == 'postgresql' else 'MIN'}({a}, {b})"


def _greatest(a: str, b: str) -> str:
    return f"{'GREATEST' if connection.vendor == 'postgresql' else 'MAX'}({a}, {b})"


def round_div_sql(numerator: str, denominator: int) -> str:
    """SQL for `round_div`; both databases divide integers by truncating toward zero."""
    d = int(denominator)
    return (
        f"(CASE WHEN ({numerator}) >= 0 THEN (({numerator}) * 2 + {d}) / {2 * d} "
        f"ELSE -(((-({numerator})) * 2 + {d}) / {2 * d}) END)"
    )


def energy_nano_sql(prices: MonthPrices, wh: str) -> str:
    terms = []
    for b in prices.blocks:
        used = _greatest(f"{wh} - {b.lo_wh}", "0")
        if b.hi_wh is not None:
            used = _least(used, str(b.hi_wh - b.lo_wh))
        terms.append(f"{b.rate_micro} * {used}")
    return "(" + " + ".join(terms) + ")"


def month_to_date_sql(prices: MonthPrices, *, wh: str, days: str) -> dict[str, str]:
    """SQL expressions for the rounded month-to-date energy, customer charge and riders (cents);
    the tax is `tax_sql` of their sum."""
    return {
        "energy": round_div_sql(energy_nano_sql(prices, wh), NANO_PER_CENT),
        "customer": round_div_sql(f"{prices.customer_charge_cents} * {days}", prices.customer_divisor),
        "riders": round_div_sql(f"{prices.rider_micro} * {wh}", NANO_PER_CENT),
    }


def tax_sql(prices: MonthPrices, pretax_cents: str) -> str:
    return round_div_sql(f"({pretax_cents}) * {prices.tax_ppm}", MICRO)
