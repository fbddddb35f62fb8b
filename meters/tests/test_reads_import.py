"""Importing daily reads from CSV files (and from rows made in memory)."""

import datetime
import threading
import zoneinfo
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Account
from accounts.services import account_change_status
from accounts.tests import factories
from coop.calendar import local_today
from meters import reads as reads_module
from meters import services
from meters.exceptions import ReadsImportError
from meters.management.commands.import_reads import Command as ImportReadsCommand
from meters.models import MeterRead
from meters.reads import reads_estimate_missing, reads_import, reads_import_rows

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
D = Decimal


pytestmark = [
    pytest.mark.django_db,
    # 20:00 in Chicago is already 25 November in UTC: "today" must still be the 24th.
    pytest.mark.frozen(datetime.datetime(2026, 11, 24, 20, 0, tzinfo=CHICAGO)),
]


@pytest.fixture
def meters():
    return {serial: services.meter_create(serial=serial) for serial in ("M-1", "M-2", "R-1")}


def write_csv(tmp_path, text, name="reads.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def stored(serial):
    return {
        r.day.isoformat(): (r.kwh, r.quality)
        for r in MeterRead.objects.filter(meter__serial=serial).order_by("day")
    }


def manual_read(meter, day, kwh, *, quality=MeterRead.Quality.ACTUAL, register=None):
    return MeterRead.objects.create(
        meter=meter,
        day=day,
        kwh=D(kwh),
        quality=quality,
        register=None if register is None else D(register),
        source=MeterRead.Source.MANUAL,
    )


# --- Checking every row ---------------------------------------------------------------------------


BAD_FILE = """meter,date,kwh
M-1,2026-11-20,12.5
NOPE-9,2026-11-20,1
M-1,2026-11-21,-3
M-1,2026-13-01,2
M-1,2026-11-25,2
NOPE-7,2026-11-22,abc
M-1,2026-11-23,1.2345
,2026-11-22,1
M-2,2026-11-19,5
M-1,2026-11-18,1
M-1,2026-11-18,2
M-1,2026-11-17,1,oops
M-1,2026-11-16,
M-1,11/15/2026,1

M-2,2026-11-15,1234567890
"""


def test_every_bad_row_is_reported_with_its_line_and_reason_and_nothing_is_imported(tmp_path, meters):
    manual_read(meters["M-2"], datetime.date(2026, 11, 19), "4.000")
    report = reads_import(path=write_csv(tmp_path, BAD_FILE))
    assert [str(p) for p in report.errors] == [
        "line 3: meter: no meter with serial NOPE-9",
        "line 4: kwh: negative usage (-3)",
        "line 5: date: not a date ('2026-13-01'); write the local service day as YYYY-MM-DD, like 2026-11-20",
        "line 6: date: 2026-11-25 is in the future (today is 2026-11-24 in the cooperative's time zone)",
        "line 7: meter: no meter with serial NOPE-7",
        "line 7: kwh: not a number ('abc'); write it like 12.5",
        "line 8: kwh: more than 3 decimal places (1.2345); reads are kept to the watt-hour (0.001 kWh)",
        "line 9: meter: missing",
        "line 10: kwh: meter M-2 on 2026-11-19 already has an actual read of 4.000 kWh (source manual); "
        "this file gives 5.000 kWh. An actual read is not replaced by an import: correct it by hand if the "
        "file is right",
        "line 11: kwh: meter M-1 on 2026-11-18 is on lines 11, 12 with different values (1.000, 2.000); "
        "keep the right one",
        "line 12: kwh: meter M-1 on 2026-11-18 is on lines 11, 12 with different values (1.000, 2.000); "
        "keep the right one",
        "line 13: row: 1 more value(s) than the header has columns",
        "line 14: kwh: missing",
        "line 15: date: not a date ('11/15/2026'); write the local service day as YYYY-MM-DD, "
        "like 2026-11-20",
        "line 17: kwh: too large (1234567890)",
    ]
    assert (report.rows, report.applied) == (15, False)
    assert stored("M-1") == {}  # line 2 was good, but nothing is imported when any row is bad
    assert stored("M-2") == {"2026-11-19": (D("4.000"), "actual")}


def test_the_command_lists_every_bad_row_and_exits_non_zero(tmp_path, meters, capsys):
    with pytest.raises(CommandError, match=r"Nothing was imported: 14 problem\(s\) in reads.csv"):
        call_command("import_reads", str(write_csv(tmp_path, BAD_FILE)))
    err = capsys.readouterr().err
    assert "line 3: meter: no meter with serial NOPE-9" in err
    assert "line 17: kwh: too large (1234567890)" in err
    assert not MeterRead.objects.exists()


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("meter,kwh", "missing column(s): date"),
        ("meter,date", "missing column: kwh or register"),
        ("date,kwh", "missing column(s): meter"),
        ("meter,date,kwh,register", "both kwh and register; give one of them"),
        ("meter,date,kwh,price", "unknown column(s): 'price'"),
        ("meter,date,kwh,KWH", "column(s) given twice: kwh"),
    ],
)
def test_a_header_without_the_right_columns_is_reported_on_line_1(tmp_path, meters, header, reason):
    report = reads_import(path=write_csv(tmp_path, f"{header}\nM-1,2026-11-20,1\n"))
    assert len(report.errors) == 1
    assert str(report.errors[0]).startswith(f"line 1: header: {reason}")
    assert "The header row must name the columns meter, date and either kwh or register" in str(
        report.errors[0]
    )
    assert not MeterRead.objects.exists()


def test_the_command_help_names_the_columns():
    assert "meter, date and either kwh or register" in ImportReadsCommand.help


def test_a_file_that_is_not_utf8_is_refused(tmp_path, meters):
    path = tmp_path / "reads.csv"
    path.write_bytes(b"meter,date,kwh\nM-1,2026-11-20,1\nM\xe9-1,2026-11-20,1\n")
    with pytest.raises(ReadsImportError, match="reads.csv: line 3 is not UTF-8 text"):
        reads_import(path=path)


def test_today_is_the_cooperatives_day_not_utcs(tmp_path, meters):
    report = reads_import(path=write_csv(tmp_path, "meter,date,kwh\nM-1,2026-11-24,3\n"))
    assert report.ok and local_today() == datetime.date(2026, 11, 24)
    assert stored("M-1") == {"2026-11-24": (D("3.000"), "actual")}


# --- Writing --------------------------------------------------------------------------------------


GOOD_FILE = """Meter,Date,kWh
M-1,2026-11-20,12.5
M-1,2026-11-21,0
M-2,2026-11-20,.75
M-2,2026-11-21,007.100
M-2,2026-11-21,7.1
"""


def test_good_rows_are_imported_as_actual_csv_reads(tmp_path, meters):
    report = reads_import(path=write_csv(tmp_path, GOOD_FILE))
    assert (report.ok, report.applied, report.rows, report.created, report.unchanged) == (True, True, 5, 4, 1)
    assert stored("M-1") == {"2026-11-20": (D("12.500"), "actual"), "2026-11-21": (D("0.000"), "actual")}
    assert stored("M-2") == {"2026-11-20": (D("0.750"), "actual"), "2026-11-21": (D("7.100"), "actual")}
    read = MeterRead.objects.get(meter=meters["M-1"], day=datetime.date(2026, 11, 20))
    assert (read.source, read.source_name, read.register, read.estimated_kwh) == (
        "csv",
        "reads.csv",
        None,
        None,
    )


def test_importing_the_same_file_twice_changes_nothing(tmp_path, meters, capsys):
    path = write_csv(tmp_path, GOOD_FILE)
    reads_import(path=path)
    before = list(MeterRead.objects.order_by("id").values())
    with time_machine.travel(datetime.datetime(2026, 11, 24, 21, 0, tzinfo=CHICAGO), tick=False):
        call_command("import_reads", str(path))
    assert "import_reads rows=5 created=0 unchanged=5 replaced_estimates=0 skipped=0 errors=0" in (
        capsys.readouterr().out
    )
    assert list(MeterRead.objects.order_by("id").values()) == before


def test_a_dry_run_checks_and_counts_but_writes_nothing(tmp_path, meters, capsys):
    call_command("import_reads", str(write_csv(tmp_path, GOOD_FILE)), "--dry-run")
    out = capsys.readouterr().out
    assert "import_reads dry-run rows=5 created=4 unchanged=1" in out
    assert "Dry run: nothing was imported." in out
    assert not MeterRead.objects.exists()


def test_meter_option_stands_for_the_meter_column(tmp_path, meters):
    report = reads_import(
        path=write_csv(tmp_path, "date,kwh\n2026-11-20,1\n2026-11-21,2\n"), meter_serial="M-2"
    )
    assert report.created == 2
    assert stored("M-2") == {"2026-11-20": (D("1.000"), "actual"), "2026-11-21": (D("2.000"), "actual")}
    report = reads_import(path=write_csv(tmp_path, "meter,date,kwh\nM-1,2026-11-20,1\n"), meter_serial="M-2")
    assert [str(p) for p in report.errors] == ["line 2: meter: M-1 is not the meter given with --meter (M-2)"]


def _active_meter(serial, *, installed_on=datetime.date(2026, 1, 1)):
    account = factories.account()
    account_change_status(account=account, to_status=Account.Status.ACTIVE, actor=None, reason="test")
    meter = services.meter_create(serial=serial)
    services.meter_install(meter=meter, location=account.location, installed_on=installed_on)
    return meter


def test_an_actual_read_replaces_the_days_estimate_in_place_keeping_the_estimate(tmp_path):
    meter = _active_meter("E-1")
    day = datetime.date(2026, 11, 23)
    for weeks in (1, 2):
        manual_read(meter, day - datetime.timedelta(weeks=weeks), "10.000")
    assert reads_estimate_missing(day=day) == 1
    estimate = MeterRead.objects.get(meter=meter, day=day)
    assert (estimate.kwh, estimate.quality, estimate.source) == (D("10.000"), "estimated", "estimate")

    path = write_csv(tmp_path, "meter,date,kwh\nE-1,2026-11-23,12.345\n", name="ami-2026-11-23.csv")
    report = reads_import(path=path)
    assert (report.created, report.replaced, report.unchanged) == (0, 1, 0)
    read = MeterRead.objects.get(meter=meter, day=day)
    assert read.pk == estimate.pk
    assert (read.kwh, read.quality, read.estimated_kwh) == (D("12.345"), "actual", D("10.000"))
    assert (read.source, read.source_name) == ("csv", "ami-2026-11-23.csv")

    again = reads_import(path=path)
    assert (again.created, again.replaced, again.unchanged) == (0, 0, 1)
    assert MeterRead.objects.get(pk=read.pk).estimated_kwh == D("10.000")
    assert reads_estimate_missing(day=day) == 0


# --- Registers ------------------------------------------------------------------------------------


def test_register_readings_become_daily_use_and_a_rollover_wraps_round(tmp_path, meters):
    path = write_csv(
        tmp_path,
        "meter,date,register\n"
        "R-1,2026-11-01,99980\n"
        "R-1,2026-11-03,00012\n"  # rows need not be in date order
        "R-1,2026-11-02,99990.5\n",
    )
    report = reads_import(path=path)
    assert report.ok, report.errors
    assert (report.created, report.kind) == (2, "register")
    assert [str(n) for n in report.skipped] == [
        "line 2: register: meter R-1 has no register for 2026-10-31 in this file or stored, so this row's "
        "use is not known: it only gives the starting register and is not imported"
    ]
    assert stored("R-1") == {"2026-11-02": (D("10.500"), "actual"), "2026-11-03": (D("21.500"), "actual")}
    read = MeterRead.objects.get(meter=meters["R-1"], day=datetime.date(2026, 11, 3))
    assert read.register == D("12.000")

    # The next file continues from the stored register.
    report = reads_import(
        path=write_csv(tmp_path, "meter,date,register\nR-1,2026-11-04,30.25\n", name="b.csv")
    )
    assert stored("R-1")["2026-11-04"] == (D("18.250"), "actual")

    # Importing the first file again: the two reads unchanged, the first row still only a start.
    again = reads_import(path=path)
    assert (again.created, again.unchanged, len(again.skipped), again.errors) == (0, 2, 1, [])


def test_a_register_going_backwards_is_an_error_unless_it_rolls_over(tmp_path, meters):
    manual_read(meters["M-2"], datetime.date(2026, 11, 1), "5", register="4100")
    path = write_csv(
        tmp_path,
        "meter,date,register\n"
        "M-1,2026-11-01,5000\n"
        "M-1,2026-11-02,4990\n"  # backwards within the file
        "M-2,2026-11-02,4000\n"  # backwards from the stored read
        "R-1,2026-11-01,950\n"
        "R-1,2026-11-02,12\n"  # a 3-digit reading: not taken for a rollover
        "R-1,2026-11-03,15\n",
    )
    report = reads_import(path=path)
    assert [str(p) for p in report.errors] == [
        "line 3: register: goes backwards: 4990.000 is below 5000.000 on 2026-11-01 (line 2) and is not a "
        "rollover (from the top tenth of the register's range to the bottom tenth, e.g. 99990 -> 00012); "
        "check the meter, or whether it was replaced",
        "line 4: register: goes backwards: 4000.000 is below 4100.000 on 2026-11-01 (the stored read) and is "
        "not a rollover (from the top tenth of the register's range to the bottom tenth, e.g. 99990 -> "
        "00012); check the meter, or whether it was replaced",
        "line 6: register: goes backwards: 12.000 is below 950.000 on 2026-11-01 (line 5) and is not a "
        "rollover (from the top tenth of the register's range to the bottom tenth, e.g. 99990 -> 00012); "
        "check the meter, or whether it was replaced",
    ]
    assert MeterRead.objects.count() == 1


def test_rollover_of_a_six_digit_register(tmp_path, meters):
    path = write_csv(tmp_path, "meter,date,register\nR-1,2026-11-01,999950.125\nR-1,2026-11-02,000049.875\n")
    reads_import(path=path)
    assert stored("R-1") == {"2026-11-02": (D("99.750"), "actual")}


# --- In-memory rows, and set-based work -----------------------------------------------------------


def test_rows_made_in_memory_are_checked_and_imported_like_a_file(meters):
    report = reads_import_rows(
        rows=[
            ("M-1", datetime.date(2026, 11, 20), D("1.5")),
            ("M-1", datetime.date(2026, 11, 21), 2),
            ("M-2", datetime.date(2026, 11, 30), "1"),
            ("M-2", "2026-11-20", "1"),
        ],
        source_name="bench",
    )
    assert [str(p) for p in report.errors] == [
        "line 3: date: 2026-11-30 is in the future (today is 2026-11-24 in the cooperative's time zone)",
        "line 4: date: not a date ('2026-11-20'); give the local service day as a datetime.date",
    ]
    assert not MeterRead.objects.exists()
    report = reads_import_rows(rows=[("M-1", datetime.date(2026, 11, 20), D("1.5"))], source_name="bench")
    assert report.created == 1 and MeterRead.objects.get().source_name == "bench"


def _generated(tmp_path, n, name):
    lines = ["meter,date,kwh"]
    serials = ["M-1", "M-2", "R-1"]
    for i in range(n):
        day = datetime.date(2026, 11, 23) - datetime.timedelta(days=i // 3)
        lines.append(f"{serials[i % 3]},{day.isoformat()},{i % 50}.{i % 1000:03d}")
    return write_csv(tmp_path, "\n".join(lines) + "\n", name=name)


def test_the_number_of_queries_does_not_grow_with_the_rows(tmp_path, meters):
    def queries(path):
        with CaptureQueriesContext(connection) as ctx:
            report = reads_import(path=path)
        assert report.ok and report.created > 0
        MeterRead.objects.all().delete()
        return len(ctx.captured_queries)

    assert queries(_generated(tmp_path, 6, "small.csv")) == queries(_generated(tmp_path, 3000, "large.csv"))


@pytest.mark.postgres
def test_postgresql_loads_the_file_with_copy(tmp_path, meters):
    path = _generated(tmp_path, 30_000, "big.csv")
    # A tab and a backslash in a serial must not break the COPY stream: they are unknown meters.
    path.write_text(path.read_text() + 'M\\1,2026-11-20,1\n"M\t2",2026-11-20,1\n')
    report = reads_import(path=path)
    assert [str(p) for p in report.errors] == [
        "line 30002: meter: no meter with serial M\\1",
        "line 30003: meter: no meter with serial M\t2",
    ]
    path.write_text("\n".join(path.read_text().splitlines()[:-2]) + "\n")
    with CaptureQueriesContext(connection) as ctx:
        report = reads_import(path=path)
    assert (report.errors, report.created) == ([], 30_000)
    assert not any("INSERT INTO meters_reads_stage" in q["sql"] for q in ctx.captured_queries)
    assert MeterRead.objects.count() == 30_000
    assert MeterRead.objects.get(meter=meters["R-1"], day=datetime.date(2026, 11, 23)).kwh == D("2.002")
    assert reads_import(path=path).unchanged == 30_000


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_postgresql_imports_commit_and_leave_no_temporary_table_behind(tmp_path, meters):
    first = reads_import(path=write_csv(tmp_path, GOOD_FILE))
    assert first.applied
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('pg_temp.meters_reads_stage')")
        assert cursor.fetchone()[0] is None
    second = reads_import(path=write_csv(tmp_path, "meter,date,kwh\nM-1,2026-11-22,3\n", name="b.csv"))
    assert second.created == 1
    assert MeterRead.objects.count() == 5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_postgresql_an_import_racing_the_estimates_is_rolled_back_not_half_applied(
    tmp_path, meters, monkeypatch
):
    # Another connection writes an estimate for a day the import is about to create.
    path = write_csv(tmp_path, "meter,date,kwh\nM-1,2026-11-20,1\nM-1,2026-11-21,2\n")
    original = reads_module._Check._write

    def write_after_a_rival(self, *args, **kwargs):
        def rival():
            MeterRead.objects.create(
                meter=meters["M-1"],
                day=datetime.date(2026, 11, 21),
                kwh=D("9"),
                quality="estimated",
                source="estimate",
            )
            connection.close()

        thread = threading.Thread(target=rival)
        thread.start()
        thread.join()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(reads_module._Check, "_write", write_after_a_rival)
    with pytest.raises(ReadsImportError, match="written by another process"):
        reads_import(path=path)
    assert stored("M-1") == {"2026-11-21": (D("9.000"), "estimated")}


# --- The admin list of reads (read-only: reads come from files) -----------------------------------


def test_the_reads_admin_lists_searches_and_filters_but_changes_nothing(
    tmp_path, meters, client, django_user_model
):
    reads_import(path=write_csv(tmp_path, GOOD_FILE))
    MeterRead.objects.filter(meter__serial="M-2", day=datetime.date(2026, 11, 20)).update(quality="estimated")
    client.force_login(factories.superuser())
    changelist = reverse("admin:meters_meterread_changelist")

    def found(params):
        response = client.get(changelist, params)
        assert response.status_code == 200
        return sorted((r.meter.serial, r.day.isoformat()) for r in response.context["cl"].result_list)

    assert len(found({})) == 4
    assert found({"q": "m-2"}) == [("M-2", "2026-11-20"), ("M-2", "2026-11-21")]
    assert found({"quality__exact": "estimated"}) == [("M-2", "2026-11-20")]
    assert found({"source__exact": "manual"}) == []
    assert found({"o": "2"}) and client.get(changelist, {"o": "1"}).status_code == 200  # sort by day

    read = MeterRead.objects.first()
    change = reverse("admin:meters_meterread_change", args=[read.pk])
    page = client.get(change)
    assert page.status_code == 200 and b'name="kwh"' not in page.content  # a view, not a form
    assert client.post(change, {"kwh": "99"}).status_code == 403
    assert client.get(reverse("admin:meters_meterread_add")).status_code == 403
    assert client.get(reverse("admin:meters_meterread_delete", args=[read.pk])).status_code == 403
    assert MeterRead.objects.get(pk=read.pk).kwh == read.kwh
