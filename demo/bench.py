"""`manage.py bench_daily`: build N prepaid accounts with a day of reads and time the daily work.

The figures it prints (and adds to docs/benchmarks.md):

- import_s: `reads_import` of a generated CSV of N daily reads;
- run_s:    `daily_run` for that day (estimates, true-ups, N deductions and their ledger postings),
            with `--workers` chunks at a time;
- notices_s: the notification step the schedule runs after it (`daily_notices`), timed apart;
- select_s: the disconnect selection (`disconnect_candidates`), ids fetched;
- floor_s:  one hand-written INSERT ... SELECT writing one row per account with that day's charge,
            the least any design must do;
- ratio:    run_s / floor_s.

Rows are built with COPY (PostgreSQL) or executemany (SQLite) in batches, so memory does not grow
with N; the peak resident memory of the process is reported too.
"""

import csv
import datetime
import resource
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Account, Member, ServiceLocation
from billing.daily import daily_notices, daily_run
from billing.models import LedgerAccount, Leg, Transaction
from billing.selectors import disconnect_candidates
from billing.tariffs import rider_create, tariff_create, tax_rate_create
from coop.exceptions import CoopError
from coop.services import policy_load_presets
from demo.seed import _RowWriter, database_has_demo_data
from meters.models import Meter, MeterInstallation

BATCH = 50_000


@dataclass
class BenchResult:
    accounts: int
    day: datetime.date
    build_s: float
    import_s: float
    run_s: float
    workers: int
    notices_s: float
    select_s: float
    floor_s: float
    candidates: int
    deductions: int
    peak_mb: float

    @property
    def ratio(self) -> float:
        return self.run_s / self.floor_s if self.floor_s else float("inf")

    def last_line(self) -> str:
        return (
            f"bench_daily accounts={self.accounts} import_s={self.import_s:.2f} run_s={self.run_s:.2f} "
            f"select_s={self.select_s:.2f} floor_s={self.floor_s:.2f} ratio={self.ratio:.2f}"
        )


def bench_daily(*, accounts: int, workers: int = 2, say=print) -> BenchResult:
    found = database_has_demo_data()
    if found:
        raise CoopError(
            f"bench_daily builds its own cooperative and needs an empty database; this one has {found}. "
            "Create one (createdb coop_bench), point DATABASE_URL at it, run migrate, then bench_daily."
        )
    day = timezone.localdate() - datetime.timedelta(days=1)
    started = time.monotonic()
    _build(accounts, day, say)
    build_s = time.monotonic() - started
    say(f"built {accounts:,} prepaid accounts with meters in {build_s:.1f} s")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reads.csv"
        _write_reads_csv(path, accounts, day)
        from meters.reads import reads_import

        t = time.monotonic()
        report = reads_import(path=path)
        import_s = time.monotonic() - t
    if report.errors:
        raise CoopError(f"the generated reads did not import: {report.errors[:3]}")
    say(f"imported {accounts:,} reads in {import_s:.2f} s ({accounts / import_s:,.0f} rows/s)")

    # The run's money work is timed as run_s; the notification step it then starts (the schedule
    # runs both) is timed on its own as notices_s.
    t = time.monotonic()
    run = daily_run(day=day, workers=workers, notify=False)
    run_s = time.monotonic() - t
    t = time.monotonic()
    daily_notices(day)
    notices_s = time.monotonic() - t
    say(
        f"daily run: {run.deductions:,} deductions in {run_s:.2f} s, {_workers(workers)} "
        f"({run.failures} failures)"
    )
    say(f"notification step after the run: {notices_s:.2f} s")

    t = time.monotonic()
    candidates = len(
        list(disconnect_candidates(on=day).values_list("pk", flat=True).iterator(chunk_size=BATCH))
    )
    select_s = time.monotonic() - t
    say(f"disconnect selection: {candidates:,} candidates in {select_s:.2f} s")

    floor_s = _floor(day)
    say(f"floor (one INSERT ... SELECT of a charge per account): {floor_s:.2f} s")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return BenchResult(
        accounts=accounts,
        day=day,
        build_s=build_s,
        import_s=import_s,
        run_s=run_s,
        workers=workers,
        notices_s=notices_s,
        select_s=select_s,
        floor_s=floor_s,
        candidates=candidates,
        deductions=run.deductions,
        peak_mb=peak_mb,
    )


def _build(n: int, day: datetime.date, say) -> None:
    """N members, each with a location, an active prepaid account, an installed meter and an
    opening balance (one balanced transaction: a tenth of the accounts start at or below $0)."""
    with transaction.atomic():
        policy_load_presets(names=["B"], effective_from=day.replace(day=1) - datetime.timedelta(days=365))
        # The rates through their services, like a manager's (backdated: in force on the bench's
        # day). The members, locations, meters and accounts below are set-based SQL instead: a
        # per-row service (validation, history, several queries a row) would take most of an hour
        # at 100,000 accounts, and the bench measures the daily run, not the building.
        effective_from = day.replace(day=1)
        tariff_create(
            actor=None,
            code="RES",
            name="Residential",
            effective_from=effective_from,
            customer_charge=Decimal("31.00"),
            blocks=[
                {"months": "", "up_to_kwh": 1000, "rate": Decimal("0.105000")},
                {"months": "", "up_to_kwh": None, "rate": Decimal("0.125000")},
            ],
            backdated=True,
        )
        rider_create(
            actor=None,
            code="PCA",
            name="Power cost adjustment",
            rate=Decimal("0.004100"),
            effective_from=effective_from,
        )
        tax_rate_create(actor=None, name="Sales tax", percent=Decimal("5.5"), effective_from=effective_from)
        opening = Transaction.objects.create(
            kind=Transaction.Kind.ADJUSTMENT,
            effective_date=day,
            memo="bench_daily opening balances",
            idempotency_key=f"bench-opening:{timezone.now().isoformat()}",
        )
        from billing.ledger import coop_ledger_account

        adjustments = coop_ledger_account(LedgerAccount.Purpose.ADJUSTMENTS)
        writer = _RowWriter(batch_size=5000)
        now = timezone.now()
        first = {
            m: _RowWriter.next_id(m)
            for m in (Member, ServiceLocation, Account, Meter, MeterInstallation, LedgerAccount)
        }
        opened = day - datetime.timedelta(days=200)
        total_cents = 0
        for start in range(0, n, BATCH):
            k = range(start, min(n, start + BATCH))
            writer.write(
                Member,
                ["id", "first_name", "last_name", "email", "line1", "city", "state", "postal_code"],
                [
                    (
                        first[Member] + i,
                        "Bench",
                        f"Member{i}",
                        "",
                        f"{i} Bench Rd",
                        "Ladysmith",
                        "WI",
                        "54848",
                    )
                    for i in k
                ],
            )
            writer.write(
                ServiceLocation,
                ["id", "line1", "city", "state", "postal_code"],
                [(first[ServiceLocation] + i, f"{i} Bench Rd", "Ladysmith", "WI", "54848") for i in k],
            )
            writer.write(
                Account,
                [
                    "id",
                    "number",
                    "member",
                    "location",
                    "billing_mode",
                    "status",
                    "status_changed_at",
                    "opened_on",
                ],
                [
                    (
                        first[Account] + i,
                        f"B{i:09d}",
                        first[Member] + i,
                        first[ServiceLocation] + i,
                        "prepaid",
                        "active",
                        now,
                        opened,
                    )
                    for i in k
                ],
            )
            writer.write(Meter, ["id", "serial"], [(first[Meter] + i, _serial(i)) for i in k])
            writer.write(
                MeterInstallation,
                ["id", "meter", "location", "installed_on"],
                [
                    (first[MeterInstallation] + i, first[Meter] + i, first[ServiceLocation] + i, opened)
                    for i in k
                ],
            )
            balances = [_opening_cents(i) for i in k]
            total_cents += sum(balances)
            writer.write(
                LedgerAccount,
                ["id", "code", "name", "kind", "purpose", "account", "balance"],
                [
                    (
                        first[LedgerAccount] + i,
                        f"member:B{i:09d}:prepaid_credit",
                        f"B{i:09d} prepaid credit",
                        "liability",
                        "prepaid_credit",
                        first[Account] + i,
                        -Decimal(c) / 100,
                    )
                    for i, c in zip(k, balances, strict=True)
                ],
            )
            writer.write(
                Leg,
                ["transaction", "ledger_account", "amount"],
                [
                    (opening.pk, first[LedgerAccount] + i, -Decimal(c) / 100)
                    for i, c in zip(k, balances, strict=True)
                    if c
                ],
            )
            say(f"  {min(n, start + BATCH):>9,} / {n:,} accounts")
        writer.write(
            Leg,
            ["transaction", "ledger_account", "amount"],
            [(opening.pk, adjustments.pk, Decimal(total_cents) / 100)],
        )
        LedgerAccount.objects.filter(pk=adjustments.pk).update(
            balance=adjustments.balance + Decimal(total_cents) / 100
        )
        writer.reset_sequences(
            [Member, ServiceLocation, Account, Meter, MeterInstallation, LedgerAccount, Leg]
        )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE")


def _serial(i: int) -> str:
    return f"BM{i:09d}"


def _opening_cents(i: int) -> int:
    """Opening prepaid balances from -$5 to $120, one account in ten at or below zero."""
    return -500 + (i * 7919) % 12500 if i % 10 else 0


def _write_reads_csv(path: Path, n: int, day: datetime.date) -> None:
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["meter", "date", "kwh"])
        iso = day.isoformat()
        for i in range(n):
            out.writerow([_serial(i), iso, f"{5 + (i * 37) % 45}.{(i * 13) % 1000:03d}"])


def _floor(day: datetime.date) -> float:
    """One INSERT ... SELECT writing one row per account with that day's charge (energy at one
    rate plus a thirtieth of the customer charge): the least work any design must do."""
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_floor")
        cursor.execute("CREATE TABLE bench_floor (account_id bigint PRIMARY KEY, amount numeric(12, 2))")
    t = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO bench_floor (account_id, amount)
            SELECT a.id, ROUND(r.kwh * 0.105 + 1.00, 2)
            FROM accounts_account a
            JOIN meters_meterinstallation mi ON mi.location_id = a.location_id AND mi.removed_on IS NULL
            JOIN meters_meterread r ON r.meter_id = mi.meter_id AND r.day = %s
            WHERE a.billing_mode = 'prepaid' AND a.status = 'active'
            """,
            [day],
        )
    elapsed = time.monotonic() - t
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_floor")
    return elapsed


def _workers(n: int) -> str:
    return f"{n} worker{'' if n == 1 else 's'}"


def record(result: BenchResult, path: Path | None = None) -> Path:
    """Add the figures as a row of the table in docs/benchmarks.md (created if missing)."""
    path = path or Path(settings.BASE_DIR) / "docs" / "benchmarks.md"
    marker = "<!-- bench_daily rows: manage.py bench_daily appends here -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if marker not in text:
        text += (
            "\n## bench_daily\n\n"
            "`manage.py bench_daily --accounts N` on an empty, migrated database (see demo/bench.py).\n\n"
            "| when (UTC) | database | accounts | import_s (rows/s) | run_s | notices_s | select_s | floor_s "
            "| ratio | peak MB |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n" + marker + "\n"
        )
    vendor = connection.vendor + (
        f" {connection.pg_version // 10000}" if connection.vendor == "postgresql" else ""
    )
    row = (
        f"| {timezone.now():%Y-%m-%d %H:%M} | {vendor} | {result.accounts:,} | "
        f"{result.import_s:.2f} ({result.accounts / result.import_s:,.0f}) | "
        f"{result.run_s:.2f} ({_workers(result.workers)}) | "
        f"{result.notices_s:.2f} | "
        f"{result.select_s:.2f} | {result.floor_s:.2f} | {result.ratio:.2f} | {result.peak_mb:.0f} |"
    )
    path.write_text(text.replace(marker, row + "\n" + marker))
    return path
