"""`manage.py run_daily [--date YYYY-MM-DD]`: the same daily prepaid run the schedule starts."""

import datetime

from django.core.management.base import BaseCommand, CommandError

from billing.daily import DEFAULT_CHUNK, daily_run, default_service_day
from billing.exceptions import BillingError


class Command(BaseCommand):
    help = (
        "Price one service day's usage and deduct it from every prepaid balance (default: yesterday "
        "in the cooperative's zone). Safe to run again: accounts already deducted are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--date", help="The service day, YYYY-MM-DD (default: yesterday).")
        parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK, help="Accounts per transaction.")
        parser.add_argument(
            "--workers", type=int, help="Chunks at a time on PostgreSQL (default COOP_DAILY_RUN_WORKERS)."
        )

    def handle(self, *args, date=None, chunk_size=DEFAULT_CHUNK, workers=None, **options):
        try:
            day = datetime.date.fromisoformat(date) if date else default_service_day()
        except ValueError:
            raise CommandError(f"--date: '{date}' is not a date (YYYY-MM-DD).") from None
        if chunk_size < 1 or (workers is not None and workers < 1):
            raise CommandError("--chunk-size and --workers must be at least 1.")
        try:
            run = daily_run(day=day, chunk_size=chunk_size, workers=workers)
        except BillingError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"run_daily {run.service_day} {run.get_status_display().lower()}: "
            f"accounts={run.accounts_total} deductions={run.deductions} true_ups={run.true_ups} "
            f"estimated_reads={run.estimated_reads} low_balance={run.low_balance} "
            f"at_disconnect_level={run.at_disconnect_level} failures={run.failures}"
        )
        if run.failures:
            self.stderr.write(run.failure_detail)
            raise CommandError(f"{run.failures} chunk(s) failed; run the day again to finish them.")
