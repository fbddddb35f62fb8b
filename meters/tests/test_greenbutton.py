"""Green Button (ESPI) files: daily totals in the cooperative's zone, units, refusals.

The public sample files live in ../shared/data/greenbutton (Apache-2.0, see its NOTICE); the three
smallest are copied into meters/tests/data/greenbutton so these tests also run from a checkout of
this repository alone. Each `.expected.txt` lists a file's readings as the Green Button parser of
that data set saw them ("2011-01-01 08:00:00+00:00, 1:00:00: 450 Wh"); the tests total those
listings by local day themselves and compare with the reads the import stored.
"""

import datetime
import re
import zoneinfo
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from meters import greenbutton, services
from meters.exceptions import ReadsImportError
from meters.models import MeterRead
from meters.reads import reads_import

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
SHARED = Path(settings.BASE_DIR).parent / "shared/data/greenbutton"
LOCAL = Path(__file__).parent / "data/greenbutton"
SHARED_FILES = [
    "Coastal_Multi_Family_Daily_Jan_1_2011_to_Jan_1_2012_RetailCustomer_4",
    "Desert_Single_Family_Jan_1_2011_to_Jan_1_2012_RetailCustomer_7",
    "TestGBDataHourlyNineDaysBinnedDaily",
    "TestGBDataOneYearDailyBinnedMonthly",
    "electric_containerized",
]
LOCAL_FILES = [
    "TestGBDataHourlyNineDaysBinnedDaily",
    "TestGBDataOneYearDailyBinnedMonthly",
    "electric_containerized",
]

_LISTED = re.compile(
    r"^\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00), (?:(\d+) days?, )?(\d+):(\d\d):(\d\d): (\d+) Wh"
)


pytestmark = [
    pytest.mark.django_db,
    pytest.mark.frozen(datetime.datetime(2026, 11, 24, 10, 0, tzinfo=CHICAGO)),
]


@pytest.fixture
def meter():
    return services.meter_create(serial="GB-0001")


def _shared(name: str) -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"the shared Green Button data ({SHARED}) is not here; the copies in {LOCAL} still run")
    return SHARED / name


def expected_days(path: Path) -> dict[datetime.date, tuple[int, int, int]]:
    """Local day -> (Wh, readings, seconds covered), from an .expected.txt listing: each reading
    counted on the Chicago day that holds the middle of its period."""
    days = defaultdict(lambda: [0, 0, 0])
    for text in path.read_text().splitlines():
        match = _LISTED.match(text)
        if not match:
            continue
        start = datetime.datetime.fromisoformat(match[1])
        days_, hours, minutes, seconds = (int(g or 0) for g in match.group(2, 3, 4, 5))
        duration = datetime.timedelta(days=days_, hours=hours, minutes=minutes, seconds=seconds)
        day = (start + duration / 2).astimezone(CHICAGO).date()
        days[day][0] += int(match[6])
        days[day][1] += 1
        days[day][2] += int(duration.total_seconds())
    return {day: tuple(v) for day, v in days.items()}


def local_day_seconds(day: datetime.date) -> int:
    start = datetime.datetime.combine(day, datetime.time(), tzinfo=CHICAGO)
    end = datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time(), tzinfo=CHICAGO)
    # Not `end - start`: between datetimes of the same tzinfo Python subtracts wall-clock times.
    return int(end.timestamp() - start.timestamp())


def _assert_reads_match_listing(xml: Path, listing: Path, meter, *, partial_days=False):
    report = reads_import(path=xml, meter_serial=meter.serial, partial_days=partial_days)
    assert report.ok, report.errors
    expected = expected_days(listing)
    complete = {d: v for d, v in expected.items() if v[2] == local_day_seconds(d)}
    wanted = expected if partial_days else complete
    stored = dict(MeterRead.objects.filter(meter=meter).values_list("day", "kwh"))
    assert stored == {day: Decimal(wh) / 1000 for day, (wh, _, _) in wanted.items()}
    assert report.rows == sum(n for _, n, _ in expected.values())
    assert report.created == len(wanted)
    assert len(report.skipped) == len(expected) - len(wanted)
    assert all(
        r.quality == "actual" and r.source == "green_button" for r in MeterRead.objects.filter(meter=meter)
    )
    return report


@pytest.mark.parametrize("name", SHARED_FILES)
def test_shared_sample_files_import_as_the_sum_of_their_listed_readings_per_local_day(name, meter):
    xml = _shared(f"{name}.xml")
    # electric_containerized covers 8 hours of one day: only --partial-days imports anything.
    partial = name == "electric_containerized"
    report = _assert_reads_match_listing(xml, SHARED / f"{name}.expected.txt", meter, partial_days=partial)
    assert report.source_name == xml.name


@pytest.mark.parametrize("name", LOCAL_FILES)
def test_copied_sample_files_import_as_the_sum_of_their_listed_readings_per_local_day(name, meter):
    partial = name == "electric_containerized"
    _assert_reads_match_listing(
        LOCAL / f"{name}.xml", LOCAL / f"{name}.expected.txt", meter, partial_days=partial
    )


def test_copied_samples_are_the_shared_files():
    if not SHARED.is_dir():
        pytest.skip(f"the shared Green Button data ({SHARED}) is not here")
    for name in LOCAL_FILES:
        for suffix in (".xml", ".expected.txt"):
            assert (LOCAL / f"{name}{suffix}").read_bytes() == (SHARED / f"{name}{suffix}").read_bytes()


def test_days_the_readings_do_not_cover_whole_are_reported_and_not_imported(meter):
    # The nine hourly days start at 05:00 UTC, 23:00 in Chicago: 1 hour of 31 December, 23 of 9 January.
    report = reads_import(path=LOCAL / "TestGBDataHourlyNineDaysBinnedDaily.xml", meter_serial=meter.serial)
    assert report.ok
    assert [str(n).split(": ", 2)[1] for n in report.skipped] == ["day 2013-12-31", "day 2014-01-09"]
    assert "cover 1 of the day's 24 hours" in report.skipped[0].reason
    assert "cover 23 of the day's 24 hours" in report.skipped[1].reason
    days = list(MeterRead.objects.filter(meter=meter).order_by("day").values_list("day", flat=True))
    assert days == [datetime.date(2014, 1, d) for d in range(1, 9)]


def test_a_daily_file_from_another_zone_counts_each_reading_on_the_day_it_mostly_covers(meter):
    # Eastern-time days (05:00 UTC) are 23:00-23:00 in Chicago, and 23 or 25 hours long on the days
    # the clocks change: each lands whole on the Chicago day it mostly covers.
    reads_import(path=LOCAL / "TestGBDataOneYearDailyBinnedMonthly.xml", meter_serial=meter.serial)
    reads = MeterRead.objects.filter(meter=meter)
    assert reads.count() == 444
    assert reads.get(day=datetime.date(2013, 1, 1)).kwh == Decimal("21.021")
    assert reads.filter(day__in=[datetime.date(2013, 3, 10), datetime.date(2013, 11, 3)]).count() == 2


@pytest.mark.parametrize(
    "name",
    [
        "Coastal_Multi_Family_Daily_Jan_1_2011_to_Jan_1_2012_RetailCustomer_4",
        "Desert_Single_Family_Jan_1_2011_to_Jan_1_2012_RetailCustomer_7",
    ],
)
def test_the_2011_dst_days_in_the_shared_files_sum_23_and_25_hourly_readings(name, meter):
    xml = _shared(f"{name}.xml")
    listing = expected_days(SHARED / f"{name}.expected.txt")
    data = greenbutton.parse(xml)
    totals = {t.day: t for t in greenbutton.daily_totals(data.readings, zone=CHICAGO)[0]}
    spring, fall = datetime.date(2011, 3, 13), datetime.date(2011, 11, 6)
    assert (totals[spring].readings, totals[spring].length) == (23, 23 * 3600)
    assert (totals[fall].readings, totals[fall].length) == (25, 25 * 3600)
    assert totals[spring].complete and totals[fall].complete
    reads_import(path=xml, meter_serial=meter.serial)
    for day in (spring, fall):
        assert listing[day][1] in (23, 25)
        assert MeterRead.objects.get(meter=meter, day=day).kwh == Decimal(listing[day][0]) / 1000


# --- Synthetic files ------------------------------------------------------------------------------


def espi(
    readings,
    *,
    uom=72,
    power_of_ten=0,
    usage_points=1,
    accumulation=4,
    flow=1,
    prolog="",
):
    """A small ESPI feed: `readings` are (start epoch seconds, duration, value)."""
    points = "".join(
        f"""<entry><link rel="self" href="/RetailCustomer/1/UsagePoint/{i}"/>
        <content><UsagePoint xmlns="http://naesb.org/espi"><ServiceCategory><kind>0</kind></ServiceCategory>
        </UsagePoint></content></entry>"""
        for i in range(1, usage_points + 1)
    )
    body = "".join(
        f"<IntervalReading><timePeriod><duration>{d}</duration><start>{s}</start></timePeriod>"
        f"<value>{v}</value></IntervalReading>\n"
        for s, d, v in readings
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>{prolog}
<feed xmlns="http://www.w3.org/2005/Atom">
  {points}
  <entry><link rel="self" href="/RetailCustomer/1/UsagePoint/1/MeterReading/1"/>
    <link rel="related" href="/ReadingType/1"/>
    <content><MeterReading xmlns="http://naesb.org/espi"/></content></entry>
  <entry><link rel="self" href="/ReadingType/1"/>
    <content><ReadingType xmlns="http://naesb.org/espi">
      <accumulationBehaviour>{accumulation}</accumulationBehaviour><flowDirection>{flow}</flowDirection>
      <intervalLength>3600</intervalLength><powerOfTenMultiplier>{power_of_ten}</powerOfTenMultiplier>
      <uom>{uom}</uom></ReadingType></content></entry>
  <entry><link rel="self" href="/RetailCustomer/1/UsagePoint/1/MeterReading/1/IntervalBlock/1"/>
    <content><IntervalBlock xmlns="http://naesb.org/espi">
{body}    </IntervalBlock></content></entry>
</feed>
"""


def hourly(first_local: datetime.datetime, last_local: datetime.datetime, value=lambda i: 1000):
    """Hourly readings from local midnight `first_local` up to (not including) `last_local`."""
    start, end = int(first_local.timestamp()), int(last_local.timestamp())
    return [(s, 3600, value(i)) for i, s in enumerate(range(start, end, 3600))]


def _write(tmp_path, text, name="usage.xml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _midnight(y, m, d):
    return datetime.datetime(y, m, d, tzinfo=CHICAGO)


def test_hourly_readings_across_both_2026_dst_changes_make_23_and_25_hour_local_days(tmp_path, meter):
    # 7 to 9 March 2026 (clocks forward on the 8th) and 31 October to 2 November (back on the 1st).
    spring = hourly(_midnight(2026, 3, 7), _midnight(2026, 3, 10), value=lambda i: 100 + i)
    fall = hourly(_midnight(2026, 10, 31), _midnight(2026, 11, 3), value=lambda i: 200 + i)
    path = _write(tmp_path, espi(spring + fall))

    data = greenbutton.parse(path)
    totals = {t.day: t for t in greenbutton.daily_totals(data.readings, zone=settings.TIME_ZONE)[0]}
    counts = {day.isoformat(): t.readings for day, t in totals.items()}
    assert counts == {
        "2026-03-07": 24, "2026-03-08": 23, "2026-03-09": 24,
        "2026-10-31": 24, "2026-11-01": 25, "2026-11-02": 24,
    }  # fmt: skip

    report = reads_import(path=path, meter_serial=meter.serial)
    assert (report.ok, report.rows, report.days, report.created, report.skipped) == (True, 144, 6, 6, [])
    kwh = {r.day.isoformat(): r.kwh for r in MeterRead.objects.filter(meter=meter)}
    # Readings i = 24..46 fall on 8 March (23 of them), i = 24..48 on 1 November (25).
    assert kwh["2026-03-08"] == Decimal(sum(100 + i for i in range(24, 47))) / 1000
    assert kwh["2026-03-09"] == Decimal(sum(100 + i for i in range(47, 71))) / 1000
    assert kwh["2026-11-01"] == Decimal(sum(200 + i for i in range(24, 49))) / 1000
    assert kwh["2026-11-02"] == Decimal(sum(200 + i for i in range(49, 73))) / 1000


def test_a_dst_day_missing_an_hour_is_partial(tmp_path, meter):
    readings = hourly(_midnight(2026, 11, 1), _midnight(2026, 11, 2))[:-1]  # 24 of the day's 25 hours
    report = reads_import(path=_write(tmp_path, espi(readings)), meter_serial=meter.serial)
    assert report.created == 0
    assert "cover 24 of the day's 25 hours" in report.skipped[0].reason


@pytest.mark.parametrize(
    ("power_of_ten", "value", "kwh"),
    [(0, 1234, "29.616"), (3, 2, "48.000"), (-3, 1500, "0.036"), (-1, 15, "0.036")],
)
def test_the_power_of_ten_multiplier_scales_the_readings(tmp_path, meter, power_of_ten, value, kwh):
    # 24 readings a day; with -1 the day is 360 (0.1 Wh), i.e. 36 Wh; -3 gives 36 Wh as well.
    readings = hourly(_midnight(2026, 2, 2), _midnight(2026, 2, 3), value=lambda i: value)
    reads_import(path=_write(tmp_path, espi(readings, power_of_ten=power_of_ten)), meter_serial=meter.serial)
    assert MeterRead.objects.get(meter=meter).kwh == Decimal(kwh)


def test_a_negative_multiplier_rounds_the_days_total_half_up_to_the_watt_hour():
    assert greenbutton.to_milli_kwh(12345, -1) == 1235  # 1234.5 Wh
    assert greenbutton.to_milli_kwh(12344, -1) == 1234
    assert greenbutton.to_milli_kwh(7, 2) == 700


def test_importing_the_same_green_button_file_twice_changes_nothing(tmp_path, meter):
    path = _write(tmp_path, espi(hourly(_midnight(2026, 2, 2), _midnight(2026, 2, 4))))
    first = reads_import(path=path, meter_serial=meter.serial)
    second = reads_import(path=path, meter_serial=meter.serial)
    assert (first.created, first.unchanged) == (2, 0)
    assert (second.created, second.unchanged, second.replaced, second.errors) == (0, 2, 0, [])


def test_bad_readings_are_each_reported_with_their_line_and_nothing_is_imported(tmp_path, meter):
    readings = hourly(_midnight(2026, 2, 2), _midnight(2026, 2, 3))
    text = espi(readings)
    text = text.replace("<value>1000</value>", "<value>-5</value>", 1)  # reading 1
    lines = text.splitlines()
    bad_value = next(i for i, line in enumerate(lines, 1) if "<value>-5</value>" in line)
    text = text.replace(f"<start>{readings[3][0]}</start>", "<start>soon</start>")  # reading 4
    text = text.replace(
        f"<start>{readings[5][0]}</start>", f"<start>{readings[5][0] - 1800}</start>"
    )  # overlap
    report = reads_import(path=_write(tmp_path, text), meter_serial=meter.serial)
    assert [str(p) for p in report.errors] == [
        f"line {bad_value}: IntervalReading[1].value: negative usage (-5)",
        f"line {bad_value + 3}: IntervalReading[4].timePeriod.start: not an integer ('soon')",
        f"line {bad_value + 5}: IntervalReading[6].timePeriod: overlaps IntervalReading[5] "
        f"(line {bad_value + 4}, from 2026-02-02 04:00 CST for 3600 s) with a different value or length",
    ]
    assert not report.applied
    assert not MeterRead.objects.exists()


def test_a_reading_repeated_exactly_counts_once(tmp_path, meter):
    readings = hourly(_midnight(2026, 2, 2), _midnight(2026, 2, 3))
    reads_import(path=_write(tmp_path, espi(readings + readings[:3])), meter_serial=meter.serial)
    assert MeterRead.objects.get(meter=meter).kwh == Decimal("24.000")


def test_a_green_button_day_after_today_is_an_error(tmp_path, meter):
    readings = hourly(_midnight(2026, 11, 24), _midnight(2026, 11, 26))
    report = reads_import(path=_write(tmp_path, espi(readings)), meter_serial=meter.serial, partial_days=True)
    assert [p.field for p in report.errors] == ["day 2026-11-25"]
    assert "is in the future (today is 2026-11-24" in report.errors[0].reason
    assert not MeterRead.objects.exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"uom": 38}, "unit is uom 38; only energy in watt-hours (uom 72, Wh)"),
        ({"usage_points": 2}, "has 2 UsagePoints"),
        ({"accumulation": 1}, "accumulationBehaviour 1"),
        ({"flow": 19}, "flowDirection 19"),
        ({"prolog": '<!DOCTYPE feed [<!ENTITY x "boom">]>'}, "declares a DOCTYPE"),
    ],
)
def test_files_that_cannot_be_imported_are_refused_whole(tmp_path, meter, kwargs, message):
    path = _write(tmp_path, espi(hourly(_midnight(2026, 2, 2), _midnight(2026, 2, 3)), **kwargs))
    with pytest.raises(ReadsImportError, match=re.escape(message)):
        reads_import(path=path, meter_serial=meter.serial)
    assert not MeterRead.objects.exists()


def test_not_well_formed_xml_is_refused_with_its_line(tmp_path, meter):
    path = _write(tmp_path, espi(hourly(_midnight(2026, 2, 2), _midnight(2026, 2, 3)))[:-20])
    with pytest.raises(ReadsImportError, match=r"not well-formed XML \(line \d+"):
        reads_import(path=path, meter_serial=meter.serial)


def test_a_green_button_file_needs_the_meter_named(tmp_path, meter):
    path = _write(tmp_path, espi(hourly(_midnight(2026, 2, 2), _midnight(2026, 2, 3))))
    with pytest.raises(ReadsImportError, match="name the meter with --meter SERIAL"):
        reads_import(path=path)
    with pytest.raises(CommandError, match="name the meter with --meter SERIAL"):
        call_command("import_reads", str(path))
    with pytest.raises(CommandError, match="No meter has the serial number NOPE"):
        call_command("import_reads", str(path), "--meter", "NOPE")


def test_the_command_imports_a_green_button_file(tmp_path, meter, capsys):
    path = _write(tmp_path, espi(hourly(_midnight(2026, 2, 2), _midnight(2026, 2, 4))))
    call_command("import_reads", str(path), "--meter", meter.serial)
    out = capsys.readouterr().out
    assert "import_reads rows=48 days=2 created=2 unchanged=0 replaced_estimates=0 skipped=0 errors=0" in out
    assert MeterRead.objects.filter(meter=meter, source=MeterRead.Source.GREEN_BUTTON).count() == 2
