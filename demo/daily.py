"""The demo cooperative's last 60 days of prepaid metering, run through the real daily run.

Every prepaid account in service gets a meter read a day (a few missing, so the run estimates
them), an opening prepaid balance chosen so that after 60 days of deductions the accounts spread
over every state a clerk should see — comfortably in credit, near the low-balance threshold, at the
disconnect level (pending disconnection) and disconnected with a debt — and then
`billing.daily.daily_run` runs each of the 60 days in order. The opening balances are one balanced
ledger transaction (an adjustment against the cooperative's adjustments account), so
`ledger_audit` passes.
"""

import datetime
import random
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import OuterRef, Subquery, Sum
from django.utils import timezone

from accounts.models import Account
from billing.daily import daily_run, prepaid_ledger_accounts_ensure
from billing.ledger import coop_ledger_account, ledger_apply_legs
from billing.models import LedgerAccount, Leg, Tariff, Transaction
from billing.selectors import member_amount
from billing.tariffs import rider_create, tariff_create, tax_rate_create
from coop.models import Policy
from demo.seed import _RowWriter
from meters.models import MeterInstallation, MeterRead

P = LedgerAccount.Purpose
DAYS = 60
MISSING_READ_PERCENT = 1.5


@dataclass
class DailySummary:
    days: int = 0
    accounts: int = 0
    reads: int = 0
    estimated: int = 0
    deductions: int = 0
    low_balance: int = 0
    at_disconnect_level: int = 0
    member_balance_total: Decimal = Decimal("0.00")

    def summary(self) -> str:
        from demo.money import money

        return (
            f"Daily prepaid history: {self.days} days run for {self.accounts:,} prepaid accounts "
            f"({self.reads:,} reads, {self.estimated:,} estimated; {self.deductions:,} deductions). "
            f"Now {self.low_balance:,} below the low-balance threshold and {self.at_disconnect_level:,} at "
            f"the disconnect level; {money(self.member_balance_total)} owed to members in all."
        )


def ensure_demo_tariff(today: datetime.date) -> Tariff:
    """A residential tariff in force well before the history starts: a customer charge, winter
    blocks (the first 1,000 kWh cheaper), a flat summer rate, a power cost adjustment and tax."""
    start = (today - datetime.timedelta(days=DAYS + 40)).replace(day=1)
    tariff = Tariff.objects.filter(code="RES", effective_from__lte=start).first()
    if tariff is not None:
        return tariff
    # Through the rate services like a manager's (backdated: the demo's history starts in the past).
    tariff = tariff_create(
        actor=None,
        code="RES",
        name="Residential service",
        effective_from=start,
        customer_charge=Decimal("32.50"),
        blocks=[
            {"months": "1,2,3,4,5,10,11,12", "up_to_kwh": 1000, "rate": Decimal("0.109500")},
            {"months": "1,2,3,4,5,10,11,12", "up_to_kwh": None, "rate": Decimal("0.098500")},
            {"months": "6,7,8,9", "up_to_kwh": None, "rate": Decimal("0.118000")},
        ],
        backdated=True,
    )
    rider_create(
        actor=None, code="PCA", name="Power cost adjustment", rate=Decimal("0.004200"), effective_from=start
    )
    tax_rate_create(actor=None, name="Wisconsin sales tax", percent=Decimal("5.5000"), effective_from=start)
    return tariff


def build_daily_history(*, today: datetime.date, seed: int, days: int = DAYS, progress=None) -> DailySummary:
    say = progress or (lambda _msg: None)
    rng = random.Random(seed + 60)
    result = DailySummary()
    first_day = today - datetime.timedelta(days=days)
    policy = Policy.objects.in_force(today)
    threshold = policy.low_balance_threshold_default
    with transaction.atomic():
        ensure_demo_tariff(today)
        meter = MeterInstallation.objects.filter(location_id=OuterRef("location_id"), removed_on__isnull=True)
        # Every meter in service is read (postpaid ones too); only prepaid accounts get openings.
        accounts = list(
            Account.objects.in_service()
            .annotate(meter_id=Subquery(meter.values("meter_id")[:1]))
            .filter(meter_id__isnull=False)
            .order_by("pk")
            .values_list("pk", "status", "meter_id", "billing_mode")
        )
        result.accounts = sum(1 for a in accounts if a[3] == Account.BillingMode.PREPAID)
        # Accounts with a money history already hold credit from their top-ups: the opening
        # adjustment makes up the difference to the target.
        credit = {
            pk: member_amount(P.PREPAID_CREDIT, balance)
            for pk, balance in LedgerAccount.objects.filter(purpose=P.PREPAID_CREDIT).values_list(
                "account_id", "balance"
            )
        }
        writer = _RowWriter(batch_size=5000)
        columns = ["meter", "day", "kwh", "quality", "source", "source_name"]
        buffer, openings = [], []
        for pk, status, meter_id, mode in accounts:
            active = status == Account.Status.ACTIVE
            mean = rng.uniform(9, 38) if active else 0.0
            for n in range(days):
                day = first_day + datetime.timedelta(days=n)
                if active and rng.random() * 100 < MISSING_READ_PERCENT:
                    continue  # the run estimates it
                weekend = 1.15 if day.weekday() >= 5 else 1.0
                kwh = (
                    Decimal(str(round(max(0.0, rng.gauss(mean * weekend, mean * 0.25)), 3)))
                    if active
                    else Decimal(0)
                )
                buffer.append(
                    (meter_id, day, kwh, MeterRead.Quality.ACTUAL, MeterRead.Source.CSV, "demo-ami.csv")
                )
            if len(buffer) >= 50_000:
                writer.write(MeterRead, columns, buffer)
                result.reads += len(buffer)
                buffer = []
            if mode != Account.BillingMode.PREPAID:
                continue
            # What 60 days will cost, roughly, and where the account should end up.
            # (weekends use 15% more; energy and rider about 11.4 cents a kWh; 5.5% tax)
            cost = Decimal(str(round(mean * 1.043 * days * 0.1137 + days * 32.5 / 30.4, 2))) * Decimal(
                "1.055"
            )
            target = _target(rng, active, threshold, len(openings))
            openings.append((pk, target + cost - credit.get(pk, Decimal(0))))
        writer.write(MeterRead, columns, buffer)
        result.reads += len(buffer)
        writer.reset_sequences([MeterRead])
        _post_openings(openings, first_day)
    say(f"  {result.reads:,} reads for {result.accounts:,} prepaid accounts; running {days} days")
    for n in range(days):
        run = daily_run(day=first_day + datetime.timedelta(days=n), notify=False)
        result.days += 1
        result.estimated += run.estimated_reads
        result.deductions += run.deductions
        if (n + 1) % 10 == 0:
            say(f"  daily run {run.service_day}: {run.deductions:,} deductions")
    result.low_balance, result.at_disconnect_level = run.low_balance, run.at_disconnect_level
    # As ledger_audit reports it: minus the sum of the member ledger accounts' debit balances.
    debit = LedgerAccount.objects.filter(account__isnull=False).aggregate(t=Sum("balance"))["t"]
    result.member_balance_total = -(debit or Decimal("0.00"))
    return result


def _target(rng: random.Random, active: bool, threshold: Decimal, index: int) -> Decimal:
    """Where an account's balance should end. Of every ten active accounts seven are comfortably in
    credit, two near the low-balance threshold and one at the disconnect level (pending
    disconnection); disconnected ones owe a little."""
    if not active:
        return Decimal(rng.randrange(-4000, -500)) / 100
    bucket = index % 10
    if bucket in (3, 7):
        low, high = max(threshold - 12, Decimal("4")), max(threshold - 3, Decimal("6"))
    elif bucket == 5:
        low, high = Decimal("-8"), Decimal("0")
    else:
        low, high = threshold + 20, threshold + 180
    return Decimal(rng.randrange(int(low * 100), int(high * 100) + 1)) / 100


def _post_openings(openings, day: datetime.date) -> None:
    """One balanced adjustment moving each account's prepaid credit by its amount (positive: more
    credit)."""
    prepaid_ledger_accounts_ensure()
    ledger = dict(
        LedgerAccount.objects.filter(purpose=P.PREPAID_CREDIT, account__isnull=False).values_list(
            "account_id", "pk"
        )
    )
    amounts = [(ledger[pk], -amount.quantize(Decimal("0.01"))) for pk, amount in openings if amount]
    if not amounts:
        return
    txn = Transaction.objects.create(
        kind=Transaction.Kind.ADJUSTMENT,
        effective_date=day,
        memo="Demo: prepaid balances set for the daily history",
        idempotency_key=f"demo-opening:{day}:{timezone.now().isoformat()}",
    )
    adjustments = coop_ledger_account(P.ADJUSTMENTS)
    total = sum((a for _, a in amounts), Decimal(0))
    Leg.objects.bulk_create(
        [Leg(transaction=txn, ledger_account_id=la, amount=a) for la, a in amounts]
        + [Leg(transaction=txn, ledger_account=adjustments, amount=-total)],
        batch_size=2000,
    )
    ledger_apply_legs(transaction_id=txn.pk)
