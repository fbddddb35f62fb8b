"""Status lifecycles: one transition map per model, one function per model that changes the status.

Every model whose status has a lifecycle keeps the moves it may make as a map on the model,
``{status: {statuses it may become}}``:

- ``accounts.Account.ALLOWED_TRANSITIONS`` (``accounts.services.account_change_status``),
- ``billing.DebtPlan.TRANSITIONS`` (``billing.services.plan_move``),
- ``meters.ServiceOrder.TRANSITIONS`` (``meters.services._move``),
- ``notifications.Message.TRANSITIONS`` (``notifications.services._move``).

The one function that changes a model's status asks `check_transition` first, so an illegal move
is refused with the same kind of error everywhere and nothing is written. A set-based update over
many rows (``queryset.update(status=...)``) filters on a status the map allows moving from and
asks `check_transition` once for that move, so a change to the map cannot silently leave it
behind. Creating a row in its first status is not a move and is not checked here.
"""

from collections.abc import Callable, Iterable, Mapping

from coop.exceptions import CoopError


class IllegalTransition(CoopError):
    """A status move that the object's lifecycle does not allow. Each app raises its own subclass
    (accounts IllegalStatusTransition, billing IllegalPlanTransition, meters IllegalOrderTransition,
    notifications IllegalMessageTransition), so callers may catch either."""


def _label(choices, value) -> str:
    try:
        return choices(value).label.lower()
    except ValueError:
        return repr(value)


def check_transition(
    transitions: Mapping,
    current,
    target,
    *,
    what: str | Callable[[], str],
    choices,
    error: type[IllegalTransition] = IllegalTransition,
) -> None:
    """Raise `error` unless `transitions` lets `current` become `target`.

    `what` names the object for the message ("Account 2000123", "Message #12"), or is a function
    that does, called only when the move is refused (a name that costs a query); `choices` is the
    model's Status class, for the labels.
    """
    if target in transitions.get(current, ()):
        return
    what = what() if callable(what) else what
    if current not in transitions:
        raise error(f"{what} has the unknown status {current!r}; it cannot become {_label(choices, target)}.")
    was, to = _label(choices, current), _label(choices, target)
    allowed = ", ".join(sorted(choices(s).label for s in transitions[current])) or "none"
    raise error(f"{what} is {was} and cannot become {to}. From {was} it can become: {allowed}.")


def map_problems(transitions: Mapping, statuses: Iterable) -> list[str]:
    """What is wrong with a transition map against the model's status choices: a status with no
    entry, an entry or a target that is not a status. Empty when the map is whole (for tests)."""
    statuses = {str(s) for s in statuses}
    sources = {str(s) for s in transitions}
    problems = [f"{s!r} has no entry" for s in sorted(statuses - sources)]
    problems += [f"{s!r} is not a status" for s in sorted(sources - statuses)]
    for source, targets in transitions.items():
        unknown = sorted({str(t) for t in targets} - statuses)
        problems += [f"{str(source)!r} -> {t!r}: not a status" for t in unknown]
    return problems
