"""Import meter reads from a CSV or Green Button file (see meters/reads/)."""

from django.core.management.base import BaseCommand, CommandError

from coop.validators import mask_card_numbers
from meters.exceptions import MetersError
from meters.reads import reads_import

# Reads reported but not imported (a starting register, a partial day) are listed up to this many;
# the first import of a register feed can have one per meter.
SKIPPED_SHOWN = 50


class Command(BaseCommand):
    help = (
        "Import daily meter reads. The format is told from the content. "
        "CSV: a header row naming the columns meter, date and either kwh or register (names in any "
        "case; no other columns): meter is the meter's serial number; date is the local service day "
        "(YYYY-MM-DD, the cooperative's time zone); kwh is the energy used that day (at most 3 "
        "decimals); register is the cumulative register reading at the end of that day, the day's use "
        "being the difference from the previous day's register (from the file or the stored read; a "
        "rollover such as 99990 -> 00012 wraps round). With --meter the meter column may be left out. "
        "Green Button (ESPI XML): one usage point, energy in Wh, named with --meter; its interval "
        "readings are summed into local days, and days the readings do not cover whole are left out "
        "unless --partial-days. Every row is checked first: if any is bad, nothing is imported, every "
        "bad row is listed as 'line N: field: reason' and the command exits 1. Importing a file again "
        "changes nothing; an actual read replaces the day's estimate."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The CSV or Green Button (.xml) file.")
        parser.add_argument(
            "--meter",
            metavar="SERIAL",
            help="The meter a Green Button file belongs to (required for one), or the meter of every "
            "row of a CSV file without a meter column.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Check the file; import nothing.")
        parser.add_argument(
            "--partial-days",
            action="store_true",
            help="Green Button: also import days the readings do not cover whole (the first and last "
            "day of a file from a utility in another time zone).",
        )

    def handle(self, *args, file, meter, dry_run, partial_days, verbosity, **options):
        try:
            report = reads_import(path=file, meter_serial=meter, dry_run=dry_run, partial_days=partial_days)
        except MetersError as exc:
            raise CommandError(str(exc)) from exc

        for problem in report.errors:
            self.stderr.write(mask_card_numbers(str(problem)))  # a problem may quote its value
        if verbosity >= 1:
            shown = report.skipped if verbosity >= 2 else report.skipped[:SKIPPED_SHOWN]
            for note in shown:
                self.stdout.write(f"not imported: {note}")
            if len(shown) < len(report.skipped):
                self.stdout.write(
                    f"... and {len(report.skipped) - len(shown)} more not imported (-v 2 lists them all)"
                )
        label = "import_reads dry-run" if dry_run else "import_reads"
        self.stdout.write(f"{label} {report.summary()}")
        if report.errors:
            raise CommandError(
                f"Nothing was imported: {len(report.errors)} problem(s) in {report.source_name}. Fix them "
                "and import the file again."
            )
        if dry_run:
            self.stdout.write("Dry run: nothing was imported.")
