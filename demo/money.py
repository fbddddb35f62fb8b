"""Money history for the demo cooperative (`manage.py seed_demo`, called from demo/seed.py).

Every movement goes through the billing services a clerk's or a processor's action would call
(payment_post, payment_return, fee_charge, fee_waive, deposit_collect, deposit_apply,
debt_transfer_to_arrears, plan_enroll, adjustment_post, receivable_add), with explicit past dates
and times, so the ledger, the payments, the receivables and the plans are consistent by
construction and `manage.py ledger_audit` passes. Nothing is written around the services.

That makes it the slow part of the seed: each call is one locked database transaction of twenty to
thirty ORM queries, about 9 ms on SQLite and 18 ms on PostgreSQL on the 2-core benchmark machine,
and an account's history is eight-odd calls. So the history is given to a bounded number of
accounts, the first `history_accounts` in service (active, disconnected or inactive) by number;
the others have no postings at all and their balances read $0.00 (an active prepaid one among them
is therefore at the disconnect level of programs A and B). A bulk-written opening balance for them
was considered and left out: the ledger has no opening-balance (equity) account to post its other
side to, and posting it against cash or billing adjustments would misstate either.

What the history is, over the last HISTORY_DAYS days (never before the first policy version):

- Prepaid: a $50+ starting balance (with the policy's sign-up fees) for accounts enrolled in the
  window, then top-ups of $20-$150 every one to three weeks by card, online, cash or check; a few
  checks returned with the policy's fees charged at once (some fees waived by the manager), one
  member with two returned checks and so no more check payments (the demo policy adds preset D's
  returned-check rule to B + C, see demo/seed.py); a handful of back-billed debts
  moved to arrears and put on a debt-management plan (the plan's share then comes out of each
  top-up); a few members running low (near the low-balance warning level); a few outage credits.
  There is no daily energy deduction yet (the daily run is later work), so a prepaid balance only
  goes down through fees and returned payments: active balances are higher than real ones would
  be. Disconnected and inactive prepaid accounts end at or below $0.00: either nothing in the
  window (their credit ran out on energy, which is not modelled), or a returned check whose fees
  took the balance below zero, sometimes with a small payment since that did not bring it back.
- Postpaid: the security deposit `deposit_required` asks for, taken when the account opened;
  a bill on each cycle's bill day (`receivable_add`, amounts from a seasonal kWh figure); most
  members pay in full before the due date, some late (late fee per the policy), a few fall behind
  and owe past-due amounts; disconnected accounts stopped paying before the disconnect day and were
  charged the collection fee; inactive ones got a final bill with their deposit applied to it.
- Closed and pending accounts get nothing (a closed account takes no payments).

Transactions' `posted_at` (and rows' `created_at`) are the time of the seed: it is when they were
entered into this ledger. Effective dates, `received_at`, due dates and return dates tell the story.
"""

import datetime
import heapq
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from accounts.models import Account, AccountStatusChange, ServiceLocation
from billing import services
from billing.models import (
    ChargedFee,
    DebtPlan,
    LedgerAccount,
    Leg,
    Payment,
    Receivable,
    ReturnedPayment,
    Transaction,
)
from billing.selectors import balances_from, check_restricted_until
from coop.models import Policy
from coop.money import usd

ONE_DAY = datetime.timedelta(days=1)
WAIVED_AFTER = datetime.timedelta(hours=2)  # the manager reviews a return the day it comes back
D = Decimal
ZERO = D("0.00")
S = Account.Status
M = Account.BillingMode
T = Payment.Tender
P = LedgerAccount.Purpose

HISTORY_DAYS = 120  # about four months: four postpaid bills, eight-odd prepaid top-ups
# Accounts given a money history by default. Each costs about eight service calls, 0.08 s on
# SQLite and 0.16 s on PostgreSQL on the 2-core benchmark machine (docs/benchmarks.md): 300 keep
# `seed_demo --members 100000` well under two minutes on PostgreSQL with room for a loaded
# machine, and still cover every account of `./dev start`'s 300 members (about 270 in service).
DEFAULT_HISTORY_ACCOUNTS = 300
IN_SERVICE = (S.ACTIVE, S.DISCONNECTED, S.INACTIVE)
NEEDS_POLICY = ("pay", "return", "waive", "plan", "transfer", "adjust")

# Prepaid top-up tenders (weights): a card at the counter or by phone, the member portal, cash or
# a check at the office.
PREPAID_TENDERS = ((T.ONLINE, 38), (T.CARD, 30), (T.CASH, 20), (T.CHECK, 12))
# Postpaid bill payments: the portal, automatic bank drafts, checks by mail, cards, cash.
POSTPAID_TENDERS = ((T.ONLINE, 30), (T.ACH, 22), (T.CHECK, 28), (T.CARD, 12), (T.CASH, 8))
# Prepaid top-ups: $20-$150 every one to three weeks, each member with a habit that roughly
# matches a household's use ($4-$7.50 a day: weekly payers pay less, three-weekly ones more).
TOP_UP_MIN, TOP_UP_MAX = 20, 150
TOP_UP_INTERVALS = (7, 10, 14, 14, 21, 21)  # days
TOP_UP_PER_DAY = (4.0, 7.5)  # dollars

# Postpaid bills: kWh per day by rate class and month (northern Wisconsin: electric heat and
# heat tape in winter, a little air conditioning in July and August), an energy rate and the
# monthly service availability charge.
KWH_PER_DAY = {
    ServiceLocation.RateClass.RESIDENTIAL: (38, 36, 30, 24, 20, 22, 27, 27, 21, 23, 30, 37),
    ServiceLocation.RateClass.SMALL_COMMERCIAL: (70, 68, 60, 52, 48, 55, 62, 62, 50, 52, 60, 68),
    ServiceLocation.RateClass.LARGE_POWER: (350, 340, 310, 280, 260, 280, 300, 300, 700, 800, 380, 350),
    ServiceLocation.RateClass.IRRIGATION: (10, 10, 10, 40, 180, 420, 520, 460, 160, 20, 10, 10),
}
ENERGY_RATE = D("0.1285")  # $/kWh
HOUSEHOLD = (ServiceLocation.RateClass.RESIDENTIAL, ServiceLocation.RateClass.SMALL_COMMERCIAL)
SERVICE_CHARGE = {
    ServiceLocation.RateClass.RESIDENTIAL: D("32.00"),
    ServiceLocation.RateClass.SMALL_COMMERCIAL: D("45.00"),
    ServiceLocation.RateClass.LARGE_POWER: D("185.00"),
    ServiceLocation.RateClass.IRRIGATION: D("60.00"),
}

RETURN_REASONS = (
    (ReturnedPayment.Reason.INSUFFICIENT_FUNDS, 80),
    (ReturnedPayment.Reason.ACCOUNT_CLOSED, 10),
    (ReturnedPayment.Reason.STOP_PAYMENT, 10),
)
WAIVE_REASONS = (
    "Courtesy: first returned payment in ten years as a member",
    "Bank error confirmed by the member's bank (letter on file)",
    "Courtesy: member made the payment good the same day",
)
BACK_BILL_REASONS = (
    "Back-billed energy: meter under-registered for four months before its replacement",
    "Back-billed energy: unbilled usage found when the meter was exchanged",
    "Unpaid energy and fees from the postpaid service before converting to prepaid",
)
OUTAGE_CREDITS = (
    "Outage credit: 31 hours without power after the ice storm",
    "Outage credit: spoiled food after a 26-hour outage (claim approved)",
    "Credit for a meter misread on the previous statement",
)


@dataclass
class MoneySummary:
    accounts: int = 0  # accounts given a history
    without_history: int = 0  # accounts in service beyond the bound
    payments: int = 0
    payment_total: Decimal = ZERO
    by_tender: Counter = field(default_factory=Counter)
    returned: int = 0
    check_restricted: int = 0
    fees: int = 0
    fee_total: Decimal = ZERO
    waived: int = 0
    bills: int = 0
    bill_total: Decimal = ZERO
    past_due_accounts: int = 0
    past_due_total: Decimal = ZERO
    deposits: int = 0
    deposit_total: Decimal = ZERO
    deposits_applied: int = 0
    plans_active: int = 0
    arrears_total: Decimal = ZERO
    adjustments: int = 0
    transactions: int = 0
    prepaid_credit: Decimal = ZERO
    amount_due: Decimal = ZERO
    deposit_held: Decimal = ZERO
    seconds: float = 0.0

    @property
    def member_balance_total(self) -> Decimal:
        """What the cooperative owes its members less what they owe it (ledger_audit's figure)."""
        return self.prepaid_credit + self.deposit_held - self.amount_due - self.arrears_total

    def summary(self) -> str:
        tenders = ", ".join(f"{T(t).label.lower()} {n:,}" for t, n in self.by_tender.most_common())
        lines = [
            f"Money history for {_n(self.accounts, 'account')} (the last {HISTORY_DAYS} days, through "
            f"the billing services): {_n(self.transactions, 'ledger transaction')} in {self.seconds:.1f} s.",
            f"  Payments: {self.payments:,}, {money(self.payment_total)} ({tenders}); {self.returned:,} "
            f"returned with their fees; {_n(self.check_restricted, 'member')} no longer allowed to pay "
            "by check.",
            f"  Fees: {self.fees:,}, {money(self.fee_total)} ({self.waived:,} waived by the manager). "
            f"Postpaid bills: {self.bills:,}, {money(self.bill_total)}; {money(self.past_due_total)} "
            f"past due on {_n(self.past_due_accounts, 'account')}.",
            f"  Deposits: {self.deposits:,} taken, {money(self.deposit_total)} ({self.deposits_applied:,} "
            f"applied to final bills). Debt-management plans: {self.plans_active:,} active. "
            f"Adjustments: {self.adjustments:,}.",
            f"  Member balances: prepaid credit {money(self.prepaid_credit)}, deposits held "
            f"{money(self.deposit_held)}, amounts due {money(self.amount_due)}, arrears "
            f"{money(self.arrears_total)}: {money(self.member_balance_total)} owed to members in all.",
        ]
        if self.without_history:
            lines.append(
                f"  {self.without_history:,} further accounts in service have no postings "
                "(--history-accounts sets how many get a history)."
            )
        return "\n".join(lines)


def money(amount: Decimal) -> str:
    """$1,234.50 or -$12.00 (an ASCII minus: the seed's summary is printed to a terminal)."""
    return usd(amount, minus="-")


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


@dataclass
class _Step:
    """One service call of an account's story, in time order."""

    at: datetime.datetime
    kind: str
    args: dict = field(default_factory=dict)
    label: str = ""  # names a payment or fee a later step refers to


@dataclass
class _Story:
    account: Account
    steps: list = field(default_factory=list)

    def add(self, at, kind, label="", **args):
        self.steps.append(_Step(at, kind, args, label))


class _History:
    def __init__(
        self,
        *,
        seed: int,
        today: datetime.date,
        zone,
        is_business_day: Callable[[datetime.date], bool],
        clerk,
        manager,
    ):
        self.rng = random.Random(f"{seed}:money")  # apart from the cooperative's own stream
        self.today = today
        self.zone = zone
        self.is_business_day = is_business_day
        self.clerk, self.manager = clerk, manager
        self.policy = Policy.objects.in_force(today)
        first = Policy.objects.order_by("effective_from").values_list("effective_from", flat=True).first()
        self.start = max(today - HISTORY_DAYS * ONE_DAY, first)
        self.last_day = today - ONE_DAY  # everything happens before today
        self.sequence = 0
        self.check_numbers: dict[int, int] = {}
        self.choose_prepaid_tender = self._weighted(PREPAID_TENDERS)
        self.choose_postpaid_tender = self._weighted(POSTPAID_TENDERS)
        self.choose_reason = self._weighted(RETURN_REASONS)

    # --- helpers -------------------------------------------------------------------------------

    def _weighted(self, pairs):
        values, weights = zip(*pairs, strict=True)
        return lambda: self.rng.choices(values, weights=weights)[0]

    def _at(self, day: datetime.date, hour: int, minute: int) -> datetime.datetime:
        return datetime.datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.zone)

    def office_day(self, day: datetime.date, *, forward: bool = False) -> datetime.date:
        step = ONE_DAY if forward else -ONE_DAY
        while not self.is_business_day(day):
            day += step
        return day

    def office_time(self, day: datetime.date, *, forward: bool = False) -> datetime.datetime:
        day = self.office_day(day, forward=forward)
        return self._at(day, self.rng.randint(8, 15), self.rng.randrange(60))

    def payment_time(self, day: datetime.date, tender: str) -> datetime.datetime:
        """Cash and checks at the office on a business day; the rest whenever the member likes."""
        if tender in (T.CASH, T.CHECK):
            return self.office_time(day)
        if tender == T.ACH:
            return self._at(self.office_day(day), 6, self.rng.randrange(60))  # the bank's file
        return self._at(day, self.rng.randint(7, 22), self.rng.randrange(60))

    def reference(self, account: Account, tender: str, at: datetime.datetime) -> str:
        self.sequence += 1
        n = self.sequence
        if tender == T.CHECK:
            number = self.check_numbers.get(account.member_id) or self.rng.randint(1001, 8999)
            self.check_numbers[account.member_id] = number + 1
            return f"{account.number}-{number}"
        prefix = {T.CARD: "CH", T.ONLINE: "WEB", T.ACH: "ACH", T.CASH: "CSH", T.MONEY_ORDER: "MO"}[tender]
        return f"{prefix}-{at:%y%m%d}-{n:07d}"

    def pay(self, story: _Story, at, amount, tender, label=""):
        actor = self.clerk if tender in (T.CASH, T.CHECK, T.MONEY_ORDER) else None
        story.add(
            at,
            "pay",
            label,
            amount=D(amount).quantize(D("0.01")),
            tender=tender,
            reference=self.reference(story.account, tender, at),
            actor=actor,
        )

    def returned(self, story: _Story, paid_at: datetime.datetime, label: str, *, not_after=None):
        """The payment `label` comes back a few business days after it was made. Returns the
        return's time, or None if it would fall on or after `not_after` (or today)."""
        day = paid_at.date() + self.rng.randint(2, 6) * ONE_DAY
        at = self.office_time(day, forward=True)
        limit = min(not_after or self.today, self.today)
        if at.date() >= limit or at <= paid_at:
            return None
        story.add(at, "return", payment=label, reason=self.choose_reason())
        return at

    def fee_amount_total(self) -> Decimal:
        return self.policy.returned_payment_fee + self.policy.returned_payment_collection_fee

    # --- stories -------------------------------------------------------------------------------

    def prepaid_active(self, story: _Story, roles: set[str], *, first_account: bool):
        rng, account, policy = self.rng, story.account, self.policy
        opened = account.opened_on
        threshold = policy.low_balance_threshold_default
        if "low" in roles and opened < self.start:
            # A member running low: a small top-up lately (the credit before it went on energy).
            amount = max(policy.prepaid_minimum_payment, threshold + rng.randint(-8, 12), D(10))
            day = self.last_day - rng.randint(2, 12) * ONE_DAY
            tender = self.choose_prepaid_tender()
            self.pay(story, self.payment_time(max(day, self.start), tender), amount, tender)
            return
        t = self.start + rng.randint(0, 10) * ONE_DAY
        if opened >= self.start:
            # Enrollment at the office: the minimum starting balance plus the sign-up fees.
            at = self.office_time(opened, forward=True)
            fees = [
                (code, memo, amount)
                for code, memo, amount in (
                    ("membership", "Membership fee (new member)", policy.signup_membership_fee),
                    (
                        "account-establishment",
                        "Account establishment fee (new account)",
                        policy.signup_account_establishment_fee,
                    ),
                )
                if amount and (code != "membership" or first_account)
            ]
            start_amount = max(policy.prepaid_minimum_starting_balance, D(50)) + rng.choice(
                (0, 0, 0, 10, 25, 50)
            )
            tender = rng.choice((T.CASH, T.CHECK, T.CARD))
            self.pay(story, at, start_amount + sum((a for _, _, a in fees), ZERO), tender)
            for code, memo, amount in fees:
                story.add(at + datetime.timedelta(minutes=1), "fee", code=code, amount=amount, memo=memo)
            t = opened + rng.randint(5, 16) * ONE_DAY
        day = self.office_day(max(self.start, t - 3 * ONE_DAY), forward=True)
        if "plan" in roles and day <= self.last_day:
            # Back-billed debt moved to arrears and enrolled in a plan by the manager.
            at = self.office_time(day)
            debt = D(rng.randrange(280, 760, 5))
            story.add(at, "transfer", amount=debt, reason=rng.choice(BACK_BILL_REASONS))
            story.add(at + datetime.timedelta(minutes=2), "plan")
        interval = rng.choice(TOP_UP_INTERVALS)
        habit = _round5(interval * rng.uniform(*TOP_UP_PER_DAY))
        if "plan" in roles:  # a member paying off debt tops up modestly: the plan outlives the window
            interval, habit = max(interval, 10), rng.choice((40, 50, 60, 75))
        tender_habit = self.choose_prepaid_tender()
        if "checks" in roles or "restricted" in roles:
            tender_habit = T.CHECK
        payments = []
        while t <= self.last_day:
            tender = tender_habit if rng.random() < 0.8 else self.choose_prepaid_tender()
            amount = habit if rng.random() < 0.7 else _round5(habit * rng.uniform(0.6, 1.5))
            amount = max(amount, policy.prepaid_minimum_payment)
            payments.append((self.payment_time(t, tender), amount, tender))
            t += (interval + rng.randint(-2, 3)) * ONE_DAY
        returns = self._choose_returns(payments, 2 if "restricted" in roles else int("checks" in roles))
        restricted_from = None
        for i, (at, amount, tender) in enumerate(payments):
            if restricted_from and at > restricted_from and tender == T.CHECK:
                tender = T.CASH  # no more checks: the office takes cash
                at = self.payment_time(at.date(), tender)
            label = f"p{i}"
            self.pay(story, at, amount, tender, label)
            if i in returns:
                back = self.returned(story, at, label)
                if back and "restricted" in roles and returns.index(i) == len(returns) - 1:
                    restricted_from = back
                if back and "waive" in roles:
                    story.add(back + WAIVED_AFTER, "waive", reason=rng.choice(WAIVE_REASONS))
        if "credit" in roles:
            self._credit(story, max(self.start, opened))

    def _choose_returns(self, payments, count: int) -> list[int]:
        """Indexes of `count` check payments to return, at least three weeks apart, none in the
        last week (the bank has not sent it back yet)."""
        if not count:
            return []
        candidates = [
            i
            for i, (at, _a, tender) in enumerate(payments)
            if tender == T.CHECK and at.date() < self.last_day - 7 * ONE_DAY
        ]
        chosen: list[int] = []
        for i in self.rng.sample(candidates, len(candidates)):
            if all(abs((payments[i][0] - payments[j][0]).days) >= 21 for j in chosen):
                chosen.append(i)
            if len(chosen) == count:
                break
        return sorted(chosen)

    def prepaid_cut(self, story: _Story, cut_at: datetime.datetime, roles: set[str]):
        """A prepaid account disconnected (or since inactive) at `cut_at`: it ends at or below zero."""
        rng = self.rng
        if "bounced" not in roles:
            return  # the credit ran out on energy: nothing in the window to show
        paid_day = cut_at.date() - rng.randint(6, 14) * ONE_DAY
        if paid_day < max(self.start, story.account.opened_on):
            return
        at = self.payment_time(paid_day, T.CHECK)
        self.pay(story, at, rng.choice((40, 50, 60, 75, 100)), T.CHECK, "bounced")
        back = self.returned(story, at, "bounced", not_after=cut_at.date())
        if back is None:
            story.steps.pop()  # keep the check only if it came back before the cut
            return
        fees = self.fee_amount_total()
        # Sometimes a small payment since, not enough to restore service (the balance stays <= 0).
        small = D(rng.choice((10, 15, 20, 25)))
        day = back.date() + rng.randint(2, 10) * ONE_DAY
        enough = small >= self.policy.prepaid_minimum_payment
        if fees - small >= 0 and enough and day <= self.last_day and rng.random() < 0.5:
            self.pay(story, self.payment_time(day, T.CASH), small, T.CASH)

    def postpaid(self, story: _Story, roles: set[str], *, cut_at=None, inactive_at=None):
        rng, account, policy = self.rng, story.account, self.policy
        cycle = account.billing_cycle
        deposit = services.deposit_required(account=account, on=self.start) if "deposit" in roles else ZERO
        if deposit > 0:  # taken when the account opened (years ago for most), held since
            tender = rng.choice((T.CHECK, T.CASH, T.CARD))
            at = self.office_time(account.opened_on)
            story.add(at, "deposit", amount=deposit, tender=tender, reference=f"DEP-{account.number}")
        end = min(cut_at.date() if cut_at else self.last_day, self.last_day)
        bills = []
        day = self._first_bill_day(cycle.bill_day, max(self.start, account.opened_on + 20 * ONE_DAY))
        while day <= end:
            bills.append((day, self._due_day(day, cycle.due_day)))
            day = self._month_later(day, cycle.bill_day)
        # Farms' and businesses' large services are paid on time; households vary.
        payer = "late" if rng.random() < 0.25 and account.location.rate_class in HOUSEHOLD else "prompt"
        tender_habit = self.choose_postpaid_tender()
        if "returned" in roles:  # pays by check or bank draft, one of which comes back
            payer, tender_habit = "prompt", rng.choice((T.CHECK, T.ACH))
        due = ZERO  # what the member owes, as the statement shows it
        past_due_from = None  # the first bill left unpaid (behind, disconnected, inactive)
        if "behind" in roles and bills:
            past_due_from = bills[-min(len(bills), rng.choice((1, 2)))][0]
        if cut_at is not None:
            # Stopped paying about two bills before the disconnect day.
            unpaid = [b for b in bills if b[1] >= cut_at.date() - 40 * ONE_DAY]
            past_due_from = unpaid[0][0] if unpaid else None
        returns = "returned" in roles
        for i, (bill_day, due_day) in enumerate(bills):
            next_bill = bills[i + 1][0] if i + 1 < len(bills) else self.today
            amount = self._bill_amount(account, bill_day)
            bill_at = self._at(bill_day, 3, rng.randrange(60))  # the nightly billing run
            period = f"{self._month_later(bill_day, bill_day.day, -1):%b %-d}–{bill_day - ONE_DAY:%b %-d}"
            story.add(
                bill_at,
                "bill",
                amount=amount,
                due_date=due_day,
                description=f"Energy bill {period}: {self._kwh(account, bill_day):,} kWh",
                key=f"bill:{account.number}:{bill_day:%Y-%m-%d}",
            )
            due += amount
            skip = past_due_from is not None and bill_day >= past_due_from
            if skip or (payer == "late" and rng.random() < 0.3):
                pay_day = None
            elif payer == "prompt" or rng.random() < 0.3:
                pay_day = bill_day + rng.randint(4, max(4, (due_day - bill_day).days - 1)) * ONE_DAY
            else:
                pay_day = due_day + rng.randint(1, max(1, (next_bill - due_day).days - 1)) * ONE_DAY
            if skip and "behind" in roles and rng.random() < 0.5:
                pay_day = due_day + rng.randint(1, 9) * ONE_DAY  # a partial payment
            late_day = due_day + (policy.late_fee_grace_days + 1) * ONE_DAY
            late = pay_day is None or pay_day >= late_day
            if late and late_day < next_bill and late_day <= self.last_day:
                fee = self._late_fee(due)
                if fee > 0:
                    story.add(
                        self._at(late_day, 2, rng.randrange(60)),
                        "fee",
                        code="late-fee",
                        amount=fee,
                        memo=f"Late fee: bill due {due_day:%b %-d} unpaid after {late_day - ONE_DAY:%b %-d}",
                    )
                    due += fee
            if pay_day is None or pay_day > self.last_day or pay_day >= next_bill:
                continue
            tender = tender_habit
            if rng.random() < 0.15 and "returned" not in roles:
                tender = self.choose_postpaid_tender()
            at = self.payment_time(pay_day, tender)
            if at.date() >= next_bill or at.date() > self.last_day:
                continue
            amount_paid = due if not skip else (due * D(rng.choice(("0.3", "0.4", "0.5")))).quantize(D("1"))
            if amount_paid <= 0:
                continue
            label = f"b{i}"
            self.pay(story, at, amount_paid, tender, label)
            due -= amount_paid
            if returns and tender in (T.CHECK, T.ACH) and i < len(bills) - 1:
                back = self.returned(story, at, label, not_after=next_bill - 5 * ONE_DAY)
                if back is not None:
                    returns = False
                    due += amount_paid + self.fee_amount_total()
                    if "waive" in roles:
                        story.add(back + WAIVED_AFTER, "waive", reason=rng.choice(WAIVE_REASONS))
                        due -= self.policy.returned_payment_collection_fee
                    again = back.date() + rng.randint(1, 3) * ONE_DAY
                    if again < next_bill and again <= self.last_day:
                        at2 = self.payment_time(again, T.CARD)
                        self.pay(story, max(at2, back + datetime.timedelta(hours=1)), due, T.CARD)
                        due = ZERO
        if cut_at is not None and policy.collection_fee:
            story.add(
                cut_at + datetime.timedelta(minutes=5),
                "fee",
                code="collection",
                amount=policy.collection_fee,
                memo="Collection fee: disconnected for non-payment",
            )
        if inactive_at is not None and inactive_at.date() <= self.last_day:
            final_day = inactive_at.date()
            amount = (self._bill_amount(account, cut_at.date()) * D("0.4")).quantize(D("0.01"))
            story.add(
                inactive_at,
                "bill",
                amount=amount,
                due_date=final_day + 20 * ONE_DAY,
                description=f"Final bill: energy to {cut_at.date():%b %-d}, service disconnected",
                key=f"bill:{account.number}:final",
            )
            if deposit > 0:
                story.add(inactive_at + datetime.timedelta(minutes=1), "deposit_apply")
        if "credit" in roles and cut_at is None:
            self._credit(story, max(self.start, account.opened_on))

    def _credit(self, story: _Story, earliest: datetime.date) -> None:
        """A manager's credit adjustment (an outage, a misread) some time in the last weeks."""
        day = self.office_day(self.last_day - self.rng.randint(3, 40) * ONE_DAY)
        if day >= earliest:
            amount = D(self.rng.randrange(10, 40))
            story.add(self.office_time(day), "adjust", amount=amount, reason=self.rng.choice(OUTAGE_CREDITS))

    def _late_fee(self, past_due: Decimal) -> Decimal:
        policy = self.policy
        if policy.late_fee_kind == Policy.LateFeeKind.FLAT:
            return policy.late_fee_amount
        if policy.late_fee_kind == Policy.LateFeeKind.PERCENT and past_due > 0:
            return (past_due * policy.late_fee_percent / 100).quantize(D("0.01"))
        return ZERO

    @staticmethod
    def _month_later(day: datetime.date, dom: int, months: int = 1) -> datetime.date:
        index = day.year * 12 + day.month - 1 + months
        return datetime.date(index // 12, index % 12 + 1, dom)

    def _first_bill_day(self, bill_dom: int, after: datetime.date) -> datetime.date:
        day = datetime.date(after.year, after.month, bill_dom)
        return day if day >= after else self._month_later(day, bill_dom)

    def _due_day(self, bill_day: datetime.date, due_dom: int) -> datetime.date:
        if due_dom > bill_day.day:
            return bill_day.replace(day=due_dom)
        return self._month_later(bill_day, due_dom)

    def _kwh(self, account: Account, bill_day: datetime.date) -> int:
        rate_class = account.location.rate_class
        per_day = KWH_PER_DAY.get(rate_class, KWH_PER_DAY[ServiceLocation.RateClass.RESIDENTIAL])
        # The bill covers the month before the bill day; a stable factor per account.
        factor = 0.6 + (account.pk * 7919 % 100) / 100
        return int(per_day[(bill_day.month - 2) % 12] * 30 * factor * self.rng.uniform(0.9, 1.1))

    def _bill_amount(self, account: Account, bill_day: datetime.date) -> Decimal:
        charge = SERVICE_CHARGE.get(
            account.location.rate_class, SERVICE_CHARGE[ServiceLocation.RateClass.RESIDENTIAL]
        )
        return (D(self._kwh(account, bill_day)) * ENERGY_RATE + charge).quantize(D("0.01"))

    # --- carrying out a story ------------------------------------------------------------------

    def run(self, story: _Story) -> None:
        account = story.account
        made: dict[str, object] = {}
        last_return = None
        order = [(s.at, i, s) for i, s in enumerate(story.steps)]
        heapq.heapify(order)
        while order:
            at, _i, step = heapq.heappop(order)
            a, day = step.args, at.astimezone(self.zone).date()
            if step.kind == "pay":
                tender = a["tender"]
                if tender == T.CHECK and check_restricted_until(account.member, today=day):
                    tender = T.CASH  # the office refuses the check; the member pays cash
                payment, _ = services.payment_post(
                    account=account,
                    amount=a["amount"],
                    tender=tender,
                    reference=a["reference"],
                    received_at=at,
                    actor=a["actor"],
                )
                made[step.label] = payment
            elif step.kind == "return":
                last_return = services.payment_return(
                    payment=made[a["payment"]], reason=a["reason"], actor=self.clerk, returned_on=day
                )
            elif step.kind == "waive":
                fee = (
                    ChargedFee.objects.filter(
                        account=account, code="returned-payment-collection", waiver_transaction__isnull=True
                    )
                    .order_by("-id")
                    .first()
                )
                if fee is not None and last_return is not None:
                    services.fee_waive(fee=fee, actor=self.manager, reason=a["reason"])
            elif step.kind == "fee":
                services.fee_charge(
                    account=account, code=a["code"], amount=a["amount"], memo=a["memo"], actor=None, on=day
                )
            elif step.kind == "bill":
                services.receivable_add(
                    account=account,
                    amount=a["amount"],
                    due_date=a["due_date"],
                    description=a["description"],
                    on=day,
                    idempotency_key=a["key"],
                )
            elif step.kind == "deposit":
                services.deposit_collect(
                    account=account,
                    amount=a["amount"],
                    tender=a["tender"],
                    reference=a["reference"],
                    actor=self.clerk,
                    on=day,
                )
            elif step.kind == "deposit_apply":
                services.deposit_apply(account=account, actor=self.clerk, reason="final bill", on=day)
            elif step.kind == "transfer":
                services.debt_transfer_to_arrears(
                    account=account, amount=a["amount"], actor=self.manager, reason=a["reason"], on=day
                )
            elif step.kind == "plan":
                services.plan_enroll(account=account, actor=self.manager, on=day)
            elif step.kind == "adjust":
                services.adjustment_post(
                    account=account, amount=a["amount"], actor=self.manager, reason=a["reason"], on=day
                )
            else:  # pragma: no cover - a typo in a story
                raise ValueError(step.kind)


def _round5(amount: float) -> int:
    """To the nearest $5, within the top-up range."""
    return min(TOP_UP_MAX, max(TOP_UP_MIN, 5 * round(amount / 5)))


def _assign_roles(rng: random.Random, accounts: list, *, start: datetime.date) -> dict[int, set[str]]:
    """Who gets which part of the story (a few of each, at least one where there is anyone to
    give it to). The member login's account (the first) keeps a plain one."""
    roles: dict[int, set[str]] = {a.pk: set() for a in accounts}
    kinds: dict[tuple[str, str], list] = {}
    for a in accounts[1:]:
        kinds.setdefault((a.billing_mode, a.status), []).append(a)

    def pick(pool, share, at_least=1):
        n = min(len(pool), max(at_least, round(len(pool) * share)))
        return rng.sample(pool, n)

    def give(role, chosen):
        for a in chosen:
            roles[a.pk].add(role)
        return chosen

    # Prepaid in service: the special stories go to accounts opened before the window (a full
    # window of top-ups), one story each.
    prepaid = kinds.get((M.PREPAID, S.ACTIVE), [])
    free = [a for a in prepaid if a.opened_on < start]
    rng.shuffle(free)
    for role, share in (("restricted", 0), ("plan", 0.05), ("checks", 0.04), ("low", 0.06)):
        n = min(len(free), max(1, round(len(prepaid) * share)))
        give(role, free[:n])
        free = free[n:]
    for a in prepaid:
        if roles[a.pk] & {"restricted", "checks"} and rng.random() < 0.5:
            roles[a.pk].add("waive")
    give("credit", pick([a for a in prepaid if "low" not in roles[a.pk]], 0.02))
    for status in (S.DISCONNECTED, S.INACTIVE):
        give("bounced", pick(kinds.get((M.PREPAID, status), []), 0.5))

    postpaid = kinds.get((M.POSTPAID, S.ACTIVE), [])
    households = [a for a in postpaid if a.location.rate_class in HOUSEHOLD]
    for status in (S.ACTIVE, S.DISCONNECTED, S.INACTIVE):
        give("deposit", kinds.get((M.POSTPAID, status), []))
    give("behind", pick(households, 0.06))
    for a in give("returned", pick([a for a in households if "behind" not in roles[a.pk]], 0.04)):
        if rng.random() < 0.4:
            roles[a.pk].add("waive")
    give("credit", pick(postpaid, 0.02))
    if accounts[0].billing_mode == M.POSTPAID:
        roles[accounts[0].pk].add("deposit")
    return roles


def build_history(
    *,
    seed: int,
    today: datetime.date,
    zone,
    is_business_day: Callable[[datetime.date], bool],
    clerk,
    manager,
    limit: int,
    progress: Callable[[str], None] | None = None,
) -> MoneySummary:
    """Give the first `limit` accounts in service their money history (see the module's doc)."""
    started = time.monotonic()
    say = progress or (lambda _msg: None)
    summary = MoneySummary()
    in_service = Account.objects.filter(status__in=IN_SERVICE)
    accounts = list(
        in_service.select_related("member", "location", "billing_cycle").order_by("number")[: max(limit, 0)]
    )
    summary.without_history = max(0, in_service.count() - len(accounts)) if limit else in_service.count()
    if not accounts:
        return summary
    history = _History(
        seed=seed, today=today, zone=zone, is_business_day=is_business_day, clerk=clerk, manager=manager
    )
    rng = history.rng
    ids = [a.pk for a in accounts]
    trail = {
        (account_id, to_status): changed_at.astimezone(zone)
        for account_id, to_status, changed_at in AccountStatusChange.objects.filter(
            account_id__in=ids, to_status__in=(S.DISCONNECTED, S.INACTIVE)
        ).values_list("account_id", "to_status", "changed_at")
    }
    # A member's first account pays the membership fee on enrollment; a later one does not.
    first_of_member: dict[int, tuple] = {}
    for member_id, pk, opened in Account.objects.filter(
        member_id__in={a.member_id for a in accounts}
    ).values_list("member_id", "pk", "opened_on"):
        key = (opened or today, pk)
        if member_id not in first_of_member or key < first_of_member[member_id]:
            first_of_member[member_id] = key
    roles = _assign_roles(rng, accounts, start=history.start)

    for n, account in enumerate(accounts, 1):
        story = _Story(account)
        r = roles[account.pk]
        cut_at = trail.get((account.pk, S.DISCONNECTED))
        if account.billing_mode == M.PREPAID:
            if account.status == S.ACTIVE:
                first = first_of_member[account.member_id][1] == account.pk
                history.prepaid_active(story, r, first_account=first)
            elif cut_at is not None:
                history.prepaid_cut(story, cut_at, r)
        else:
            inactive_at = trail.get((account.pk, S.INACTIVE)) if account.status == S.INACTIVE else None
            history.postpaid(
                story, r, cut_at=cut_at if account.status != S.ACTIVE else None, inactive_at=inactive_at
            )
        # Payments, returns and plans follow the policy in force on their day: none before the first.
        story.steps = [s for s in story.steps if s.at.date() >= history.start or s.kind not in NEEDS_POLICY]
        history.run(story)
        if n % 100 == 0 or n == len(accounts):
            elapsed = time.monotonic() - started
            say(f"  {n:>9,} / {len(accounts):,} accounts' money history   ({elapsed:6.1f} s)")

    summary.accounts = len(accounts)
    _tally(summary, today=today)
    summary.seconds = time.monotonic() - started
    return summary


def _tally(summary: MoneySummary, *, today: datetime.date) -> None:
    """The summary's figures, read back from what the services wrote (summed in Python: SQLite
    adds decimals in floating point)."""
    for tender, amount, status in Payment.objects.values_list("tender", "amount", "status"):
        summary.payments += 1
        summary.payment_total += amount
        summary.by_tender[tender] += 1
        summary.returned += status == Payment.Status.RETURNED
    for amount, waived in ChargedFee.objects.values_list("amount", "waiver_transaction_id"):
        summary.fees += 1
        summary.fee_total += amount
        summary.waived += waived is not None
    past_due: dict[int, Decimal] = {}
    for kind, amount, open_amount, due_date, account_id in Receivable.objects.values_list(
        "kind", "amount", "open_amount", "due_date", "account_id"
    ):
        if kind == Receivable.Kind.BILL:
            summary.bills += 1
            summary.bill_total += amount
        if open_amount and due_date < today:
            past_due[account_id] = past_due.get(account_id, ZERO) + open_amount
    summary.past_due_accounts = len(past_due)
    summary.past_due_total = sum(past_due.values(), ZERO)
    deposits = Leg.objects.filter(
        transaction__kind=Transaction.Kind.DEPOSIT_COLLECT, ledger_account__purpose=P.DEPOSIT_HELD
    ).values_list("amount", flat=True)
    for amount in deposits:
        summary.deposits += 1
        summary.deposit_total -= amount
    summary.deposits_applied = Transaction.objects.filter(kind=Transaction.Kind.DEPOSIT_APPLY).count()
    summary.adjustments = Transaction.objects.filter(idempotency_key__startswith="adjustment:").count()
    summary.plans_active = DebtPlan.objects.filter(status=DebtPlan.Status.ACTIVE).count()
    returned_checks = Payment.objects.filter(return_record__isnull=False, tender=T.CHECK)
    members = {p.account.member for p in returned_checks.select_related("account__member")}
    summary.check_restricted = sum(1 for m in members if check_restricted_until(m, today=today))
    totals: dict[str, Decimal] = {}
    for purpose, balance in LedgerAccount.objects.filter(account__isnull=False).values_list(
        "purpose", "balance"
    ):
        totals[purpose] = totals.get(purpose, ZERO) + balance
    balances = balances_from(totals)
    summary.prepaid_credit, summary.deposit_held = balances.prepaid_credit, balances.deposit_held
    summary.amount_due, summary.arrears_total = balances.amount_due, balances.arrears
    summary.transactions = Transaction.objects.count()
