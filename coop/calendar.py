"""The cooperative's business calendar: its time zone, holidays, office closures and weather holds.

Every rule that says "business day", "next business day", "10:00–11:00" or "no shut-off on
holidays and weekends" (docs/POLICIES.md) is reckoned here, in the cooperative's own zone
(`settings.TIME_ZONE`), never in UTC or the server's zone: a payment made at 23:30 in Wisconsin
belongs to that Wisconsin day even though it is already tomorrow in UTC.

Functions that take a `datetime.date` expect a *local* date of the cooperative; an aware datetime
is turned into one with `local_date(dt)`. They refuse a datetime outright, because `datetime` is a
subclass of `date` and would otherwise be silently read in whatever zone it happened to carry.

Database use is deliberately small: holidays come from memory (the `holidays` package, cached),
and each function makes at most two indexed queries, whatever range of days it scans.
"""

import datetime
import functools
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType

import holidays
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import IntegerField, Value
from django.utils import timezone

from coop.exceptions import CoopError
from coop.models import OfficeClosure, Policy, WeatherHold

# A scan for the next business day gives up after this many consecutive non-business days. No
# real calendar has a year without one, so reaching it means bad data (a closure entered with the
# wrong end year), which staff must see rather than have a job loop or quietly pick a far date.
SEARCH_LIMIT_DAYS = 366

# Holiday names are asked for in this language so they never depend on the server's locale
# (the `holidays` package otherwise reads LANG/LC_ALL and could answer in Thai).
HOLIDAY_LANGUAGE = "en_US"

ONE_DAY = datetime.timedelta(days=1)


class NoBusinessDayFound(CoopError):
    """No business day within SEARCH_LIMIT_DAYS of the day asked about: the calendar is wrong."""


# --- Time zone -----------------------------------------------------------------------------------


def coop_zone() -> datetime.tzinfo:
    """The cooperative's zone. Django's *default* zone (settings.TIME_ZONE), not the *current*
    one, which a request may have activated for a member elsewhere: business days belong to the
    cooperative, not to whoever is looking."""
    return timezone.get_default_timezone()


def to_local(dt: datetime.datetime) -> datetime.datetime:
    """`dt` as an aware datetime in the cooperative's zone.

    A naive datetime is refused: with USE_TZ on, a naive value means a bug somewhere upstream,
    and guessing its zone would move a payment or a disconnect by hours.
    """
    if timezone.is_naive(dt):
        raise ValueError(
            f"{dt!r} has no time zone; pass an aware datetime (django.utils.timezone.now(), "
            "or a value read from the database)."
        )
    return dt.astimezone(coop_zone())


def local_date(dt: datetime.datetime) -> datetime.date:
    """The cooperative's calendar day on which the instant `dt` falls (e.g. 04:30 UTC on a March
    night is still the previous evening in Chicago)."""
    return to_local(dt).date()


def local_now() -> datetime.datetime:
    """Now, as an aware datetime in the cooperative's zone."""
    return to_local(timezone.now())


def local_midnight(day: datetime.date) -> datetime.datetime:
    """The instant the cooperative's local `day` starts (the zone's rules give 23- and 25-hour
    days)."""
    return datetime.datetime.combine(day, datetime.time(), tzinfo=coop_zone())


def local_today() -> datetime.date:
    """Today in the cooperative's zone: the day "yesterday's usage" and cycle dates count from."""
    return local_now().date()


def _require_date(d: datetime.date) -> None:
    if isinstance(d, datetime.datetime):
        raise TypeError(
            f"Expected a date in the cooperative's zone, got the datetime {d!r}; "
            "convert it with coop.calendar.local_date(dt) first."
        )


# --- Holidays ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _holidays_for_year(
    state: str, year: int, ignored: frozenset[str] = frozenset()
) -> Mapping[datetime.date, str]:
    """One year's holidays for one state, read-only.

    Keyed on the state as well as the year, so a test (or a second cooperative's settings) that
    changes COOP_HOLIDAY_STATE never sees another state's days. Built with expand=False and copied
    into a read-only mapping: the package's own object grows itself when asked about another year,
    which a shared cache must not allow. One year per entry is exact, because the package only
    keeps, for year Y, dates that fall in Y (New Year's Day 2028, a Saturday, is observed on
    Friday 31 December 2027 and is listed under 2027).
    """
    try:
        days = holidays.country_holidays(
            "US",
            subdiv=state,
            years=year,
            expand=False,
            observed=True,
            language=HOLIDAY_LANGUAGE,
        )
    except NotImplementedError as exc:
        raise ImproperlyConfigured(
            f"COOP_HOLIDAY_STATE={state!r} is not a US state or territory the holidays package "
            "knows; use its two-letter code, e.g. WI."
        ) from exc
    kept = {}
    for day, names in days.items():
        # A name the cooperative keeps working on (settings.COOP_HOLIDAYS_IGNORED) is dropped, with
        # its "(observed)" day; a date with no names left is an ordinary day.
        left = [n for n in names.split("; ") if n.removesuffix(" (observed)") not in ignored]
        if left:
            kept[day] = "; ".join(left)
    return MappingProxyType(kept)


def us_holidays(years: int | Iterable[int]) -> Mapping[datetime.date, str]:
    """The public holidays of the cooperative's state (settings.COOP_HOLIDAY_STATE) in `years`,
    as a read-only {date: name} mapping.

    Observed days are included *as well as* the day itself: Christmas 2027 falls on a Saturday,
    so both Friday 24 December ("Christmas Day (observed)") and Saturday 25 December are listed;
    in 2022 (a Sunday) both Sunday the 25th and Monday the 26th are. Several holidays on one day
    share an entry, their names joined by "; ".
    """
    state = settings.COOP_HOLIDAY_STATE
    ignored = frozenset(settings.COOP_HOLIDAYS_IGNORED)
    if isinstance(years, int):
        return _holidays_for_year(state, years, ignored)
    merged: dict[datetime.date, str] = {}
    for year in sorted(set(years)):
        merged.update(_holidays_for_year(state, year, ignored))
    return MappingProxyType(merged)


def holiday_name(d: datetime.date) -> str | None:
    """The holiday's name if `d` is a holiday (actual or observed) in the cooperative's state."""
    _require_date(d)
    return us_holidays(d.year).get(d)


def is_holiday(d: datetime.date) -> bool:
    return holiday_name(d) is not None


def is_weekend(d: datetime.date) -> bool:
    _require_date(d)
    return d.weekday() >= 5  # Saturday, Sunday


# --- Staff-entered days --------------------------------------------------------------------------


def office_closure_on(d: datetime.date) -> OfficeClosure | None:
    """The office closure covering `d` (ends inclusive), or None. One indexed query; if closures
    overlap, the one that started latest is the most specific and is returned."""
    _require_date(d)
    return (
        OfficeClosure.objects.filter(start_date__lte=d, end_date__gte=d)
        .order_by("-start_date", "-pk")
        .first()
    )


def weather_hold_on(d: datetime.date) -> WeatherHold | None:
    """The weather hold covering `d` (ends inclusive), or None. One indexed query."""
    _require_date(d)
    return (
        WeatherHold.objects.filter(start_date__lte=d, end_date__gte=d).order_by("-start_date", "-pk").first()
    )


def _closed_days(first: datetime.date, last: datetime.date) -> frozenset[datetime.date]:
    """Every day from `first` to `last` (inclusive) that an office closure covers, in one query,
    so that scanning a range costs one query rather than one per day."""
    closed: set[datetime.date] = set()
    rows = OfficeClosure.objects.filter(start_date__lte=last, end_date__gte=first).values_list(
        "start_date", "end_date"
    )
    for start, end in rows:
        day, stop = max(start, first), min(end, last)
        while day <= stop:
            closed.add(day)
            day += ONE_DAY
    return frozenset(closed)


# --- Business days -------------------------------------------------------------------------------


def _is_business_day_given(d: datetime.date, closed: frozenset[datetime.date]) -> bool:
    # Weekend first: it needs neither the holiday table nor the closures.
    return not is_weekend(d) and d not in closed and not is_holiday(d)


def is_business_day(d: datetime.date) -> bool:
    """Not a weekend, not a holiday of the cooperative's state, and no office closure.

    Weather holds do not count: the office is open during a heat wave, only prepaid
    disconnections wait (see disconnect_grace_reason). At most one query, none on weekends and
    holidays.
    """
    if is_weekend(d) or is_holiday(d):
        return False
    return not OfficeClosure.objects.filter(start_date__lte=d, end_date__gte=d).exists()


def _business_days(start: datetime.date, step: int) -> Iterator[datetime.date]:
    """Business days from `start` (included) onwards (`step` 1) or backwards (`step` -1).

    Closures are fetched one SEARCH_LIMIT_DAYS-long chunk at a time, so finding the next business
    day is a single query however long a closure is. Raises NoBusinessDayFound after
    SEARCH_LIMIT_DAYS consecutive days without one.
    """
    day = start
    gap = 0
    closed: frozenset[datetime.date] = frozenset()
    chunk_left = 0  # days still covered by `closed`
    while True:
        if chunk_left == 0:
            far = day + step * (SEARCH_LIMIT_DAYS - 1) * ONE_DAY
            closed = _closed_days(min(day, far), max(day, far))
            chunk_left = SEARCH_LIMIT_DAYS
        if _is_business_day_given(day, closed):
            gap = 0
            yield day
        else:
            gap += 1
            if gap >= SEARCH_LIMIT_DAYS:
                direction = "from" if step > 0 else "back from"
                raise NoBusinessDayFound(
                    f"No business day in the {SEARCH_LIMIT_DAYS} days {direction} "
                    f"{day - step * (gap - 1) * ONE_DAY:%Y-%m-%d}: every one is a weekend, a holiday "
                    "or an office closure. Check the office closures (Cooperative → Office "
                    "closures) for a wrong end date."
                )
        chunk_left -= 1
        day += step * ONE_DAY


def next_business_day(d: datetime.date) -> datetime.date:
    """The first business day strictly after `d` (one query)."""
    _require_date(d)
    return next(_business_days(d + ONE_DAY, 1))


def business_day_on_or_after(d: datetime.date) -> datetime.date:
    """`d` itself if it is a business day, else the next one: where a due date that falls on a
    weekend or holiday lands (Policy.due_date_rolls_to_business_day). One query."""
    _require_date(d)
    return next(_business_days(d, 1))


def add_business_days(d: datetime.date, n: int) -> datetime.date:
    """The `n`th business day after `d` (before it when `n` is negative); `d` itself when n == 0.

    `d` need not be a business day: a delinquent notice "two business days after the due date"
    for a bill due on Saturday goes out on Tuesday (Monday is the first, Tuesday the second).
    One query per 366 days scanned, so one in practice.
    """
    _require_date(d)
    if n == 0:
        return d
    step = 1 if n > 0 else -1
    days = _business_days(d + step * ONE_DAY, step)
    for _ in range(abs(n) - 1):
        next(days)
    return next(days)


def is_business_hours(dt: datetime.datetime) -> bool:
    """Whether the instant `dt` falls in office hours: a business day in the cooperative's zone,
    and business_hours_start <= local time < business_hours_end of the policy in force that local
    day (so a later change of hours never rewrites an earlier day's answer, e.g. which reconnect
    fee applied). At most two queries; none on weekends and holidays.
    """
    local = to_local(dt)
    day = local.date()
    if not is_business_day(day):
        return False
    policy = Policy.objects.in_force(day)
    return policy.business_hours_start <= local.time() < policy.business_hours_end


# --- Prepaid disconnection -----------------------------------------------------------------------


def disconnect_grace_reason(d: datetime.date) -> str | None:
    """Why no prepaid disconnection may happen on local day `d` under the policy in force that
    day, or None if one may.

    Returns "weekend", "holiday: <name>", "holiday: office closed (<reason>)" or
    "weather hold: <reason>", checked in that order.

    An office closure counts as a holiday (when the policy grants holiday grace): a prepaid
    disconnect is automated and would go ahead, but with the office closed nobody can take the
    member's reconnect call or payment, which is exactly what holiday grace exists to prevent.
    A holiday counts on its actual date as well as its observed one: on Christmas Day that falls
    on a Saturday the office is just as unreachable as on the Friday it is observed.

    At most two queries: the policy, and one for closures and weather holds together.
    Raises PolicyNotConfigured when no policy is in force on `d`.
    """
    _require_date(d)
    policy = Policy.objects.in_force(d)
    if policy.grace_on_weekends and is_weekend(d):
        return "weekend"
    if policy.grace_on_holidays and (name := holiday_name(d)):
        return f"holiday: {name}"

    closure, hold = 0, 1
    parts = []
    if policy.grace_on_holidays:
        parts.append(
            OfficeClosure.objects.filter(start_date__lte=d, end_date__gte=d)
            .order_by()
            .annotate(kind=Value(closure, output_field=IntegerField()))
            .values_list("kind", "start_date", "reason")
        )
    if policy.grace_on_weather_holds:
        parts.append(
            WeatherHold.objects.filter(start_date__lte=d, end_date__gte=d)
            .order_by()
            .annotate(kind=Value(hold, output_field=IntegerField()))
            .values_list("kind", "start_date", "reason")
        )
    if not parts:
        return None
    query = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    # Closures before holds; among overlapping rows of one kind, the latest-starting one.
    rows = sorted(query, key=lambda row: (row[0], -row[1].toordinal()))
    if not rows:
        return None
    kind, _start, reason = rows[0]
    if kind == closure:
        return f"holiday: office closed ({reason})"
    return f"weather hold: {reason}"


def in_disconnect_window(dt: datetime.datetime) -> bool:
    """Whether the instant `dt` falls in the policy's disconnect window (start <= local time <
    end, in the cooperative's zone, policy in force on that local day); always True when the
    policy has no window ("disconnect at any time"). One query.

    Only the clock is checked here; whether the day itself is allowed is disconnect_grace_reason.
    """
    local = to_local(dt)
    policy = Policy.objects.in_force(local.date())
    if not policy.has_disconnect_window:
        return True
    return policy.disconnect_window_start <= local.time() < policy.disconnect_window_end
