"""Reads of meter reads that other code reuses: one meter's reads in date order (export_reads)."""

import datetime
from collections.abc import Iterator
from decimal import Decimal

from meters.exceptions import UnknownMeter
from meters.models import Meter, MeterRead


def meter_reads(
    *, meter_serial: str, start: datetime.date | None = None, end: datetime.date | None = None
) -> Iterator[tuple[datetime.date, Decimal, str]]:
    """(day, kWh, quality) of each read of one meter from `start` to `end` (inclusive, either open),
    in date order, streamed. Raises UnknownMeter."""
    meter = Meter.objects.filter(serial=meter_serial).only("pk").first()
    if meter is None:
        raise UnknownMeter(f"No meter has the serial number {meter_serial}.")
    reads = MeterRead.objects.filter(meter=meter)
    if start is not None:
        reads = reads.filter(day__gte=start)
    if end is not None:
        reads = reads.filter(day__lte=end)
    return reads.order_by("day").values_list("day", "kwh", "quality").iterator(chunk_size=5000)
