"""seed_demo: a believable demo cooperative, valid by construction, in an empty database only."""

import datetime
import io
import re
from collections import Counter

import phonenumbers
import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db.models import Count, Q

from accounts import services as account_services
from accounts.models import Account, AccountStatusChange, Member, ServiceLocation, validate_phone_for_region
from coop import roles
from coop.models import BillingCycle, OfficeClosure, Policy, WeatherHold
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
    with time_machine.travel(NOW, tick=True):
        yield seed()


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
        assert client.login(username=username, password=password)
        assert client.get("/admin/").status_code == 200
        client.logout()
    assert User.objects.get(username="admin").is_superuser
    assert "http://127.0.0.1:8000/admin/" in seeded

    member_user = User.objects.get(username="member")
    assert not member_user.is_staff
    assert member_user.member.accounts.get().status == S.ACTIVE
    assert member_user.member.email and member_user.member.mobile_phone
    assert client.login(username="member", password="member-demo")


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
