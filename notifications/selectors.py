"""Reads the notifications need: a member's effective preferences, who crossed their low-balance
level on a service day (one query for every account), quiet hours, and an account's balance as a
notice states it."""

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import DecimalField, ExpressionWrapper, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce

from accounts.models import Account
from billing.models import Deduction
from billing.selectors import Balances, account_balances
from coop.calendar import coop_zone, to_local
from coop.money import MoneyField
from notifications.models import QUIET_END, QUIET_START, Message, NotificationPreference
from notifications.notices import Channel, Notice, is_muted
from notifications.rendering import usd

ONE_DAY = datetime.timedelta(days=1)
PREF = "account__member__notification_preference__"
# What a clerk or member may change (notifications.services.preference_update), and what the
# bulk notices read of each preference: those plus its id and the number a problem was seen on.
EDITABLE_PREFERENCES = (
    "channels",
    "muted_notices",
    "low_balance_unit",
    "low_balance_dollars",
    "low_balance_days",
    "low_balance_reminder_days",
    "quiet_hours_start",
    "quiet_hours_end",
    "sms_consent",
    "phone_problem",
)
PREF_FIELDS = ("id", *EDITABLE_PREFERENCES, "phone_problem_number")


def e164(phone) -> str:
    """A member's mobile number as E.164 text ('' when there is none)."""
    if not phone:
        return ""
    return getattr(phone, "as_e164", None) or str(phone)


@dataclass(frozen=True)
class Prefs:
    """A member's preferences as they apply (the defaults when the member has no row)."""

    channels: str = NotificationPreference.Channels.BOTH
    muted: tuple = ()
    unit: str = NotificationPreference.Unit.DOLLARS
    dollars: Decimal | None = None
    days: int | None = None
    reminder_days: int | None = None
    quiet_start: datetime.time = QUIET_START
    quiet_end: datetime.time = QUIET_END
    sms_consent: bool = False
    phone_problem: str = ""
    phone_problem_number: str = ""

    @classmethod
    def of(cls, pref: NotificationPreference | None) -> "Prefs":
        if pref is None:
            return cls()
        return cls(
            channels=pref.channels,
            muted=tuple(pref.muted_notices or ()),
            unit=pref.low_balance_unit,
            dollars=pref.low_balance_dollars,
            days=pref.low_balance_days,
            reminder_days=pref.low_balance_reminder_days,
            quiet_start=pref.quiet_hours_start,
            quiet_end=pref.quiet_hours_end,
            sms_consent=pref.sms_consent,
            phone_problem=pref.phone_problem,
            phone_problem_number=pref.phone_problem_number,
        )

    @classmethod
    def from_row(cls, row: dict, prefix: str = PREF) -> "Prefs":
        """From a values() row that read PREF_FIELDS through `prefix`."""
        if row[prefix + "id"] is None:
            return cls()
        return cls(
            channels=row[prefix + "channels"],
            muted=tuple(row[prefix + "muted_notices"] or ()),
            unit=row[prefix + "low_balance_unit"],
            dollars=row[prefix + "low_balance_dollars"],
            days=row[prefix + "low_balance_days"],
            reminder_days=row[prefix + "low_balance_reminder_days"],
            quiet_start=row[prefix + "quiet_hours_start"],
            quiet_end=row[prefix + "quiet_hours_end"],
            sms_consent=row[prefix + "sms_consent"],
            phone_problem=row[prefix + "phone_problem"],
            phone_problem_number=row[prefix + "phone_problem_number"],
        )

    def phone_flagged(self, number: str) -> bool:
        return bool(self.phone_problem) and self.phone_problem_number == number

    def sms_possible(self, number: str) -> bool:
        return bool(number) and self.sms_consent and not self.phone_flagged(number)

    def threshold_text(self, default: Decimal) -> str:
        if self.unit == NotificationPreference.Unit.DAYS:
            return f"{self.days} day{'s' if self.days != 1 else ''} of use"
        return usd(self.dollars if self.dollars is not None else default)


def channels_for(*, notice: str, prefs: Prefs, email: str, phone: str) -> list[str]:
    """Which channels one notice goes to: the member's chosen ones that can reach them; if none
    can (no consent for texts, no email address), whichever can, email first. Nothing when the
    member turned the notice off (required notices cannot be)."""
    if is_muted(notice, prefs.muted):
        return []
    reachable = {Channel.EMAIL: bool(email), Channel.SMS: prefs.sms_possible(phone)}
    wanted = {
        NotificationPreference.Channels.EMAIL: [Channel.EMAIL],
        NotificationPreference.Channels.SMS: [Channel.SMS],
    }.get(prefs.channels, [Channel.EMAIL, Channel.SMS])
    chosen = [c for c in wanted if reachable[c]]
    if not chosen:
        chosen = [c for c in (Channel.EMAIL, Channel.SMS) if reachable[c]][:1]
    return chosen


def quiet_until(
    now: datetime.datetime, *, start: datetime.time, end: datetime.time
) -> datetime.datetime | None:
    """When quiet hours (start <= local time < end, across midnight when start > end, in the
    cooperative's zone) that contain `now` end; None when `now` is outside them."""
    if start == end:
        return None
    local = to_local(now)
    t = local.time()
    quiet = (t >= start or t < end) if start > end else (start <= t < end)
    if not quiet:
        return None
    day = local.date() if t < end else local.date() + ONE_DAY
    return datetime.datetime.combine(day, end, tzinfo=coop_zone())


# --- Low balance (set-based) -----------------------------------------------------------------------


def _recipient_values() -> list[str]:
    return [
        "account_id",
        "account__number",
        "account__status",
        "account__billing_mode",
        "account__member_id",
        "account__member__first_name",
        "account__member__last_name",
        "account__member__email",
        "account__member__mobile_phone",
        "balance_after",
        "total",
        "days_remaining",
        *(PREF + f for f in PREF_FIELDS),
    ]


def _low_balance_base(service_day: datetime.date, default_threshold: Decimal):
    """The day's daily deductions, with each member's low-balance unit and dollar level (their
    own, else the policy's default). Whether the account is active and prepaid is checked in
    Python (`_is_active_prepaid`): a filter on the account's status here lets PostgreSQL, before
    the day's new rows are analyzed, scan accounts by that index once per deduction instead of
    looking each account up by its primary key (minutes instead of a second for 10,000)."""
    return (
        Deduction.objects.filter(service_day=service_day, kind=Deduction.Kind.DAILY)
        .annotate(
            lb_unit=Coalesce(F(PREF + "low_balance_unit"), Value(NotificationPreference.Unit.DOLLARS)),
            lb_dollars=Coalesce(
                F(PREF + "low_balance_dollars"), Value(default_threshold, output_field=MoneyField())
            ),
        )
        .order_by("account_id")
    )


def _is_active_prepaid(row: dict) -> bool:
    return (
        row["account__status"] == Account.Status.ACTIVE
        and row["account__billing_mode"] == Account.BillingMode.PREPAID
    )


def low_balance_crossings(*, service_day: datetime.date, default_threshold: Decimal) -> list[dict]:
    """Accounts whose daily charge for `service_day` took them below their warning level.

    Dollars: the balance after the charge is below the level and the balance before it
    (balance_after + total) was at or above it. Days: days_remaining is below the member's number
    and the previous day's days_remaining was at or above it (or unknown: the account's first
    day, or a day the run skipped). One query; the dollar rule's "at or above" is checked again in
    Python with Decimals, because SQLite adds decimals in floating point.
    """
    previous_days = Deduction.objects.filter(
        account=OuterRef("account"), kind=Deduction.Kind.DAILY, service_day=service_day - ONE_DAY
    ).values("days_remaining")[:1]
    before = ExpressionWrapper(F("balance_after") + F("total"), output_field=DecimalField())
    dollars = Q(
        lb_unit=NotificationPreference.Unit.DOLLARS,
        balance_after__lt=F("lb_dollars"),
        balance_before__gte=F("lb_dollars") - Value(Decimal("0.01")),
    )
    days = Q(lb_unit=NotificationPreference.Unit.DAYS, days_remaining__lt=F(PREF + "low_balance_days")) & (
        Q(previous_days__isnull=True) | Q(previous_days__gte=F(PREF + "low_balance_days"))
    )
    rows = (
        _low_balance_base(service_day, default_threshold)
        .annotate(balance_before=before, previous_days=Subquery(previous_days))
        .filter(dollars | days)
        .values(*_recipient_values(), "lb_dollars", "lb_unit")
    )
    return [
        row
        for row in rows
        if _is_active_prepaid(row)
        and (
            row["lb_unit"] != NotificationPreference.Unit.DOLLARS
            or row["balance_after"] < row["lb_dollars"] <= row["balance_after"] + row["total"]
        )
    ]


def low_balance_reminders(*, service_day: datetime.date, default_threshold: Decimal) -> list[dict]:
    """Accounts still below their warning level whose member asked for a reminder, when the
    reminder is due: `low_balance_reminder_days` or more after the latest low-balance warning
    and no reminder since that warning. One query."""

    def latest(notice):
        return Subquery(
            Message.objects.filter(account=OuterRef("account"), notice=notice)
            .order_by("-notice_day")
            .values("notice_day")[:1]
        )

    below = Q(lb_unit=NotificationPreference.Unit.DOLLARS, balance_after__lt=F("lb_dollars")) | Q(
        lb_unit=NotificationPreference.Unit.DAYS, days_remaining__lt=F(PREF + "low_balance_days")
    )
    rows = (
        _low_balance_base(service_day, default_threshold)
        .filter(below, **{PREF + "low_balance_reminder_days__isnull": False})
        .annotate(last_warning=latest(Notice.LOW_BALANCE), last_reminder=latest(Notice.LOW_BALANCE_REMINDER))
        .filter(last_warning__isnull=False)
        .values(*_recipient_values(), "lb_dollars", "lb_unit", "last_warning", "last_reminder")
    )
    due = []
    for row in rows:
        if not _is_active_prepaid(row):
            continue
        warned = row["last_warning"]
        if warned + datetime.timedelta(days=row[PREF + "low_balance_reminder_days"]) > service_day:
            continue
        if row["last_reminder"] is not None and row["last_reminder"] >= warned:
            continue
        due.append(row)
    return due


# --- One account -----------------------------------------------------------------------------------


def latest_days_remaining(account_id: int) -> int | None:
    return (
        Deduction.objects.filter(account_id=account_id, kind=Deduction.Kind.DAILY)
        .order_by("-service_day", "-id")
        .values_list("days_remaining", flat=True)
        .first()
    )


def balance_context(account: Account, balances: Balances | None = None) -> dict:
    """`balance` and `days` as a notice about this account states them: the prepaid balance and
    the latest days-remaining estimate, or a postpaid account's amount due. `balances`: as of the
    posting the notice reports (billing.selectors.balances_as_of); default, as of now."""
    balances = balances or account_balances(account)
    if account.billing_mode == Account.BillingMode.PREPAID:
        return {"balance": usd(balances.prepaid_credit), "days": latest_days_remaining(account.pk)}
    due = balances.amount_due
    return {"balance": f"{usd(due)} due" if due > 0 else usd(-due), "days": None}
