"""Print one meter's reads as CSV."""

import datetime

from django.core.management.base import BaseCommand, CommandError

from meters.exceptions import UnknownMeter
from meters.reads import meter_reads


def _day(text: str, option: str) -> datetime.date:
    try:
        if len(text) != 10:
            raise ValueError(text)
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{option} {text!r} is not a date; write it as YYYY-MM-DD.") from None


class Command(BaseCommand):
    help = (
        "Print a meter's daily reads as CSV with the header date,kwh,quality: one line per day that "
        "has a read, in date order; kwh has 3 decimals; quality is actual or estimated. --start and "
        "--end (YYYY-MM-DD, local service days) are inclusive."
    )

    def add_arguments(self, parser):
        parser.add_argument("--meter", metavar="SERIAL", required=True, help="The meter's serial number.")
        parser.add_argument("--start", metavar="DATE", help="The first day (YYYY-MM-DD).")
        parser.add_argument("--end", metavar="DATE", help="The last day (YYYY-MM-DD).")

    def handle(self, *args, meter, start, end, **options):
        start = _day(start, "--start") if start else None
        end = _day(end, "--end") if end else None
        if start and end and start > end:
            raise CommandError(f"--start {start} is after --end {end}.")
        try:
            reads = meter_reads(meter_serial=meter, start=start, end=end)
        except UnknownMeter as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write("date,kwh,quality")
        for day, kwh, quality in reads:
            self.stdout.write(f"{day.isoformat()},{kwh:.3f},{quality}")
