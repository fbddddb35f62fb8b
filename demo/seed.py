"""A believable demo cooperative for an empty database (`manage.py seed_demo`).

The policy, calendar entries and logins go through the services and commands every other caller
uses. Members, locations, meters, installations, accounts and their status changes do not: the
per-row services validate and audit one row at a time (several queries each), and even
`bulk_create` spends most of its time building a model instance per row and preparing every value
through its field (a phone number is parsed and validated again on the way in): 100,000 members
took about two minutes that way against under a minute written as plain rows (COPY on
PostgreSQL, executemany on SQLite; see _RowWriter and docs/benchmarks.md). Everything is
therefore generated valid by construction (phone numbers valid for the region, one open account
per location, a cycle on every postpaid account and none on prepaid ones, a status trail that
follows Account.ALLOWED_TRANSITIONS) and coop/tests/test_seed_demo.py checks that it is, with the
models' full_clean among other things. simple_history rows are not written for seeded rows.

Memory stays flat whatever the size: members are generated and written a chunk at a time, with
their locations, meters, installations, accounts and status changes, and nothing of a chunk is
kept once it is written. Primary keys are allocated here, after the highest existing one, so a
chunk's children can point at its parents without reading anything back.

Money is the exception to writing rows around the services: the first accounts in service get a
payment, fee, deposit, bill and plan history through the billing services themselves (see
demo/money.py), so the ledger is consistent by construction and `manage.py ledger_audit`
passes; the accounts beyond `history_accounts` have no postings.

Everything random comes from one `random.Random(seed)` and one seeded Faker (and the money history
from its own stream of the same seed): the same seed gives the same cooperative (except row ids and
the "today" it is built relative to).
"""

import datetime
import functools
import itertools
import math
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import phonenumbers
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.db.models import Max
from django.utils import timezone
from faker import Faker

from accounts.models import Account, AccountStatusChange, Member, ServiceLocation
from coop import presets, roles
from coop.calendar import coop_zone, local_today, us_holidays
from coop.events import muted
from coop.exceptions import CoopError
from coop.models import BillingCycle, OfficeClosure, Policy, WeatherHold
from coop.services import (
    billing_cycles_ensure,
    office_closure_create,
    policy_create_version,
    weather_hold_create,
)
from demo.money import DEFAULT_HISTORY_ACCOUNTS, MoneySummary, build_history
from demo.notices import seed_notifications_demo
from meters.models import Meter, MeterInstallation

ONE_DAY = datetime.timedelta(days=1)

# Presets loaded when no policy is in force: prepaid program B with postpaid schedule C, plus
# preset D's returned-check rule (two returned checks in 12 months: no checks for 12 months after
# the latest). B and C say nothing about repeated returned checks; with D's rule the demo can show
# a member who may no longer pay by check.
POLICY_PRESETS = ("B", "C")
POLICY_FROM_D = ("check_restriction_returns", "check_restriction_window_months", "check_restriction_months")

S = Account.Status
M = Account.BillingMode


class DemoDataExists(CoopError):
    """The database already has members, locations, meters or accounts."""


# --- The territory -------------------------------------------------------------------------------

# Rusk County and its neighbours, northern Wisconsin: (post office, ZIP code, share of members).
TOWNS = (
    ("Ladysmith", "54848", 26),
    ("Bruce", "54819", 11),
    ("Holcombe", "54745", 9),
    ("Hawkins", "54530", 8),
    ("Weyerhaeuser", "54895", 8),
    ("Sheldon", "54766", 7),
    ("Exeland", "54835", 7),
    ("Conrath", "54731", 6),
    ("Glen Flora", "54526", 6),
    ("Tony", "54563", 6),
    ("Jump River", "54434", 3),
    ("Winter", "54896", 3),
)
STATE = "WI"

# Where members who do not live at their service location (cabin owners, snowbirds, landlords)
# get their mail.
ELSEWHERE = (
    ("Eau Claire", "WI", "54701"),
    ("Rice Lake", "WI", "54868"),
    ("Chippewa Falls", "WI", "54729"),
    ("Wausau", "WI", "54401"),
    ("Madison", "WI", "53703"),
    ("Minneapolis", "MN", "55406"),
    ("Saint Paul", "MN", "55104"),
    ("Mesa", "AZ", "85204"),
    ("Fort Myers", "FL", "33901"),
)

COUNTY_ROAD_LETTERS = "A B D E F G H I J K M O P T V W X Y CC DD EE FF GG VV".split()  # noqa: SIM905
HIGHWAYS = ("US Highway 8", "State Highway 27", "State Highway 40", "State Highway 48", "State Highway 73")
NATURE = (  # noqa: SIM905
    "Deer Birch Pine Oak Maple Hemlock Tamarack Cedar Balsam Aspen Popple Bear Eagle Loon Fox "
    "Otter Beaver Heron Wolf Spruce Willow Sand Creek Hay Meadow Ridge Lake Flambeau Thornapple "
    "Chippewa Fisher Hidden Valley Sunset Pleasant Cranberry Blueberry Partridge Grouse Timber"
).split()
RURAL_SUFFIXES = ("Rd", "Rd", "Rd", "Ln", "Trail", "Trl", "Dr", "Ave")
TOWN_STREETS = (
    "Main St",
    "Lake St",
    "Railroad St",
    "Church St",
    "Mill St",
    "Park Ave",
    "Elm St",
    "Oak St",
    "River St",
    "Maple St",
    "Center St",
    "Depot St",
)
ORDINALS = ("1st", "2nd", "3rd", "4th", "5th", "6th", "7th", "8th", "9th")

# Surnames of the region's settlers (Scandinavian, German, Polish, Czech), mixed into Faker's
# en_US pool so the member list reads like northern Wisconsin.
_SETTLERS = (
    "Olson Johnson Anderson Nelson Peterson Larson Hanson Swanson Lindquist Lund Halvorson "
    "Gunderson Thompson Nygaard Sorenson Bergstrom Engebretson Skogen Haugen Rude Schmidt "
    "Krueger Schultz Wagner Schneider Zimmerman Hoffmann Becker Fischer Meyer Koehler Weber "
    "Hartwig Kaiser Kowalski Nowak Zielinski Wojcik Kaminski Lewandowski Dombrowski Sobczak "
    "Jablonski Novak Dvorak Svoboda Kubiak Marek Pavlik Duchek Zastrow Vanderwyst Raether"
)
REGIONAL_SURNAMES = tuple(_SETTLERS.split())

# 715 is northern Wisconsin's area code and 534 its overlay; the exchanges are the area's own.
AREA_CODES = ("715", "534")
EXCHANGES = (
    "532", "634", "762", "748", "682", "635", "868", "353", "585", "322",
    "452", "595", "943", "266", "945", "239", "668", "415", "403", "567",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.net", "example.org")  # reserved: never deliverable

# --- Service locations and meters ---------------------------------------------------------------

SC, CT = ServiceLocation.MeterBase.SELF_CONTAINED, ServiceLocation.MeterBase.CT
RES, COM, LP, IRR = (
    ServiceLocation.RateClass.RESIDENTIAL,
    ServiceLocation.RateClass.SMALL_COMMERCIAL,
    ServiceLocation.RateClass.LARGE_POWER,
    ServiceLocation.RateClass.IRRIGATION,
)
ONE, THREE = ServiceLocation.Phase.SINGLE, ServiceLocation.Phase.THREE


@dataclass(frozen=True)
class Profile:
    phase: str
    amperage: int
    meter_base: str
    rate_class: str
    line2: str = ""

    @property
    def prepaid_eligible(self) -> bool:
        # Program B (seeds/001): single-phase residential, self-contained meter, 200-amp service.
        return (self.phase, self.amperage, self.meter_base, self.rate_class) == (ONE, 200, SC, RES)


# A member's home (or first) location, and an additional one (weights in percent).
HOME_PROFILES = (
    (Profile(ONE, 200, SC, RES), 83.0),
    (Profile(ONE, 100, SC, RES), 5.0),
    (Profile(ONE, 400, SC, RES), 3.0),  # class 320 self-contained
    (Profile(ONE, 400, CT, RES), 1.5),
    (Profile(ONE, 200, SC, COM), 3.0),
    (Profile(THREE, 200, SC, COM), 2.0),
    (Profile(THREE, 400, CT, COM), 1.5),
    (Profile(THREE, 800, CT, LP), 0.5),
    (Profile(THREE, 400, CT, IRR), 0.5),
)
EXTRA_PROFILES = (
    (Profile(ONE, 100, SC, RES, "Cabin"), 25),
    (Profile(ONE, 200, SC, RES, "Pole barn"), 25),
    (Profile(ONE, 200, SC, RES, "Well"), 5),
    (Profile(ONE, 200, SC, COM, "Shop"), 15),
    (Profile(THREE, 200, SC, COM, "Shop"), 10),
    (Profile(THREE, 400, CT, COM, "Dairy barn"), 12),
    (Profile(THREE, 400, CT, IRR, "Irrigation well"), 5),
    (Profile(THREE, 800, CT, LP, "Grain dryer"), 3),
)
# (manufacturer, model, remote-disconnect capable). A CT-rated meter carries no service switch.
METERS_SINGLE = (
    ("Landis+Gyr", "Focus AXe-SD", True),
    ("Itron", "Riva CENTRON", True),
    ("Aclara", "I-210+c", True),
)
METERS_SINGLE_OLD = (("Landis+Gyr", "Focus AX", False),)
METERS_THREE = (("Itron", "CENTRON Polyphase", True), ("Landis+Gyr", "E650 S4x 16S", True))
METERS_CT = (("Landis+Gyr", "E650 S4x 9S", False), ("Itron", "SENTINEL", False))

# --- Accounts ------------------------------------------------------------------------------------

# Status of a location's current account, by billing mode (weights in percent).
STATUS_WEIGHTS = {
    M.PREPAID: ((S.ACTIVE, 80), (S.PENDING, 4), (S.DISCONNECTED, 6), (S.INACTIVE, 5), (S.CLOSED, 5)),
    M.POSTPAID: ((S.ACTIVE, 82), (S.PENDING, 4), (S.DISCONNECTED, 2.5), (S.INACTIVE, 1.5), (S.CLOSED, 10)),
}
# Given to members 1-8 (member 0 is the member login's: active prepaid), so that even a small demo
# has an account in every status and both modes.
SHOWCASE = tuple((mode, status) for mode in M for status in (S.PENDING, S.DISCONNECTED, S.INACTIVE, S.CLOSED))
PREPAID_SHARE = 0.30  # of all accounts, as near as eligibility allows
PREPAID_YEARS = 6  # prepaid accounts opened in the program's lifetime
LEGACY_YEARS = 8  # accounts older than this came over from the previous billing system
AMI_ROLLOUT = (datetime.date(2016, 4, 1), datetime.date(2019, 10, 31))

REASON_ACTIVATED = {
    M.PREPAID: "Prepaid enrollment complete: $50 starting balance received, meter set",
    M.POSTPAID: "Membership and deposit received, service connected",
}
REASON_LEGACY = "Carried over from the previous billing system"
REASON_PREPAID_CUT = "Prepaid credit reached $0.00: switch opened by the daily run"
REASON_NONPAY_CUT = "Past-due bill unpaid on the 22nd: disconnected for non-payment"
REASON_PREPAID_INACTIVE = "Disconnected 7 days: final bill mailed to the last known address"
REASON_POSTPAID_INACTIVE = "Disconnected 30 days without payment: final bill mailed"
REASONS_CLOSED_FROM_ACTIVE = (
    "Member moved: final bill paid",
    "Member moved: final bill paid",
    "Service no longer needed: final bill paid",
    "Member deceased: estate settled the final bill",
    "Property sold: final bill paid at closing",
)
REASONS_CLOSED_FROM_INACTIVE = (
    "Final bill paid",
    "Final bill unpaid after 90 days: sent to collections",
)
# A location's earlier account held by another member: a property (rental, cabin) sold on.
REASON_SOLD = "Property sold: final bill paid at closing"
REASON_CONVERTED = "Converted to prepaid: balances settled, deposit applied to the prepaid account"


# --- Logins --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Login:
    username: str
    password: str
    role: str
    first_name: str
    last_name: str
    group: str | None = None
    staff: bool = True
    superuser: bool = False


LOGINS = (
    Login("admin", "admin-demo", "superuser: everything", "Site", "Administrator", superuser=True),
    Login("manager", "manager-demo", roles.MANAGER, "Diane", "Halvorson", group=roles.MANAGER),
    Login("clerk", "clerk-demo", roles.CLERK, "Karen", "Kowalski", group=roles.CLERK),
    Login("auditor", "auditor-demo", f"{roles.AUDITOR} (read-only)", "Tom", "Lindquist", group=roles.AUDITOR),
)
MEMBER_LOGIN = Login("member", "member-demo", "member (not staff)", "", "", staff=False)
STAFF_EMAIL_DOMAIN = "coop.example"


@dataclass
class LoginResult:
    login: Login
    created: bool
    note: str = ""


# --- Result --------------------------------------------------------------------------------------


@dataclass
class SeedResult:
    members: int = 0
    locations: int = 0
    meters: int = 0
    spare_meters: int = 0
    accounts: int = 0
    status_changes: int = 0
    by_status: Counter = field(default_factory=Counter)
    by_mode: Counter = field(default_factory=Counter)
    policy_note: str = ""
    calendar_notes: list[str] = field(default_factory=list)
    logins: list[LoginResult] = field(default_factory=list)
    money: MoneySummary | None = None
    daily: object = None  # demo.daily.DailySummary
    notifications: object = None  # demo.notices.NotificationsDemoSummary
    seconds: float = 0.0

    def summary(self) -> str:
        statuses = ", ".join(f"{s.label.lower()} {self.by_status[s]:,}" for s in S)
        modes = ", ".join(f"{m.label.lower()} {self.by_mode[m]:,}" for m in M)
        text = (
            f"Seeded {self.members:,} members, {self.locations:,} locations, {self.meters:,} meters "
            f"({self.spare_meters:,} spare), {self.accounts:,} accounts ({statuses}; {modes}), "
            f"{self.status_changes:,} status changes in {self.seconds:.1f} s."
        )
        if self.money is not None:
            text += "\n" + self.money.summary()
        if self.notifications is not None:
            text += "\n" + self.notifications.summary()
        if self.daily is not None:
            text += "\n" + self.daily.summary()
        return text


# --- Building --------------------------------------------------------------------------------------


def database_has_demo_data() -> str | None:
    """What already occupies the database (e.g. '1,234 members'), or None if it is empty."""
    for model, label in (
        (Member, "members"),
        (ServiceLocation, "service locations"),
        (Meter, "meters"),
        (Account, "accounts"),
    ):
        if model.objects.exists():
            return f"{model.objects.count():,} {label}"
    return None


def seed_demo(
    *,
    members: int,
    seed: int = 2026,
    chunk_size: int = 5000,
    batch_size: int = 5000,
    history_accounts: int = DEFAULT_HISTORY_ACCOUNTS,
    daily_days: int = 60,
    progress: Callable[[str], None] | None = None,
) -> SeedResult:
    """Build the demo cooperative in one transaction; refuses (DemoDataExists) unless the database
    has no members, locations, meters or accounts.

    The first `history_accounts` accounts in service get a money history through the billing
    services (demo/money.py); 0 gives none."""
    if members < 1:
        raise ValueError("The demo needs at least one member.")
    started = time.monotonic()
    say = progress or (lambda _msg: None)
    with transaction.atomic():
        found = database_has_demo_data()
        if found:
            raise DemoDataExists(
                f"The database already has demo data ({found}): seed_demo only builds a cooperative "
                "in an empty database. Use a fresh one (delete the SQLite file, or drop and create "
                "the PostgreSQL database), run `manage.py migrate`, then seed_demo again."
            )
        result = SeedResult()
        users, result.logins = _ensure_logins()
        today = local_today()
        result.policy_note = _ensure_policy(today)
        cycles = list(BillingCycle.objects.filter(is_active=True).order_by("code"))
        if not cycles:
            raise CoopError(
                "No active billing cycle: postpaid accounts need one. Add a cycle (Cooperative → "
                "Billing cycles) or load a postpaid preset (manage.py load_policy_preset C)."
            )
        result.calendar_notes = _ensure_calendar(today, users["manager"])
        builder = _Builder(
            members=members,
            seed=seed,
            today=today,
            cycles=cycles,
            clerk=users["clerk"],
            batch_size=batch_size,
        )
        for start in range(0, members, chunk_size):
            builder.build_chunk(start, min(chunk_size, members - start), result)
            say(f"  {result.members:>9,} / {members:,} members   ({time.monotonic() - started:6.1f} s)")
        result.spare_meters = builder.spare_meters(max(3, members // 100))
        result.meters += result.spare_meters
        builder.finish()
        member_login = _link_member_login(builder.demo_member_pk)
        result.logins.append(member_login)
        if history_accounts > 0:
            # The history is the past: its payments, returns and plans notify nobody today.
            with muted():
                result.money = build_history(
                    seed=seed,
                    today=today,
                    zone=builder.zone,
                    is_business_day=builder.is_business_day,
                    clerk=users["clerk"],
                    manager=users["manager"],
                    limit=history_accounts,
                    progress=say,
                )
        result.notifications = seed_notifications_demo(
            seed=seed, today=today, history_accounts=history_accounts, progress=say
        )
    if daily_days > 0:
        # After the commit: each day of the daily run is its own set of transactions, as in production.
        from demo.daily import build_daily_history

        result.daily = build_daily_history(today=today, seed=seed, days=daily_days, progress=say)
    result.seconds = time.monotonic() - started
    return result


def _ensure_logins() -> tuple[dict, list[LoginResult]]:
    """The four staff logins. An existing user keeps its password (it may be someone's real
    one); its role, staff flag and group are made right."""
    User = get_user_model()
    users, results = {}, []
    for login in LOGINS:
        user, created = User.objects.get_or_create(username=login.username)
        if created:
            user.first_name, user.last_name = login.first_name, login.last_name
            user.email = f"{login.username}@{STAFF_EMAIL_DOMAIN}"
            user.set_password(login.password)
        user.is_active = True
        user.is_staff = login.staff
        user.is_superuser = login.superuser or user.is_superuser
        user.save()
        if login.group:
            user.groups.add(Group.objects.get(name=login.group))
        users[login.username] = user
        results.append(LoginResult(login, created, "" if created else "existing login: password unchanged"))
    return users, results


def _link_member_login(member_pk: int) -> LoginResult:
    User = get_user_model()
    member = Member.objects.get(pk=member_pk)
    account = member.accounts.get()
    user, created = User.objects.get_or_create(username=MEMBER_LOGIN.username)
    if created:
        user.set_password(MEMBER_LOGIN.password)
        user.first_name, user.last_name, user.email = member.first_name, member.last_name, member.email
        user.save()
    Member.objects.filter(user=user).update(user=None)
    Member.objects.filter(pk=member.pk).update(user=user)
    note = f"{member.full_name}, account {account.number} ({account.get_billing_mode_display().lower()})"
    if not created:
        note += "; existing login: password unchanged"
    return LoginResult(MEMBER_LOGIN, created, note)


def _year_ago(today: datetime.date) -> datetime.date:
    try:
        return today.replace(year=today.year - 1)
    except ValueError:  # 29 February
        return today.replace(year=today.year - 1, day=28)


def _ensure_policy(today: datetime.date) -> str:
    in_force = Policy.objects.filter(effective_from__lte=today).order_by("-effective_from").first()
    if in_force is not None:
        return f"Policy in force: {in_force} (kept)."
    label = " + ".join(POLICY_PRESETS)
    policy = policy_create_version(
        actor=None,
        effective_from=_year_ago(today),
        name=f"Presets {label}, D's returned-check rule",
        values={
            **presets.merged_values(list(POLICY_PRESETS)),
            **{k: presets.D.values[k] for k in POLICY_FROM_D},
        },
        notes=f"Demo policy (seed_demo): presets {label} with preset D's returned-check rule "
        "(two returned checks in 12 months bar checks for 12 months after the latest).",
        allow_unconfigured_past=True,
    )
    billing_cycles_ensure(actor=None, cycles=presets.merged_cycles(list(POLICY_PRESETS)))
    return f"Policy loaded: {policy}."


def _thanksgiving(year: int) -> datetime.date:
    first = datetime.date(year, 11, 1)
    first_thursday = first + datetime.timedelta(days=(3 - first.weekday()) % 7)
    return first_thursday + 3 * datetime.timedelta(weeks=1)


def _is_open_weekday(d: datetime.date, closed: set) -> bool:
    return d.weekday() < 5 and d not in us_holidays(d.year) and d not in closed


def _ensure_calendar(today: datetime.date, manager) -> list[str]:
    """Two office closures and a weather hold, entered by the manager, unless staff have already
    entered some."""
    notes = []
    if not OfficeClosure.objects.exists():
        closed: set[datetime.date] = set()
        # The Friday after Thanksgiving (the next one, or today), unless the state already keeps it
        # as a holiday.
        friday = _thanksgiving(today.year) + ONE_DAY
        if friday < today:
            friday = _thanksgiving(today.year + 1) + ONE_DAY
        if _is_open_weekday(friday, closed):
            office_closure_create(
                actor=manager,
                start_date=friday,
                end_date=friday,
                reason="Day after Thanksgiving: office closed",
            )
            closed.add(friday)
            notes.append(f"office closure {friday:%Y-%m-%d} (day after Thanksgiving)")
        # A staff training day about four months ago, on a Wednesday the office was open.
        training = today - datetime.timedelta(days=120)
        training -= datetime.timedelta(days=(training.weekday() - 2) % 7)
        while not _is_open_weekday(training, closed):
            training -= datetime.timedelta(weeks=1)
        office_closure_create(
            actor=manager,
            start_date=training,
            end_date=training,
            reason="All-staff safety and CPR training: office closed",
        )
        notes.append(f"office closure {training:%Y-%m-%d} (staff training)")
    if not WeatherHold.objects.exists():
        # Last winter's cold snap: the latest 20–22 January that is already past.
        year = today.year if today >= datetime.date(today.year, 1, 23) else today.year - 1
        start, end = datetime.date(year, 1, 20), datetime.date(year, 1, 22)
        weather_hold_create(
            actor=manager,
            start_date=start,
            end_date=end,
            reason="Extreme cold: NWS wind chill warning, lows near -30 °F",
        )
        notes.append(f"weather hold {start:%Y-%m-%d} – {end:%Y-%m-%d} (extreme cold)")
    return notes


def _weighted(rng: random.Random, pairs):
    """A chooser over (value, weight) pairs: cumulative weights computed once."""
    values = [v for v, _ in pairs]
    cum = list(itertools.accumulate(w for _, w in pairs))

    def choose():
        return rng.choices(values, cum_weights=cum)[0]

    return choose


@functools.lru_cache(maxsize=4)
def _name_pools(seed: int) -> tuple[tuple[str, ...], ...]:
    """First names, last names, surnames for roads and words for city streets, drawn from Faker
    once per seed (Faker takes ~75 µs a name; 100,000 members take their names from these).
    Repeats in a pool keep Faker's name frequencies."""
    fake = Faker("en_US")
    fake.seed_instance(seed)
    female = tuple(fake.first_name_female() for _ in range(2000))
    male = tuple(fake.first_name_male() for _ in range(2000))
    last = tuple(_proper(fake.last_name()) for _ in range(3000)) + REGIONAL_SURNAMES * 15
    road_surnames = tuple(n for n in (fake.last_name() for _ in range(400)) if n.isalpha())
    street_words = tuple(sorted({fake.street_name().split()[0] for _ in range(300)}))
    return female, male, last, road_surnames, street_words


def _proper(name: str) -> str:
    """'Mccarthy' -> 'McCarthy' (Faker's lists are capitalised naively)."""
    return re.sub(r"^Mc([a-z])", lambda m: "Mc" + m.group(1).upper(), name)


def _ascii_name(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


@dataclass
class _Town:
    name: str
    zip: str
    index: int
    roads: list[str]
    streets: list[str]


class _Builder:
    """Generates and inserts the members of one chunk at a time."""

    def __init__(
        self, *, members: int, seed: int, today: datetime.date, cycles: list, clerk, batch_size: int
    ):
        self.rng = rng = random.Random(seed)
        self.today = today
        self.zone = coop_zone()
        self.cycle_ids = [c.pk for c in cycles]
        self.clerk = clerk
        self.writer = _RowWriter(batch_size)
        self.ids = {model: self.writer.next_id(model) for model in (Member, ServiceLocation, Meter, Account)}
        # Seven-digit account numbers, as accounts.services.next_account_number allocates them.
        self.account_number = 1_000_001
        self.next_meter = 10_001  # serials AMI-00010001, ...
        self.demo_member_pk = None
        self.changes: list[tuple] = []
        self.by_status: Counter = Counter()
        self.by_mode: Counter = Counter()
        self.email_counts: Counter = Counter()
        self.emails: set[str] = set()  # unique, as members expect of their own address
        self.holidays = set()
        for year in range(today.year - 50, today.year + 2):
            self.holidays.update(us_holidays(year))
        self.closed = set(
            d
            for start, end in OfficeClosure.objects.values_list("start_date", "end_date")
            for d in (start + i * ONE_DAY for i in range((end - start).days + 1))
        )

        self.first_female, self.first_male, self.last_names, surname_pool, street_words = _name_pools(seed)
        self.city_streets = [f"{word} {rng.choice(('St', 'Ave', 'Dr', 'Ln'))}" for word in street_words]
        self.towns = []
        for index, (name, zip_code, _w) in enumerate(TOWNS):
            roads = [f"County Road {letter}" for letter in rng.sample(COUNTY_ROAD_LETTERS, 4)]
            roads += rng.sample(HIGHWAYS, 2)
            roads += [f"{w} {rng.choice(RURAL_SUFFIXES)}" for w in rng.sample(NATURE, 14)]
            roads += [f"{s} {rng.choice(('Rd', 'Ln', 'Rd'))}" for s in rng.sample(surname_pool, 14)]
            streets = list(TOWN_STREETS[: rng.randint(5, len(TOWN_STREETS))])
            streets += [f"{rng.choice('NSEW')} {o} St" for o in ORDINALS[: rng.randint(3, 9)]]
            self.towns.append(_Town(name, zip_code, index, roads, streets))
        self.choose_town = _weighted(rng, [(t, w) for t, (_n, _z, w) in zip(self.towns, TOWNS, strict=True)])
        self.choose_home = _weighted(rng, HOME_PROFILES)
        self.choose_extra = _weighted(rng, EXTRA_PROFILES)
        self.choose_status = {mode: _weighted(rng, STATUS_WEIGHTS[mode]) for mode in M}
        eligible = sum(w for p, w in HOME_PROFILES if p.prepaid_eligible) / 100
        self.prepaid_if_eligible = min(1.0, PREPAID_SHARE / eligible)

        # Phone numbers: member k gets slot (a*k + b) mod capacity, a bijection on the slots (a is
        # coprime to the capacity), so every number is distinct without remembering any. A very
        # large demo outgrows the area's own exchanges and uses every valid one of 715 and 534.
        exchanges = EXCHANGES
        if len(AREA_CODES) * len(EXCHANGES) * 10_000 < members:
            exchanges = EXCHANGES + tuple(f"{n}" for n in range(200, 1000) if f"{n}" not in EXCHANGES)
        self.exchanges = _valid_exchanges(exchanges)
        self.phone_capacity = len(self.exchanges) * 10_000
        self.phone_a = 7_919 * 104_729
        while math.gcd(self.phone_a, self.phone_capacity) != 1:
            self.phone_a += 1
        self.phone_b = rng.randrange(self.phone_capacity)

    # --- helpers -------------------------------------------------------------------------------

    def _at(self, day: datetime.date, hour: int, minute: int) -> datetime.datetime:
        return datetime.datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.zone)

    def is_business_day(self, d: datetime.date) -> bool:
        """No query: holidays and closures are known."""
        return d.weekday() < 5 and d not in self.holidays and d not in self.closed

    def _office_day(self, d: datetime.date) -> datetime.date:
        """`d` or the latest business day before it."""
        while not self.is_business_day(d):
            d -= ONE_DAY
        return d

    def _office_time(self, d: datetime.date) -> datetime.datetime:
        d = self._office_day(d)
        return self._at(d, self.rng.randint(8, 15), self.rng.randrange(60))

    def _days_ago(self, lo: int, hi: int) -> datetime.date:
        return self.today - self.rng.randint(lo, hi) * ONE_DAY

    def _phone(self, k: int) -> str:
        if k >= self.phone_capacity:
            return ""  # more members than the two area codes have numbers
        slot = (self.phone_a * k + self.phone_b) % self.phone_capacity
        area, exchange = self.exchanges[slot // 10_000]
        return f"+1{area}{exchange}{slot % 10_000:04d}"

    def _email(self, first: str, last: str) -> str:
        f, last_ = _ascii_name(first), _ascii_name(last)
        rng = self.rng
        pattern = rng.random()
        if pattern < 0.35:
            base = f"{f}.{last_}"
        elif pattern < 0.6:
            base = f"{f[0]}{last_}"
        elif pattern < 0.75:
            base = f"{f}{last_}"
        elif pattern < 0.9:
            base = f"{f}{last_[0]}{rng.randint(1, 99)}"
        else:
            base = f"{f}.{last_}{rng.randint(50, 99)}"
        domain = rng.choice(EMAIL_DOMAINS)
        key = f"{base}@{domain}"
        # jsmith@, then jsmith2@, jsmith3@ ..., skipping any that another pattern already gave out.
        n = self.email_counts[key]
        email = key if n == 0 else f"{base}{n + 1}@{domain}"
        while email in self.emails:
            n += 1
            email = f"{base}{n + 1}@{domain}"
        self.email_counts[key] = n + 1
        self.emails.add(email)
        return email

    def _rural_address(self, town: _Town) -> str:
        rng = self.rng
        number = rng.randint(1000, 9999) if rng.random() < 0.9 else rng.randint(10000, 12999)
        return f"{rng.choice('NW')}{number} {rng.choice(town.roads)}"

    def _town_address(self, town: _Town) -> str:
        return f"{self.rng.randint(1, 19) * 100 + self.rng.randint(0, 98)} {self.rng.choice(town.streets)}"

    def _opened(self, mode: str, latest: datetime.date) -> datetime.date:
        """When an account opened, no later than `latest`."""
        rng = self.rng
        if mode == M.PREPAID:
            days = rng.randint(30, PREPAID_YEARS * 365)
        else:
            days = 30 + min(int(rng.expovariate(1 / (9 * 365))), 45 * 365)
        opened = self.today - days * ONE_DAY
        if opened > latest:
            opened = latest - rng.randint(0, 60) * ONE_DAY
        return self._office_day(opened)  # accounts are opened by staff, on a business day

    def _activation(self, mode: str, opened: datetime.date):
        at = self._office_time(opened)
        if (self.today - opened).days > LEGACY_YEARS * 365:
            return (at, S.PENDING, S.ACTIVE, None, REASON_LEGACY)
        return (at, S.PENDING, S.ACTIVE, self.clerk, REASON_ACTIVATED[mode])

    def _disconnect_day(self, months_back: int) -> datetime.date:
        """The postpaid disconnect day (schedule C: the 22nd, or the next business day) of the
        month `months_back` before the latest one that is already past."""
        y, m = self.today.year, self.today.month
        while True:
            d = datetime.date(y, m, 22)
            while d.weekday() >= 5 or d in self.holidays or d in self.closed:
                d += ONE_DAY
            if d < self.today:
                if months_back == 0:
                    return d
                months_back -= 1
            y, m = (y - 1, 12) if m == 1 else (y, m - 1)

    def _timeline(self, mode: str, status: str):
        """(opened_on, closed_on, status_changed_at, events) of an account now in `status`."""
        rng = self.rng
        if status == S.PENDING:
            return None, None, self._office_time(self._days_ago(1, 20)), []

        events = []
        if status == S.ACTIVE:
            opened = self._opened(mode, self.today - 2 * ONE_DAY)
            events.append(self._activation(mode, opened))
            return opened, None, events[-1][0], events

        # Disconnected, inactive or closed: work back from the latest event.
        if status == S.CLOSED and rng.random() < 0.6:
            closed_on = self._office_day(self._days_ago(1, 900))
            opened = self._opened(mode, closed_on - 60 * ONE_DAY)
            events.append(self._activation(mode, opened))
            at = self._office_time(closed_on)
            events.append((at, S.ACTIVE, S.CLOSED, self.clerk, rng.choice(REASONS_CLOSED_FROM_ACTIVE)))
            return opened, at.date(), at, events

        closed_at = None
        if status == S.DISCONNECTED:
            # Prepaid: inactive after 7 days, so the cut is this week.
            cut_day = self._days_ago(1, 6) if mode == M.PREPAID else self._disconnect_day(0)
        elif status == S.INACTIVE:
            cut_day = (
                self._days_ago(8, 300) if mode == M.PREPAID else self._disconnect_day(rng.randint(2, 10))
            )
        else:  # closed after going inactive
            closed_day = self._office_day(self._days_ago(1, 900))
            closed_at = self._office_time(closed_day)
            cut_day = closed_day - rng.randint(30, 120) * ONE_DAY
        opened = self._opened(mode, cut_day - 45 * ONE_DAY)
        events.append(self._activation(mode, opened))
        if mode == M.PREPAID:
            cut_at = self._at(cut_day, rng.randrange(24), rng.randrange(60))
            events.append((cut_at, S.ACTIVE, S.DISCONNECTED, None, REASON_PREPAID_CUT))
            inactive_day, inactive_reason = cut_day + 7 * ONE_DAY, REASON_PREPAID_INACTIVE
        else:
            cut_at = self._at(cut_day, rng.randint(9, 11), rng.randrange(60))
            events.append((cut_at, S.ACTIVE, S.DISCONNECTED, self.clerk, REASON_NONPAY_CUT))
            inactive_day, inactive_reason = cut_day + 30 * ONE_DAY, REASON_POSTPAID_INACTIVE
        if status == S.DISCONNECTED:
            return opened, None, cut_at, events
        inactive_at = self._at(inactive_day, 2, rng.randrange(10, 50))  # the nightly run
        events.append((inactive_at, S.DISCONNECTED, S.INACTIVE, None, inactive_reason))
        if status == S.INACTIVE:
            return opened, None, inactive_at, events
        if closed_at <= inactive_at:
            closed_at = self._office_time(inactive_day + rng.randint(20, 90) * ONE_DAY)
            if closed_at.date() >= self.today:
                closed_at = inactive_at + datetime.timedelta(hours=8)
        reason = rng.choice(REASONS_CLOSED_FROM_INACTIVE)
        events.append((closed_at, S.INACTIVE, S.CLOSED, self.clerk, reason))
        return opened, closed_at.date(), closed_at, events

    def _new_account(self, *, member_id, location_id, mode, status, town) -> tuple:
        """An account row and its status changes; returns (opened_on or start day, row)."""
        opened, closed_on, changed_at, events = self._timeline(mode, status)
        return self._account_row(
            member_id, location_id, mode, status, town, opened, closed_on, changed_at, events
        )

    def _prior_account(
        self, *, member_id, location_id, town, before: datetime.date, converted: bool
    ) -> tuple:
        """A closed postpaid account at a location, ended on or just before `before`."""
        rng = self.rng
        closed_on = before if converted else before - rng.randint(0, 14) * ONE_DAY
        closed_on = min(closed_on, self.today - ONE_DAY)
        opened = self._opened(M.POSTPAID, closed_on - 90 * ONE_DAY)
        closed_at = self._office_time(closed_on)
        events = [
            self._activation(M.POSTPAID, opened),
            (closed_at, S.ACTIVE, S.CLOSED, self.clerk, REASON_CONVERTED if converted else REASON_SOLD),
        ]
        return self._account_row(
            member_id, location_id, M.POSTPAID, S.CLOSED, town, opened, closed_at.date(), closed_at, events
        )

    def _account_row(self, member_id, location_id, mode, status, town, opened, closed_on, changed_at, events):
        account_id = self.ids[Account]
        self.ids[Account] += 1
        cycle_id = None if mode == M.PREPAID else self.cycle_ids[town.index % len(self.cycle_ids)]
        number = f"{self.account_number:07d}"
        self.account_number += 1
        for at, frm, to, actor, reason in events:
            self.changes.append((account_id, frm, to, at, actor.pk if actor else None, reason))
        self.by_status[status] += 1
        self.by_mode[mode] += 1
        row = (
            account_id,
            number,
            member_id,
            location_id,
            mode,
            status,
            changed_at,
            cycle_id,
            opened,
            closed_on,
        )
        return opened or changed_at.date(), row

    # --- one chunk -----------------------------------------------------------------------------

    def build_chunk(self, start: int, count: int, result: SeedResult) -> None:
        rng = self.rng
        member_base = self.ids[Member]
        members, locations, meters, installations, accounts = [], [], [], [], []
        self.changes = []
        lo, hi = AMI_ROLLOUT
        ami_days = (hi - lo).days

        for mi in range(count):
            k = start + mi
            member_id = member_base + mi
            demo = k == 0  # the member behind the member login: active prepaid, email and phone
            # The next few members show every other status in both modes, however small the demo.
            showcase = SHOWCASE[k - 1] if 1 <= k <= len(SHOWCASE) else None
            female = rng.random() < 0.5
            first = rng.choice(self.first_female if female else self.first_male)
            last = rng.choice(self.last_names)
            town = self.choose_town()
            profile = HOME_PROFILES[0][0] if demo or showcase else self.choose_home()
            home = self._rural_address(town) if rng.random() < 0.75 else self._town_address(town)

            where = rng.random()
            if where < 0.85 or demo:
                mail = (home, town.name, STATE, town.zip)
            elif where < 0.94:
                mail = (f"PO Box {rng.randint(1, 899)}", town.name, STATE, town.zip)
            else:
                city, state, zip_code = rng.choice(ELSEWHERE)
                mail = (f"{rng.randint(100, 9899)} {rng.choice(self.city_streets)}", city, state, zip_code)
            email = self._email(first, last) if demo or rng.random() < 0.8 else ""
            phone = self._phone(k) if demo or rng.random() < 0.85 else ""
            favorable = demo or rng.random() < 0.7
            members.append((member_id, first, last, email, phone, favorable, *mail))
            if demo:
                self.demo_member_pk = member_id

            sites = [(profile, home)]
            if not (demo or showcase) and rng.random() < 0.04:
                sites.append((self.choose_extra(), self._rural_address(town)))
            for profile, line1 in sites:
                location_id = self.ids[ServiceLocation]
                self.ids[ServiceLocation] += 1
                locations.append(
                    (
                        location_id,
                        line1,
                        profile.line2,
                        town.name,
                        STATE,
                        town.zip,
                        profile.phase,
                        profile.amperage,
                        profile.meter_base,
                        profile.rate_class,
                    )
                )
                meter = self._meter_row(profile)
                meters.append(meter)

                eligible = profile.prepaid_eligible
                if demo:
                    mode, status = M.PREPAID, S.ACTIVE
                elif showcase:
                    mode, status = showcase
                else:
                    mode = M.PREPAID if eligible and rng.random() < self.prepaid_if_eligible else M.POSTPAID
                    status = self.choose_status[mode]()
                began, row = self._new_account(
                    member_id=member_id, location_id=location_id, mode=mode, status=status, town=town
                )
                accounts.append(row)
                opened_on = row[8]
                # A few locations had an earlier account: the same member's, before converting to
                # prepaid, or another member's who sold the property.
                if not demo and began > self.today - 30 * 365 * ONE_DAY and rng.random() < 0.06:
                    converted = mode == M.PREPAID and opened_on is not None and rng.random() < 0.6
                    if converted:
                        owner = member_id
                    elif count > 1:
                        owner = member_id - 1 if mi > 0 else member_id + 1
                    else:
                        owner = None
                    if owner is not None and owner == self.demo_member_pk:
                        owner = None  # the member login's member has just the one account
                    if owner is not None:
                        began, prior = self._prior_account(
                            member_id=owner,
                            location_id=location_id,
                            town=town,
                            before=began,
                            converted=converted,
                        )
                        accounts.append(prior)

                # Service that began before the AMI rollout got its meter then; later service got
                # its meter in the days before it began.
                rollout = lo + rng.randint(0, ami_days) * ONE_DAY
                installed = began - rng.randint(1, 10) * ONE_DAY if began > rollout else rollout
                installed = self._office_day(min(installed, self.today - ONE_DAY))
                installations.append((meter[0], location_id, installed))

        w = self.writer
        w.write(Member, MEMBER_COLUMNS, members)
        w.write(ServiceLocation, LOCATION_COLUMNS, locations)
        w.write(Meter, METER_COLUMNS, meters)
        w.write(MeterInstallation, INSTALLATION_COLUMNS, installations)
        w.write(Account, ACCOUNT_COLUMNS, accounts)
        w.write(AccountStatusChange, STATUS_CHANGE_COLUMNS, self.changes)
        self.ids[Member] += count

        result.members += len(members)
        result.locations += len(locations)
        result.meters += len(meters)
        result.accounts += len(accounts)
        result.status_changes += len(self.changes)
        result.by_status, result.by_mode = self.by_status, self.by_mode
        self.changes = []

    def _meter_row(self, profile: Profile) -> tuple:
        rng = self.rng
        if profile.meter_base == CT:
            catalog = METERS_CT
        elif profile.phase == THREE:
            catalog = METERS_THREE
        else:
            catalog = METERS_SINGLE_OLD if rng.random() < 0.01 else METERS_SINGLE
        manufacturer, model, capable = rng.choice(catalog)
        meter_id = self.ids[Meter]
        self.ids[Meter] += 1
        serial = f"AMI-{self.next_meter:08d}"
        self.next_meter += 1
        return (meter_id, serial, manufacturer, model, capable)

    def spare_meters(self, count: int) -> int:
        """Meters on the shelf of the meter shop, not installed anywhere."""
        spares = [self._meter_row(HOME_PROFILES[0][0]) for _ in range(count)]
        self.writer.write(Meter, METER_COLUMNS, spares)
        return len(spares)

    def finish(self) -> None:
        self.writer.reset_sequences([Member, ServiceLocation, Meter, Account])


# Columns written for each model, in the order of the generated tuples. Any other column gets its
# field's default (see _RowWriter), so a field added later with a default needs no change here.
MEMBER_COLUMNS = (
    "id",
    "first_name",
    "last_name",
    "email",
    "mobile_phone",
    "favorable_credit_reference",
    "line1",
    "city",
    "state",
    "postal_code",
)
LOCATION_COLUMNS = (
    "id",
    "line1",
    "line2",
    "city",
    "state",
    "postal_code",
    "phase",
    "amperage",
    "meter_base",
    "rate_class",
)
METER_COLUMNS = ("id", "serial", "manufacturer", "model", "remote_disconnect_capable")
INSTALLATION_COLUMNS = ("meter_id", "location_id", "installed_on")
ACCOUNT_COLUMNS = (
    "id",
    "number",
    "member_id",
    "location_id",
    "billing_mode",
    "status",
    "status_changed_at",
    "billing_cycle_id",
    "opened_on",
    "closed_on",
)
STATUS_CHANGE_COLUMNS = ("account_id", "from_status", "to_status", "changed_at", "actor_id", "reason")


class _RowWriter:
    """Writes rows given as plain tuples: COPY on PostgreSQL, executemany on SQLite.

    Going around the ORM's bulk_create is what makes 100,000 members take seconds rather than
    minutes: bulk_create builds a model instance per row and prepares every value through the
    field (a phone number is parsed and validated again on the way in), which was most of the
    run time. Primary keys of the rows that others point at are allocated here (after the highest
    existing one), so no RETURNING is needed; `reset_sequences` moves the PostgreSQL identity
    sequences past them at the end (SQLite's AUTOINCREMENT follows by itself).

    Values are as the ORM would store them: dates and aware datetimes go through the backend's
    own adapters on SQLite (naive UTC text); psycopg adapts them itself for COPY.
    """

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.postgres = connection.vendor == "postgresql"
        self.now = timezone.now()

    @staticmethod
    def next_id(model) -> int:
        return (model.objects.aggregate(top=Max("pk"))["top"] or 0) + 1

    def _plan(self, model, names):
        fields = [model._meta.get_field(name) for name in names]
        given = {f.name for f in fields}
        extra_fields, extra_values = [], []
        for f in model._meta.concrete_fields:
            if f.name in given or f.primary_key:
                continue
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                value = self.now
            elif f.has_default() or (f.empty_strings_allowed and not f.null):
                value = f.get_default()  # "" for a text field without a default, as the ORM does
            elif f.null:
                value = None
            else:
                raise CoopError(
                    f"seed_demo does not know what to write in {model.__name__}.{f.name} (no default): "
                    "add it to the columns in demo/seed.py."
                )
            extra_fields.append(f)
            extra_values.append(value)
        return fields + extra_fields, tuple(extra_values)

    def _adapter(self, f):
        ops = connection.ops
        if isinstance(f, models.DateTimeField):
            return ops.adapt_datetimefield_value
        if isinstance(f, models.DateField):
            return ops.adapt_datefield_value
        if isinstance(f, models.TimeField):
            return ops.adapt_timefield_value
        if isinstance(f, models.DecimalField):
            return lambda v, f=f: ops.adapt_decimalfield_value(v, f.max_digits, f.decimal_places)
        return None

    def write(self, model, names, rows) -> None:
        if not rows:
            return
        fields, tail = self._plan(model, names)
        qn = connection.ops.quote_name
        table = qn(model._meta.db_table)
        columns = ", ".join(qn(f.column) for f in fields)
        with connection.cursor() as cursor:
            if self.postgres:
                with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row + tail)
                return
            adapters = [(i, a) for i, f in enumerate(fields) if (a := self._adapter(f))]
            sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
            for first in range(0, len(rows), self.batch_size):
                batch = []
                for row in rows[first : first + self.batch_size]:
                    values = list(row + tail)
                    for i, adapt in adapters:
                        if values[i] is not None:
                            values[i] = adapt(values[i])
                    batch.append(values)
                cursor.executemany(sql, batch)

    def reset_sequences(self, models_) -> None:
        statements = connection.ops.sequence_reset_sql(no_style(), models_)
        if statements:
            with connection.cursor() as cursor:
                for sql in statements:
                    cursor.execute(sql)


def _valid_exchanges(exchanges) -> list[tuple[str, str]]:
    """(area code, exchange) pairs whose numbers the model's validator accepts (checked on a few
    line numbers; the US numbering plan's validity does not depend on the last four digits)."""
    region = settings.PHONENUMBER_DEFAULT_REGION
    return [
        (area, exchange)
        for area in AREA_CODES
        for exchange in exchanges
        if all(
            phonenumbers.is_valid_number_for_region(phonenumbers.parse(f"+1{area}{exchange}{line}"), region)
            for line in ("0000", "4321", "9999")
        )
    ]
