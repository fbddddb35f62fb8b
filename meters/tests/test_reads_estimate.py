"""Estimating the reads that did not arrive (reads_estimate_missing)."""

import datetime
import zoneinfo
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account
from accounts.services import account_change_status
from accounts.tests import factories
from meters import services
from meters.models import MeterRead
from meters.reads import reads_estimate_missing

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
D = Decimal
DAY = datetime.date(2026, 11, 23)  # a Monday
ACTUAL, ESTIMATED = MeterRead.Quality.ACTUAL, MeterRead.Quality.ESTIMATED


pytestmark = [
    pytest.mark.django_db,
    pytest.mark.frozen(datetime.datetime(2026, 11, 24, 6, 0, tzinfo=CHICAGO)),
]


def ago(days):
    return DAY - datetime.timedelta(days=days)


_STATUS_PATHS = {
    Account.Status.PENDING: [],
    Account.Status.ACTIVE: [Account.Status.ACTIVE],
    Account.Status.DISCONNECTED: [Account.Status.ACTIVE, Account.Status.DISCONNECTED],
    Account.Status.INACTIVE: [Account.Status.ACTIVE, Account.Status.DISCONNECTED, Account.Status.INACTIVE],
    Account.Status.CLOSED: [Account.Status.ACTIVE, Account.Status.CLOSED],
}


def meter_at_account(
    serial, *, status=Account.Status.ACTIVE, installed_on=datetime.date(2026, 1, 1), removed_on=None
):
    account = factories.account()
    for step in _STATUS_PATHS[status]:
        account_change_status(account=account, to_status=step, actor=None, reason="test")
    meter = services.meter_create(serial=serial)
    installation = services.meter_install(meter=meter, location=account.location, installed_on=installed_on)
    if removed_on is not None:
        services.meter_remove(installation=installation, removed_on=removed_on)
    return meter


def read(meter, day, kwh, quality=ACTUAL):
    source = MeterRead.Source.MANUAL if quality == ACTUAL else MeterRead.Source.ESTIMATE
    MeterRead.objects.create(meter=meter, day=day, kwh=D(kwh), quality=quality, source=source)


def estimate_of(meter):
    r = MeterRead.objects.get(meter=meter, day=DAY)
    assert (r.quality, r.source, r.estimated_kwh, r.register) == (ESTIMATED, "estimate", None, None)
    return r.kwh


def test_the_estimate_is_the_average_of_the_same_weekday_over_the_previous_four_weeks():
    meter = meter_at_account("S-1")
    read(meter, ago(7), "10.000")
    read(meter, ago(14), "11.000")
    read(meter, ago(21), "50.000", quality=ESTIMATED)  # estimates never feed an estimate
    read(meter, ago(35), "90.000")  # five weeks back: out of the window
    read(meter, ago(1), "99.000")  # other weekdays do not count while a same weekday does
    assert reads_estimate_missing(day=DAY) == 1
    assert estimate_of(meter) == D("10.500")


def test_all_four_same_weekdays_count_when_they_all_have_reads():
    meter = meter_at_account("S-2")
    for weeks, kwh in ((1, "1.250"), (2, "2.500"), (3, "3.750"), (4, "5.000")):
        read(meter, ago(7 * weeks), kwh)
    reads_estimate_missing(day=DAY)
    assert estimate_of(meter) == D("3.125")


def test_without_same_weekday_reads_the_last_seven_days_are_averaged():
    meter = meter_at_account("S-3")
    read(meter, ago(1), "3.000")
    read(meter, ago(6), "4.000")
    read(meter, ago(2), "80.000", quality=ESTIMATED)
    read(meter, ago(8), "100.000")  # eight days back: out of the window
    reads_estimate_missing(day=DAY)
    assert estimate_of(meter) == D("3.500")


def test_without_any_recent_actual_read_the_estimate_is_zero():
    meter = meter_at_account("S-4")
    read(meter, ago(7), "5.000", quality=ESTIMATED)
    read(meter, ago(29), "5.000")
    reads_estimate_missing(day=DAY)
    assert estimate_of(meter) == D("0.000")


@pytest.mark.parametrize(
    ("values", "estimate"),
    [
        (["1.000", "1.001"], "1.001"),  # 1.0005 rounds half up
        (["0.000", "0.001"], "0.001"),  # 0.0005
        (["1.000", "1.000", "1.001"], "1.000"),  # 1.000333...
        (["2.001", "2.002", "2.002"], "2.002"),  # 2.001666...
        (["12.345", "12.346", "12.346", "12.346"], "12.346"),  # 12.34575
    ],
)
def test_the_average_is_rounded_half_up_to_the_watt_hour(values, estimate):
    meter = meter_at_account("S-5")
    for weeks, kwh in enumerate(values, start=1):
        read(meter, ago(7 * weeks), kwh)
    reads_estimate_missing(day=DAY)
    assert estimate_of(meter) == D(estimate)


def test_only_meters_installed_that_day_at_an_active_or_disconnected_account_are_estimated():
    wanted = {
        "active": meter_at_account("A-1"),
        "disconnected": meter_at_account("A-2", status=Account.Status.DISCONNECTED),
        "installed that day": meter_at_account("A-3", installed_on=DAY),
        "removed that day": meter_at_account("A-4", removed_on=DAY),
    }
    unwanted = {
        "pending": meter_at_account("B-1", status=Account.Status.PENDING),
        "inactive": meter_at_account("B-2", status=Account.Status.INACTIVE),
        "closed": meter_at_account("B-3", status=Account.Status.CLOSED),
        "installed the day after": meter_at_account("B-4", installed_on=DAY + datetime.timedelta(days=1)),
        "removed the day before": meter_at_account("B-5", removed_on=ago(1)),
        "never installed": services.meter_create(serial="B-6"),
    }
    has_read = meter_at_account("C-1")
    read(has_read, DAY, "7.000")

    assert reads_estimate_missing(day=DAY) == len(wanted)
    estimated = set(
        MeterRead.objects.filter(day=DAY, quality=ESTIMATED).values_list("meter__serial", flat=True)
    )
    assert estimated == {m.serial for m in wanted.values()}
    assert MeterRead.objects.get(meter=has_read, day=DAY).quality == ACTUAL
    assert not MeterRead.objects.filter(meter__in=unwanted.values()).exists()


def test_a_disconnected_meter_is_estimated_at_zero_whatever_it_used_before():
    meter = meter_at_account("D-1", status=Account.Status.DISCONNECTED)
    for weeks in (1, 2, 3, 4):
        read(meter, ago(7 * weeks), "30.000")
    reads_estimate_missing(day=DAY)
    assert estimate_of(meter) == D("0.000")


def test_a_meter_moved_that_day_is_estimated_once():
    meter = meter_at_account("M-1", removed_on=DAY)
    account = factories.account()
    account_change_status(account=account, to_status=Account.Status.ACTIVE, actor=None, reason="test")
    services.meter_install(meter=meter, location=account.location, installed_on=DAY)
    assert reads_estimate_missing(day=DAY) == 1


def test_estimating_twice_adds_nothing_and_uses_one_statement():
    meters = [meter_at_account(f"I-{i}") for i in range(5)]
    for i, meter in enumerate(meters):
        read(meter, ago(7), f"{i}.000")
    with CaptureQueriesContext(connection) as ctx:
        assert reads_estimate_missing(day=DAY) == 5
    assert sum("INSERT" in q["sql"] for q in ctx.captured_queries) == 1
    assert len([q for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"]]) == 1
    assert reads_estimate_missing(day=DAY) == 0
    assert MeterRead.objects.filter(day=DAY).count() == 5


def test_the_day_must_be_a_date_not_a_datetime():
    with pytest.raises(TypeError):
        reads_estimate_missing(day=datetime.datetime(2026, 11, 23, tzinfo=CHICAGO))
