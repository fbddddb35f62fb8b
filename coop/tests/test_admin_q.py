"""Staff cannot run code: django-q2's schedules and task records are read-only in the admin for
every role, managers may only pause or resume the cooperative's own schedules (audited), a
superuser may name only a registered task, and the cluster refuses any other function."""

import ast
import datetime
import pathlib
import re
from multiprocessing import Queue, Value

import django_q.monitor
import django_q.scheduler
import django_q.worker
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Failure, Schedule, Success
from django_q.monitor import monitor
from django_q.scheduler import scheduler
from django_q.signing import SignedPackage
from django_q.tasks import async_task
from django_q.worker import worker

from accounts.tests import factories
from coop import roles, schedules
from coop.models import ScheduleChange
from coop.task_registry import REFUSED_TASK, registered_tasks
from coop.validators import CardNumberRefused

pytestmark = pytest.mark.django_db

SHELL = "subprocess.getoutput"


def add_form(func: str, **extra) -> dict:
    return {
        "name": "mine",
        "func": func,
        "args": "'touch /tmp/pwned'",
        "kwargs": "",
        "schedule_type": Schedule.ONCE,
        "repeats": "-1",
        "next_run_0": "2030-01-01",
        "next_run_1": "06:00:00",
        "change_reason": "testing",
        **extra,
    }


def daily_run() -> Schedule:
    return Schedule.objects.get(name=schedules.DAILY_RUN)


# --- No role may write django-q2's records -----------------------------------------------------


@pytest.mark.parametrize("role", [roles.CLERK, roles.MANAGER, roles.AUDITOR])
def test_no_role_holds_a_permission_to_add_change_or_delete_django_q_records(role):
    held = Group.objects.get(name=role).permissions.filter(content_type__app_label="django_q")
    assert sorted(p.codename.split("_", 1)[0] for p in held) == ["view"] * held.count()
    assert held.filter(codename="view_schedule").exists()


def test_a_manager_posting_a_shell_command_as_a_schedule_is_refused(client):
    client.force_login(factories.staff(roles.MANAGER))
    assert client.get(reverse("admin:django_q_schedule_add")).status_code == 403
    response = client.post(reverse("admin:django_q_schedule_add"), add_form(SHELL))
    assert response.status_code == 403
    assert not Schedule.objects.filter(func=SHELL).exists()


def test_a_manager_cannot_change_an_existing_schedule_to_run_a_shell_command(client):
    client.force_login(factories.staff(roles.MANAGER))
    schedule = daily_run()
    url = reverse("admin:django_q_schedule_change", args=[schedule.pk])
    assert client.post(url, add_form(SHELL, name=schedule.name)).status_code == 403
    assert daily_run().func == "billing.tasks.daily_run_task"


def test_even_a_group_given_every_django_q_permission_cannot_write_schedules(client):
    # A permission granted by hand later (not by sync_roles) still opens nothing.
    manager = factories.staff(roles.MANAGER)
    manager.user_permissions.add(*Permission.objects.filter(content_type__app_label="django_q"))
    manager = get_user_model().objects.get(pk=manager.pk)
    client.force_login(manager)
    assert client.post(reverse("admin:django_q_schedule_add"), add_form(SHELL)).status_code == 403
    failure = Failure.objects.create(
        id="f1",
        name="x",
        func="billing.tasks.daily_run_task",
        started=timezone.now(),
        stopped=timezone.now(),
        success=False,
    )
    assert (
        client.post(reverse("admin:django_q_failure_delete", args=[failure.pk]), {"post": "yes"}).status_code
        == 403
    )
    response = client.post(
        reverse("admin:django_q_failure_changelist"),
        {"action": "resubmit_task", "_selected_action": [failure.pk]},
    )
    assert Failure.objects.filter(pk=failure.pk).exists()
    assert response.status_code in (200, 302)


@pytest.mark.parametrize("role", [roles.CLERK, roles.MANAGER, roles.AUDITOR])
def test_every_role_sees_the_schedules_and_task_records(client, role):
    client.force_login(factories.staff(role))
    for name in ("schedule", "success", "failure", "ormq"):
        assert client.get(reverse(f"admin:django_q_{name}_changelist")).status_code == 200
    assert client.get(reverse("admin:django_q_schedule_change", args=[daily_run().pk])).status_code == 200


# --- A superuser may name only a registered task ------------------------------------------------


def test_a_superuser_naming_a_shell_command_gets_a_field_error(client, superuser):
    client.force_login(superuser)
    response = client.post(reverse("admin:django_q_schedule_add"), add_form(SHELL))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "func" in errors and "not one of the cooperative's registered tasks" in errors["func"][0]
    assert not Schedule.objects.filter(func=SHELL).exists()


def test_a_superuser_may_schedule_a_registered_task_and_it_is_recorded(client, superuser):
    client.force_login(superuser)
    page = client.get(reverse("admin:django_q_schedule_add"))
    assert page.status_code == 200
    choices = [value for value, _label in page.context["adminform"].form.fields["func"].choices]
    assert "billing.tasks.daily_run_task" in choices and SHELL not in choices
    response = client.post(reverse("admin:django_q_schedule_add"), add_form("meters.tasks.orders_retry_task"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    schedule = Schedule.objects.get(name="mine")
    assert schedule.func == "meters.tasks.orders_retry_task" and not schedule.hook
    change = ScheduleChange.objects.get(schedule_id=schedule.pk)
    assert (change.action, change.actor, change.reason) == (ScheduleChange.Action.SAVED, superuser, "testing")


def test_a_superuser_edit_drops_a_result_hook_left_on_a_row(client, superuser):
    schedule = Schedule.objects.create(name="old", func="meters.tasks.orders_retry_task", hook="os.system")
    client.force_login(superuser)
    response = client.post(
        reverse("admin:django_q_schedule_change", args=[schedule.pk]),
        add_form("meters.tasks.orders_retry_task", name="old"),
    )
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert schedule.hook is None


def test_the_registered_tasks_are_the_tasks_modules_task_functions_and_cover_every_schedule():
    tasks = registered_tasks()
    assert {job.func for job in schedules.jobs()} <= tasks
    assert {"meters.tasks.order_send_task", "notifications.tasks.messages_send_task"} <= tasks
    assert "notifications.tasks.enqueue_send" not in tasks  # a helper, not a task
    assert SHELL not in tasks and "os.system" not in tasks


def test_every_function_the_code_enqueues_by_name_is_a_registered_task():
    base = pathlib.Path(settings.BASE_DIR)
    named = set()
    for path in base.glob("*/**/*.py"):
        parts = path.relative_to(base).parts  # not the checkout's own folders (one may be "tests")
        if ".venv" in parts or "tests" in parts or "migrations" in parts:
            continue
        for call in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(call, ast.Call)
                and getattr(call.func, "attr", getattr(call.func, "id", None)) in ("async_task", "schedule")
                and call.args
                and isinstance(call.args[0], ast.Constant)
                and isinstance(call.args[0].value, str)
                and re.fullmatch(r"[\w.]+", call.args[0].value)
            ):
                named.add(call.args[0].value)
    assert named, "found no async_task calls: the scan is broken"
    missing = named - registered_tasks()
    assert not missing, f"enqueued but not registered (add to coop.task_registry.ENQUEUED_BY_CODE): {missing}"


# --- The cluster refuses an unregistered function -----------------------------------------------


@pytest.fixture(autouse=True)
def keep_the_test_connection(monkeypatch):
    # The scheduler and a cluster's worker close stale database connections before each task; here that would
    # close the test's own connection (and its transaction) on PostgreSQL.
    monkeypatch.setattr(django_q.worker, "close_old_django_connections", lambda: None)
    monkeypatch.setattr(django_q.monitor, "close_old_django_connections", lambda: None)
    monkeypatch.setattr(django_q.scheduler, "close_old_django_connections", lambda: None)


def run_queue_like_the_cluster() -> int:
    """Hand every queued package to django-q2's own worker and monitor, as a cluster process
    would (the scheduler and async_task put them on the database broker)."""
    broker = get_broker()
    task_queue, result_queue = Queue(), Queue()
    count = 0
    while packages := broker.dequeue():
        for ack_id, pack in packages:
            task_queue.put(SignedPackage.loads(pack))
            broker.acknowledge(ack_id)
            count += 1
    task_queue.put("STOP")
    worker(task_queue, result_queue, Value("f", -1))
    result_queue.put("STOP")
    monitor(result_queue)
    return count


def test_the_cluster_refuses_a_schedule_row_naming_a_shell_command(tmp_path):
    marker = tmp_path / "pwned"
    Schedule.objects.create(
        name="written behind the admin's back",
        func=SHELL,
        args=repr(f"touch {marker}"),
        next_run=timezone.now() - datetime.timedelta(minutes=1),
    )
    Schedule.objects.exclude(func=SHELL).update(repeats=0)  # only the bad row is due
    scheduler(broker=get_broker())
    assert run_queue_like_the_cluster() == 1
    assert not marker.exists()
    failure = Failure.objects.get(group="written behind the admin's back")
    assert failure.func == REFUSED_TASK
    assert "refused to run 'subprocess.getoutput'" in failure.result


def test_a_refused_schedule_does_not_stop_the_others(tmp_path):
    Schedule.objects.create(
        name="bad", func=SHELL, args="'true'", next_run=timezone.now() - datetime.timedelta(1)
    )
    Schedule.objects.filter(name=schedules.ORDERS_RETRY).update(
        next_run=timezone.now() - datetime.timedelta(1)
    )
    Schedule.objects.exclude(name__in=["bad", schedules.ORDERS_RETRY]).update(repeats=0)
    scheduler(broker=get_broker())
    assert run_queue_like_the_cluster() == 2
    assert Success.objects.filter(func="meters.tasks.orders_retry_task").exists()
    assert Failure.objects.filter(group="bad", func=REFUSED_TASK).exists()


def test_the_cluster_refuses_a_task_with_a_result_hook():
    async_task("meters.tasks.orders_retry_task", hook="os.system", task_name="hooked")
    run_queue_like_the_cluster()
    assert not Success.objects.filter(name="hooked").exists()
    assert "may not name a hook" in Failure.objects.get(name="hooked").result


def test_the_cluster_still_runs_a_registered_task():
    async_task("meters.tasks.orders_retry_task", task_name="fine")
    run_queue_like_the_cluster()
    assert Success.objects.filter(name="fine", func="meters.tasks.orders_retry_task").exists()


# --- Managers pause and resume the cooperative's own schedules ----------------------------------


def run_action(client, action: str, schedule: Schedule, reason: str):
    return client.post(
        reverse("admin:django_q_schedule_changelist"),
        {"action": action, "_selected_action": [schedule.pk], "reason": reason},
    )


def test_a_manager_pauses_and_resumes_a_schedule_with_a_reason_and_both_are_recorded(client):
    manager = factories.staff(roles.MANAGER)
    client.force_login(manager)
    schedule = daily_run()
    assert run_action(client, "pause", schedule, "head-end maintenance").status_code == 302
    assert daily_run().repeats == 0
    assert run_action(client, "resume", schedule, "maintenance over").status_code == 302
    resumed = daily_run()
    assert resumed.repeats == -1
    # A daily job resumes at its next regular local time, not at once.
    assert resumed.next_run > timezone.now()
    assert timezone.localtime(resumed.next_run).time() == settings.COOP_DAILY_RUN_AT
    trail = list(ScheduleChange.objects.filter(schedule_id=schedule.pk).order_by("id"))
    assert [(c.action, c.actor, c.reason, c.repeats_before, c.repeats_after) for c in trail] == [
        (ScheduleChange.Action.PAUSED, manager, "head-end maintenance", -1, 0),
        (ScheduleChange.Action.RESUMED, manager, "maintenance over", 0, -1),
    ]


def test_a_pause_without_a_reason_changes_nothing(client):
    client.force_login(factories.staff(roles.MANAGER))
    run_action(client, "pause", daily_run(), "  ")
    assert daily_run().repeats == -1
    assert not ScheduleChange.objects.exists()


def test_a_pause_whose_reason_holds_a_card_number_is_refused_and_changes_nothing(client):
    """The reason is kept in ScheduleChange: no card number, as in every other reason (point 6)."""
    client.force_login(factories.staff(roles.MANAGER))
    response = run_action(client, "pause", daily_run(), "card 4111 1111 1111 1111 declined")
    assert daily_run().repeats == -1
    assert not ScheduleChange.objects.exists()
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("looks like a payment card number" in m for m in shown), shown
    with pytest.raises(CardNumberRefused):
        schedules.schedule_resume(actor=None, schedule_id=daily_run().pk, reason="4111111111111111")


def test_a_manager_cannot_pause_a_schedule_that_is_not_the_cooperatives(superuser):
    other = Schedule.objects.create(name="mine", func="meters.tasks.orders_retry_task")
    manager = factories.staff(roles.MANAGER)
    with pytest.raises(schedules.ScheduleChangeRefused, match="not one of the cooperative's own schedules"):
        schedules.schedule_pause(actor=manager, schedule_id=other.pk, reason="x")


@pytest.mark.parametrize("role", [roles.CLERK, roles.AUDITOR])
def test_clerks_and_auditors_cannot_pause_a_schedule(client, role):
    user = factories.staff(role)
    assert not user.has_perm("coop.pause_schedule")
    client.force_login(user)
    run_action(client, "pause", daily_run(), "because")
    assert daily_run().repeats == -1
    assert not ScheduleChange.objects.exists()


def test_only_managers_hold_the_pause_permission():
    holders = set(Group.objects.filter(permissions__codename="pause_schedule").values_list("name", flat=True))
    assert holders == {roles.MANAGER}
