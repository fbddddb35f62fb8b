"""Writes for the rates: tariff versions with their energy blocks, riders and taxes.

The rules of a version live here, and the admin's forms ask the same functions
(`tariff_problems`, `blocks_problems`, `monthly_version_problems`) so a manager sees each problem
on the field to correct:

- rates change on the first day of a month; a rider or tax ends on the last day of a month (or
  not at all) and not before it starts;
- a new tariff version starts after today: a version in force has priced days already, so it is
  never changed or deleted (`in_force`), and a change is a new version. Only seeding a new
  installation's past (the demo, the benchmark) passes `backdated=True`;
- every month of a tariff has a complete ladder of energy blocks (billing.rates.
  tariff_blocks_problem: rising limits, one block without a limit, last).

Each service is one transaction that validates fully, saves, and records who in the rows'
history (django-simple-history, coop/history.py); a refused version raises ValidationError
naming the field, and nothing is saved.
"""

import datetime
from collections.abc import Iterable
from decimal import Decimal
from typing import TypedDict

from django.core.exceptions import ValidationError
from django.db import models, transaction

from billing.models import Rider, Tariff, TariffBlock, TaxRate, parse_months
from billing.rates import tariff_blocks_problem
from coop.calendar import local_today
from coop.history import change_with_history, create_with_history, delete_with_history, editable_fields
from coop.validators import check_texts


class BlockFields(TypedDict):
    months: str  # "6,7,8,9"; blank: every month
    up_to_kwh: int | None  # None: no upper limit (the last block of a month)
    rate: Decimal


def in_force(version: Tariff | Rider | TaxRate) -> bool:
    """A version in force (from today or earlier) has priced days: it is read-only."""
    return version.effective_from <= local_today()


def _first_of_month_problem(day: datetime.date | None) -> str:
    return "Rates change on the first day of a month." if day and day.day != 1 else ""


def tariff_problems(*, effective_from: datetime.date | None, backdated: bool = False) -> dict[str, str]:
    """What is wrong with a tariff version's start, by field ({} when nothing)."""
    if problem := _first_of_month_problem(effective_from):
        return {"effective_from": problem}
    if effective_from and effective_from <= local_today() and not backdated:
        return {"effective_from": "A new version starts after today (first of a month)."}
    return {}


def monthly_version_problems(
    *, effective_from: datetime.date | None, effective_to: datetime.date | None
) -> dict[str, str]:
    """What is wrong with a rider's or a tax's months, by field ({} when nothing)."""
    if problem := _first_of_month_problem(effective_from):
        return {"effective_from": problem}
    if effective_to and (effective_to + datetime.timedelta(days=1)).day != 1:
        return {"effective_to": "Give the last day of a month (or leave blank)."}
    if effective_to and effective_from and effective_to < effective_from:
        return {"effective_to": "It cannot end before it starts."}
    return {}


def months_problem(months: str) -> str:
    """What is wrong with a block's months ('' when nothing)."""
    try:
        parse_months(months or "")
    except ValueError as exc:
        return f"{exc}. Write month numbers separated by commas, e.g. 6,7,8,9."
    return ""


def blocks_problems(blocks: Iterable[BlockFields]) -> list[str]:
    """Every month without a complete ladder of blocks (blocks whose months are wrong are left
    out: months_problem reports them on their own)."""
    parsed = []
    for block in blocks:
        if months_problem(block["months"]):
            continue
        parsed.append((parse_months(block["months"] or ""), block["up_to_kwh"], block["rate"]))
    problems = []
    for month in range(1, 13):
        ladder = sorted(
            [(up, rate) for months, up, rate in parsed if month in months],
            key=lambda b: (b[0] is None, b[0] or 0),
        )
        if problem := tariff_blocks_problem(ladder):
            problems.append(f"month {month}: {problem}")
    return problems


def _refuse(problems: dict[str, str] | list[str]) -> None:
    if problems:
        raise ValidationError(problems)


def _check_blocks(blocks: list[BlockFields]) -> None:
    _refuse([p for block in blocks if (p := months_problem(block["months"]))] or blocks_problems(blocks))


def _not_in_force(version) -> None:
    if in_force(version):
        raise ValidationError(
            f"{version} is in force since {version.effective_from:%Y-%m-%d} and has priced days: "
            "it is not changed. Add a new version instead."
        )


def _save_blocks(tariff: Tariff, blocks: list[BlockFields], *, actor) -> None:
    for block in blocks:
        create_with_history(TariffBlock(tariff=tariff, **block), actor=actor)


@transaction.atomic
def tariff_create(
    *,
    actor,
    code: str,
    name: str,
    effective_from: datetime.date,
    customer_charge: Decimal,
    blocks: list[BlockFields],
    backdated: bool = False,
) -> Tariff:
    """A new tariff version with its energy blocks."""
    check_texts(code=code, name=name)
    _refuse(tariff_problems(effective_from=effective_from, backdated=backdated))
    _check_blocks(blocks)
    tariff = Tariff(
        code=code, name=name, effective_from=effective_from, customer_charge=customer_charge, created_by=actor
    )
    create_with_history(tariff, actor=actor)
    _save_blocks(tariff, blocks, actor=actor)
    return tariff


@transaction.atomic
def tariff_update(*, actor, tariff: Tariff, blocks: list[BlockFields] | None = None, **fields) -> Tariff:
    """Change a version not yet in force: its fields, and its blocks (`blocks` replaces them all)."""
    editable_fields(Tariff, fields, fixed=("created_by", "created_at"))
    check_texts(**{k: v for k, v in fields.items() if k in ("code", "name")})
    _not_in_force(Tariff.objects.select_for_update().get(pk=tariff.pk))
    if "effective_from" in fields:
        _refuse(tariff_problems(effective_from=fields["effective_from"]))
    tariff = change_with_history(tariff, actor=actor, fields=fields)
    if blocks is not None:
        _check_blocks(blocks)
        for block in tariff.blocks.all():
            delete_with_history(block, actor=actor)
        _save_blocks(tariff, blocks, actor=actor)
    return tariff


def _delete_pending(version, *, actor) -> None:
    _not_in_force(type(version).objects.select_for_update().get(pk=version.pk))
    if isinstance(version, Tariff):
        for block in version.blocks.all():
            delete_with_history(block, actor=actor)
    delete_with_history(version, actor=actor)


@transaction.atomic
def tariff_delete(*, actor, tariff: Tariff) -> None:
    """Delete a version not yet in force, with its blocks."""
    _delete_pending(tariff, actor=actor)


def _monthly_create(model: type[models.Model], *, actor, **fields):
    editable_fields(model, fields)
    check_texts(**{k: v for k, v in fields.items() if k in ("code", "name")})
    _refuse(
        monthly_version_problems(
            effective_from=fields.get("effective_from"), effective_to=fields.get("effective_to")
        )
    )
    return create_with_history(model(**fields), actor=actor)


def _monthly_update(version, *, actor, **fields):
    editable_fields(type(version), fields)
    check_texts(**{k: v for k, v in fields.items() if k in ("code", "name")})
    _not_in_force(type(version).objects.select_for_update().get(pk=version.pk))
    dates = {"effective_from": version.effective_from, "effective_to": version.effective_to}
    _refuse(monthly_version_problems(**{**dates, **{k: v for k, v in fields.items() if k in dates}}))
    return change_with_history(version, actor=actor, fields=fields)


@transaction.atomic
def rider_create(
    *,
    actor,
    code: str,
    name: str,
    rate: Decimal,
    effective_from: datetime.date,
    effective_to: datetime.date | None = None,
) -> Rider:
    """A per-kWh rider for whole months (the rate may be negative)."""
    return _monthly_create(
        Rider,
        actor=actor,
        code=code,
        name=name,
        rate=rate,
        effective_from=effective_from,
        effective_to=effective_to,
    )


@transaction.atomic
def rider_update(*, actor, rider: Rider, **fields) -> Rider:
    """Change a rider not yet in force."""
    return _monthly_update(rider, actor=actor, **fields)


@transaction.atomic
def rider_delete(*, actor, rider: Rider) -> None:
    _delete_pending(rider, actor=actor)


@transaction.atomic
def tax_rate_create(
    *,
    actor,
    name: str,
    percent: Decimal,
    effective_from: datetime.date,
    effective_to: datetime.date | None = None,
) -> TaxRate:
    """A percentage tax on the energy bill for whole months."""
    return _monthly_create(
        TaxRate,
        actor=actor,
        name=name,
        percent=percent,
        effective_from=effective_from,
        effective_to=effective_to,
    )


@transaction.atomic
def tax_rate_update(*, actor, tax_rate: TaxRate, **fields) -> TaxRate:
    """Change a tax not yet in force."""
    return _monthly_update(tax_rate, actor=actor, **fields)


@transaction.atomic
def tax_rate_delete(*, actor, tax_rate: TaxRate) -> None:
    _delete_pending(tax_rate, actor=actor)
