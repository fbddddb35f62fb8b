"""The daily prepaid run: yesterday's usage priced and taken from every prepaid balance.

`daily_run(day=...)` is what the schedule and `manage.py run_daily` call. It is set-based SQL, not a
Python loop per account, because a large cooperative has a million meters:

1. missing reads get estimates (meters.reads.reads_estimate_missing);
2. estimated days whose actual read has since arrived are settled by true-up deductions;
3. the prepaid accounts in service are taken in chunks of consecutive ids. Each chunk is one
   database transaction that inserts one Deduction row per account (the unique constraint on
   account and service day makes it idempotent), posts one balanced ledger transaction for the
   chunk — a leg on each member's prepaid credit, one leg to energy revenue and one to sales tax —
   moves the stored balances under row locks, and records progress on the DailyRun row.

A run killed halfway leaves whole chunks committed and nothing half-applied; running the day again
skips the accounts already deducted and finishes the rest. Pricing (billing/rates.py) works on
month-to-date positions kept on each Deduction, so every day's charge telescopes into the monthly
bill.

On PostgreSQL the database checks each chunk's one transaction at commit, with one query over its
legs (billing/migrations/0013_append_only_money_records.py); on SQLite the chunk checks it itself.
"""

import datetime
import logging
import uuid
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Account
from billing.events import DailyRunFinished, DisconnectsPending
from billing.exceptions import BillingError, DailyRunError, LedgerError
from billing.ledger import coop_ledger_account, ledger_apply_legs, sql_cents, sql_decimal, sql_round_int
from billing.models import DailyRun, Deduction, LedgerAccount, Leg, Transaction
from billing.prepaid import funded_disconnects_cancel, next_disconnect_window
from billing.rates import MonthPrices, month_prices, month_to_date_sql, round_div_sql, tax_sql
from billing.selectors import disconnect_candidates
from coop import events
from coop.calendar import local_midnight, local_today
from coop.models import Policy
from meters.reads import reads_estimate_missing

logger = logging.getLogger(__name__)

DEFAULT_CHUNK = 20_000
# Begins the idempotency key of every transaction the run posts (ledger_audit finds them by it).
KEY_PREFIX = "daily-run:"
P = LedgerAccount.Purpose
IN_SERVICE = (Account.Status.ACTIVE, Account.Status.DISCONNECTED)


# --- Small SQL helpers: integer cents in, exact decimals out, on both databases -------------------


def _pg() -> bool:
    return connection.vendor == "postgresql"


def _fence() -> str:
    """Ends a subquery PostgreSQL must not fold into the one around it. Each layer of the pricing
    SQL refers to the layer below's columns several times; folded, those references become copies
    of the whole expressions below, nested layer upon layer (milliseconds a row instead of
    microseconds). SQLite evaluates them well as they are."""
    return " OFFSET 0" if _pg() else ""


# --- The run ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    day: datetime.date
    prices: MonthPrices
    policy: Policy
    run: DailyRun
    revenue_id: int
    tax_id: int


def default_service_day() -> datetime.date:
    """Yesterday in the cooperative's zone: the last whole day of reads."""
    return local_today() - datetime.timedelta(days=1)


def daily_run(
    *,
    day: datetime.date | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    workers: int | None = None,
    notify: bool = True,
) -> DailyRun:
    """Run (or finish) the prepaid run for one service day. Safe to run again: accounts already
    deducted for the day are skipped. Raises DailyRunError or RatesError before writing anything
    when the day cannot be run.

    Afterwards (unless `notify` is off, as when the demo builds past days) the members who crossed
    their low-balance level are warned, and the accounts at the disconnect level are told when
    service will be cut (daily_notices; each notice is queued once per account and day).

    `workers` (default settings.COOP_DAILY_RUN_WORKERS) chunks run at a time on PostgreSQL, each
    on its own database connection; their accounts never overlap. SQLite runs one at a time."""
    day = day or default_service_day()
    workers = workers or settings.COOP_DAILY_RUN_WORKERS
    if not _pg():
        workers = 1
    if day >= local_today():
        raise DailyRunError(f"The run for {day} can start once that day is over in the cooperative's zone.")
    later = DailyRun.objects.filter(service_day__gt=day).order_by("service_day").first()
    if later is not None:
        raise DailyRunError(
            f"Runs go in date order: the run for {later.service_day} exists, so {day} cannot run "
            "after it (each day's prices build on the days before it in the month)."
        )
    prices = month_prices(day)
    policy = Policy.objects.in_force(day)

    run, _ = DailyRun.objects.get_or_create(service_day=day)
    DailyRun.objects.filter(pk=run.pk).update(
        status=DailyRun.Status.RUNNING,
        attempts=F("attempts") + 1,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
        finished_at=None,
        accounts_done=0,
        failures=0,
        failure_detail="",
    )
    run.refresh_from_db()
    failures: list[str] = []
    try:
        estimated = reads_estimate_missing(day=day)
        if _pg():
            # The day's reads arrived since the tables were last analysed: plan with their numbers.
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE meters_meterread, billing_deduction, billing_ledgeraccount")
        ctx = _Context(
            day=day,
            prices=prices,
            policy=policy,
            run=run,
            revenue_id=coop_ledger_account(P.ENERGY_REVENUE).pk,
            tax_id=coop_ledger_account(P.TAX_PAYABLE).pk,
        )
        true_ups = _settle_true_ups(ctx)
        accounts = Account.objects.prepaid().filter(status__in=IN_SERVICE)
        DailyRun.objects.filter(pk=run.pk).update(
            accounts_total=accounts.count(),
            estimated_reads=F("estimated_reads") + estimated,
            true_ups=F("true_ups") + true_ups,
        )
        if workers == 1:
            for ids in _chunks(accounts, chunk_size):
                _chunk_and_progress(ctx, ids, failures)
        else:
            _chunks_in_parallel(ctx, _chunks(accounts, chunk_size), workers, failures)
    except Exception as exc:
        failures.append(f"stopped: {exc}")
        _finish(run, failures)
        raise
    try:
        # A true-up credit funds an account as a payment does: its open disconnect order is
        # cancelled before the notices (billing.prepaid.credit_posted).
        funded_disconnects_cancel()
    except Exception as exc:  # the money is posted; the order's own re-checks still stand
        logger.exception("daily run %s: cancelling funded disconnects failed", day)
        failures.append(f"funded disconnects: {exc} (run the day again to cancel them)")
    _finish(run, failures)
    if notify:
        # After the run's own outcome is written: a subscriber whose notices fail says so on
        # this run (daily_run_failure_add), as does a failure to announce them.
        try:
            daily_notices(day)
        except Exception as exc:  # the money is posted; say the notices failed, and retry them
            logger.exception("daily run %s: notices failed", day)
            daily_run_failure_add(service_day=day, detail=f"notices: {exc}")
    run.refresh_from_db()
    return run


def _chunk_and_progress(ctx: _Context, ids: list[int], failures: list[str]) -> None:
    """One chunk, then its progress on the DailyRun row. A failed chunk is rolled back whole and
    reported; running the day again picks it up."""
    try:
        posted = _run_chunk(ctx, ids[0], ids[-1])
    except (DatabaseError, BillingError) as exc:
        logger.exception("daily run %s: accounts %s-%s failed", ctx.day, ids[0], ids[-1])
        failures.append(f"accounts #{ids[0]}-#{ids[-1]}: {exc}")
        posted = 0
    DailyRun.objects.filter(pk=ctx.run.pk).update(
        accounts_done=F("accounts_done") + len(ids),
        deductions=F("deductions") + posted,
        heartbeat_at=timezone.now(),
    )


def _chunks_in_parallel(ctx: _Context, chunks, workers: int, failures: list[str]) -> None:
    """`workers` chunks at a time, each thread on its own connection (closed when its chunk is
    done). At most two chunks per worker are waiting, so memory stays flat."""

    def work(ids):
        try:
            _chunk_and_progress(ctx, ids, failures)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="daily-run") as pool:
        pending = set()
        for ids in chunks:
            pending.add(pool.submit(work, ids))
            if len(pending) >= 2 * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
        for future in pending:
            future.result()


def daily_notices(day: datetime.date) -> None:
    """The notification step after the run for `day`: announces that the run finished (for the
    low-balance crossings and reminders) and which accounts are at the disconnect level today,
    with the next window service can be cut in (for the pending-disconnect notice). A subscriber
    that fails does not undo the run; the notices' subscriber reports it on the run
    (daily_run_failure_add)."""
    events.publish(DailyRunFinished(service_day=day))
    candidates = tuple(disconnect_candidates(on=local_today()).values_list("pk", flat=True))
    if candidates:
        start, end = next_disconnect_window(after=timezone.now())
        events.publish(DisconnectsPending(account_ids=candidates, window_start=start, window_end=end))


def daily_run_failure_add(*, service_day: datetime.date, detail: str) -> None:
    """A step after the run's money (its notices, announced to notifications) failed: the run of
    `service_day` is marked finished with failures, with what failed and that running the day
    again queues what is missing (each notice is queued once per account and day)."""
    line = f"{detail} (run the day again to queue them)"
    with transaction.atomic():
        run = DailyRun.objects.select_for_update().filter(service_day=service_day).first()
        if run is None:
            return
        DailyRun.objects.filter(pk=run.pk).update(
            status=DailyRun.Status.FAILED,
            failures=F("failures") + 1,
            failure_detail="\n".join(filter(None, [run.failure_detail, line]))[:10_000],
        )


def _finish(run: DailyRun, failures: list[str]) -> None:
    low, at_level = _balance_counts(run.service_day)
    DailyRun.objects.filter(pk=run.pk).update(
        status=DailyRun.Status.FAILED if failures else DailyRun.Status.FINISHED,
        finished_at=timezone.now(),
        failures=len(failures),
        failure_detail="\n".join(failures)[:10_000],
        low_balance=low,
        at_disconnect_level=at_level,
    )


def _balance_counts(day: datetime.date) -> tuple[int, int]:
    """How many accounts ended the day below the default warning level, and at the disconnect
    level (members' own thresholds are the notifications' business)."""
    policy = Policy.objects.in_force(day)
    today = Deduction.objects.filter(service_day=day, kind=Deduction.Kind.DAILY)
    low = today.filter(balance_after__lt=policy.low_balance_threshold_default).count()
    at_level = today.filter(**policy.disconnect_level_lookup("balance_after")).count()
    return low, at_level


def _chunks(accounts, size: int):
    """Consecutive ids of `accounts` in lists of at most `size`; only one list is held at a time."""
    last = 0
    ids = accounts.order_by("pk").values_list("pk", flat=True)
    while True:
        chunk = list(ids.filter(pk__gt=last)[:size])
        if not chunk:
            return
        yield chunk
        last = chunk[-1]


def prepaid_ledger_accounts_ensure(*, lo: int = 0, hi: int = 2**62) -> None:
    """Every prepaid account in service with an id from lo to hi gets its prepaid-credit ledger
    account (one statement, made while the chunk holds its accounts' row locks, so a payment
    creating one at the same moment waits rather than deadlocks)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO billing_ledgeraccount (code, name, kind, purpose, account_id, tender, balance)
            SELECT 'member:' || a.number || ':prepaid_credit', a.number || ' prepaid credit',
                   %(kind)s, %(purpose)s, a.id, '', 0
            FROM accounts_account a
            WHERE a.billing_mode = 'prepaid' AND a.status IN ('active', 'disconnected')
              AND a.id BETWEEN %(lo)s AND %(hi)s
              AND NOT EXISTS (SELECT 1 FROM billing_ledgeraccount la
                              WHERE la.account_id = a.id AND la.purpose = %(purpose)s)
            ON CONFLICT DO NOTHING
            """,
            {"kind": LedgerAccount.Kind.LIABILITY, "purpose": P.PREPAID_CREDIT, "lo": lo, "hi": hi},
        )


# --- Pricing SQL ----------------------------------------------------------------------------------

_COLUMNS = (
    "account_id, service_day, kind, run_id, meter_id, read_quality, settles_id, kwh, energy, "
    "customer_charge, riders, tax, total, mtd_wh, mtd_days, mtd_energy_cents, mtd_customer_cents, "
    "mtd_riders_cents, mtd_tax_cents, balance_after, avg_daily_cents, days_remaining, transaction_id, "
    "created_at"
)

# The previous row of the account's month-to-date chain: its latest deduction up to the day.
_PREVIOUS = """
    (SELECT p2.id FROM billing_deduction p2
     WHERE p2.account_id = {account} AND p2.service_day <= %(day)s
     ORDER BY p2.service_day DESC, p2.id DESC LIMIT 1)
"""


def _previous_columns() -> str:
    """Month-to-date columns of the previous row `p`, zero when it belongs to an earlier month."""
    this_month = "p.service_day >= %(month_start)s"
    columns = {
        "p_wh": "p.mtd_wh",
        "p_days": "p.mtd_days",
        "p_e": "p.mtd_energy_cents",
        "p_c": "p.mtd_customer_cents",
        "p_r": "p.mtd_riders_cents",
        "p_t": "p.mtd_tax_cents",
    }
    parts = [f"CASE WHEN {this_month} THEN {expr} ELSE 0 END AS {name}" for name, expr in columns.items()]
    return ", ".join(parts + ["p.avg_daily_cents AS p_avg"])


def _insert_sql(prices: MonthPrices, source_sql: str, *, kind: str) -> str:
    """INSERT of one Deduction per row of `source_sql` (columns account_id, meter_id, quality,
    settles_id, wh, charge_day, debit_cents and the p_* columns of the previous row)."""
    mtd = month_to_date_sql(prices, wh="b.mtd_wh", days="b.mtd_days")
    day_parts = {
        "e": "q.e_cum - q.p_e",
        "c": "q.c_cum - q.p_c",
        "r": "q.r_cum - q.p_r",
        "t": "q.t_cum - q.p_t",
    }
    total = "(" + " + ".join(f"({v})" for v in day_parts.values()) + ")"
    balance_after = f"(-q.debit_cents - {total})"
    if kind == Deduction.Kind.DAILY:
        # Recent daily cost, exponentially weighted (a quarter today, three quarters the past).
        avg = (
            f"(CASE WHEN q.p_avg IS NULL THEN {total} ELSE {round_div_sql(f'q.p_avg * 3 + {total}', 4)} END)"
        )
    else:
        avg = "COALESCE(q.p_avg, 0)"
    days_remaining = (
        f"(CASE WHEN {balance_after} <= 0 THEN 0 WHEN {avg} > 0 THEN {balance_after} / {avg} ELSE NULL END)"
    )
    return f"""
        INSERT INTO billing_deduction ({_COLUMNS})
        SELECT q.account_id, %(day)s, '{kind}', %(run)s, q.meter_id, q.quality, q.settles_id,
               {sql_decimal("q.wh", 1000)},
               {sql_decimal(day_parts["e"], 100)}, {sql_decimal(day_parts["c"], 100)},
               {sql_decimal(day_parts["r"], 100)}, {sql_decimal(day_parts["t"], 100)},
               {sql_decimal(total, 100)},
               q.mtd_wh, q.mtd_days, q.e_cum, q.c_cum, q.r_cum, q.t_cum,
               {sql_decimal(balance_after, 100)}, {avg}, {days_remaining},
               CASE WHEN {total} <> 0 THEN CAST(%(txn)s AS BIGINT) END, %(now)s
        FROM (
            SELECT c.*, {tax_sql(prices, "c.e_cum + c.c_cum + c.r_cum")} AS t_cum
            FROM (
                SELECT b.*, {mtd["energy"]} AS e_cum, {mtd["customer"]} AS c_cum, {mtd["riders"]} AS r_cum
                FROM (
                    SELECT src.*, src.p_wh + src.wh AS mtd_wh, src.p_days + src.charge_day AS mtd_days
                    FROM ({source_sql}{_fence()}) src{_fence()}
                ) b{_fence()}
            ) c{_fence()}
        ) q
    """


# Whether the day carries the customer charge: the account had service for some part of it (active
# at its end, or disconnected during it), or the policy continues charges while disconnected. It is
# decided from the status and when it last changed, so the answer does not depend on when the run
# happens (an account reconnected the next morning before the run is not charged for a day it was
# off all day).
_CHARGE_DAY = """
    CASE WHEN %(continue)s = 1
           OR (a.status = 'active' AND COALESCE(a.status_changed_at, %(day_start)s) < %(day_end)s)
           OR (a.status = 'disconnected' AND a.status_changed_at >= %(day_start)s)
         THEN 1 ELSE 0 END
"""


def _daily_source_sql() -> str:
    """The chunk's accounts not yet deducted for the day, with their meter, the day's read, their
    stored balance and the previous row of their month-to-date chain. Each lookup is a scalar
    subquery by key, so a chunk reads its own accounts' rows only: as joins, PostgreSQL would hash
    all of the day's reads and every prepaid balance for each chunk, work that grows with the size
    of the cooperative rather than the chunk."""
    meter = """
        (SELECT mi.meter_id FROM meters_meterinstallation mi
         WHERE mi.location_id = a0.location_id AND mi.installed_on <= %(day)s
           AND (mi.removed_on IS NULL OR mi.removed_on >= %(day)s)
         ORDER BY mi.installed_on DESC, mi.id DESC LIMIT 1)
    """
    read = "(SELECT r.{column} FROM meters_meterread r WHERE r.meter_id = a1.meter_id AND r.day = %(day)s)"
    return f"""
        SELECT a.id AS account_id, a.meter_id, COALESCE(a.quality, '') AS quality,
               CAST(NULL AS BIGINT) AS settles_id,
               COALESCE({sql_round_int("a.kwh * 1000")}, 0) AS wh,
               {_CHARGE_DAY} AS charge_day,
               {sql_cents("a.balance")} AS debit_cents,
               {_previous_columns()}
        FROM (
            SELECT a1.*, {read.format(column="kwh")} AS kwh, {read.format(column="quality")} AS quality,
                   (SELECT la.balance FROM billing_ledgeraccount la
                    WHERE la.account_id = a1.id AND la.purpose = 'prepaid_credit') AS balance
            FROM (
                SELECT a0.id, a0.status, a0.status_changed_at, {meter} AS meter_id,
                       {_PREVIOUS.format(account="a0.id")} AS prev_id
                FROM accounts_account a0
                WHERE a0.billing_mode = 'prepaid' AND a0.status IN ('active', 'disconnected')
                  AND a0.id BETWEEN %(lo)s AND %(hi)s
                  AND NOT EXISTS (SELECT 1 FROM billing_deduction x
                                  WHERE x.account_id = a0.id AND x.service_day = %(day)s AND x.kind = 'daily')
            {_fence()}) a1
        {_fence()}) a
        LEFT JOIN billing_deduction p ON p.id = a.prev_id
    """


def _true_up_source_sql() -> str:
    """The earliest unsettled estimated day of each account whose actual read has arrived: the
    difference between the actual and the estimated kWh, priced at the current month-to-date
    position (a later pass takes the next one, so each row builds on the one before)."""
    return f"""
        SELECT d.account_id, d.meter_id, 'actual' AS quality, d.id AS settles_id,
               {sql_round_int("r.kwh * 1000")} - {sql_round_int("d.kwh * 1000")} AS wh,
               0 AS charge_day,
               {sql_cents("la.balance")} AS debit_cents,
               {_previous_columns()}
        FROM (
            SELECT MIN(d0.id) AS id FROM billing_deduction d0
            JOIN meters_meterread r0 ON r0.meter_id = d0.meter_id AND r0.day = d0.service_day
            WHERE d0.read_quality = 'estimated' AND d0.kind = 'daily' AND r0.quality = 'actual'
              AND d0.service_day < %(day)s
              AND NOT EXISTS (SELECT 1 FROM billing_deduction s WHERE s.settles_id = d0.id)
            GROUP BY d0.account_id
        ) pick
        JOIN billing_deduction d ON d.id = pick.id
        JOIN meters_meterread r ON r.meter_id = d.meter_id AND r.day = d.service_day
        JOIN billing_ledgeraccount la ON la.account_id = d.account_id AND la.purpose = 'prepaid_credit'
        LEFT JOIN billing_deduction p ON p.id = {_PREVIOUS.format(account="d.account_id")}
    """


def _params(ctx: _Context, lo: int, hi: int) -> dict:
    continues = ctx.policy.charges_continue_while_disconnected
    return {
        "day": ctx.day,
        "month_start": ctx.prices.month_start,
        "run": ctx.run.pk,
        "lo": lo,
        "hi": hi,
        "continue": 1 if continues else 0,
        "day_start": local_midnight(ctx.day),
        "day_end": local_midnight(ctx.day + datetime.timedelta(days=1)),
    }


# --- Posting -------------------------------------------------------------------------------------


def _run_chunk(ctx: _Context, lo: int, hi: int) -> int:
    """Deduct the accounts with ids lo..hi not yet deducted for the day. Returns the number of
    deductions made."""
    sql = _insert_sql(ctx.prices, _daily_source_sql(), kind=Deduction.Kind.DAILY)
    with transaction.atomic():
        _lock_ledger_accounts(ctx, lo, hi)
        return _insert_and_post(
            ctx, sql, _params(ctx, lo, hi), memo=f"Prepaid daily charges for {ctx.day}, accounts #{lo}-#{hi}"
        )


def _settle_true_ups(ctx: _Context) -> int:
    """True-up deductions for estimated days whose actual read arrived. One pass per estimated
    day still open on any one account (usually one pass), each in its own transaction."""
    sql = _insert_sql(ctx.prices, _true_up_source_sql(), kind=Deduction.Kind.TRUE_UP)
    settled = 0
    for _ in range(62):
        with transaction.atomic():
            _lock_ledger_accounts(ctx, 0, 2**62, only_estimated=True)
            made = _insert_and_post(
                ctx, sql, _params(ctx, 0, 2**62), memo=f"True-up of estimated reads, settled {ctx.day}"
            )
        if not made:
            return settled
        settled += made
    return settled


def _insert_and_post(ctx: _Context, sql: str, params: dict, *, memo: str) -> int:
    """Insert the deductions `sql` selects, linked to one new balanced transaction that posts them.
    Returns the number of deductions. When every one of them is zero the transaction is not kept
    (a transaction has at least two legs) and they are inserted without one."""
    now = timezone.now()
    savepoint = transaction.savepoint()
    txn = Transaction.objects.create(
        kind=Transaction.Kind.ENERGY,
        effective_date=ctx.day,
        posted_at=now,
        memo=memo[:300],
        # Each attempt's transaction is new: the deductions' (account, day) constraint is what
        # makes the run idempotent.
        idempotency_key=f"{KEY_PREFIX}{ctx.day}:{params['lo']}-{params['hi']}:{uuid.uuid4().hex}",
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {**params, "now": now, "txn": txn.pk})
        made = cursor.rowcount
    if made and _post(ctx, txn):
        transaction.savepoint_commit(savepoint)
        return made
    transaction.savepoint_rollback(savepoint)
    if made:
        with connection.cursor() as cursor:
            cursor.execute(sql, {**params, "now": now, "txn": None})
    return made


def _lock_ledger_accounts(ctx: _Context, lo: int, hi: int, *, only_estimated: bool = False) -> None:
    """Lock the chunk's accounts, then their prepaid-credit ledger accounts, each in id order: the
    order the billing services lock in (the account row, then billing.ledger.ledger_post's ledger
    accounts), so a payment posting at the same time waits instead of deadlocking; the revenue and
    tax accounts are locked last, by _post. The account rows are locked FOR NO KEY UPDATE, which
    the run's own foreign-key checks (KEY SHARE) do not conflict with."""
    if not _pg():
        prepaid_ledger_accounts_ensure(lo=lo, hi=hi)
        return  # SQLite serialises writers itself.
    # True-ups lock only the accounts with an estimated day still open, not every account.
    open_estimates = (
        "(SELECT d.account_id FROM billing_deduction d WHERE d.read_quality = 'estimated'"
        " AND NOT EXISTS (SELECT 1 FROM billing_deduction s WHERE s.settles_id = d.id))"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT id FROM accounts_account
            WHERE id BETWEEN %(lo)s AND %(hi)s AND billing_mode = 'prepaid'
              AND status IN ('active', 'disconnected')
              {f" AND id IN {open_estimates}" if only_estimated else ""}
            ORDER BY id FOR NO KEY UPDATE
            """,
            {"lo": lo, "hi": hi},
        )
        if not only_estimated:
            prepaid_ledger_accounts_ensure(lo=lo, hi=hi)
        # Compiling these long expressions costs more than evaluating them.
        cursor.execute("SET LOCAL jit = off")
        # Every lookup here is by account (or meter) and day through an index. On a young database
        # the planner believes the deductions table tiny and scans it once per account instead.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            f"""
            SELECT id FROM billing_ledgeraccount
            WHERE purpose = 'prepaid_credit' AND account_id BETWEEN %(lo)s AND %(hi)s
              {f" AND account_id IN {open_estimates}" if only_estimated else ""}
            ORDER BY id FOR UPDATE
            """,
            {"lo": lo, "hi": hi},
        )


def _post(ctx: _Context, txn: Transaction) -> int:
    """Post the deductions linked to `txn`: a leg on each member's prepaid credit, one leg each to
    energy revenue and sales tax, and the stored balances moved. Returns the number posted."""
    linked = "d.transaction_id = %(txn)s"
    params = {"txn": txn.pk}
    pretax = f"{sql_cents('d.energy')} + {sql_cents('d.customer_charge')} + {sql_cents('d.riders')}"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*), SUM({pretax}), SUM({sql_cents('d.tax')}) "
            f"FROM billing_deduction d WHERE {linked}",
            params,
        )
        count, pretax_cents, tax_cents = cursor.fetchone()
        if not count:
            return 0
        cursor.execute(
            f"""
            INSERT INTO billing_leg (transaction_id, ledger_account_id, amount)
            SELECT %(txn)s, la.id, d.total
            FROM billing_deduction d
            JOIN billing_ledgeraccount la ON la.account_id = d.account_id AND la.purpose = 'prepaid_credit'
            WHERE {linked}
            """,
            params,
        )
    ledger_apply_legs(transaction_id=txn.pk)  # the member legs: the only ones so far
    # The cooperative's side: one leg each, computed in Decimal from whole cents. Their rows are
    # shared by every chunk, so they are locked last and held only for the chunk's last few
    # statements: chunks running side by side wait for each other only there (always in id order:
    # no deadlock). The member rows' deferred foreign-key checks, a few µs each, are made first,
    # outside that wait (each of these foreign keys is initially deferred, so DEFERRED afterwards
    # is where the transaction started). Only the foreign keys: the ledger's balance check, also
    # deferred, must wait for the cooperative's legs.
    coop_legs = [(ctx.revenue_id, -int(pretax_cents or 0)), (ctx.tax_id, -int(tax_cents or 0))]
    coop_legs = [(pk, cents) for pk, cents in coop_legs if cents]
    if _pg() and coop_legs:
        with connection.cursor() as cursor:
            foreign_keys = _deferred_foreign_keys(cursor)
            if foreign_keys:
                cursor.execute(f"SET CONSTRAINTS {foreign_keys} IMMEDIATE")
                cursor.execute(f"SET CONSTRAINTS {foreign_keys} DEFERRED")
            cursor.execute(
                "SELECT id FROM billing_ledgeraccount WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                [[pk for pk, _ in coop_legs]],
            )
    Leg.objects.bulk_create(
        [Leg(transaction=txn, ledger_account_id=pk, amount=_dollars(cents)) for pk, cents in coop_legs]
    )
    ledger_apply_legs(transaction_id=txn.pk, ledger_account_ids=[pk for pk, _ in coop_legs])
    if not _pg():
        _assert_balanced(txn)  # PostgreSQL's trigger makes the same check at commit
    return count


def _deferred_foreign_keys(cursor) -> str:
    """The deferrable foreign-key constraints of the rows a chunk inserts (legs, deductions), as a
    list for SET CONSTRAINTS, schema-qualified."""
    cursor.execute(
        """
        SELECT string_agg(quote_ident(n.nspname) || '.' || quote_ident(c.conname), ', ' ORDER BY c.conname)
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE c.contype = 'f' AND c.condeferrable
          AND c.conrelid IN ('billing_leg'::regclass, 'billing_deduction'::regclass)
        """
    )
    return cursor.fetchone()[0]


def _dollars(cents: int) -> Decimal:
    return Decimal(cents) / 100


def _assert_balanced(txn: Transaction) -> None:
    """On SQLite, the check PostgreSQL's trigger makes at commit (see the module doc)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*), COALESCE(SUM({sql_cents('amount')}), 0) FROM billing_leg "
            "WHERE transaction_id = %s",
            [txn.pk],
        )
        legs, total = cursor.fetchone()
    if legs < 2 or total != 0:
        raise LedgerError(
            f"daily run transaction #{txn.pk} is unbalanced: {legs} legs summing to {total} cents"
        )
