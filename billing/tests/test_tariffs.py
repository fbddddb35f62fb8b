"""The rate versions' rules live in billing/tariffs.py: the admin's forms show them
(billing/tests/test_admin_daily.py) and every other caller meets the same ones here."""

import datetime
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError

from billing import tariffs
from billing.models import Tariff

pytestmark = pytest.mark.django_db

LADDER = [
    {"months": "", "up_to_kwh": 1000, "rate": Decimal("0.105000")},
    {"months": "", "up_to_kwh": None, "rate": Decimal("0.125000")},
]


def _tariff(effective_from, **overrides):
    fields = {
        "actor": None,
        "code": "RES",
        "name": "Residential",
        "effective_from": effective_from,
        "customer_charge": Decimal("31.00"),
        "blocks": LADDER,
    }
    return tariffs.tariff_create(**{**fields, **overrides})


@time_machine.travel(datetime.datetime(2026, 3, 10, 15, 0), tick=False)
def test_a_new_tariff_starts_on_a_first_of_month_after_today_unless_seeding_the_past():
    with pytest.raises(ValidationError, match="starts after today"):
        _tariff(datetime.date(2026, 3, 1))
    with pytest.raises(ValidationError, match="first day of a month"):
        _tariff(datetime.date(2026, 4, 15))
    assert not Tariff.objects.exists()
    seeded = _tariff(datetime.date(2026, 3, 1), backdated=True)
    assert seeded.blocks.count() == 2


@time_machine.travel(datetime.datetime(2026, 3, 10, 15, 0), tick=False)
def test_a_tariff_without_a_complete_ladder_is_refused_with_the_month():
    with pytest.raises(ValidationError, match="month 1: exactly one block must have no upper limit"):
        _tariff(datetime.date(2026, 4, 1), blocks=LADDER[:1])
    with pytest.raises(ValidationError, match="13 is not a month number"):
        _tariff(datetime.date(2026, 4, 1), blocks=[{**LADDER[1], "months": "13"}])
    assert not Tariff.objects.exists()


@time_machine.travel(datetime.datetime(2026, 3, 10, 15, 0), tick=False)
def test_a_version_in_force_is_never_changed_or_deleted():
    tariff = _tariff(datetime.date(2026, 1, 1), backdated=True)
    with pytest.raises(ValidationError, match="in force since 2026-01-01"):
        tariffs.tariff_update(actor=None, tariff=tariff, customer_charge=Decimal("35.00"))
    with pytest.raises(ValidationError, match="in force"):
        tariffs.tariff_delete(actor=None, tariff=tariff)
    rider = tariffs.rider_create(
        actor=None, code="PCA", name="PCA", rate=Decimal("0.004"), effective_from=datetime.date(2026, 1, 1)
    )
    with pytest.raises(ValidationError, match="in force"):
        tariffs.rider_update(actor=None, rider=rider, rate=Decimal("0.005"))
    tariff.refresh_from_db()
    assert tariff.customer_charge == Decimal("31.00")


@time_machine.travel(datetime.datetime(2026, 3, 10, 15, 0), tick=False)
def test_a_pending_version_is_changed_with_its_blocks_and_who_in_its_history(django_user_model):
    boss = django_user_model.objects.create_user("boss")
    tariff = _tariff(datetime.date(2026, 5, 1), actor=boss)
    changed = tariffs.tariff_update(
        actor=boss, tariff=tariff, blocks=LADDER[1:], customer_charge=Decimal("33.00")
    )
    assert (changed.customer_charge, changed.blocks.count()) == (Decimal("33.00"), 1)
    assert changed.history.first().history_user == boss
    tax = tariffs.tax_rate_create(
        actor=boss, name="Tax", percent=Decimal("5.5"), effective_from=datetime.date(2026, 5, 1)
    )
    with pytest.raises(ValidationError, match="last day of a month"):
        tariffs.tax_rate_update(actor=boss, tax_rate=tax, effective_to=datetime.date(2026, 6, 15))
    tariffs.tax_rate_delete(actor=boss, tax_rate=tax)
    tariffs.tariff_delete(actor=boss, tariff=changed)
    assert not Tariff.objects.exists()
