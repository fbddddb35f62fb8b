"""The recurring jobs' django-q2 schedules, and the tasks they run."""

import datetime
import io
import sys
import types
import zoneinfo

import pytest
import time_machine
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

from billing import tasks
from coop import schedules
from coop.schedules import ensure_schedules
from coop.tests.test_settings import SETUP, run_python
from meters import tasks as meters_tasks
from notifications import tasks as notifications_tasks

pytestmark = pytest.mark.django_db
CHICAGO = zoneinfo.ZoneInfo("America/Chicago")

EXPECTED = {
    schedules.DAILY_RUN: ("billing.tasks.daily_run_task", Schedule.DAILY, None),
    schedules.DISCONNECTS: ("billing.tasks.disconnect_window_task", Schedule.MINUTES, 15),
    schedules.INACTIVE_SWEEP: ("billing.tasks.inactive_sweep_task", Schedule.DAILY, None),
    schedules.ORDERS_RETRY: ("meters.tasks.orders_retry_task", Schedule.MINUTES, 1),
    schedules.MESSAGES_RETRY: ("notifications.tasks.messages_retry_due_task", Schedule.MINUTES, 1),
}


def rows() -> dict[str, Schedule]:
    return {s.name: s for s in Schedule.objects.order_by("name")}


def local_clock(instant: datetime.datetime) -> datetime.time:
    return timezone.localtime(instant, CHICAGO).time()


def test_migrate_left_one_schedule_per_job_with_daily_jobs_at_their_local_times():
    # The test database was made by `migrate`, whose post_migrate signal ran ensure_schedules.
    found = rows()
    assert sorted(found) == sorted(EXPECTED)
    assert Schedule.objects.count() == len(EXPECTED)
    for name, (func, kind, minutes) in EXPECTED.items():
        assert (found[name].func, found[name].schedule_type, found[name].minutes) == (func, kind, minutes)
        assert found[name].repeats == -1 and found[name].cluster is None
    assert local_clock(found[schedules.DAILY_RUN].next_run) == datetime.time(6, 0)
    assert local_clock(found[schedules.INACTIVE_SWEEP].next_run) == datetime.time(7, 0)


def test_every_scheduled_function_is_a_task_that_can_be_imported():
    for func, _kind, _minutes in EXPECTED.values():
        assert callable(import_string(func))


def test_ensuring_twice_changes_nothing_and_never_duplicates():
    before = {name: (s.pk, s.next_run) for name, s in rows().items()}
    assert set(ensure_schedules().values()) == {"unchanged"}
    assert set(ensure_schedules().values()) == {"unchanged"}
    assert {name: (s.pk, s.next_run) for name, s in rows().items()} == before


def test_a_fresh_database_gets_the_next_local_run_time_and_migrate_recreates_missing_rows():
    Schedule.objects.all().delete()
    # 22:30 in Chicago on 20 November is already 21 November in UTC: the next 06:00 is the 21st's.
    with time_machine.travel(datetime.datetime(2026, 11, 20, 22, 30, tzinfo=CHICAGO), tick=False):
        assert set(ensure_schedules().values()) == {"created"}
    found = rows()
    assert found[schedules.DAILY_RUN].next_run == datetime.datetime(2026, 11, 21, 6, 0, tzinfo=CHICAGO)
    assert found[schedules.INACTIVE_SWEEP].next_run == datetime.datetime(2026, 11, 21, 7, 0, tzinfo=CHICAGO)

    Schedule.objects.filter(name=schedules.ORDERS_RETRY).delete()
    Schedule.objects.create(
        name=schedules.MESSAGES_RETRY, func="notifications.tasks.messages_retry_due_task"
    )  # a copy
    out = io.StringIO()
    call_command("migrate", verbosity=1, stdout=out)
    assert sorted(rows()) == sorted(EXPECTED)
    assert Schedule.objects.count() == len(EXPECTED)
    assert "coop: service order retries created" in out.getvalue()
    assert "coop: message retries updated" in out.getvalue()


def test_a_changed_run_time_or_interval_updates_the_existing_rows(settings):
    before = rows()
    settings.COOP_DAILY_RUN_AT = datetime.time(5, 30)
    settings.COOP_DISCONNECT_EVERY_MINUTES = 10
    with time_machine.travel(datetime.datetime(2026, 3, 7, 12, 0, tzinfo=CHICAGO), tick=False):
        done = ensure_schedules()
    assert done[schedules.DAILY_RUN] == "updated" and done[schedules.DISCONNECTS] == "updated"
    assert done[schedules.INACTIVE_SWEEP] == "unchanged"
    after = rows()
    assert after[schedules.DAILY_RUN].pk == before[schedules.DAILY_RUN].pk
    # The next 05:30 after noon on 7 March is the 8th, the morning the clocks go forward.
    assert after[schedules.DAILY_RUN].next_run == datetime.datetime(2026, 3, 8, 5, 30, tzinfo=CHICAGO)
    assert after[schedules.DISCONNECTS].minutes == 10
    assert set(ensure_schedules().values()) == {"unchanged"}


def test_a_schedule_paused_in_the_admin_stays_paused():
    Schedule.objects.filter(name=schedules.DAILY_RUN).update(repeats=0)
    assert ensure_schedules()[schedules.DAILY_RUN] == "unchanged"
    assert Schedule.objects.get(name=schedules.DAILY_RUN).repeats == 0


@pytest.mark.parametrize(
    "start, expected",
    [
        # Daylight saving time starts on 8 March 2026 and ends on 1 November 2026.
        ((2026, 3, 7), [(2026, 3, 8), (2026, 3, 9)]),
        ((2026, 10, 31), [(2026, 11, 1), (2026, 11, 2)]),
    ],
)
def test_django_q2_keeps_the_daily_run_at_six_local_across_daylight_saving_changes(start, expected):
    # As the scheduler does it: next_run read back from the database (in UTC, so that adding a
    # day is 24 real hours, not 24 hours of Chicago wall clock), moved on, saved.
    daily = Schedule.objects.get(name=schedules.DAILY_RUN)
    daily.next_run = datetime.datetime(*start, 6, 0, tzinfo=CHICAGO)
    for day in expected:
        daily.save(update_fields=["next_run"])
        daily.refresh_from_db()
        assert daily.next_run.utcoffset() == datetime.timedelta(0)
        daily.next_run = daily.calculate_next_run(daily.next_run)
        assert daily.next_run == datetime.datetime(*day, 6, 0, tzinfo=CHICAGO)
        assert local_clock(daily.next_run) == datetime.time(6, 0)


def test_the_cluster_reckons_schedules_in_the_cooperatives_zone():
    # django-q2 corrects DAILY schedules in Q_CLUSTER["time_zone"], which defaults to TIME_ZONE.
    from django_q.conf import Conf

    assert django_settings.Q_CLUSTER.get("time_zone", django_settings.TIME_ZONE) == django_settings.TIME_ZONE
    assert Conf.TIME_ZONE == django_settings.TIME_ZONE


def test_nothing_is_done_when_the_django_q_tables_do_not_exist(monkeypatch):
    monkeypatch.setattr(connection.introspection, "table_names", lambda *a, **kw: [])
    Schedule.objects.all().delete()
    assert ensure_schedules() == {}
    assert not Schedule.objects.exists()


@pytest.mark.parametrize(
    "value, message",
    [
        ("6am", "COOP_DAILY_RUN_AT='6am' is not a time of day: write it as HH:MM"),
        ("24:00", "COOP_DAILY_RUN_AT='24:00' is not a time of day"),
        ("02:30", "COOP_DAILY_RUN_AT=02:30 does not exist every day in America/Chicago"),
    ],
)
def test_a_bad_daily_run_time_is_refused_when_the_settings_load(value, message):
    result = run_python(
        SETUP, COOP_DAILY_RUN_AT=value, COOP_DEBUG_DEFAULT="true", COOP_TIME_ZONE="America/Chicago"
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_a_good_daily_run_time_is_read_in_the_cooperatives_zone():
    code = (
        SETUP + "from django.conf import settings as s; print(s.COOP_DAILY_RUN_AT, s.COOP_INACTIVE_SWEEP_AT)"
    )
    result = run_python(code, COOP_DAILY_RUN_AT="05:45", COOP_DEBUG_DEFAULT="true")
    assert result.stdout.split() == ["05:45:00", "07:00:00"], result.stderr


# --- The tasks -----------------------------------------------------------------------------------


@pytest.fixture
def fake_module(monkeypatch):
    """Stand in for a service module (being written elsewhere), recording each call's arguments."""
    calls = []

    def install(dotted: str, name: str, result=None):
        module = types.ModuleType(dotted)

        def service(**kwargs):
            calls.append((name, kwargs))
            return result

        setattr(module, name, service)
        monkeypatch.setitem(sys.modules, dotted, module)

    install.calls = calls
    return install


def test_the_daily_run_task_runs_yesterday_in_the_cooperatives_zone_or_the_day_given(fake_module):
    fake_module("billing.daily", "daily_run", result=types.SimpleNamespace(pk=41))
    # 20:00 on 20 November in Chicago is already the 21st in UTC; yesterday is still the 19th.
    with time_machine.travel(datetime.datetime(2026, 11, 20, 20, 0, tzinfo=CHICAGO), tick=False):
        assert tasks.daily_run_task() == 41
    assert tasks.daily_run_task("2026-03-08") == 41
    assert fake_module.calls == [
        ("daily_run", {"day": datetime.date(2026, 11, 19)}),
        ("daily_run", {"day": datetime.date(2026, 3, 8)}),
    ]


def test_the_other_tasks_call_their_services_with_the_time_now(fake_module, monkeypatch):
    now = datetime.datetime(2026, 3, 9, 10, 15, tzinfo=CHICAGO)
    fake_module("billing.prepaid", "disconnect_run", result=3)

    def recorded(name, result):
        def service(**kwargs):
            fake_module.calls.append((name, kwargs))
            return result

        return service

    # The retries are meters' and notifications' own tasks, which import their services at the top.
    monkeypatch.setattr("meters.services.orders_retry_due", recorded("orders_retry_due", 2))
    monkeypatch.setattr("notifications.services.messages_retry_due", recorded("messages_retry_due", 1))
    with time_machine.travel(now, tick=False):
        assert (
            tasks.disconnect_window_task(),
            meters_tasks.orders_retry_task(),
            notifications_tasks.messages_retry_due_task(),
        ) == (3, 2, 1)
    assert fake_module.calls == [
        ("disconnect_run", {"now": now}),
        ("orders_retry_due", {"now": now}),
        ("messages_retry_due", {}),
    ]


def test_a_database_from_before_the_retries_moved_is_pointed_at_their_new_tasks_and_stays_paused():
    """The retries were billing.tasks.orders_retry_task and billing.tasks.messages_retry_task; a
    database migrated then keeps its rows (found by name), and the next migrate repoints them."""
    ensure_schedules()
    Schedule.objects.filter(name=schedules.ORDERS_RETRY).update(
        func="billing.tasks.orders_retry_task", repeats=0
    )
    Schedule.objects.filter(name=schedules.MESSAGES_RETRY).update(func="billing.tasks.messages_retry_task")
    call_command("migrate", verbosity=0)
    found = rows()
    assert found[schedules.ORDERS_RETRY].func == "meters.tasks.orders_retry_task"
    assert found[schedules.ORDERS_RETRY].repeats == 0
    assert found[schedules.MESSAGES_RETRY].func == "notifications.tasks.messages_retry_due_task"


def test_the_inactive_sweep_task_takes_its_day_as_an_iso_string(monkeypatch):
    seen = []
    monkeypatch.setattr("billing.inactive.inactive_sweep", lambda *, today: seen.append(today) or 0)
    assert tasks.inactive_sweep_task("2026-03-09") == 0
    assert tasks.inactive_sweep_task() == 0
    assert seen == [datetime.date(2026, 3, 9), None]
