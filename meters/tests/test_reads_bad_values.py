"""Bad values in a reads file (issue 5, point 8): a NUL byte in any field, a date outside the
calendar's usable range, a value outside the column's range, are each reported as that field's
error with its line, and nothing is imported: never a traceback."""

import datetime
import zoneinfo
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from meters import services
from meters.models import MeterRead
from meters.reads import reads_import

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
NUL = "contains a NUL character (byte 0); export the file again as plain CSV"


pytestmark = [
    pytest.mark.django_db,
    pytest.mark.frozen(datetime.datetime(2026, 11, 24, 20, 0, tzinfo=CHICAGO)),
]


@pytest.fixture(autouse=True)
def meter():
    return services.meter_create(serial="M-1")


GOOD_ROW = "M-1,2026-11-19,4.5"


@pytest.mark.parametrize(
    "header, row, expected",
    [
        ("meter,date,kwh", "M-\x001,2026-11-20,5", f"line 3: meter: {NUL}"),
        ("meter,date,kwh", "M-1,2026-11\x0020,5", f"line 3: date: {NUL}"),
        ("meter,date,kwh", "M-1,2026-11-20,5\x00", f"line 3: kwh: {NUL}"),
        ("meter,date,kwh", "M-1,0001-01-01,5", "line 3: date: 0001-01-01 is out of range (before 1900)"),
        ("meter,date,register", "M-1,0001-01-01,5", "line 3: date: 0001-01-01 is out of range (before 1900)"),
        ("meter,date,kwh", "M-1,1899-12-31,5", "line 3: date: 1899-12-31 is out of range (before 1900)"),
        ("meter,date,kwh", "M-1,9999-12-31,5", "line 3: date: 9999-12-31 is in the future"),
        ("meter,date,kwh", "M-1,2026-11-20,1000000000", "line 3: kwh: too large (1000000000)"),
        ("meter,date,kwh", "M-1,2026-11-20,9999999999.999", "line 3: kwh: too large (9999999999.999)"),
        ("meter,date,kwh", "M-1,2026-11-20,-0.001", "line 3: kwh: negative usage (-0.001)"),
        ("meter,date,kwh", "M-1,2026-11-20,1.0001", "line 3: kwh: more than 3 decimal places"),
    ],
)
def test_a_bad_value_is_that_fields_error_on_its_line_and_nothing_is_imported(
    tmp_path, header, row, expected
):
    path = tmp_path / "reads.csv"
    first = GOOD_ROW if header.endswith("kwh") else "M-1,2026-11-19,4"
    path.write_text(f"{header}\n{first}\n{row}\n")
    err = StringIO()
    with pytest.raises(CommandError, match="Nothing was imported"):
        call_command("import_reads", str(path), stdout=StringIO(), stderr=err)
    lines = err.getvalue().splitlines()
    assert any(line.startswith(expected) for line in lines), lines
    assert "\x00" not in err.getvalue()
    assert not MeterRead.objects.exists()


def test_the_largest_value_the_column_holds_is_imported(tmp_path):
    path = tmp_path / "reads.csv"
    path.write_text("meter,date,kwh\nM-1,2026-11-20,999999999.999\n")
    report = reads_import(path=path)
    assert report.applied and MeterRead.objects.get().kwh == Decimal("999999999.999")


def test_a_card_number_in_a_reads_file_is_never_printed(tmp_path):
    path = tmp_path / "reads.csv"
    path.write_text("meter,date,kwh\n4111111111111111,2026-11-20,5\nM-1,2026-11-20,4111111111111111\n")
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("import_reads", str(path), stdout=StringIO(), stderr=err)
    assert "line 2: meter: no meter with serial ************1111" in err.getvalue()
    assert "line 3: kwh: too large (************1111)" in err.getvalue()
    assert "4111111111111111" not in err.getvalue()
