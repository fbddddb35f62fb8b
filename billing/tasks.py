"""Billing's background tasks (django-q2) behind the schedules in coop/schedules.py (the
retries of service orders and of messages are meters' and notifications' own tasks).

Each is a thin wrapper around one service. Arguments are plain values (dates as ISO strings,
never model instances), because django-q2 pickles them into the queue and may run the task much
later, or twice (a worker killed after `timeout` hands the task out again after `retry`); every
service called here is safe to run twice. Services owned by other modules are imported inside the
task, so this module imports cleanly even before they exist and a missing one fails the task
loudly when it runs.
"""

import datetime

from django.utils import timezone

from coop.calendar import local_today


def _date(value: str | None) -> datetime.date | None:
    return datetime.date.fromisoformat(value) if value else None


def daily_run_task(day: str | None = None):
    """The prepaid daily run for local day `day` (ISO date; default yesterday in the co-op's
    zone, whose reads have arrived by the scheduled time). Returns the DailyRun's id."""
    from billing.daily import daily_run

    return daily_run(day=_date(day) or local_today() - datetime.timedelta(days=1)).pk


def disconnect_window_task():
    """Prepaid disconnections due now; disconnect_run itself checks the policy's window and grace
    days, so running it every few minutes is harmless."""
    from billing.prepaid import disconnect_run

    return disconnect_run(now=timezone.now())


def inactive_sweep_task(today: str | None = None) -> int:
    """Accounts disconnected too long become inactive and are final-billed (billing/inactive.py).
    `today`: ISO date to sweep as of (default today in the co-op's zone)."""
    from billing.inactive import inactive_sweep

    return inactive_sweep(today=_date(today))
