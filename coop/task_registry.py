"""Which functions django-q2 may run: the project's registered tasks, and nothing else.

django-q2 runs whatever dotted path a Schedule (or a queued task) names, as the server's user:
a Schedule whose function is `subprocess.getoutput` is a shell. So:

- a *registered task* is a function named `*_task` defined in the `tasks` module of one of the
  project's own apps (`billing.tasks.daily_run_task`, `meters.tasks.order_send_task`, ...), found
  by looking at those modules, so a new task needs no list to be kept; plus the few services the
  code enqueues directly by name (`ENQUEUED_BY_CODE`; a test reads the source for every
  `async_task("...")` and fails when one is missing here);
- the Schedule admin lets only a superuser name a function, and only a registered task
  (coop/admin_q.py), and no result hook (a hook is a second dotted path the cluster imports);
- `refuse_unregistered` (connected to django-q2's `pre_enqueue` signal in coop/apps.py) checks
  every task as it is queued, in the web process and in the cluster's scheduler alike: a task
  whose function is not registered, or that names a hook, is replaced by `refused_task`, which
  runs nothing and fails with the reason, so the refusal is a "Failed task" in the admin and the
  other schedules keep running (raising in the scheduler would roll back every due schedule of
  that round, every round).

Every task django-q2 runs passes through `async_task` (the scheduler calls it for each due
Schedule), and a queued package is signed with SECRET_KEY, so the cluster runs no task that did
not pass this check.
"""

import functools
import importlib
import logging
from pathlib import Path

from django.apps import apps
from django.conf import settings

logger = logging.getLogger(__name__)

# Services the code hands to async_task by name that are not `*_task` functions of a tasks module.
ENQUEUED_BY_CODE = frozenset({"billing.prepaid.reconnect_if_restored"})

REFUSED_TASK = "coop.task_registry.refused_task"


class TaskRefused(Exception):
    """django-q2 was asked to run a function that is not one of the project's registered tasks."""


def project_app_labels() -> list[str]:
    """The apps that are this project's own code (their package lies in BASE_DIR)."""
    base = Path(settings.BASE_DIR).resolve()
    return [config.name for config in apps.get_app_configs() if Path(config.path).resolve().parent == base]


@functools.cache
def registered_tasks() -> frozenset[str]:
    """Dotted paths of every function django-q2 may run for this project (read once a process:
    the tasks modules do not change while it runs)."""
    found = set(ENQUEUED_BY_CODE)
    for app in project_app_labels():
        try:
            module = importlib.import_module(f"{app}.tasks")
        except ModuleNotFoundError as exc:
            if exc.name != f"{app}.tasks":
                raise  # the tasks module exists but imports something missing: say so
            continue
        for name, value in vars(module).items():
            if (
                name.endswith("_task")
                and callable(value)
                and getattr(value, "__module__", None) == module.__name__
            ):
                found.add(f"{module.__name__}.{name}")
    return frozenset(found)


def func_path(func) -> str:
    """The dotted path django-q2 would resolve: the string itself, or a callable's module.qualname."""
    if isinstance(func, str):
        return func
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def schedule_func_error(func: str) -> str | None:
    """Why a Schedule may not name `func`, or None when it is a registered task."""
    if func in registered_tasks():
        return None
    names = ", ".join(sorted(registered_tasks() - ENQUEUED_BY_CODE))
    return f"“{func}” is not one of the cooperative's registered tasks. Choose one of: {names}."


def refuse_unregistered(sender, task: dict, **kwargs) -> None:
    """django-q2 `pre_enqueue` receiver: a task that may not run is swapped for `refused_task`."""
    path = func_path(task.get("func"))
    hook = task.get("hook")
    if path == REFUSED_TASK or (path in registered_tasks() and not hook):
        return
    reason = (
        f"refused to run {path!r}: not one of the cooperative's registered tasks"
        if path not in registered_tasks()
        else f"refused to run {path!r} with result hook {func_path(hook)!r}: tasks may not name a hook"
    )
    logger.error("django-q task %s: %s", task.get("name"), reason)
    task["func"] = REFUSED_TASK
    task["args"] = (reason,)
    task["kwargs"] = {}
    task.pop("hook", None)


def refused_task(reason: str):
    """What a refused task runs instead: nothing, failing with the reason (a Failed task)."""
    raise TaskRefused(reason)
