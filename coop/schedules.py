"""The cooperative's recurring jobs, as django-q2 `Schedule` rows kept in step with the settings.

`ensure_schedules()` runs after every `migrate` (billing/apps.py connects it to post_migrate), so a
fresh or upgraded database always has exactly one row per job below, found by its name. Running
it again changes nothing; a changed setting (COOP_DAILY_RUN_AT, COOP_INACTIVE_SWEEP_AT,
COOP_DISCONNECT_EVERY_MINUTES) updates the existing row in place. A row's Repeats is left as staff
set it, so a schedule paused in the admin (Repeats 0) stays paused across migrations.

Daily jobs use django-q2's DAILY type, not CRON: after each run django-q2 moves `next_run` on by
a day and corrects it by the change of the zone's UTC offset (django_q.models.Schedule.
calculate_next_run, reckoned in Q_CLUSTER's time_zone, which defaults to TIME_ZONE), so 06:00 in
Chicago stays 06:00 across both daylight-saving changes, with no extra dependency (CRON needs
croniter). The settings refuse a time the clocks skip, the one case that arithmetic gets wrong.

Staff change these rows only through the services at the end (pause and resume for managers, a
superuser's edit limited to registered tasks), each recorded in coop.ScheduleChange.
"""

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections, transaction
from django.utils import timezone
from django_q.models import Schedule

from coop.calendar import coop_zone
from coop.exceptions import ScheduleChangeRefused
from coop.models import ScheduleChange
from coop.task_registry import schedule_func_error
from coop.validators import check_texts

# Names are the rows' identity: ensure_schedules finds its rows by them, so renaming one here
# leaves the old row behind (delete it in the admin).
DAILY_RUN = "coop: daily prepaid run"
DISCONNECTS = "coop: prepaid disconnections"
INACTIVE_SWEEP = "coop: inactive sweep"
ORDERS_RETRY = "coop: service order retries"
MESSAGES_RETRY = "coop: message retries"


@dataclass(frozen=True)
class Job:
    name: str
    func: str
    schedule_type: str
    at: datetime.time | None = None  # DAILY: local wall-clock time in the co-op's zone
    minutes: int | None = None  # MINUTES: interval


def jobs() -> list[Job]:
    """The schedules the cooperative needs, from the settings as they are now."""
    return [
        Job(DAILY_RUN, "billing.tasks.daily_run_task", Schedule.DAILY, at=settings.COOP_DAILY_RUN_AT),
        Job(
            DISCONNECTS,
            "billing.tasks.disconnect_window_task",
            Schedule.MINUTES,
            minutes=settings.COOP_DISCONNECT_EVERY_MINUTES,
        ),
        Job(
            INACTIVE_SWEEP,
            "billing.tasks.inactive_sweep_task",
            Schedule.DAILY,
            at=settings.COOP_INACTIVE_SWEEP_AT,
        ),
        Job(ORDERS_RETRY, "meters.tasks.orders_retry_task", Schedule.MINUTES, minutes=1),
        # Every minute: it also sends the texts held for quiet hours, so they go out at 08:00.
        Job(MESSAGES_RETRY, "notifications.tasks.messages_retry_due_task", Schedule.MINUTES, minutes=1),
    ]


def next_local_time(at: datetime.time, *, now: datetime.datetime) -> datetime.datetime:
    """The first instant after `now` at which the co-op's clocks show `at` (aware, co-op zone)."""
    zone = coop_zone()
    local_now = now.astimezone(zone)
    candidate = datetime.datetime.combine(local_now.date(), at, tzinfo=zone)
    if candidate <= local_now:
        candidate = datetime.datetime.combine(local_now.date() + datetime.timedelta(days=1), at, tzinfo=zone)
    return candidate


def _schedule_table_exists(using: str) -> bool:
    return Schedule._meta.db_table in connections[using].introspection.table_names()


def ensure_schedules(*, using: str = "default", now: datetime.datetime | None = None) -> dict[str, str]:
    """Create or update the Schedule row of every job in `jobs()`. Returns {name: what happened},
    one of "created", "updated", "unchanged"; an empty dict, doing nothing, when django-q2's
    tables do not exist (a migration stopped before them).

    Idempotent: a row whose fields already match is not written. A DAILY row is updated only when
    its next run is not at the configured local time (the setting changed); it then runs next at
    that time. Extra rows with one of our names (a copy made in the admin) are deleted, since
    each would run the job again.
    """
    if not _schedule_table_exists(using):
        return {}
    now = now or timezone.now()
    done = {}
    with transaction.atomic(using=using):
        for job in jobs():
            done[job.name] = _ensure(job, using=using, now=now)
    return done


def _ensure(job: Job, *, using: str, now: datetime.datetime) -> str:
    rows = list(Schedule.objects.using(using).select_for_update().filter(name=job.name).order_by("pk"))
    wanted = {"func": job.func, "schedule_type": job.schedule_type, "minutes": job.minutes, "cron": None}
    if not rows:
        Schedule.objects.using(using).create(
            name=job.name,
            repeats=-1,
            next_run=next_local_time(job.at, now=now) if job.at else now,
            **wanted,
        )
        return "created"
    row, extra = rows[0], rows[1:]
    if extra:
        Schedule.objects.using(using).filter(pk__in=[r.pk for r in extra]).delete()
    changed = [field for field, value in wanted.items() if getattr(row, field) != value]
    for field in changed:
        setattr(row, field, wanted[field])
    if job.at is not None and (row.next_run is None or _local_hhmm(row.next_run) != job.at):
        row.next_run = next_local_time(job.at, now=now)
        changed.append("next_run")
    elif job.at is None and row.next_run is None:
        row.next_run = now
        changed.append("next_run")
    if changed:
        row.save(using=using, update_fields=changed)
    return "updated" if changed or extra else "unchanged"


def _local_hhmm(instant: datetime.datetime) -> datetime.time:
    return timezone.localtime(instant, coop_zone()).time().replace(second=0, microsecond=0)


# --- Staff changes: pause, resume, and a superuser's edit (each audited in ScheduleChange) -------


def _job_named(name: str | None) -> Job | None:
    return next((job for job in jobs() if job.name == name), None)


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ScheduleChangeRefused("Say why (a reason is recorded with every schedule change).")
    check_texts(reason=reason)  # kept in ScheduleChange: no card number, no NUL
    return reason[:200]


def _record(
    *, actor, schedule: Schedule, action: str, reason: str, repeats_before: int | None
) -> ScheduleChange:
    return ScheduleChange.objects.create(
        schedule_id=schedule.pk,
        schedule_name=schedule.name or "",
        action=action,
        func=schedule.func,
        repeats_before=repeats_before,
        repeats_after=schedule.repeats,
        reason=reason,
        actor=actor,
    )


def _own_schedule_locked(schedule_id: int) -> tuple[Schedule, Job]:
    schedule = Schedule.objects.select_for_update().filter(pk=schedule_id).first()
    if schedule is None:
        raise ScheduleChangeRefused(f"Schedule #{schedule_id} does not exist (any more).")
    job = _job_named(schedule.name)
    if job is None or schedule.func != job.func:
        raise ScheduleChangeRefused(
            f"“{schedule.name or schedule.pk}” is not one of the cooperative's own schedules; only those "
            "may be paused or resumed."
        )
    return schedule, job


@transaction.atomic
def schedule_pause(*, actor, schedule_id: int, reason: str) -> Schedule:
    """Stop one of the cooperative's schedules from running (Repeats 0, which django-q2's
    scheduler skips and ensure_schedules leaves alone) until it is resumed."""
    reason = _reason(reason)
    schedule, _job = _own_schedule_locked(schedule_id)
    if schedule.repeats == 0:
        raise ScheduleChangeRefused(f"“{schedule.name}” is already paused.")
    before = schedule.repeats
    schedule.repeats = 0
    schedule.save(update_fields=["repeats"])
    _record(
        actor=actor,
        schedule=schedule,
        action=ScheduleChange.Action.PAUSED,
        reason=reason,
        repeats_before=before,
    )
    return schedule


@transaction.atomic
def schedule_resume(
    *, actor, schedule_id: int, reason: str, now: datetime.datetime | None = None
) -> Schedule:
    """Run a paused schedule again, from its next regular time: a daily job at its next local
    time (not at once, though its next run passed while it was paused), an interval job now."""
    reason = _reason(reason)
    schedule, job = _own_schedule_locked(schedule_id)
    if schedule.repeats != 0:
        raise ScheduleChangeRefused(f"“{schedule.name}” is not paused.")
    now = now or timezone.now()
    schedule.repeats = -1
    schedule.next_run = next_local_time(job.at, now=now) if job.at else now
    schedule.save(update_fields=["repeats", "next_run"])
    _record(
        actor=actor, schedule=schedule, action=ScheduleChange.Action.RESUMED, reason=reason, repeats_before=0
    )
    return schedule


def schedule_errors(*, func: str, hook: str | None) -> dict[str, str]:
    """What is wrong with a schedule's function and hook, by field (empty when nothing is)."""
    errors = {}
    func_error = schedule_func_error(func)
    if func_error:
        errors["func"] = func_error
    if hook:
        errors["hook"] = (
            "A result hook is a second function the cluster would run; schedules may not name one."
        )
    return errors


@transaction.atomic
def schedule_save(*, actor, schedule: Schedule, reason: str) -> Schedule:
    """A superuser's new or edited schedule: only a registered task, no hook."""
    if not getattr(actor, "is_superuser", False):
        raise ScheduleChangeRefused("Only a superuser adds or edits schedules.")
    reason = _reason(reason)
    errors = schedule_errors(func=schedule.func, hook=schedule.hook)
    if errors:
        raise ValidationError(errors)
    before = None
    if schedule.pk is not None:
        before = (
            Schedule.objects.select_for_update()
            .filter(pk=schedule.pk)
            .values_list("repeats", flat=True)
            .first()
        )
    schedule.save()
    _record(
        actor=actor,
        schedule=schedule,
        action=ScheduleChange.Action.SAVED,
        reason=reason,
        repeats_before=before,
    )
    return schedule


@transaction.atomic
def schedule_delete(*, actor, schedule: Schedule, reason: str) -> None:
    if not getattr(actor, "is_superuser", False):
        raise ScheduleChangeRefused("Only a superuser deletes schedules.")
    reason = _reason(reason)
    _record(
        actor=actor,
        schedule=schedule,
        action=ScheduleChange.Action.DELETED,
        reason=reason,
        repeats_before=schedule.repeats,
    )
    schedule.delete()
