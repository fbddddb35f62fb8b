"""Saving a row with who changed it and why, in django-simple-history's trail (the audit record of
members, locations, accounts, holds, meters and installations, rates, the cooperative's settings):
`_history_user` and `_change_reason` on the instance become the history row's user and reason,
written by the same save, so they commit or roll back with the change. Services call these inside
their own transaction; an account's status moves keep their own trail as well
(accounts.AccountStatusChange), and the money records their own who and when (billing)."""

from collections.abc import Callable
from typing import Any

from django.db import models

# simple-history's history_change_reason column holds 100 characters (PostgreSQL enforces it).
REASON_LENGTH = 100


def _who(instance: models.Model, *, actor, reason: str) -> None:
    instance._history_user = actor
    if reason:
        instance._change_reason = reason.strip()[:REASON_LENGTH]


def editable_fields(
    model: type[models.Model], fields: dict[str, Any], *, fixed: tuple[str, ...] = ()
) -> None:
    """Refuse a field that is not the model's, or one the service does not change this way
    (`fixed`: when a row was made, who entered it)."""
    known = {f.name for f in model._meta.concrete_fields if not f.primary_key}
    wrong = sorted((set(fields) - known) | (set(fields) & set(fixed)))
    if wrong:
        raise TypeError(f"{model.__name__}: not changed here: {', '.join(wrong)}")


def create_with_history(instance: models.Model, *, actor, reason: str = ""):
    """Validate (full_clean: a bad value raises ValidationError naming the field, nothing is
    saved) and save a new row with its history's user and reason."""
    _who(instance, actor=actor, reason=reason)
    instance.full_clean()
    instance.save()
    return instance


def change_with_history(
    instance: models.Model,
    *,
    actor,
    fields: dict[str, Any],
    reason: str = "",
    check: Callable[[models.Model], None] | None = None,
):
    """Set `fields` on the row, locked first so two writers do not interleave, validate it and
    save it with its history's user and reason. Returns the saved row. `check(locked)` runs on the
    locked row as it is now, before any field is set: a service's rule about the row's current
    state (already removed, already ended) is asked there, so a second writer waiting on the lock
    is refused by what the first wrote."""
    locked = type(instance)._default_manager.select_for_update().get(pk=instance.pk)
    if check is not None:
        check(locked)
    for name, value in fields.items():
        setattr(locked, name, value)
    _who(locked, actor=actor, reason=reason)
    locked.full_clean()
    locked.save()
    return locked


def delete_with_history(instance: models.Model, *, actor, reason: str = "") -> None:
    """Delete the row; its history keeps a "deleted" row with who and why."""
    _who(instance, actor=actor, reason=reason)
    instance.delete()
