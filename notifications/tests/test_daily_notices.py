"""Low-balance warnings after the daily run: once per crossing below the member's level, an
optional reminder after N days, nothing new when the run is repeated, and no query per account."""

import datetime
import itertools
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account, Member, ServiceLocation
from billing.models import Deduction
from notifications import events
from notifications.models import Message, NotificationPreference
from notifications.tests.conftest import member_with, prepaid_account

pytestmark = pytest.mark.django_db
D = Decimal
DAY = datetime.date(2026, 3, 2)
NOON_AFTER = datetime.datetime(2026, 3, 3, 18, 0, tzinfo=datetime.UTC)  # the run's day after, at noon


def deduction(account, day, *, after, total="1.50", days=None, account_id=None):
    return Deduction(
        account_id=account_id or account.pk,
        service_day=day,
        kind=Deduction.Kind.DAILY,
        kwh=D("20.000"),
        energy=D(total),
        customer_charge=D("0"),
        riders=D("0"),
        tax=D("0"),
        total=D(total),
        mtd_wh=20000,
        mtd_days=1,
        mtd_energy_cents=150,
        mtd_customer_cents=0,
        mtd_riders_cents=0,
        mtd_tax_cents=0,
        balance_after=D(after),
        avg_daily_cents=150,
        days_remaining=days,
    )


def run(day=DAY):
    with time_machine.travel(NOON_AFTER, tick=False):
        return events.notices_after_daily_run(service_day=day)


def warned(account, notice="low_balance"):
    return list(
        Message.objects.filter(account=account, notice=notice)
        .order_by("notice_day", "channel")
        .values_list("notice_day", "channel")
    )


def test_a_balance_crossing_below_the_policy_level_warns_once_by_each_chosen_channel(policy):
    account = prepaid_account()
    deduction(account, DAY, after="18.50", total="3.00", days=4).save()  # 21.50 -> 18.50
    result = run()
    assert (result.crossings, result.queued) == (1, 2)
    sms = Message.objects.get(account=account, channel="sms")
    assert sms.body == (
        f"Demo Electric Cooperative: acct {account.number} balance $18.50, about 4 days left. "
        "Pay soon to keep your power on. Reply BAL for balance, STOP to opt out"
    )
    email = Message.objects.get(account=account, channel="email")
    assert "below your warning level of $20.00" in email.body


def test_staying_below_the_level_is_not_a_new_warning_every_day(policy):
    account = prepaid_account()
    deduction(account, DAY, after="18.50", total="3.00").save()
    deduction(account, DAY + datetime.timedelta(days=1), after="16.00", total="2.50").save()
    run(DAY)
    run(DAY + datetime.timedelta(days=1))
    assert warned(account) == [(DAY, "email"), (DAY, "sms")]


def test_a_payment_that_lifts_the_balance_makes_the_next_crossing_warn_again(policy):
    account = prepaid_account(member_with(channels="email"))
    day2, day3 = DAY + datetime.timedelta(days=1), DAY + datetime.timedelta(days=2)
    deduction(account, DAY, after="18.50", total="3.00").save()
    deduction(account, day2, after="23.00", total="2.00").save()  # paid $6.50 before day 2: 25.00 -> 23.00
    deduction(account, day3, after="19.99", total="3.01").save()
    for day in (DAY, day2, day3):
        run(day)
    assert warned(account) == [(DAY, "email"), (day3, "email")]


@pytest.mark.parametrize(
    ("before", "after", "warns"),
    [
        ("20.00", "19.99", True),
        ("19.99", "19.98", False),
        ("20.01", "20.00", False),
        ("35.00", "-2.00", True),
    ],
)
def test_the_dollar_rule_is_exact_to_the_cent(policy, before, after, warns):
    account = prepaid_account(member_with(channels="email"))
    deduction(account, DAY, after=after, total=str(D(before) - D(after))).save()
    assert run().crossings == (1 if warns else 0)


def test_a_members_own_dollar_level_replaces_the_policys(policy):
    account = prepaid_account(member_with(channels="email", low_balance_dollars=D("30.00")))
    deduction(account, DAY, after="28.00", total="3.00").save()
    run()
    assert "below your warning level of $30.00" in Message.objects.get(account=account).body


def test_a_days_remaining_level_warns_when_the_estimate_drops_below_it(policy):
    account = prepaid_account(member_with(channels="email", low_balance_unit="days", low_balance_days=5))
    day2, day3 = DAY + datetime.timedelta(days=1), DAY + datetime.timedelta(days=2)
    deduction(account, DAY, after="40.00", days=6).save()
    deduction(account, day2, after="38.00", days=4).save()
    deduction(account, day3, after="36.00", days=3).save()
    for day in (DAY, day2, day3):
        run(day)
    assert warned(account) == [(day2, "email")]
    assert "below your warning level of 5 days of use" in Message.objects.get(account=account).body


def test_muted_low_balance_warnings_are_not_sent(policy):
    account = prepaid_account(member_with(muted_notices=["low_balance"]))
    deduction(account, DAY, after="18.50", total="3.00").save()
    assert run().queued == 0


def test_only_active_prepaid_accounts_are_warned(policy):
    account = prepaid_account()
    Account.objects.filter(pk=account.pk).update(status=Account.Status.DISCONNECTED)
    deduction(account, DAY, after="18.50", total="3.00").save()
    assert run().crossings == 0


def test_a_reminder_follows_after_n_days_once_if_the_balance_is_still_low(policy):
    account = prepaid_account(member_with(channels="email", low_balance_reminder_days=3))
    balances = ["18.50", "17.00", "15.50", "14.00", "12.50", "11.00"]
    previous = D("21.50")
    for n, after in enumerate(balances):
        deduction(
            account, DAY + datetime.timedelta(days=n), after=after, total=str(previous - D(after))
        ).save()
        previous = D(after)
    results = [run(DAY + datetime.timedelta(days=n)) for n in range(len(balances))]
    assert [r.reminders for r in results] == [0, 0, 0, 1, 0, 0]
    assert warned(account, "low_balance_reminder") == [(DAY + datetime.timedelta(days=3), "email")]
    reminder = Message.objects.get(account=account, notice="low_balance_reminder")
    assert "since Mon Mar 2" in reminder.body


def test_no_reminder_once_the_balance_is_back_above_the_level(policy):
    account = prepaid_account(member_with(channels="email", low_balance_reminder_days=2))
    deduction(account, DAY, after="18.50", total="3.00").save()
    deduction(account, DAY + datetime.timedelta(days=2), after="45.00", total="3.00").save()  # paid
    run(DAY)
    assert run(DAY + datetime.timedelta(days=2)).reminders == 0


def test_repeating_the_daily_run_queues_nothing_new(policy):
    accounts = [prepaid_account(member_with(phone=f"+171553201{n:02d}")) for n in range(5)]
    for account in accounts:
        deduction(account, DAY, after="18.50", total="3.00").save()
    first, second = run(), run()
    assert (first.crossings, first.queued) == (5, 10)
    assert (second.crossings, second.queued) == (5, 0)
    assert Message.objects.count() == 10


def test_texts_queued_by_a_night_run_wait_for_the_morning(policy):
    account = prepaid_account()
    deduction(account, DAY, after="18.50", total="3.00").save()
    with time_machine.travel(datetime.datetime(2026, 3, 3, 8, 0, tzinfo=datetime.UTC), tick=False):  # 02:00
        events.notices_after_daily_run(service_day=DAY)
    sms = Message.objects.get(account=account, channel="sms")
    assert sms.send_after == datetime.datetime(2026, 3, 3, 14, 0, tzinfo=datetime.UTC)


# --- Scale ---------------------------------------------------------------------------------------

_numbers = itertools.count(1)


def _bulk_accounts(n: int, *, day: datetime.date) -> None:
    """n active prepaid accounts whose `day` charge took them from $21.00 to $19.00, half of them
    with SMS consent. Plain rows through bulk_create (the services would take minutes)."""
    start = next(_numbers) * 100_000
    members = Member.objects.bulk_create(
        Member(
            first_name="Pat",
            last_name=f"Scale{start + i}",
            email=f"scale{start + i}@example.org",
            mobile_phone=f"+1715532{(start + i) % 10_000:04d}" if i % 2 else "",
            line1="N1 County Road E",
            city="Ladysmith",
            state="WI",
            postal_code="54848",
        )
        for i in range(n)
    )
    NotificationPreference.objects.bulk_create(
        NotificationPreference(member=m, sms_consent=True) for m in members if m.mobile_phone
    )
    locations = ServiceLocation.objects.bulk_create(
        ServiceLocation(line1=f"W{start + i} Deer Trail Rd", city="Hawkins", state="WI", postal_code="54530")
        for i in range(n)
    )
    accounts = Account.objects.bulk_create(
        Account(
            number=f"S{start + i}",
            member=m,
            location=loc,
            billing_mode=Account.BillingMode.PREPAID,
            status=Account.Status.ACTIVE,
        )
        for i, (m, loc) in enumerate(zip(members, locations, strict=True))
    )
    Deduction.objects.bulk_create(
        (deduction(None, day, after="19.00", total="2.00", days=9, account_id=a.pk) for a in accounts),
        batch_size=2000,
    )


def test_ten_thousand_crossings_are_queued_in_as_many_queries_as_a_hundred(
    policy, enqueued, django_capture_on_commit_callbacks
):
    small_day, big_day = DAY, DAY + datetime.timedelta(days=1)
    _bulk_accounts(100, day=small_day)
    _bulk_accounts(10_000, day=big_day)
    counts = {}
    for day, n in ((small_day, 100), (big_day, 10_000)):
        enqueued.clear()
        with (
            django_capture_on_commit_callbacks(execute=True) as callbacks,
            CaptureQueriesContext(connection) as queries,
        ):
            result = run(day)
        assert (result.crossings, result.queued) == (n, n + n // 2)  # email for all, SMS for half
        counts[n] = len(queries)
        assert len(callbacks) == 1  # one after-commit hook hands out every batch
        assert sum(len(b) for b in enqueued) == n + n // 2
        assert max(len(b) for b in enqueued) <= settings.COOP_NOTIFY_BATCH_SIZE
    assert counts[10_000] == counts[100], counts
    assert counts[100] <= 8
