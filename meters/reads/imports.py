"""Importing meter reads from files (CSV, Green Button) or from rows given in memory.

A read is one meter's energy use on one local day of the cooperative (meters.models.MeterRead);
(meter, day) is its idempotency key.

Importing (`reads_import`, `reads_import_rows`)
-------------------------------------------------
Two kinds of file, told apart by their content:

- CSV with a header row naming the columns `meter` (serial number), `date` (YYYY-MM-DD, the local
  service day) and either `kwh` (energy used that day) or `register` (the cumulative register
  reading at the end of that day). With a register, the day's use is the difference from the
  previous day's register, taken from the file or from the meter's stored read for that day. A
  register that goes down from the top tenth of its digit range to the bottom tenth (99990 ->
  00012 on a 5-digit register; registers of 4 to 9 digits) has rolled over and the use wraps
  round (22 kWh there); any other decrease is an error. A meter's row whose previous day has no
  known register only gives the starting register: it is reported, not imported.
- Green Button (ESPI Atom XML, meters/greenbutton.py) for one meter, named with `meter_serial`:
  interval readings summed into the cooperative's local days. A day the readings do not cover
  whole (the first and last days of a file from a utility in another zone) is reported and not
  imported, unless `partial_days`: stored as the day's actual read it would block the rest of the
  day, while a missing day is estimated and replaced when a complete file arrives.

Everything is checked before anything is written, and if one row is bad nothing is written:
unknown meter serials, values that are not numbers or dates, negative use, more than 3 decimals,
days after today (in the cooperative's zone), the same meter and day twice in the file with
different values, a stored actual read with a different value, a register going backwards. Each
problem names its line (`line N: field: reason`), and all of them are reported, not the first.

Importing a file again changes nothing: a row equal to the stored actual read is "unchanged". A
row for a day that holds an estimate replaces it in place: kwh becomes the actual, quality actual,
estimated_kwh keeps the estimate, source and source_name say where the actual came from (billing
then settles the difference with a true-up; nothing here touches money).

How it is fast (a large cooperative imports a million reads a day): the file is parsed once, in
Python, with the per-row work kept to splitting, a cached date and a regular expression for the
number, and streamed into a temporary table (COPY on PostgreSQL, executemany on SQLite), so
memory stays flat whatever the file's size. Every other check, and the writes, are a handful of
set-based statements over that table: serials are resolved by a join, stored reads are read for
the file's range of days only, new reads are one INSERT ... SELECT and replaced estimates one
UPDATE ... FROM. Values are carried as integer thousandths of a kWh (Wh), so SQLite's floating
point never rounds a read.

Estimating is meters/reads/estimation.py; listing a meter's reads meters/reads/selectors.py.
"""

import csv
import datetime
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.db import connection, transaction
from django.utils import timezone

from coop.calendar import coop_zone, local_today
from coop.imports import NOTHING_IMPORTED, RowProblem, header_check, header_empty, open_file, unreadable
from meters import greenbutton
from meters.exceptions import ReadsImportError, UnknownMeter
from meters.models import Meter, MeterRead
from meters.reads._common import _READS, ACTUAL, ESTIMATED, _milli_sql

KWH, REGISTER = "kwh", "register"
CSV_COLUMNS = ("meter", "date", "kwh", "register")
# kwh and register are DecimalField(max_digits=12, decimal_places=3): 9 digits before the point.
MAX_WHOLE_DIGITS = 9
MAX_MILLI = 10 ** (MAX_WHOLE_DIGITS + 3) - 1
# Rows sent to the temporary table at a time.
CHUNK_ROWS = 10_000
ONE_DAY = datetime.timedelta(days=1)
EARLIEST_YEAR = 1900
NUL_REASON = "contains a NUL character (byte 0); export the file again as plain CSV"
SOURCE_NAME_MAX = MeterRead._meta.get_field("source_name").max_length

_METERS = Meter._meta.db_table
_STAGE, _DAYS, _FINAL = "meters_reads_stage", "meters_reads_days", "meters_reads_final"
_ACTIONS = "meters_reads_actions"

# The common shape of a value (digits, at most 3 decimals) is recognised by one regular
# expression; anything else goes to _parse_milli_slowly, which says what is wrong with it.
_PLAIN_NUMBER = re.compile(r"(\d{1,9})(?:\.(\d{1,3}))?")
_NUMBER = re.compile(r"([+-]?)(\d*)(?:\.(\d*))?")
_COPY_SPECIAL = re.compile(r"[\\\t\n\r\x00]")


# A bad row (or Green Button element), or a row reported but not imported.
ReadProblem = RowProblem


@dataclass
class ReadsImportReport:
    source: str
    source_name: str
    kind: str = KWH  # what the values were: kwh, or register readings
    dry_run: bool = False
    rows: int = 0  # CSV data rows, or Green Button interval readings
    days: int = 0  # Green Button only: the local days the readings were summed into
    created: int = 0
    unchanged: int = 0  # equal to the stored actual read, or repeating an earlier row of the file
    replaced: int = 0  # estimates replaced by the actual read
    skipped: list[ReadProblem] = field(default_factory=list)  # not imported, not an error
    errors: list[ReadProblem] = field(default_factory=list)
    applied: bool = False  # the reads were written (no error, not a dry run)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        days = f" days={self.days}" if self.source == MeterRead.Source.GREEN_BUTTON else ""
        return (
            f"rows={self.rows}{days} created={self.created} unchanged={self.unchanged} "
            f"replaced_estimates={self.replaced} skipped={len(self.skipped)} errors={len(self.errors)}"
        )


# --- Values ---------------------------------------------------------------------------------------


def _parse_milli_slowly(text: str, name: str) -> tuple[int | None, str | None]:
    if not text:
        return None, "missing"
    match = _NUMBER.fullmatch(text)
    if not match or not (match[2] or match[3]):
        return None, f"not a number ('{text}'); write it like 12.5"
    sign, whole, fraction = match[1], match[2].lstrip("0"), (match[3] or "").rstrip("0")
    if len(fraction) > 3:
        return None, f"more than 3 decimal places ({text}); reads are kept to the watt-hour (0.001 kWh)"
    if len(whole) > MAX_WHOLE_DIGITS:
        return None, f"too large ({text})"
    milli = int(whole or "0") * 1000 + int(fraction.ljust(3, "0"))
    if sign == "-" and milli:
        return None, f"negative usage ({text})" if name == KWH else f"negative ({text}); a register never is"
    return milli, None


def _parse_milli(text: str, name: str) -> tuple[int | None, str | None]:
    """`text` as a whole number of thousandths (kWh -> Wh), or why it is not a usable value."""
    match = _PLAIN_NUMBER.fullmatch(text)
    if match:
        whole, fraction = match.groups()
        return int(whole) * 1000 + (int(fraction.ljust(3, "0")) if fraction else 0), None
    return _parse_milli_slowly(text, name)


def _day_checked(day: datetime.date, today: datetime.date) -> tuple[str, str] | str:
    """(the day, the day before) in ISO form, or why the day cannot have a read."""
    if day.year < EARLIEST_YEAR:  # a typing error (and 0001-01-01 has no day before it)
        return f"{day} is out of range (before {EARLIEST_YEAR})"
    if day > today:
        return f"{day} is in the future (today is {today} in the cooperative's time zone)"
    return day.isoformat(), (day - ONE_DAY).isoformat()


def _parse_day(text: str, today: datetime.date) -> tuple[str, str] | str:
    if not text:
        return "missing"
    try:
        if len(text) != 10 or text[4] != "-" or text[7] != "-":
            raise ValueError(text)
        day = datetime.date.fromisoformat(text)
    except ValueError:
        return f"not a date ('{text}'); write the local service day as YYYY-MM-DD, like 2026-11-20"
    return _day_checked(day, today)


def _hours(seconds: int) -> str:
    return f"{seconds / 3600:g}"


# --- The temporary table --------------------------------------------------------------------------


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _create_temp(name: str) -> str:
    # ON COMMIT DROP: nothing is left behind if the connection is reused (CONN_MAX_AGE).
    return f"CREATE TEMP TABLE {name} ON COMMIT DROP AS " if _postgres() else f"CREATE TEMP TABLE {name} AS "


def _drop_temp_tables(cursor) -> None:
    for name in (_STAGE, _DAYS, _FINAL, _ACTIONS):
        cursor.execute(f"DROP TABLE IF EXISTS {name}")


def _copy_text(value: str) -> str:
    if _COPY_SPECIAL.search(value):
        # PostgreSQL text can hold no NUL; such a serial matches no meter and is reported unknown.
        value = value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
        value = value.replace("\x00", "\ufffd")
    return value


class _Stage:
    """Rows on their way into the temporary table, CHUNK_ROWS at a time."""

    def __init__(self, cursor, copy=None):
        self.cursor = cursor
        self.copy = copy
        # (line, serial, day, day before, value); a bad row is (line, serial, None, None, None), so
        # that its serial is still checked.
        self.rows: list[tuple] = []

    def flush(self) -> None:
        if not self.rows:
            return
        if self.copy is not None:
            self.copy.write(
                "".join(
                    [
                        f"{line}\t{_copy_text(serial)}\t{day}\t{before}\t{value}\n"
                        if value is not None
                        else f"{line}\t{_copy_text(serial)}\t\\N\t\\N\t\\N\n"
                        for line, serial, day, before, value in self.rows
                    ]
                )
            )
        else:
            self.cursor.executemany(
                f"INSERT INTO {_STAGE} (line, serial, day, prev_day, value) VALUES (%s, %s, %s, %s, %s)",
                self.rows,
            )
        self.rows.clear()


@contextmanager
def _staging(cursor) -> Iterator[_Stage]:
    _drop_temp_tables(cursor)
    if _postgres():
        cursor.execute(
            f"CREATE TEMP TABLE {_STAGE} (line integer NOT NULL, serial text NOT NULL, day date, "
            "prev_day date, value bigint) ON COMMIT DROP"
        )
        with cursor.cursor.copy(f"COPY {_STAGE} (line, serial, day, prev_day, value) FROM STDIN") as copy:
            stage = _Stage(cursor, copy)
            yield stage
            stage.flush()
        # The planner knows nothing of a temporary table until it is analyzed (autovacuum skips them).
        cursor.execute(f"ANALYZE {_STAGE}")
    else:
        cursor.execute(
            f"CREATE TEMP TABLE {_STAGE} (line INTEGER NOT NULL, serial TEXT NOT NULL, day TEXT, "
            "prev_day TEXT, value INTEGER)"
        )
        stage = _Stage(cursor)
        yield stage
        stage.flush()


# --- Reading the files ----------------------------------------------------------------------------


def _header(header: list[str], *, meter_serial: str | None) -> tuple[dict[str, int], str] | str:
    """The position of each column and the kind of value (kwh or register), or what is wrong."""
    checked = header_check(header, known=CSV_COLUMNS)
    missing = [c for c in ("meter", "date") if not checked.has(c) and (c != "meter" or not meter_serial)]
    parts = []
    if missing:
        parts.append(f"missing column(s): {', '.join(missing)}")
    if not checked.has(KWH) and not checked.has(REGISTER):
        parts.append("missing column: kwh or register")
    if checked.has(KWH) and checked.has(REGISTER):
        parts.append("both kwh and register; give one of them")
    parts += checked.problems()
    if parts:
        hint = " (meter may be left out when --meter is given)" if "meter" in missing else ""
        return (
            f"{'; '.join(parts)}. The header row must name the columns meter, date and either kwh or "
            f"register{hint}."
        )
    return checked.positions(CSV_COLUMNS), (KWH if checked.has(KWH) else REGISTER)


def _first_undecodable_line(path: Path) -> int | str:
    """Where a file that failed to decode first goes wrong. Text is decoded in blocks, so the error
    itself does not say; the file is read again, line by line, only when it happens."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return "?"


def _stage_csv(
    path: Path, stage: _Stage, *, meter_serial: str | None, today, report: ReadsImportReport
) -> None:
    with open_file(
        path, error=ReadsImportError, nothing=NOTHING_IMPORTED, encoding="utf-8-sig", newline=""
    ) as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header_empty(header):
                report.errors.append(ReadProblem(1, "header", "the file is empty; it needs a header row"))
                return
            checked = _header(header, meter_serial=meter_serial)
            if isinstance(checked, str):
                report.errors.append(ReadProblem(1, "header", checked))
                return
            columns, kind = checked
            report.kind = kind
            _stage_csv_rows(
                reader,
                stage,
                columns=columns,
                kind=kind,
                width=len(header),
                meter_serial=meter_serial,
                today=today,
                report=report,
            )
        except UnicodeDecodeError as exc:
            raise ReadsImportError(
                f"{path.name}: line {_first_undecodable_line(path)} is not UTF-8 text ({exc.reason}). Save "
                "the file as CSV UTF-8 and import it again. Nothing was imported."
            ) from exc
        except csv.Error as exc:
            raise ReadsImportError(
                f"{path.name}: line {reader.line_num}: not valid CSV ({exc}). Nothing was imported."
            ) from exc


def _stage_csv_rows(reader, stage: _Stage, *, columns, kind, width, meter_serial, today, report) -> None:
    """The hot loop: one pass, no query, a few dictionary look-ups per row."""
    meter_at = columns.get("meter")
    date_at = columns["date"]
    value_at = columns[kind]
    dates: dict[str, tuple[str, str] | str] = {}
    rows = stage.rows
    errors = report.errors
    plain = _PLAIN_NUMBER.fullmatch
    seen = 0
    start = 2  # the line the next record starts on (a quoted value may span lines)
    for values in reader:
        line, start = start, reader.line_num + 1
        if len(values) != width:
            if len(values) < width:
                values = values + [""] * (width - len(values))
            elif any(v.strip() for v in values):
                seen += 1
                if meter_at is not None and values[meter_at].strip():
                    rows.append((line, values[meter_at].strip(), None, None, None))
                errors.append(
                    ReadProblem(
                        line, "row", f"{len(values) - width} more value(s) than the header has columns"
                    )
                )
                continue
        serial = values[meter_at].strip() if meter_at is not None else meter_serial
        date_text = values[date_at].strip()
        value_text = values[value_at].strip()
        day = dates.get(date_text)
        if day is None:
            if len(dates) > 50_000:  # a file of garbage dates must not grow the cache without end
                dates.clear()
            day = dates[date_text] = _parse_day(date_text, today)
        number = plain(value_text)
        if (
            number is not None
            and day.__class__ is tuple
            and serial
            and (meter_at is None or meter_serial is None or serial == meter_serial)
            and "\x00" not in serial
        ):
            whole, fraction = number.groups()
            rows.append(
                (
                    line,
                    serial,
                    day[0],
                    day[1],
                    int(whole) * 1000 + (int(fraction.ljust(3, "0")) if fraction else 0),
                )
            )
            seen += 1
            if len(rows) >= CHUNK_ROWS:
                stage.flush()
            continue
        # Something is wrong with the row (or it is blank): say everything that is.
        if not any(v.strip() for v in values):
            continue
        seen += 1
        problems = []
        # A NUL is said as such, and the value not quoted (PostgreSQL cannot store one).
        nul = [
            n
            for n, text in (("meter", serial or ""), ("date", date_text), (kind, value_text))
            if "\x00" in text
        ]
        if nul:
            errors.extend(ReadProblem(line, name, NUL_REASON) for name in nul)
            continue
        if not serial:
            problems.append(ReadProblem(line, "meter", "missing"))
        elif meter_at is not None and meter_serial is not None and serial != meter_serial:
            problems.append(
                ReadProblem(line, "meter", f"{serial} is not the meter given with --meter ({meter_serial})")
            )
        if day.__class__ is str:
            problems.append(ReadProblem(line, "date", day))
        milli, reason = _parse_milli_slowly(value_text, kind)
        if reason:
            problems.append(ReadProblem(line, kind, reason))
        if problems:
            errors.extend(problems)
            if serial:
                rows.append((line, serial, None, None, None))
        else:  # an unusual but valid number (".5", "+3", "0012.50")
            rows.append((line, serial, day[0], day[1], milli))
    report.rows += seen


def _stage_green_button(
    path: Path,
    stage: _Stage,
    *,
    meter_serial: str | None,
    partial_days: bool,
    today,
    report: ReadsImportReport,
) -> None:
    if not meter_serial:
        raise ReadsImportError(
            f"{path.name} is a Green Button file, which does not say which of the cooperative's meters it "
            "belongs to: name the meter with --meter SERIAL. Nothing was imported."
        )
    data = greenbutton.parse(path)
    days, overlaps, _repeats = greenbutton.daily_totals(
        data.readings, zone=coop_zone(), power_of_ten=data.reading_type.power_of_ten
    )
    report.rows = data.count
    report.days = len(days)
    report.errors.extend(ReadProblem(p.line, p.field, p.reason) for p in [*data.problems, *overlaps])
    for total in days:
        where = f"day {total.day}"
        if not total.complete and not partial_days:
            report.skipped.append(
                ReadProblem(
                    total.line,
                    where,
                    f"the readings cover {_hours(total.seconds)} of the day's {_hours(total.length)} "
                    "hours; a partial day is not imported (it would stand as the whole day's actual "
                    "read; the day is estimated until a file covering it arrives). Give --partial-days "
                    "to import it anyway.",
                )
            )
            continue
        checked = _day_checked(total.day, today)
        if isinstance(checked, str):
            report.errors.append(ReadProblem(total.line, where, checked))
        elif total.milli_kwh > MAX_MILLI:
            report.errors.append(ReadProblem(total.line, where, f"{total.milli_kwh / 1000} kWh is too large"))
        else:
            stage.rows.append((total.line, meter_serial, checked[0], checked[1], total.milli_kwh))
    stage.flush()


def _file_format(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        raise ReadsImportError(unreadable(path, exc, nothing=NOTHING_IMPORTED)) from exc
    if head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"<"):
        return MeterRead.Source.GREEN_BUTTON
    return MeterRead.Source.CSV


# --- Checking against the database, and writing ---------------------------------------------------


def _span_sql(previous: str) -> str:
    """A register's range in thousandths, from the number of digits of its reading (4 to 9)."""
    digits = f"LENGTH(CAST({previous} / 1000 AS TEXT))"
    whens = " ".join(f"WHEN {n} THEN {10 ** (n + 3)}" for n in range(4, MAX_WHOLE_DIGITS + 1))
    return f"CASE {digits} {whens} END"


def _as_date(value) -> datetime.date:
    return value if isinstance(value, datetime.date) else datetime.date.fromisoformat(value)


def _kwh_text(milli: int) -> str:
    return f"{Decimal(milli).scaleb(-3):.3f}"


class _Check:
    """The set-based checks over the staged rows, then the writes."""

    def __init__(self, cursor, *, kind: str, report: ReadsImportReport):
        self.cursor = cursor
        self.kind = kind
        self.report = report
        self.ops = connection.ops

    def _date(self, day: datetime.date):
        return self.ops.adapt_datefield_value(day)

    def run(self, *, dry_run: bool, source: str, source_name: str, now: datetime.datetime) -> None:
        cursor = self.cursor
        cursor.execute(f"SELECT COUNT(*), MIN(day), MAX(day) FROM {_STAGE}")
        staged, first, last = cursor.fetchone()
        if not staged:
            return
        if _postgres():
            # The GROUP BY and joins over a million staged rows stay in memory instead of spilling.
            cursor.execute("SET LOCAL work_mem = '256MB'")
        self._days()
        self._unknown_meters()
        if first is None:  # every staged row was bad
            return
        first, last = _as_date(first), _as_date(last)
        self.range = [self._date(first), self._date(last)]
        self.previous_range = [self._date(first - ONE_DAY), self._date(last - ONE_DAY)]
        self._repeated_with_different_values()
        if self.kind == REGISTER:
            final, kwh, register = self._register_usage(), "kwh_milli", "register_milli"
        else:
            final, kwh, register = _DAYS, "lo", "NULL"
        created, replaced = self._against_stored(final, kwh, register)
        if self.report.errors or dry_run:
            return
        self._write(
            created=created,
            replaced=replaced,
            source=source,
            source_name=source_name,
            now=now,
        )
        self.report.applied = True

    def _days(self) -> None:
        """One row per (serial, day) of the file, with its meter (NULL: no such serial) and the
        lowest and highest value it was given. Serials are joined to meters here only, once; a bad
        row (staged without a day) makes a group of its own so that its serial is checked too."""
        self.cursor.execute(
            _create_temp(_DAYS)
            + f"""SELECT s.serial, m.id AS meter_id, s.day, s.prev_day, MIN(s.value) AS lo,
                  MAX(s.value) AS hi, MIN(s.line) AS line, COUNT(*) AS n
            FROM {_STAGE} s LEFT JOIN {_METERS} m ON m.serial = s.serial
            GROUP BY s.serial, m.id, s.day, s.prev_day"""
        )

    def _unknown_meters(self) -> None:
        self.cursor.execute(f"SELECT COUNT(*) FROM {_DAYS} WHERE meter_id IS NULL")
        if self.cursor.fetchone()[0]:
            self.cursor.execute(
                f"SELECT s.line, s.serial FROM {_STAGE} s "
                f"WHERE s.serial IN (SELECT serial FROM {_DAYS} WHERE meter_id IS NULL) ORDER BY s.line"
            )
            self.report.errors.extend(
                ReadProblem(line, "meter", f"no meter with serial {serial}")
                for line, serial in self.cursor.fetchall()
            )
        # From here on _DAYS holds the known meters' good rows only.
        self.cursor.execute(f"DELETE FROM {_DAYS} WHERE meter_id IS NULL OR day IS NULL")
        if _postgres():
            self.cursor.execute(f"ANALYZE {_DAYS}")

    def _lines(self, where: str, extra_columns: str = "", joins: str = "", params=()) -> list[tuple]:
        """The staged rows (every line) of the (meter, day) pairs of _DAYS that `where` picks."""
        self.cursor.execute(
            f"SELECT s.line, s.serial, s.day, s.value{extra_columns} FROM {_STAGE} s "
            f"JOIN {_DAYS} d ON d.serial = s.serial AND d.day = s.day "
            f"{joins} WHERE {where} ORDER BY s.line",
            list(params),
        )
        return self.cursor.fetchall()

    def _repeated_with_different_values(self) -> None:
        self.cursor.execute(f"SELECT COUNT(*) FROM {_DAYS} WHERE lo <> hi")
        if not self.cursor.fetchone()[0]:
            return
        groups: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for line, serial, day, value in self._lines("d.lo <> d.hi"):
            groups.setdefault((serial, str(day)), []).append((line, value))
        for (serial, day), rows in groups.items():
            lines = ", ".join(str(line) for line, _ in rows)
            values = ", ".join(_kwh_text(value) for _, value in rows)
            for line, _ in rows:
                self.report.errors.append(
                    ReadProblem(
                        line,
                        self.kind,
                        f"meter {serial} on {day} is on lines {lines} with different values ({values}); "
                        "keep the right one",
                    )
                )
        self.cursor.execute(f"DELETE FROM {_DAYS} WHERE lo <> hi")

    def _register_usage(self) -> str:
        """Each day's use from its register and the previous day's (file first, else stored)."""
        previous = f"COALESCE(p.lo, {_milli_sql('r.register')})"
        self.cursor.execute(
            _create_temp(_FINAL)
            + f"""SELECT meter_id, day, line, n, register_milli, prev, prev_line,
                  CASE WHEN prev IS NULL THEN NULL
                       WHEN register_milli >= prev THEN register_milli - prev
                       WHEN prev * 10 >= span * 9 AND register_milli * 10 < span
                       THEN span - prev + register_milli
                  END AS kwh_milli
            FROM (
                SELECT d.meter_id, d.day, d.line, d.n, d.lo AS register_milli, {previous} AS prev,
                       p.line AS prev_line, {_span_sql(previous)} AS span
                FROM {_DAYS} d
                LEFT JOIN {_DAYS} p ON p.meter_id = d.meter_id AND p.day = d.prev_day
                LEFT JOIN {_READS} r ON r.meter_id = d.meter_id AND r.day = d.prev_day
                     AND r.register IS NOT NULL AND r.day BETWEEN %s AND %s
            ) x""",
            self.previous_range,
        )
        self.cursor.execute(f"SELECT COUNT(*) FROM {_FINAL} WHERE kwh_milli IS NULL")
        if not self.cursor.fetchone()[0]:
            return _FINAL
        # Baselines (no previous register) and registers going backwards: every line of them.
        rows = self._lines(
            "f.kwh_milli IS NULL",
            extra_columns=f", s.prev_day, f.prev, f.prev_line, f.n, {_milli_sql('r.register')}, r.quality",
            joins=(
                f"JOIN {_FINAL} f ON f.meter_id = d.meter_id AND f.day = d.day "
                f"LEFT JOIN {_READS} r ON r.meter_id = d.meter_id AND r.day = d.day "
                "AND r.day BETWEEN %s AND %s"
            ),
            params=self.range,
        )
        for line, serial, _day, value, before, prev, prev_line, _n, stored, quality in rows:
            if prev is None:
                if stored == value and quality == ACTUAL:
                    self.report.unchanged += 1  # the starting register, already stored with its day
                    continue
                self.report.skipped.append(
                    ReadProblem(
                        line,
                        REGISTER,
                        f"meter {serial} has no register for {before} in this file or stored, so this "
                        "row's use is not known: it only gives the starting register and is not imported",
                    )
                )
                continue
            came_from = f"line {prev_line}" if prev_line is not None else "the stored read"
            self.report.errors.append(
                ReadProblem(
                    line,
                    REGISTER,
                    f"goes backwards: {_kwh_text(value)} is below {_kwh_text(prev)} on {before} "
                    f"({came_from}) and is not a rollover (from the top tenth of the register's range "
                    "to the bottom tenth, e.g. 99990 -> 00012); check the meter, or whether it was "
                    "replaced",
                )
            )
        self.cursor.execute(f"DELETE FROM {_FINAL} WHERE kwh_milli IS NULL")
        return _FINAL

    def _against_stored(self, final: str, kwh: str, register: str) -> tuple[int, int]:
        """Pair each (meter, day) with its stored read, if any, into _ACTIONS; count what the
        import will do from it, and report the stored actual reads the file contradicts.

        The pairing is materialised so that the INSERT below never reads the table it writes: an
        `INSERT ... WHERE NOT EXISTS (SELECT ... FROM meters_meterread)` planned while that table is
        nearly empty (a first import) can become a nested loop re-reading the rows it has just
        inserted, quadratic in the file's size.
        """
        register_column = f"f.{register}" if register != "NULL" else "CAST(NULL AS BIGINT)"
        self.cursor.execute(
            _create_temp(_ACTIONS)
            + f"""SELECT f.meter_id, f.day, f.line, f.n, f.{kwh} AS kwh_milli,
                  {register_column} AS register_milli,
                  r.id AS read_id, r.quality AS stored_quality, {_milli_sql("r.kwh")} AS stored_kwh
            FROM {final} f
            LEFT JOIN {_READS} r ON r.meter_id = f.meter_id AND r.day = f.day AND r.day BETWEEN %s AND %s
            ORDER BY f.meter_id, f.day""",
            self.range,
        )
        if _postgres():
            self.cursor.execute(f"ANALYZE {_ACTIONS}")
        self.cursor.execute(
            f"""SELECT
                COALESCE(SUM(CASE WHEN read_id IS NULL THEN 1 ELSE 0 END), 0),
                COALESCE(SUM(CASE WHEN stored_quality = '{ESTIMATED}' THEN 1 ELSE 0 END), 0),
                COALESCE(SUM(CASE WHEN read_id IS NULL OR stored_quality = '{ESTIMATED}' THEN n - 1
                                  WHEN stored_kwh = kwh_milli THEN n ELSE 0 END), 0),
                COALESCE(SUM(CASE WHEN stored_quality = '{ACTUAL}' AND stored_kwh <> kwh_milli
                                  THEN 1 ELSE 0 END), 0)
            FROM {_ACTIONS}"""
        )
        created, replaced, unchanged, conflicts = (int(v) for v in self.cursor.fetchone())
        self.report.created, self.report.replaced = created, replaced
        self.report.unchanged += unchanged
        if conflicts:
            rows = self._lines(
                f"a.stored_quality = '{ACTUAL}' AND a.stored_kwh <> a.kwh_milli",
                extra_columns=", a.kwh_milli, a.stored_kwh, r.source, r.source_name",
                joins=(
                    f"JOIN {_ACTIONS} a ON a.meter_id = d.meter_id AND a.day = d.day "
                    f"JOIN {_READS} r ON r.id = a.read_id"
                ),
            )
            for line, serial, day, _value, new, old, source, source_name in rows:
                where = f"from {source_name}" if source_name else f"source {source}"
                self.report.errors.append(
                    ReadProblem(
                        line,
                        self.kind,
                        f"meter {serial} on {day} already has an actual read of {_kwh_text(old)} kWh "
                        f"({where}); this file gives {_kwh_text(new)} kWh. An actual read is not replaced "
                        "by an import: correct it by hand if the file is right",
                    )
                )
        return created, replaced

    def _write(self, *, created, replaced, source, source_name, now) -> None:
        cursor = self.cursor
        received_at = self.ops.adapt_datetimefield_value(now)
        # In (meter, day) order (as _ACTIONS was written): the unique index is then filled page by
        # page, not at random, and the estimates replaced are mostly in the order they were written.
        # ON CONFLICT: an estimate or another import may have written one of these days since the
        # pairing above; the counts then differ and the whole import is rolled back, to be run again.
        cursor.execute(
            f"""INSERT INTO {_READS}
                (meter_id, day, kwh, register, quality, source, source_name, estimated_kwh, received_at)
            SELECT a.meter_id, a.day, a.kwh_milli / 1000.0, a.register_milli / 1000.0, '{ACTUAL}', %s, %s,
                   NULL, %s
            FROM {_ACTIONS} a WHERE a.read_id IS NULL
            ORDER BY a.meter_id, a.day
            ON CONFLICT (meter_id, day) DO NOTHING""",
            [source, source_name, received_at],
        )
        inserted = cursor.rowcount
        updated = 0
        if replaced:
            # The day range and quality let PostgreSQL find the estimates through the (day, quality)
            # index rather than consider reading the whole table.
            cursor.execute(
                f"""UPDATE {_READS} SET kwh = a.kwh_milli / 1000.0, register = a.register_milli / 1000.0,
                    quality = '{ACTUAL}', estimated_kwh = kwh, source = %s, source_name = %s, received_at = %s
                FROM {_ACTIONS} a
                WHERE {_READS}.id = a.read_id AND a.stored_quality = '{ESTIMATED}'
                  AND {_READS}.quality = '{ESTIMATED}' AND {_READS}.day BETWEEN %s AND %s""",
                [source, source_name, received_at, *self.range],
            )
            updated = cursor.rowcount
        if inserted != created or updated != replaced:
            raise ReadsImportError(
                "Reads for some of the same meters and days were written by another process (an import "
                "or the estimates) while this file was being imported. Nothing was imported; import the "
                "file again."
            )


# --- The services ---------------------------------------------------------------------------------


def _source_name(name: str) -> str:
    return name[:SOURCE_NAME_MAX]


_FIELD_ORDER = {"row": 0, "meter": 1, "date": 2, KWH: 3, REGISTER: 3}


def _sort(report: ReadsImportReport) -> None:
    """File order; on one line, in the order of the columns."""
    report.errors.sort(key=lambda p: (p.line, _FIELD_ORDER.get(p.field, 4)))
    report.skipped.sort(key=lambda p: p.line)


def reads_import(
    *, path, meter_serial: str | None = None, dry_run: bool = False, partial_days: bool = False
) -> ReadsImportReport:
    """Import a reads file: CSV or Green Button, told apart by its content (see the module
    docstring). `meter_serial` names the meter of a Green Button file; for a CSV file it may stand
    for the `meter` column (every row that has one must then name that meter).

    Returns what was found; `report.applied` says whether the reads were written: not in a dry run
    and not when `report.errors` lists a bad row. Raises ReadsImportError (nothing imported) when
    the file as a whole cannot be imported, and UnknownMeter for an unknown `meter_serial`.
    """
    path = Path(path)
    source = _file_format(path)
    report = ReadsImportReport(source=source, source_name=_source_name(path.name), dry_run=dry_run)
    if meter_serial is not None and not Meter.objects.filter(serial=meter_serial).exists():
        raise UnknownMeter(f"No meter has the serial number {meter_serial}. Nothing was imported.")
    today, now = local_today(), timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        with _staging(cursor) as stage:
            if source == MeterRead.Source.GREEN_BUTTON:
                _stage_green_button(
                    path,
                    stage,
                    meter_serial=meter_serial,
                    partial_days=partial_days,
                    today=today,
                    report=report,
                )
            else:
                _stage_csv(path, stage, meter_serial=meter_serial, today=today, report=report)
        if not (report.errors and report.rows == 0):  # a bad header: nothing to check
            _Check(cursor, kind=report.kind, report=report).run(
                dry_run=dry_run, source=source, source_name=report.source_name, now=now
            )
        _drop_temp_tables(cursor)
    _sort(report)
    return report


def reads_import_rows(
    *,
    rows: Iterable[tuple[str, datetime.date, Decimal | int | str]],
    kind: str = KWH,
    source: str = MeterRead.Source.CSV,
    source_name: str = "",
    dry_run: bool = False,
) -> ReadsImportReport:
    """Import reads given as (meter serial, local day, kWh or register reading) tuples, checked and
    written exactly as a file's rows are (a row's "line" is its position, from 1). For callers that
    make reads in memory (a benchmark, another system's feed) without writing a file."""
    if kind not in (KWH, REGISTER):
        raise ValueError(f"kind must be {KWH!r} or {REGISTER!r}, not {kind!r}")
    report = ReadsImportReport(
        source=source, source_name=_source_name(source_name), kind=kind, dry_run=dry_run
    )
    today, now = local_today(), timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        with _staging(cursor) as stage:
            for line, (serial, day, value) in enumerate(rows, start=1):
                report.rows += 1
                problems = []
                if not serial:
                    problems.append(ReadProblem(line, "meter", "missing"))
                if not isinstance(day, datetime.date) or isinstance(day, datetime.datetime):
                    checked = f"not a date ({day!r}); give the local service day as a datetime.date"
                else:
                    checked = _day_checked(day, today)
                if isinstance(checked, str):
                    problems.append(ReadProblem(line, "date", checked))
                milli, reason = _parse_milli(str(value).strip(), kind)
                if reason:
                    problems.append(ReadProblem(line, kind, reason))
                if problems:
                    report.errors.extend(problems)
                    if serial:
                        stage.rows.append((line, str(serial), None, None, None))
                    continue
                stage.rows.append((line, serial, checked[0], checked[1], milli))
                if len(stage.rows) >= CHUNK_ROWS:
                    stage.flush()
        _Check(cursor, kind=kind, report=report).run(
            dry_run=dry_run, source=source, source_name=report.source_name, now=now
        )
        _drop_temp_tables(cursor)
    _sort(report)
    return report
