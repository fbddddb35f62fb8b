"""seed_demo: a believable demo cooperative, valid by construction, in an empty database only."""

import datetime
import io
import re
import zoneinfo
from collections import Counter
from decimal import Decimal

import phonenumbers
import pytest
import time_machine
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.models import Count, Q
from django.test import RequestFactory, override_settings
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Account, AccountStatusChange, Member, ServiceLocation, validate_phone_for_region
from billing import services as billing_services
from billing.exceptions import PaymentRefused
from billing.models import ChargedFee, DebtPlan, Payment, Receivable, ReturnedPayment, Transaction
from billing.selectors import account_balances, amount_past_due, check_restricted_until, receivables_audit
from coop import roles
from coop.models import BillingCycle, OfficeClosure, Policy, WeatherHold
from coop.money import split
from demo.money import HISTORY_DAYS, money
from meters.models import Meter, MeterInstallation

MEMBERS = 60
# A Monday in the cooperative's zone; the Friday after Thanksgiving is that week.
NOW = datetime.datetime(2026, 11, 23, 10, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=-6)))
TODAY = NOW.date()

S = Account.Status
M = Account.BillingMode


@pytest.fixture(autouse=True)
def wisconsin_cooperative(settings):
    settings.TIME_ZONE = "America/Chicago"
    settings.COOP_HOLIDAY_STATE = "WI"
    settings.PHONENUMBER_DEFAULT_REGION = "US"
    settings.DEBUG = True  # seed_demo refuses without it (published passwords)


def seed(members: int = MEMBERS, **options) -> str:
    out = io.StringIO()
    call_command("seed_demo", members=members, stdout=out, **options)
    return out.getvalue()


@pytest.fixture
def seeded(db):
    """The cooperative without its money history (the history has tests of its own, below)."""
    with time_machine.travel(NOW, tick=True):
        yield seed(history_accounts=0, daily_days=0)


def table_counts() -> dict:
    return {
        model.__name__: model.objects.count()
        for model in (Member, ServiceLocation, Meter, MeterInstallation, Account, AccountStatusChange)
    }


def test_builds_the_members_with_accounts_in_every_status_and_both_modes(seeded):
    assert Member.objects.count() == MEMBERS
    statuses = Counter(Account.objects.values_list("status", flat=True))
    modes = Counter(Account.objects.values_list("billing_mode", flat=True))
    assert set(statuses) == set(S.values)
    assert set(modes) == set(M.values)
    assert statuses[S.ACTIVE] > MEMBERS / 2
    assert f"Seeded {MEMBERS} members" in seeded
    # Every member has a place and an account there; a few have two places.
    assert not Member.objects.filter(accounts__isnull=True).exists()
    assert ServiceLocation.objects.count() >= MEMBERS


def test_postpaid_accounts_have_a_cycle_and_prepaid_ones_none_and_qualify_for_program_b(seeded):
    assert not Account.objects.postpaid().filter(billing_cycle__isnull=True).exists()
    assert not Account.objects.prepaid().filter(billing_cycle__isnull=False).exists()
    prepaid_locations = ServiceLocation.objects.filter(accounts__billing_mode=M.PREPAID).distinct()
    assert prepaid_locations.exists()
    for location in prepaid_locations:
        assert (location.phase, location.amperage, location.meter_base, location.rate_class) == (
            "single",
            200,
            "self_contained",
            "residential",
        )


def test_every_phone_is_valid_for_the_region_and_every_email_unique(seeded):
    phones = [m.mobile_phone for m in Member.objects.exclude(mobile_phone="")]
    assert len(phones) > MEMBERS / 2
    for phone in phones:
        validate_phone_for_region(phone)  # raises ValidationError if not
        assert phonenumbers.is_valid_number_for_region(phone, "US")
    assert len({str(p) for p in phones}) == len(phones)

    emails = list(Member.objects.exclude(email="").values_list("email", flat=True))
    assert len(emails) == len(set(emails))
    assert Member.objects.filter(Q(email="") | Q(mobile_phone="")).exists()  # some go without
    # The model's own validation passes on every row written around it.
    for model in (Member, ServiceLocation, Meter, Account):
        for obj in model.objects.all()[:40]:
            obj.full_clean()


def test_each_location_has_one_open_account_at_most_and_an_installed_meter(seeded):
    open_per_location = (
        Account.objects.filter(status__in=Account.OPEN_STATUSES)
        .values("location")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    assert not open_per_location.exists()
    assert not ServiceLocation.objects.filter(meter_installations__isnull=True).exists()
    assert MeterInstallation.objects.filter(installed_on__lt=TODAY, removed_on__isnull=True).count() == (
        ServiceLocation.objects.count()
    )
    assert Meter.objects.filter(installations__isnull=True).exists()  # spares on the shelf
    assert all(re.fullmatch(r"AMI-\d{8}", s) for s in Meter.objects.values_list("serial", flat=True))
    assert all(re.fullmatch(r"\d{7}", n) for n in Account.objects.values_list("number", flat=True))


def test_dates_and_status_trail_tell_a_consistent_story(seeded):
    now = datetime.datetime.now(datetime.UTC)
    for account in Account.objects.prefetch_related("status_changes"):
        assert account.status_changed_at <= now
        if account.status == S.PENDING:
            assert account.opened_on is None
            assert not account.status_changes.all()
            continue
        assert account.opened_on < TODAY
        assert (account.closed_on is not None) == (account.status == S.CLOSED)
        if account.closed_on:
            assert account.opened_on < account.closed_on
        trail = sorted(account.status_changes.all(), key=lambda c: c.changed_at)
        assert trail[0].from_status == S.PENDING
        assert trail[-1].to_status == account.status
        assert trail[-1].changed_at == account.status_changed_at
        for earlier, later in zip(trail, trail[1:], strict=False):
            assert later.from_status == earlier.to_status
            assert later.to_status in Account.ALLOWED_TRANSITIONS[S(later.from_status)]


def test_logins_are_in_their_groups_and_can_sign_in(seeded, client):
    User = get_user_model()
    for username, password, group in (
        ("clerk", "clerk-demo", roles.CLERK),
        ("manager", "manager-demo", roles.MANAGER),
        ("auditor", "auditor-demo", roles.AUDITOR),
        ("admin", "admin-demo", None),
    ):
        assert f"{username:<8}  {password}" in seeded  # printed as given here
        user = User.objects.get(username=username)
        assert user.is_staff
        assert list(user.groups.values_list("name", flat=True)) == ([group] if group else [])
        # Through the admin's login form: django-axes needs the request (client.login() has none).
        response = client.post("/admin/login/?next=/admin/", {"username": username, "password": password})
        assert response.status_code == 302, response.content.decode()
        assert client.get("/admin/").status_code == 200
        client.logout()
    assert User.objects.get(username="admin").is_superuser
    assert "http://127.0.0.1:8000/admin/" in seeded

    member_user = User.objects.get(username="member")
    assert not member_user.is_staff
    assert member_user.member.accounts.get().status == S.ACTIVE
    assert member_user.member.email and member_user.member.mobile_phone
    # The member pages do not exist yet: the password is right, through the same backends.
    assert authenticate(RequestFactory().post("/"), username="member", password="member-demo") == member_user


def test_policy_calendar_and_cycle_are_in_place(seeded):
    policy = Policy.objects.in_force(TODAY)
    assert policy.effective_from == datetime.date(2025, 11, 23)
    assert policy.prepaid_required_amperage == 200  # program B
    assert BillingCycle.objects.filter(is_active=True).exists()  # schedule C's
    manager = get_user_model().objects.get(username="manager")
    closures = OfficeClosure.objects.order_by("start_date")
    assert [c.start_date for c in closures] == [datetime.date(2026, 7, 22), datetime.date(2026, 11, 27)]
    assert all(c.reason and c.entered_by == manager for c in closures)
    hold = WeatherHold.objects.get()
    assert (hold.start_date, hold.end_date) == (datetime.date(2026, 1, 20), datetime.date(2026, 1, 22))
    assert hold.entered_by == manager and hold.reason


def test_running_again_refuses_and_adds_nothing(seeded):
    before = table_counts()
    with pytest.raises(CommandError, match="already has demo data"):
        seed()
    assert table_counts() == before


def test_if_empty_leaves_a_seeded_database_alone_and_prints_the_logins(seeded):
    before = table_counts()
    out = io.StringIO()
    call_command("seed_demo", "--if-empty", "--members", "5", stdout=out)
    assert table_counts() == before
    assert "not seeding" in out.getvalue()
    assert re.search(r"clerk\s+clerk-demo\s+Billing clerk", out.getvalue())


def test_services_carry_on_after_the_seed(seeded):
    """Rows were written with explicit ids: new ones must not collide (PostgreSQL sequences)."""
    member = account_services.member_create(
        first_name="Ann",
        last_name="Nygaard",
        line1="N1 Main St",
        city="Bruce",
        state="WI",
        postal_code="54819",
    )
    location = account_services.location_create(
        line1="N1 Main St", city="Bruce", state="WI", postal_code="54819"
    )
    account = account_services.account_open(
        actor=None, member=member, location=location, billing_mode=M.PREPAID
    )
    assert member.pk > Member.objects.exclude(pk=member.pk).order_by("-pk").first().pk
    assert (
        int(account.number) == int(Account.objects.exclude(pk=account.pk).order_by("-number")[0].number) + 1
    )
    Meter.objects.create(serial="AMI-99999999")


def test_refuses_with_debug_off(db, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        seed(members=5)
    assert not Member.objects.exists()


def test_a_leap_day_loads_the_policy_a_year_before(db):
    with time_machine.travel(datetime.datetime(2028, 2, 29, 12, 0, tzinfo=datetime.UTC), tick=True):
        seed(members=12)
    assert Policy.objects.get().effective_from == datetime.date(2027, 2, 28)
    assert Member.objects.count() == 12


# --- Money history ---------------------------------------------------------------------------------


def audit() -> str:
    out = io.StringIO()
    call_command("ledger_audit", stdout=out)
    return out.getvalue()


def prepaid_credit(account) -> Decimal:
    return account_balances(account).prepaid_credit


@pytest.fixture(scope="class")
def output(django_db_setup, django_db_blocker):
    """One seeded cooperative with its money history (at 60 members every account in service has
    one), shared by the tests of TestMoneyHistory: seeding it once keeps them fast. Its
    transaction is rolled back at the end of the class; each test runs in a savepoint inside it."""
    with (
        django_db_blocker.unblock(),
        override_settings(
            TIME_ZONE="America/Chicago", COOP_HOLIDAY_STATE="WI", PHONENUMBER_DEFAULT_REGION="US", DEBUG=True
        ),
        time_machine.travel(NOW, tick=True),
        transaction.atomic(),
    ):
        yield seed()
        transaction.set_rollback(True)


@pytest.mark.django_db
class TestMoneyHistory:
    def test_ledger_audit_passes_and_agrees_with_the_summary(self, output):
        last = audit().strip().splitlines()[-1]
        assert last.startswith("ledger_audit ok")
        total = re.search(r"member_balance_total=(-?[\d.]+)", last).group(1)
        # The daily prepaid history runs after the money history: its summary has the final figure.
        assert output.rindex(f"{money(Decimal(total))} owed to members in all") > output.index(
            "Daily prepaid"
        )
        assert (
            Transaction.objects.count()
            > 5 * Account.objects.filter(transactions__isnull=False).distinct().count()
        )

    def test_the_summary_reports_payments_fees_returns_plans_and_deposits(self, output):
        assert re.search(r"Money history for \d+ accounts", output)
        for words in (
            "Payments:",
            "returned with their fees",
            "no longer allowed to pay by check",
            "Fees:",
            "waived by the manager",
            "Postpaid bills:",
            "Deposits:",
            "Debt-management plans:",
            "Member balances: prepaid credit",
        ):
            assert words in output
        assert "have no postings" not in output  # every account in service has its history

    def test_every_account_in_service_has_a_history_and_closed_or_pending_ones_none(self, output):
        in_service = Account.objects.filter(status__in=(S.ACTIVE, S.DISCONNECTED, S.INACTIVE))
        with_postings = Account.objects.filter(transactions__isnull=False).distinct()
        assert set(with_postings) <= set(in_service)
        assert Account.objects.filter(status=S.ACTIVE).exclude(pk__in=with_postings).count() == 0

    def test_payments_come_in_several_tenders_all_received_in_the_past(self, output):
        tenders = Counter(Payment.objects.values_list("tender", flat=True))
        assert {"card", "online", "cash", "check"} <= set(tenders)
        assert all(n > 1 for n in tenders.values())
        received = list(Payment.objects.values_list("received_at", flat=True))
        assert timezone.localdate(max(received)) < TODAY
        assert timezone.localdate(min(received)) >= TODAY - datetime.timedelta(days=HISTORY_DAYS)
        assert not Transaction.objects.filter(effective_date__gte=TODAY).exists()
        # Counter payments were taken by the clerk on a business day; the portal takes no actor.
        clerk = get_user_model().objects.get(username="clerk")
        for payment in Payment.objects.filter(tender__in=("cash", "check")):
            assert payment.actor == clerk
            assert payment.received_at.astimezone(zoneinfo.ZoneInfo("America/Chicago")).weekday() < 5
        assert not Payment.objects.filter(tender="online", actor__isnull=False).exists()

    def test_prepaid_members_top_up_20_to_150_dollars_every_one_to_three_weeks(self, output):
        top_ups = Payment.objects.filter(account__billing_mode=M.PREPAID)
        amounts = [p.amount for p in top_ups]
        assert amounts and all(Decimal("10.00") <= a <= Decimal("300.00") for a in amounts)
        assert sum(Decimal("20.00") <= a <= Decimal("150.00") for a in amounts) > 0.9 * len(amounts)
        gaps = []
        for account in Account.objects.filter(billing_mode=M.PREPAID, status=S.ACTIVE):
            days = sorted(account.payments.values_list("received_at", flat=True))
            gaps += [(b - a).days for a, b in zip(days, days[1:], strict=False)]
        assert len(gaps) > 20
        gaps.sort()
        assert 5 <= gaps[len(gaps) // 2] <= 24  # the median member pays every week or three

    def test_the_member_login_has_a_plain_prepaid_history_with_credit(self, output):
        account = get_user_model().objects.get(username="member").member.accounts.get()
        assert account.payments.count() >= 3
        assert not account.payments.filter(status=Payment.Status.RETURNED).exists()
        assert prepaid_credit(account) > 0

    def test_a_returned_payment_is_reversed_and_its_fees_charged_at_once(self, output):
        policy = Policy.objects.in_force(TODAY)
        returns = list(ReturnedPayment.objects.select_related("payment", "transaction"))
        assert returns
        for record in returns:
            payment = record.payment
            assert payment.status == Payment.Status.RETURNED
            assert record.transaction.reverses_id == payment.transaction_id
            assert record.returned_on > timezone.localdate(payment.received_at)
            fees = ChargedFee.objects.filter(
                account=payment.account, description__contains=payment.receipt_number
            )
            assert {f.code: f.amount for f in fees} == {
                "returned-payment": policy.returned_payment_fee,
                "returned-payment-collection": policy.returned_payment_collection_fee,
            }
            assert all(f.charged_on == record.returned_on for f in fees)  # charged at once
        waived = ChargedFee.objects.filter(waiver_transaction__isnull=False)
        assert waived.exists()
        manager = get_user_model().objects.get(username="manager")
        assert all(f.waived_by == manager and f.waive_reason for f in waived)

    def test_a_member_with_two_returned_checks_may_no_longer_pay_by_check(self, output):
        members = {
            r.payment.account.member
            for r in ReturnedPayment.objects.filter(payment__tender="check").select_related(
                "payment__account__member"
            )
        }
        restricted = [m for m in members if check_restricted_until(m, today=TODAY)]
        assert len(restricted) == 1
        member = restricted[0]
        assert (
            ReturnedPayment.objects.filter(payment__account__member=member, payment__tender="check").count()
            == 2
        )
        account = member.accounts.filter(status=S.ACTIVE).first()
        with pytest.raises(PaymentRefused, match="may not pay by check"):
            billing_services.payment_post(
                account=account, amount="50.00", tender="check", reference="test-check-1", received_at=NOW
            )

    def test_a_debt_management_plan_takes_its_share_of_each_top_up(self, output):
        plans = DebtPlan.objects.filter(status=DebtPlan.Status.ACTIVE).select_related("account")
        assert plans.exists()
        for plan in plans:
            arrears = account_balances(plan.account).arrears
            assert Decimal("0.00") < arrears < plan.enrolled_amount
            shared = Payment.objects.filter(account=plan.account, to_arrears__gt=0)
            assert shared.exists()
            # The policy's share of each payment, except out of the first $50 the account has paid
            # (program B never takes the share from the initial minimum balance).
            shares = [(p.to_arrears, split(p.amount, plan.share_percent)[0]) for p in shared]
            assert all(taken <= share for taken, share in shares)
            assert any(taken == share for taken, share in shares)
            assert plan.enrolled_by.username == "manager"
            assert plan.account.transactions.filter(memo__startswith="Debt moved to arrears").exists()

    def test_postpaid_deposits_are_held_as_the_policy_requires(self, output):
        deposits = Transaction.objects.filter(kind=Transaction.Kind.DEPOSIT_COLLECT).select_related("account")
        assert deposits.exists()
        assert all(d.account.billing_mode == M.POSTPAID for d in deposits)
        for deposit in deposits:
            amount = -deposit.legs.get(ledger_account__purpose="deposit_held").amount
            assert amount == billing_services.deposit_required(account=deposit.account, on=TODAY)
            assert deposit.effective_date == deposit.account.opened_on
        held = [account_balances(d.account).deposit_held for d in deposits]
        assert sum(held) > 0

    def test_postpaid_bills_are_paid_mostly_on_time_and_a_few_accounts_owe_past_due(self, output):
        bills = Receivable.objects.filter(kind=Receivable.Kind.BILL)
        assert bills.count() >= 2 * Account.objects.filter(billing_mode=M.POSTPAID, status=S.ACTIVE).count()
        assert all(b.description.startswith(("Energy bill", "Final bill")) for b in bills)
        for account in Account.objects.filter(billing_mode=M.POSTPAID, transactions__isnull=False).distinct():
            assert receivables_audit(account) == []
        past_due = [
            a for a in Account.objects.filter(billing_mode=M.POSTPAID) if amount_past_due(a, on=TODAY) > 0
        ]
        assert past_due
        active = Account.objects.filter(billing_mode=M.POSTPAID, status=S.ACTIVE).count()
        assert sum(a.status == S.ACTIVE for a in past_due) < active / 4
        assert ChargedFee.objects.filter(code="late-fee").exists()

    def test_disconnected_prepaid_accounts_end_at_or_below_zero_and_active_ones_above(self, output):
        cut = Account.objects.filter(billing_mode=M.PREPAID, status__in=(S.DISCONNECTED, S.INACTIVE))
        assert cut.exists()
        assert all(prepaid_credit(a) <= 0 for a in cut)
        active = [prepaid_credit(a) for a in Account.objects.filter(billing_mode=M.PREPAID, status=S.ACTIVE)]
        # The daily prepaid history leaves about one active account in ten at the disconnect level.
        assert sum(b > 0 for b in active) >= 0.75 * len(active)
        threshold = Policy.objects.in_force(TODAY).low_balance_threshold_default
        assert any(0 < b <= threshold + 15 for b in active)  # someone is running low

    @pytest.mark.postgres
    def test_postgresql_deferred_ledger_triggers_accept_every_transaction(self, output):
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # runs the pending balance checks now
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def test_history_accounts_bounds_the_accounts_given_a_history(db):
    with time_machine.travel(NOW, tick=True):
        out = seed(members=20, history_accounts=4)
    assert Account.objects.filter(transactions__isnull=False).distinct().count() <= 4
    in_service = Account.objects.filter(status__in=(S.ACTIVE, S.DISCONNECTED, S.INACTIVE)).count()
    assert "Money history for 4 accounts" in out
    assert f"{in_service - 4:,} further accounts in service have no postings" in out
    assert audit().strip().splitlines()[-1].startswith("ledger_audit ok")


@pytest.mark.django_db
class TestDailyHistory:
    def test_sixty_days_of_reads_and_deductions_for_every_prepaid_account_in_service(self, output):
        from billing.models import DailyRun, Deduction

        runs = DailyRun.objects.order_by("service_day")
        assert runs.count() == 60 and runs.last().service_day == TODAY - datetime.timedelta(days=1)
        assert not runs.exclude(status=DailyRun.Status.FINISHED).exists()
        prepaid = Account.objects.prepaid().in_service()
        assert Deduction.objects.filter(kind="daily").count() == 60 * prepaid.count()
        assert Deduction.objects.filter(read_quality="estimated").exists()

    def test_accounts_spread_over_every_state_a_clerk_should_see(self, output):
        from billing.selectors import disconnect_candidates

        policy = Policy.objects.in_force(TODAY)
        active = Account.objects.prepaid().filter(status=S.ACTIVE)
        credits = [prepaid_credit(a) for a in active]
        assert any(c > policy.low_balance_threshold_default + 20 for c in credits)
        assert any(policy.disconnect_level < c < policy.low_balance_threshold_default for c in credits)
        assert disconnect_candidates(on=TODAY).exists()  # pending disconnection
        disconnected = Account.objects.prepaid().filter(status=S.DISCONNECTED)
        assert disconnected.exists() and all(prepaid_credit(a) < 0 for a in disconnected)
        assert re.search(r"Daily prepaid history: 60 days run for \d+ prepaid accounts", output)
