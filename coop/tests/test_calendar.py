"""The business calendar: holidays of the cooperative's state, closures, weather holds, DST."""

import datetime
from datetime import UTC, date, time

import pytest
import time_machine
from django.core.exceptions import ImproperlyConfigured

from accounts.tests import factories
from coop import calendar
from coop.exceptions import PolicyNotConfigured
from coop.models import OfficeClosure, WeatherHold

CHICAGO_CDT = datetime.timedelta(hours=-5)
CHICAGO_CST = datetime.timedelta(hours=-6)


def utc(*args) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=UTC)


@pytest.fixture(autouse=True)
def wisconsin_cooperative(settings):
    """Pin the zone and state so a developer's COOP_* environment cannot change the answers."""
    settings.TIME_ZONE = "America/Chicago"
    settings.COOP_HOLIDAY_STATE = "WI"


# `policy`: one version since long ago with the model's defaults: hours 08:00–16:00, no grace, no
# disconnect window.
pytestmark = pytest.mark.policy(effective_from=date(2000, 1, 1))


def closure(start: date, end: date, reason: str = "Staff training") -> OfficeClosure:
    return OfficeClosure.objects.create(start_date=start, end_date=end, reason=reason)


def hold(start: date, end: date, reason: str = "Extreme cold") -> WeatherHold:
    return WeatherHold.objects.create(start_date=start, end_date=end, reason=reason)


# --- Time zone -----------------------------------------------------------------------------------


def test_local_now_is_the_frozen_instant_in_chicago():
    with time_machine.travel(utc(2026, 7, 1, 3, 30), tick=False):
        now = calendar.local_now()
        assert now == utc(2026, 7, 1, 3, 30)
        assert now.utcoffset() == CHICAGO_CDT
        assert (now.date(), now.time()) == (date(2026, 6, 30), time(22, 30))
        assert calendar.local_today() == date(2026, 6, 30)


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        # 05:30 UTC is 23:30 the evening before in standard time (UTC-6) ...
        (utc(2026, 3, 8, 5, 30), date(2026, 3, 7)),
        # ... and still the evening before in daylight time (UTC-5) from 04:00 UTC onwards,
        (utc(2026, 3, 9, 4, 30), date(2026, 3, 8)),
        (utc(2026, 3, 9, 5, 0), date(2026, 3, 9)),
        # but on the fall-back night the same 05:30 UTC is already 00:30 the next day (UTC-5),
        (utc(2026, 11, 1, 5, 30), date(2026, 11, 1)),
        # and a day later, in standard time, 05:30 UTC is 23:30 of the day before.
        (utc(2026, 11, 2, 5, 30), date(2026, 11, 1)),
        (utc(2026, 11, 2, 6, 0), date(2026, 11, 2)),
    ],
)
def test_local_date_of_an_instant_near_midnight_utc_follows_chicago_daylight_time(instant, expected):
    assert calendar.local_date(instant) == expected


def test_to_local_refuses_a_naive_datetime():
    with pytest.raises(ValueError, match="no time zone"):
        calendar.to_local(datetime.datetime(2026, 3, 8, 12, 0))


def test_date_functions_refuse_a_datetime_so_no_zone_is_guessed():
    with pytest.raises(TypeError, match="local_date"):
        calendar.is_weekend(utc(2026, 3, 8, 3, 0))


# --- Holidays ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_thanksgiving_2026_is_not_a_business_day_and_the_friday_after_is_the_next_one():
    assert calendar.holiday_name(date(2026, 11, 26)) == "Thanksgiving Day"
    assert not calendar.is_business_day(date(2026, 11, 26))
    assert calendar.next_business_day(date(2026, 11, 25)) == date(2026, 11, 27)


@pytest.mark.django_db
def test_christmas_on_a_saturday_is_observed_on_the_friday_before():
    # 2027-12-25 is a Saturday. Wisconsin also keeps Christmas Eve, itself moved to Thursday.
    assert "Christmas Day (observed)" in calendar.holiday_name(date(2027, 12, 24))
    assert calendar.holiday_name(date(2027, 12, 23)) == "Christmas Eve (observed)"
    assert not calendar.is_business_day(date(2027, 12, 24))
    assert calendar.next_business_day(date(2027, 12, 22)) == date(2027, 12, 27)


@pytest.mark.django_db
def test_christmas_on_a_sunday_is_observed_on_the_monday_after():
    # 2022-12-25 is a Sunday; Wisconsin's Christmas Eve (Saturday) moves to Friday the 23rd.
    assert calendar.holiday_name(date(2022, 12, 26)) == "Christmas Day (observed)"
    assert not calendar.is_business_day(date(2022, 12, 26))
    assert calendar.next_business_day(date(2022, 12, 22)) == date(2022, 12, 27)
    assert calendar.next_business_day(date(2022, 12, 23)) == date(2022, 12, 27)


@pytest.mark.django_db
def test_christmas_in_a_state_without_christmas_eve_leaves_the_thursday_a_business_day(settings):
    settings.COOP_HOLIDAY_STATE = "MN"
    assert calendar.is_business_day(date(2027, 12, 23))
    assert calendar.next_business_day(date(2027, 12, 23)) == date(2027, 12, 27)


def test_holidays_list_the_weekend_day_itself_beside_the_observed_weekday():
    days = calendar.us_holidays([2022, 2027])
    assert days[date(2027, 12, 25)] == "Christmas Day"
    assert "Christmas Day (observed)" in days[date(2027, 12, 24)]
    assert days[date(2022, 12, 25)] == "Christmas Day"
    assert days[date(2022, 12, 26)] == "Christmas Day (observed)"


def test_new_years_day_on_a_saturday_is_observed_in_the_year_before():
    # 2028-01-01 is a Saturday: the observed day belongs to 2027's list, not 2028's.
    assert "New Year's Day (observed)" in calendar.holiday_name(date(2027, 12, 31))
    assert date(2027, 12, 31) not in calendar.us_holidays(2028)


def test_the_holiday_list_is_read_only_so_the_cache_cannot_be_corrupted():
    with pytest.raises(TypeError):
        calendar.us_holidays(2026)[date(2026, 3, 3)] = "Made up"


@pytest.mark.django_db
def test_leap_day_2028_is_a_business_day_after_the_28th():
    assert date(2028, 2, 29).weekday() == 1  # Tuesday
    assert calendar.is_business_day(date(2028, 2, 29))
    assert calendar.next_business_day(date(2028, 2, 28)) == date(2028, 2, 29)
    assert calendar.next_business_day(date(2028, 2, 29)) == date(2028, 3, 1)
    assert calendar.add_business_days(date(2028, 2, 25), 2) == date(2028, 2, 29)


# --- State configurability ----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_day_after_thanksgiving_is_a_holiday_in_texas_but_not_in_wisconsin(settings):
    friday = date(2026, 11, 27)
    assert calendar.is_business_day(friday)
    assert calendar.next_business_day(date(2026, 11, 25)) == friday

    settings.COOP_HOLIDAY_STATE = "TX"
    assert calendar.holiday_name(friday) == "Friday After Thanksgiving"
    assert calendar.next_business_day(date(2026, 11, 25)) == date(2026, 11, 30)

    settings.COOP_HOLIDAY_STATE = "WI"  # the cache is keyed on the state: nothing leaks back
    assert calendar.holiday_name(friday) is None


@pytest.mark.django_db
def test_christmas_eve_is_a_holiday_in_wisconsin_but_not_in_minnesota(settings):
    christmas_eve = date(2026, 12, 24)  # a Thursday
    assert calendar.holiday_name(christmas_eve) == "Christmas Eve"
    settings.COOP_HOLIDAY_STATE = "MN"
    assert calendar.is_business_day(christmas_eve)


def test_an_unknown_holiday_state_is_a_configuration_error(settings):
    settings.COOP_HOLIDAY_STATE = "XX"
    with pytest.raises(ImproperlyConfigured, match="COOP_HOLIDAY_STATE"):
        calendar.is_holiday(date(2026, 1, 1))


# --- Office closures and weather holds ----------------------------------------------------------


@pytest.mark.django_db
def test_an_office_closure_covers_both_its_first_and_last_day():
    annual_meeting = closure(date(2026, 6, 10), date(2026, 6, 12), "Annual meeting")
    assert calendar.is_business_day(date(2026, 6, 9))
    for day in (date(2026, 6, 10), date(2026, 6, 11), date(2026, 6, 12)):
        assert calendar.office_closure_on(day) == annual_meeting
        assert not calendar.is_business_day(day)
    assert calendar.office_closure_on(date(2026, 6, 13)) is None
    assert calendar.next_business_day(date(2026, 6, 9)) == date(2026, 6, 15)
    assert calendar.business_day_on_or_after(date(2026, 6, 10)) == date(2026, 6, 15)


@pytest.mark.django_db
def test_a_weather_hold_covers_both_ends_but_leaves_business_days_alone():
    cold_snap = hold(date(2026, 1, 26), date(2026, 1, 28), "Wind chill -40")
    assert calendar.weather_hold_on(date(2026, 1, 25)) is None
    for day in (date(2026, 1, 26), date(2026, 1, 27), date(2026, 1, 28)):
        assert calendar.weather_hold_on(day) == cold_snap
        assert calendar.is_business_day(day)
    assert calendar.weather_hold_on(date(2026, 1, 29)) is None


@pytest.mark.django_db
def test_next_business_day_makes_one_query_across_a_long_closure(django_assert_max_num_queries):
    closure(date(2026, 3, 2), date(2026, 5, 29), "Office rebuilt after fire")
    with django_assert_max_num_queries(1):
        assert calendar.next_business_day(date(2026, 2, 27)) == date(2026, 6, 1)
    with django_assert_max_num_queries(1):
        assert calendar.add_business_days(date(2026, 2, 27), 3) == date(2026, 6, 3)


@pytest.mark.django_db
def test_a_closure_of_more_than_a_year_is_reported_instead_of_searched_forever(
    django_assert_max_num_queries,
):
    closure(date(2026, 1, 1), date(2027, 12, 31), "Typo: should have ended 2026-01-02")
    with django_assert_max_num_queries(1), pytest.raises(calendar.NoBusinessDayFound, match="closures"):
        calendar.next_business_day(date(2026, 1, 1))


@pytest.mark.django_db
def test_business_day_checks_need_no_query_on_weekends_and_holidays(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert not calendar.is_business_day(date(2026, 11, 28))  # Saturday
        assert not calendar.is_business_day(date(2026, 7, 3))  # Independence Day (observed)
    with django_assert_num_queries(1):
        assert calendar.is_business_day(date(2026, 7, 6))


# --- Adding business days ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_delinquent_notice_two_business_days_after_a_friday_due_date_is_tuesday():
    assert calendar.add_business_days(date(2026, 10, 2), 2) == date(2026, 10, 6)


@pytest.mark.django_db
def test_adding_business_days_from_a_saturday_counts_monday_as_the_first():
    assert calendar.add_business_days(date(2026, 10, 3), 1) == date(2026, 10, 5)
    assert calendar.add_business_days(date(2026, 10, 3), 2) == date(2026, 10, 6)


@pytest.mark.django_db
def test_adding_business_days_skips_holidays_and_closures():
    closure(date(2026, 11, 30), date(2026, 11, 30), "Inventory")
    # Wed 25th + 2: Thanksgiving, weekend and the closed Monday are skipped.
    assert calendar.add_business_days(date(2026, 11, 25), 2) == date(2026, 12, 1)


@pytest.mark.django_db
def test_adding_zero_business_days_stays_put_and_negative_days_go_back():
    assert calendar.add_business_days(date(2026, 10, 3), 0) == date(2026, 10, 3)
    assert calendar.add_business_days(date(2026, 11, 27), -1) == date(2026, 11, 25)
    assert calendar.add_business_days(date(2026, 10, 5), -1) == date(2026, 10, 2)


# --- Business hours ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        # Friday before spring forward, standard time (UTC-6): 08:00 local is 14:00 UTC.
        (utc(2026, 3, 6, 13, 59), False),
        (utc(2026, 3, 6, 14, 0), True),
        (utc(2026, 3, 6, 21, 59), True),  # 15:59
        (utc(2026, 3, 6, 22, 0), False),  # 16:00: the end is excluded
        # Sunday 8 March, the change itself: a weekend, never business hours.
        (utc(2026, 3, 8, 15, 0), False),
        # Monday after, daylight time (UTC-5): 08:00 local is now 13:00 UTC.
        (utc(2026, 3, 9, 12, 59), False),
        (utc(2026, 3, 9, 13, 0), True),
        (utc(2026, 3, 9, 20, 59), True),  # 15:59
        (utc(2026, 3, 9, 21, 0), False),  # 16:00
    ],
)
def test_business_hours_around_spring_forward(policy, instant, expected):
    assert calendar.is_business_hours(instant) is expected


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        # Friday before fall back, daylight time (UTC-5).
        (utc(2026, 10, 30, 13, 0), True),
        (utc(2026, 10, 30, 21, 0), False),
        # Sunday 1 November, the change itself: a weekend.
        (utc(2026, 11, 1, 15, 0), False),
        # Monday after, standard time (UTC-6): 13:00 UTC is 07:00, too early.
        (utc(2026, 11, 2, 13, 0), False),
        (utc(2026, 11, 2, 14, 0), True),
        (utc(2026, 11, 2, 21, 0), True),  # 15:00
        (utc(2026, 11, 2, 22, 0), False),  # 16:00
    ],
)
def test_business_hours_around_fall_back(policy, instant, expected):
    assert calendar.is_business_hours(instant) is expected


@pytest.mark.django_db
def test_business_hours_use_the_local_day_not_the_utc_day(policy):
    # Monday 2 November 02:00 UTC is still Sunday 20:00 in Chicago; with late office hours the
    # answer depends on which day it is.
    factories.policy_scheduled(
        effective_from=date(2026, 1, 1),
        name="Late hours",
        business_hours_start=time(8, 0),
        business_hours_end=time(23, 0),
    )
    assert not calendar.is_business_hours(utc(2026, 11, 2, 2, 0))  # Sunday 20:00
    assert calendar.is_business_hours(utc(2026, 11, 3, 2, 0))  # Monday 20:00


@pytest.mark.django_db
def test_no_business_hours_on_a_holiday_or_an_office_closure(policy):
    closure(date(2026, 6, 10), date(2026, 6, 10), "Annual meeting")
    assert not calendar.is_business_hours(utc(2026, 11, 26, 15, 0))  # Thanksgiving, 09:00
    assert not calendar.is_business_hours(utc(2026, 6, 10, 15, 0))  # closure, 10:00
    assert calendar.is_business_hours(utc(2026, 6, 11, 15, 0))


@pytest.mark.django_db
def test_the_policy_in_force_on_the_day_decides_business_hours(policy):
    factories.policy_scheduled(
        effective_from=date(2026, 7, 1),
        name="Summer hours",
        business_hours_start=time(7, 0),
        business_hours_end=time(15, 0),
    )
    # 07:30 local (CDT): before the change under the old 08:00 start, after it under the new one.
    assert not calendar.is_business_hours(utc(2026, 6, 30, 12, 30))
    assert calendar.is_business_hours(utc(2026, 7, 1, 12, 30))
    # 15:30 local: still open on 30 June, closed from 1 July.
    assert calendar.is_business_hours(utc(2026, 6, 30, 20, 30))
    assert not calendar.is_business_hours(utc(2026, 7, 1, 20, 30))


@pytest.mark.django_db
def test_business_hours_take_at_most_two_queries(policy, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):
        assert calendar.is_business_hours(utc(2026, 7, 7, 15, 0))


@pytest.mark.django_db
def test_without_a_policy_business_hours_cannot_be_known():
    with pytest.raises(PolicyNotConfigured):
        calendar.is_business_hours(utc(2026, 7, 7, 15, 0))


# --- Disconnect window ---------------------------------------------------------------------------


@pytest.fixture
def ten_to_eleven(db):
    """Program E: disconnect only between 10:00 and 11:00, with every kind of grace."""
    return factories.policy(
        effective_from=date(2000, 1, 1),
        name="Program E",
        grace_on_weekends=True,
        grace_on_holidays=True,
        grace_on_weather_holds=True,
        disconnect_window_start=time(10, 0),
        disconnect_window_end=time(11, 0),
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        # Saturday 7 March, standard time: 10:00 local is 16:00 UTC.
        (utc(2026, 3, 7, 15, 30), False),
        (utc(2026, 3, 7, 16, 0), True),
        (utc(2026, 3, 7, 16, 59), True),
        (utc(2026, 3, 7, 17, 0), False),
        # Sunday 8 March, after the 02:00 jump: 10:00 local is 15:00 UTC.
        (utc(2026, 3, 8, 15, 0), True),
        (utc(2026, 3, 8, 15, 59), True),
        (utc(2026, 3, 8, 16, 0), False),
        # Sunday 1 November, after falling back at 02:00: 10:00 local is 16:00 UTC again.
        (utc(2026, 11, 1, 15, 30), False),
        (utc(2026, 11, 1, 16, 0), True),
        (utc(2026, 11, 1, 17, 0), False),
        # Saturday 31 October, still daylight time.
        (utc(2026, 10, 31, 15, 0), True),
        (utc(2026, 10, 31, 16, 0), False),
    ],
)
def test_disconnect_window_on_the_dst_change_days(ten_to_eleven, instant, expected):
    assert calendar.in_disconnect_window(instant) is expected


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        # Fall back: 01:00–02:00 happens twice, and both are in a 01:00–03:00 window.
        (utc(2026, 11, 1, 5, 59), False),  # 00:59 CDT
        (utc(2026, 11, 1, 6, 30), True),  # 01:30 CDT
        (utc(2026, 11, 1, 7, 30), True),  # 01:30 CST, the second time
        (utc(2026, 11, 1, 8, 30), True),  # 02:30 CST
        (utc(2026, 11, 1, 9, 0), False),  # 03:00 CST
        # Spring forward: 02:00–03:00 never happens; 01:59 CST is followed by 03:00 CDT.
        (utc(2026, 3, 8, 7, 59), True),  # 01:59 CST
        (utc(2026, 3, 8, 8, 0), False),  # 03:00 CDT
    ],
)
def test_a_night_disconnect_window_across_the_repeated_and_the_missing_hour(instant, expected):
    factories.policy(
        effective_from=date(2000, 1, 1),
        name="Night window",
        disconnect_window_start=time(1, 0),
        disconnect_window_end=time(3, 0),
    )
    assert calendar.to_local(instant).utcoffset() in (CHICAGO_CDT, CHICAGO_CST)
    assert calendar.in_disconnect_window(instant) is expected


@pytest.mark.django_db
def test_a_policy_without_a_window_allows_disconnection_at_any_time(policy):
    assert calendar.in_disconnect_window(utc(2026, 3, 8, 8, 0))
    assert calendar.in_disconnect_window(utc(2026, 11, 1, 7, 30))


@pytest.mark.django_db
def test_the_disconnect_window_follows_the_policy_in_force_on_the_local_day(ten_to_eleven):
    factories.policy_scheduled(
        effective_from=date(2026, 7, 1),
        name="Program B",
    )
    assert not calendar.in_disconnect_window(utc(2026, 6, 30, 18, 0))  # 13:00, window 10–11
    assert calendar.in_disconnect_window(utc(2026, 7, 1, 18, 0))  # 13:00, no window
    # 04:30 UTC on 1 July is 23:30 on 30 June in Chicago: the June policy (and window) applies.
    assert not calendar.in_disconnect_window(utc(2026, 7, 1, 4, 30))


# --- Disconnect grace ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_no_grace_on_an_ordinary_weekday(ten_to_eleven):
    assert calendar.disconnect_grace_reason(date(2026, 1, 13)) is None


@pytest.mark.django_db
def test_grace_on_a_weekend(ten_to_eleven):
    assert calendar.disconnect_grace_reason(date(2026, 1, 17)) == "weekend"


@pytest.mark.django_db
def test_grace_on_a_holiday_names_it(ten_to_eleven):
    assert calendar.disconnect_grace_reason(date(2026, 11, 26)) == "holiday: Thanksgiving Day"


@pytest.mark.django_db
def test_holiday_grace_covers_a_christmas_on_a_saturday_even_without_weekend_grace():
    factories.policy(effective_from=date(2000, 1, 1), name="Holidays only", grace_on_holidays=True)
    assert calendar.disconnect_grace_reason(date(2027, 12, 25)) == "holiday: Christmas Day"
    assert calendar.disconnect_grace_reason(date(2027, 12, 26)) is None  # an ordinary Sunday


@pytest.mark.django_db
def test_an_office_closure_is_holiday_grace_because_no_one_can_take_the_reconnect_call(ten_to_eleven):
    closure(date(2026, 6, 10), date(2026, 6, 11), "Annual meeting")
    hold(date(2026, 6, 11), date(2026, 6, 11), "Heat advisory")
    assert calendar.disconnect_grace_reason(date(2026, 6, 10)) == "holiday: office closed (Annual meeting)"
    # Both on the 11th: the closure is reported first.
    assert calendar.disconnect_grace_reason(date(2026, 6, 11)) == "holiday: office closed (Annual meeting)"


@pytest.mark.django_db
def test_grace_during_a_weather_hold_gives_its_reason(ten_to_eleven):
    hold(date(2026, 1, 26), date(2026, 1, 28), "Wind chill -40")
    assert calendar.disconnect_grace_reason(date(2026, 1, 26)) == "weather hold: Wind chill -40"
    assert calendar.disconnect_grace_reason(date(2026, 1, 28)) == "weather hold: Wind chill -40"
    assert calendar.disconnect_grace_reason(date(2026, 1, 29)) is None


@pytest.mark.django_db
def test_a_policy_without_grace_allows_disconnection_on_any_day(policy):
    # Programs A and B: "none: weather does not postpone it".
    closure(date(2026, 6, 10), date(2026, 6, 10), "Annual meeting")
    hold(date(2026, 1, 26), date(2026, 1, 26), "Wind chill -40")
    for day in (date(2026, 1, 17), date(2026, 11, 26), date(2026, 6, 10), date(2026, 1, 26)):
        assert calendar.disconnect_grace_reason(day) is None


@pytest.mark.django_db
def test_weather_grace_alone_ignores_weekends_holidays_and_closures():
    factories.policy(effective_from=date(2000, 1, 1), name="Weather only", grace_on_weather_holds=True)
    closure(date(2026, 6, 10), date(2026, 6, 10), "Annual meeting")
    hold(date(2026, 11, 26), date(2026, 11, 26), "Ice storm")
    assert calendar.disconnect_grace_reason(date(2026, 1, 17)) is None
    assert calendar.disconnect_grace_reason(date(2026, 6, 10)) is None
    assert calendar.disconnect_grace_reason(date(2026, 11, 26)) == "weather hold: Ice storm"


@pytest.mark.django_db
def test_grace_follows_the_policy_in_force_on_the_day(policy):
    factories.policy_scheduled(effective_from=date(2026, 7, 1), name="Program E", grace_on_weekends=True)
    assert calendar.disconnect_grace_reason(date(2026, 6, 27)) is None  # Saturday, old policy
    assert calendar.disconnect_grace_reason(date(2026, 7, 4)) == "weekend"  # Saturday, new policy


@pytest.mark.django_db
def test_disconnect_grace_takes_at_most_two_queries(ten_to_eleven, django_assert_max_num_queries):
    hold(date(2026, 1, 27), date(2026, 1, 27))
    with django_assert_max_num_queries(2):
        assert calendar.disconnect_grace_reason(date(2026, 1, 13)) is None
    with django_assert_max_num_queries(2):
        assert calendar.disconnect_grace_reason(date(2026, 1, 27)) == "weather hold: Extreme cold"


@pytest.mark.django_db
def test_holidays_the_office_works_on_can_be_ignored(settings):
    from coop.calendar import holiday_name

    assert holiday_name(datetime.date(2026, 11, 11)) == "Veterans Day"
    settings.COOP_HOLIDAYS_IGNORED = ["Veterans Day", "Christmas Eve"]
    assert holiday_name(datetime.date(2026, 11, 11)) is None
    assert calendar.is_business_day(datetime.date(2026, 11, 11))
    # Christmas Eve 2027 is also the observed Christmas: that name stays.
    assert holiday_name(datetime.date(2027, 12, 24)) == "Christmas Day (observed)"
