"""export_reads: one meter's reads as CSV."""

import datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from meters import services
from meters.models import MeterRead

pytestmark = pytest.mark.django_db


@pytest.fixture
def meter():
    meter = services.meter_create(serial="X-1")
    other = services.meter_create(serial="X-2")
    for day, kwh, quality in [
        (3, "12.5", "actual"),
        (1, "0", "actual"),
        (2, "7.125", "estimated"),
        (5, "1234.001", "actual"),
    ]:
        MeterRead.objects.create(
            meter=meter,
            day=datetime.date(2026, 11, day),
            kwh=Decimal(kwh),
            quality=quality,
            source="estimate" if quality == "estimated" else "csv",
        )
    MeterRead.objects.create(meter=other, day=datetime.date(2026, 11, 4), kwh=Decimal("9"), source="csv")
    return meter


def export(*args):
    out = StringIO()
    call_command("export_reads", *args, stdout=out)
    return out.getvalue()


def test_every_read_of_the_meter_in_date_order(meter):
    assert export("--meter", "X-1") == (
        "date,kwh,quality\n"
        "2026-11-01,0.000,actual\n"
        "2026-11-02,7.125,estimated\n"
        "2026-11-03,12.500,actual\n"
        "2026-11-05,1234.001,actual\n"
    )


def test_start_and_end_are_inclusive(meter):
    assert export("--meter", "X-1", "--start", "2026-11-02", "--end", "2026-11-03") == (
        "date,kwh,quality\n2026-11-02,7.125,estimated\n2026-11-03,12.500,actual\n"
    )
    assert (
        export("--meter", "X-1", "--start", "2026-11-04") == "date,kwh,quality\n2026-11-05,1234.001,actual\n"
    )
    assert export("--meter", "X-1", "--end", "2026-11-01") == "date,kwh,quality\n2026-11-01,0.000,actual\n"
    assert export("--meter", "X-1", "--start", "2026-12-01") == "date,kwh,quality\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--meter", "NOPE"], "No meter has the serial number NOPE."),
        (
            ["--meter", "X-1", "--start", "2026-11-31"],
            "--start '2026-11-31' is not a date; write it as YYYY-MM-DD.",
        ),
        (
            ["--meter", "X-1", "--end", "11/30/2026"],
            "--end '11/30/2026' is not a date; write it as YYYY-MM-DD.",
        ),
        (
            ["--meter", "X-1", "--start", "2026-11-05", "--end", "2026-11-01"],
            "--start 2026-11-05 is after --end",
        ),
    ],
)
def test_bad_arguments_are_clear_errors(meter, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        export(*args)


def test_the_meter_is_required():
    with pytest.raises(CommandError, match="--meter"):
        export()
