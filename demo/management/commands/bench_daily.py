"""`manage.py bench_daily --accounts N`: time the read import, the daily run and the disconnect
selection against a one-statement floor, on the configured (empty) database."""

from django.core.management.base import BaseCommand, CommandError

from coop.exceptions import CoopError
from demo.bench import bench_daily, record


class Command(BaseCommand):
    help = (
        "Build N prepaid accounts with a day of reads in the configured EMPTY database, then time the "
        "read import, the daily run, the disconnect selection and a floor (one INSERT ... SELECT). "
        "Adds the figures to docs/benchmarks.md; the last line is the machine-readable summary."
    )

    def add_arguments(self, parser):
        parser.add_argument("--accounts", type=int, required=True)
        parser.add_argument(
            "--workers", type=int, default=2, help="Chunks of the daily run at a time (default 2: two cores)."
        )
        parser.add_argument("--no-record", action="store_true", help="Do not write docs/benchmarks.md.")

    def handle(self, *args, accounts, workers=2, no_record=False, **options):
        if accounts < 1 or workers < 1:
            raise CommandError("--accounts and --workers must be at least 1.")
        try:
            result = bench_daily(accounts=accounts, workers=workers, say=self.stdout.write)
        except CoopError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"peak memory {result.peak_mb:.0f} MB; {result.candidates:,} disconnect candidates")
        if not no_record:
            self.stdout.write(f"figures added to {record(result)}")
        self.stdout.write(result.last_line())
