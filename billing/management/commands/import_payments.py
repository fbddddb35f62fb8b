"""Import a payment processor's or bank lockbox's payment file (CSV)."""

from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError

from billing.imports import COLUMNS, PaymentFileError, RowProblem, import_operator, payment_file_import
from billing.models import Payment


class Command(BaseCommand):
    help = (
        "Post the payments in a processor or lockbox CSV file. The header row names the columns "
        f"{', '.join(COLUMNS)}; received_at is an ISO 8601 date-time (with its UTC offset, or read in "
        "the cooperative's time zone) or a date (noon local). Every row is checked first; if any is "
        "bad nothing is posted and the command exits 1, unless --skip-bad. A row already posted "
        "(same tender, reference, account and amount) is reported as a duplicate, so importing a file "
        "twice posts nothing new. --operator names the staff user doing the import; it is recorded on every "
        "payment."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The CSV file.")
        parser.add_argument(
            "--operator",
            required=True,
            metavar="USERNAME",
            help="The staff user doing the import (active, may post payments); recorded on every payment.",
        )
        parser.add_argument(
            "--skip-bad", action="store_true", help="Post the good rows and report the bad ones."
        )
        parser.add_argument(
            "--tender",
            choices=Payment.Tender.values,
            help="The tender of rows without one (the tender column may then be left out).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Check the file; post nothing.")
        parser.add_argument(
            "--confirm-over-limit",
            action="store_true",
            help="Post rows above the policy's confirmation limit for their tender (checked by you; "
            "recorded with each such payment). Without it such a row is refused.",
        )

    def handle(self, *args, file, skip_bad, tender, dry_run, verbosity, confirm_over_limit, **options):
        try:
            result = payment_file_import(
                actor=import_operator(options["operator"]),
                path=file,
                default_tender=tender,
                skip_bad=skip_bad,
                dry_run=dry_run,
                keep_receipts=verbosity >= 2,
                confirm_over_limit=confirm_over_limit,
            )
        except PaymentFileError as exc:
            raise CommandError(str(exc)) from exc

        for report in result.reports():
            if isinstance(report, RowProblem):
                self.stderr.write(str(report))
            elif verbosity >= 1:
                self.stdout.write(str(report))
        # What the import did, or in a dry run what it would do: nothing at all if a row is bad
        # (unless --skip-bad).
        if verbosity >= 2 and result.accepted:
            for row in result.receipts:
                did = f"posted receipt {row.receipt_number}" if result.applied else "would post"
                self.stdout.write(f"line {row.line}: {did} ${row.amount} to account {row.account_number}")
        posted, total = (result.posted, result.total) if result.accepted else (0, Decimal("0"))
        label = "import_payments dry-run would_post" if dry_run else "import_payments posted"
        self.stdout.write(
            f"{label}={posted} duplicates={len(result.duplicates)} bad={result.bad} total=${total:.2f}"
        )
        if not result.accepted:
            raise CommandError(
                f"{'The file has' if dry_run else 'Nothing was posted:'} {result.bad} bad row(s). "
                "Fix them and import the file again, or give --skip-bad to post only the good rows."
            )
        if dry_run:
            self.stdout.write("Dry run: nothing was posted.")
