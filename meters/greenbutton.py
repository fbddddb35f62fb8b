"""Green Button (NAESB ESPI, Atom XML) files: their interval readings, summed into the
cooperative's local days.

What is read: the IntervalReadings (timePeriod start in epoch seconds UTC, duration in seconds,
value) of the file's one series of energy readings, and the ReadingType that says what the values
are. Everything else (costs, usage summaries, LocalTimeParameters, ReadingQuality) is ignored: in
particular the days are always the cooperative's own (settings.TIME_ZONE), never the zone the file
describes, because the (meter, day) read is what billing prices.

What is refused, for the whole file (GreenButtonError): XML that is not well formed, a DOCTYPE or
entity declaration (a Green Button file never needs one, and refusing them shuts out entity
expansion and external entities without needing defusedxml), more than one UsagePoint, more than
one series of interval data, no ReadingType, a ReadingType whose unit is not Wh (uom 72), and
readings that are not plain consumption (cumulative rather than delta values, or energy received
from the member rather than delivered).

What is reported per reading (`Problem`, with the XML line): a value or time that is missing or not
an integer, a duration that is not positive, negative usage, and a reading overlapping another. A
reading repeated exactly (same start, duration and value) counts once.

How readings become days: each reading counts on the local day that holds the middle of its time
period. For an AMI meter's hourly or 15-minute readings that is simply the day it starts in (local
midnight is on the hour in every US zone); it matters for daily readings from a utility in another
zone, whose periods run e.g. 23:00 to 23:00 Chicago time and belong to the day they mostly cover.
A day is complete when its readings cover its whole length: 24 hours, but 23 on the day clocks go
forward and 25 on the day they go back.
"""

import datetime
import zoneinfo
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from xml.parsers import expat

from coop.imports import NOTHING_IMPORTED, RowProblem, open_file
from meters.exceptions import ReadsImportError

UOM_WH = "72"
DELTA_DATA = "4"  # accumulationBehaviour: each value is the energy of its own interval
FORWARD = "1"  # flowDirection: delivered to the member
READ_CHUNK = 1 << 16

_ATOM_ENTRY = "entry"
_READING_TYPE_FIELDS = frozenset(
    {"uom", "powerOfTenMultiplier", "accumulationBehaviour", "flowDirection", "intervalLength"}
)


class GreenButtonError(ReadsImportError):
    """The Green Button file cannot be imported at all. Nothing was imported."""


# A bad element: its line in the file, which element and field, and what is wrong.
Problem = RowProblem


@dataclass(frozen=True)
class Reading:
    index: int  # 1-based position among the file's IntervalReadings
    line: int
    start: int  # epoch seconds, UTC
    duration: int  # seconds
    value: int  # in the ReadingType's unit times 10**powerOfTenMultiplier


@dataclass(frozen=True)
class ReadingType:
    line: int
    uom: str | None
    power_of_ten: int
    accumulation: str | None
    flow_direction: str | None
    interval_length: int | None


@dataclass
class GreenButtonFile:
    name: str
    usage_points: int
    reading_type: ReadingType
    readings: list[Reading]  # the good ones
    count: int  # IntervalReading elements in the file, good or bad
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class DayTotal:
    day: datetime.date
    milli_kwh: int  # Wh, scaled by powerOfTenMultiplier and rounded half up to the Wh (= 0.001 kWh)
    readings: int
    seconds: int  # how much of the day the readings cover
    length: int  # the local day's length in seconds (82800, 86400 or 90000)
    line: int  # the line of the day's first reading

    @property
    def complete(self) -> bool:
        return self.seconds == self.length


@dataclass
class _Entry:
    line: int
    kind: str | None = None  # the ESPI resource in its <content>
    self_href: str | None = None
    up_href: str | None = None
    related: list[str] = field(default_factory=list)


@dataclass
class _Block:
    entry: _Entry | None
    line: int
    readings: list[Reading] = field(default_factory=list)


class _Parser:
    """A streaming expat parser keeping only what the import needs (the file is never held whole).

    Names are matched on their local part, so files that put the ESPI elements in the default
    namespace and files that use an `espi:` prefix read alike.
    """

    def __init__(self, name: str):
        self.name = name
        self.parser = expat.ParserCreate(namespace_separator=" ")
        self.parser.StartElementHandler = self._start
        self.parser.EndElementHandler = self._end
        self.parser.CharacterDataHandler = self._text
        self.parser.StartDoctypeDeclHandler = self._refuse_doctype
        self.parser.EntityDeclHandler = self._refuse_entity
        self.parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.entries: list[_Entry] = []
        self.entry: _Entry | None = None
        self.usage_points = 0
        self.reading_types: list[tuple[_Entry | None, ReadingType]] = []
        self.rt: dict[str, str] | None = None
        self.rt_line = 0
        self.blocks: list[_Block] = []
        self.block: _Block | None = None
        self.reading: dict[str, str] | None = None
        self.reading_line = 0
        self.count = 0
        self.problems: list[Problem] = []

    def _refuse_doctype(self, *args):
        raise GreenButtonError(
            f"{self.name}: line {self.parser.CurrentLineNumber}: the file declares a DOCTYPE. A Green "
            "Button file never needs one, and it is refused so that no entity can be expanded or "
            "fetched. Nothing was imported."
        )

    def _refuse_entity(self, *args):
        raise GreenButtonError(
            f"{self.name}: line {self.parser.CurrentLineNumber}: the file declares an XML entity; "
            "refused. Nothing was imported."
        )

    def _start(self, name: str, attrs: dict[str, str]):
        local = name.rpartition(" ")[2]
        parent = self.stack[-1] if self.stack else None
        self.stack.append(local)
        self.text.clear()
        line = self.parser.CurrentLineNumber
        if local == _ATOM_ENTRY:
            self.entry = _Entry(line=line)
            self.entries.append(self.entry)
        elif local == "link" and parent == _ATOM_ENTRY and self.entry is not None:
            rel, href = attrs.get("rel"), attrs.get("href")
            if rel == "self":
                self.entry.self_href = href
            elif rel == "up":
                self.entry.up_href = href
            elif rel == "related" and href:
                self.entry.related.append(href)
        elif parent == "content" and self.entry is not None and self.entry.kind is None:
            self.entry.kind = local
        if local == "UsagePoint":
            self.usage_points += 1
        elif local == "ReadingType":
            self.rt, self.rt_line = {}, line
        elif local == "IntervalBlock":
            self.block = _Block(entry=self.entry, line=line)
            self.blocks.append(self.block)
        elif local == "IntervalReading":
            self.count += 1
            self.reading, self.reading_line = {}, line

    def _text(self, data: str):
        self.text.append(data)

    def _end(self, name: str):
        local = self.stack.pop()
        parent = self.stack[-1] if self.stack else None
        if self.reading is not None:
            if local in ("start", "duration") and parent == "timePeriod":
                self.reading[local] = "".join(self.text).strip()
            elif local == "value" and parent == "IntervalReading":
                self.reading["value"] = "".join(self.text).strip()
            elif local == "IntervalReading":
                self._finish_reading()
        elif self.rt is not None:
            if parent == "ReadingType" and local in _READING_TYPE_FIELDS:
                self.rt[local] = "".join(self.text).strip()
            elif local == "ReadingType":
                self._finish_reading_type()
        if local == "IntervalBlock":
            self.block = None
        elif local == _ATOM_ENTRY:
            self.entry = None
        self.text.clear()

    def _finish_reading(self):
        values, line, index = self.reading, self.reading_line, self.count
        self.reading = None
        where = f"IntervalReading[{index}]"
        parsed = {}
        for key, label in (
            ("start", "timePeriod.start"),
            ("duration", "timePeriod.duration"),
            ("value", "value"),
        ):
            text = values.get(key)
            if not text:
                self.problems.append(Problem(line, f"{where}.{label}", "missing"))
                continue
            try:
                parsed[key] = int(text)
            except ValueError:
                self.problems.append(Problem(line, f"{where}.{label}", f"not an integer ('{text}')"))
        if len(parsed) < 3:
            return
        if parsed["duration"] <= 0:
            self.problems.append(
                Problem(
                    line, f"{where}.timePeriod.duration", f"must be more than 0 s (got {parsed['duration']})"
                )
            )
            return
        if parsed["value"] < 0:
            self.problems.append(Problem(line, f"{where}.value", f"negative usage ({parsed['value']})"))
            return
        reading = Reading(index=index, line=line, **parsed)
        if self.block is None:  # a reading outside any IntervalBlock: keep it in a block of its own
            self.block = _Block(entry=self.entry, line=line)
            self.blocks.append(self.block)
            self.block.readings.append(reading)
            self.block = None
        else:
            self.block.readings.append(reading)

    def _finish_reading_type(self):
        values, line = self.rt, self.rt_line
        self.rt = None

        def integer(key, default):
            text = values.get(key)
            if not text:
                return default
            try:
                return int(text)
            except ValueError:
                raise GreenButtonError(
                    f"{self.name}: line {line}: ReadingType {key} is not an integer ('{text}'). "
                    "Nothing was imported."
                ) from None

        self.reading_types.append(
            (
                self.entry,
                ReadingType(
                    line=line,
                    uom=values.get("uom") or None,
                    power_of_ten=integer("powerOfTenMultiplier", 0),
                    accumulation=values.get("accumulationBehaviour") or None,
                    flow_direction=values.get("flowDirection") or None,
                    interval_length=integer("intervalLength", None),
                ),
            )
        )

    def feed(self, handle):
        try:
            while chunk := handle.read(READ_CHUNK):
                self.parser.Parse(chunk, False)
            self.parser.Parse(b"", True)
        except expat.ExpatError as exc:
            raise GreenButtonError(
                f"{self.name}: not well-formed XML (line {exc.lineno}, column {exc.offset + 1}: "
                f"{expat.ErrorString(exc.code)}). Nothing was imported."
            ) from exc


def _belongs_to(href: str | None, parent: str | None) -> bool:
    return bool(href and parent) and (href == parent or href.startswith(parent.rstrip("/") + "/"))


def _series(p: _Parser) -> tuple[list[Reading], _Entry | None]:
    """The readings of the file's one series of interval data, and its MeterReading entry."""
    meter_readings = [e for e in p.entries if e.kind == "MeterReading"]
    series: dict[int, list[_Block]] = {}
    owners: dict[int, _Entry | None] = {}
    for block in p.blocks:
        if not block.readings:
            continue
        owner = None
        if len(meter_readings) > 1:
            hrefs = (block.entry.self_href, block.entry.up_href) if block.entry else ()
            owners_found = [mr for mr in meter_readings if any(_belongs_to(h, mr.self_href) for h in hrefs)]
            if len(owners_found) != 1:
                raise GreenButtonError(
                    f"{p.name}: line {block.line}: cannot tell which of the file's {len(meter_readings)} "
                    "MeterReadings this IntervalBlock belongs to (its links name none of them). "
                    "Nothing was imported."
                )
            owner = owners_found[0]
        elif meter_readings:
            owner = meter_readings[0]
        series.setdefault(id(owner), []).append(block)
        owners[id(owner)] = owner
    if len(series) > 1:
        lines = ", ".join(str(o.line) for o in owners.values() if o)
        raise GreenButtonError(
            f"{p.name}: the file has {len(series)} series of interval readings (MeterReadings at lines "
            f"{lines}); only a file with one series of energy use can be imported, since adding "
            "different series together would count energy twice. Nothing was imported."
        )
    if not series:
        return [], None
    (key,) = series
    return [r for block in series[key] for r in block.readings], owners[key]


def _reading_type(p: _Parser, owner: _Entry | None) -> ReadingType:
    if not p.reading_types:
        raise GreenButtonError(
            f"{p.name}: the file has no ReadingType, so the unit of its readings is unknown. "
            "Nothing was imported."
        )
    for _entry, rt in p.reading_types:
        if rt.uom != UOM_WH:
            raise GreenButtonError(
                f"{p.name}: line {rt.line}: the ReadingType's unit is uom {rt.uom or '(none)'}; only "
                f"energy in watt-hours (uom {UOM_WH}, Wh) can be imported. Nothing was imported."
            )
    if len(p.reading_types) == 1:
        rt = p.reading_types[0][1]
    else:
        linked = [
            rt
            for entry, rt in p.reading_types
            if owner and entry and entry.self_href and entry.self_href in owner.related
        ]
        if len(linked) != 1:
            raise GreenButtonError(
                f"{p.name}: the file has {len(p.reading_types)} ReadingTypes and the readings' "
                "MeterReading links to none of them, so their unit is unknown. Nothing was imported."
            )
        rt = linked[0]
    if rt.accumulation not in (None, DELTA_DATA):
        raise GreenButtonError(
            f"{p.name}: line {rt.line}: the readings are accumulationBehaviour {rt.accumulation} (a "
            f"register or running total); only per-interval values (deltaData, {DELTA_DATA}) can be "
            "added into days. Nothing was imported."
        )
    if rt.flow_direction not in (None, FORWARD):
        raise GreenButtonError(
            f"{p.name}: line {rt.line}: the readings are flowDirection {rt.flow_direction} (energy "
            f"received from the member, or net); only energy delivered (forward, {FORWARD}) is "
            "imported. Nothing was imported."
        )
    return rt


def parse(path) -> GreenButtonFile:
    """Read a Green Button file (see the module docstring). Raises GreenButtonError when the file
    as a whole cannot be used; bad readings are listed in `problems`."""
    path = Path(path)
    parser = _Parser(path.name)
    with open_file(path, error=GreenButtonError, nothing=NOTHING_IMPORTED) as handle:
        parser.feed(handle)
    if parser.usage_points > 1:
        raise GreenButtonError(
            f"{path.name}: the file has {parser.usage_points} UsagePoints (meters); import a file "
            "with one usage point, naming its meter with --meter. Nothing was imported."
        )
    readings, owner = _series(parser)
    reading_type = _reading_type(parser, owner)
    return GreenButtonFile(
        name=path.name,
        usage_points=parser.usage_points,
        reading_type=reading_type,
        readings=readings,
        count=parser.count,
        problems=parser.problems,
    )


def _day_length(day: datetime.date, zone: datetime.tzinfo) -> int:
    start = datetime.datetime.combine(day, datetime.time(), tzinfo=zone)
    end = datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time(), tzinfo=zone)
    return int(end.timestamp() - start.timestamp())


def to_milli_kwh(total: int, power_of_ten: int) -> int:
    """`total` Wh × 10**power_of_ten in thousandths of a kWh (= Wh), rounded half up: exact for a
    multiplier of 0 or more; a negative one (mWh) is rounded to the Wh once per day, not per
    reading."""
    if power_of_ten >= 0:
        return total * 10**power_of_ten
    return int(Decimal(total).scaleb(power_of_ten).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def daily_totals(
    readings: list[Reading], *, zone: datetime.tzinfo | str, power_of_ten: int = 0
) -> tuple[list[DayTotal], list[Problem], int]:
    """Sum the readings into local days of `zone` (see the module docstring).

    Returns the days in date order, the readings that overlap another (not counted), and how many
    readings were exact repeats of another (counted once).
    """
    if isinstance(zone, str):
        zone = zoneinfo.ZoneInfo(zone)
    problems: list[Problem] = []
    repeats = 0
    days: dict[datetime.date, list[int]] = {}  # day -> [total, readings, seconds, first line]
    previous: Reading | None = None
    for r in sorted(readings, key=lambda r: (r.start, r.duration, r.value, r.index)):
        if previous is not None and r.start < previous.start + previous.duration:
            if (r.start, r.duration, r.value) == (previous.start, previous.duration, previous.value):
                repeats += 1
                continue
            began = datetime.datetime.fromtimestamp(previous.start, zone)
            problems.append(
                Problem(
                    r.line,
                    f"IntervalReading[{r.index}].timePeriod",
                    f"overlaps IntervalReading[{previous.index}] (line {previous.line}, from "
                    f"{began:%Y-%m-%d %H:%M %Z} for {previous.duration} s) with a different value or length",
                )
            )
            continue
        previous = r
        day = datetime.datetime.fromtimestamp(r.start + r.duration / 2, zone).date()
        total = days.get(day)
        if total is None:
            days[day] = [r.value, 1, r.duration, r.line]
        else:
            total[0] += r.value
            total[1] += 1
            total[2] += r.duration
            total[3] = min(total[3], r.line)
    out = [
        DayTotal(
            day=day,
            milli_kwh=to_milli_kwh(total, power_of_ten),
            readings=count,
            seconds=seconds,
            length=_day_length(day, zone),
            line=line,
        )
        for day, (total, count, seconds, line) in sorted(days.items())
    ]
    return out, problems, repeats
