"""Writes to the cooperative's own settings: policy versions, billing cycles, the fee schedule,
office closures and weather holds.

Each validates fully (`full_clean`) before saving, so bad input raises ValidationError naming the
field and nothing is saved, and each records who made the change (`created_by` / `entered_by`
where the model has one, and the history user of django-simple-history always).

Policy versions never rewrite history: a new version starts today or later, and a version already
in force (effective on or before today in the cooperative's zone) is never changed; a change is a
new version.
"""

import datetime
from collections.abc import Mapping
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction

from coop import presets
from coop.calendar import local_today
from coop.exceptions import PolicyHistoryLocked
from coop.history import delete_with_history
from coop.models import BillingCycle, FeeScheduleEntry, OfficeClosure, Policy, WeatherHold
from coop.validators import check_texts

# Fields of a version that are not policy settings: who/when, and the version's own identity.
POLICY_VERSION_FIELDS = ("effective_from", "name", "notes")
POLICY_AUDIT_FIELDS = ("id", "created_by", "created_at")
POLICY_SETTING_FIELDS = tuple(
    f.name for f in Policy._meta.concrete_fields if f.name not in POLICY_VERSION_FIELDS + POLICY_AUDIT_FIELDS
)


def _today() -> datetime.date:
    """Today in the cooperative's zone (settings.TIME_ZONE), not the server's, UTC's or a zone a
    request may have activated."""
    return local_today()


def _is_in_force(policy: Policy) -> bool:
    return policy.effective_from <= _today()


def _refuse_floats(values: Mapping) -> None:
    for key, value in values.items():
        if isinstance(value, float):
            raise TypeError(f"{key}: amounts and percentages must be Decimal, int or str, never float")


def policy_field_errors(values: Mapping) -> dict[str, str]:
    """The cross-field rules of a policy, each reported on the field to correct.

    `values` maps field names to typed values (a form's cleaned_data or a Policy's attributes);
    a missing or wrongly typed value is skipped (its own field error is reported elsewhere).
    """
    errors: dict[str, str] = {}

    def typed(name, kind):
        value = values.get(name)
        return value if isinstance(value, kind) else None

    disconnect, restore = typed("disconnect_level", Decimal), typed("restore_level", Decimal)
    if disconnect is not None and restore is not None and restore < disconnect:
        errors["restore_level"] = (
            f"The restore level (${restore}) may not be below the disconnect level (${disconnect})."
        )
    start, end = (values.get("disconnect_window_start"), values.get("disconnect_window_end"))
    if start is not None and end is None:
        errors["disconnect_window_end"] = (
            "Give the end of the disconnect window too, or clear its start to allow "
            "disconnection at any time."
        )
    elif end is not None and start is None:
        errors["disconnect_window_start"] = (
            "Give the start of the disconnect window too, or clear its end to allow "
            "disconnection at any time."
        )
    elif isinstance(start, datetime.time) and isinstance(end, datetime.time) and not start < end:
        errors["disconnect_window_end"] = "The disconnect window must end after it starts."
    hours_start = typed("business_hours_start", datetime.time)
    hours_end = typed("business_hours_end", datetime.time)
    if hours_start is not None and hours_end is not None and not hours_start < hours_end:
        errors["business_hours_end"] = "Business hours must end after they start."
    return errors


def policy_effective_date_errors(
    effective_from, *, policy_pk=None, allow_unconfigured_past: bool = False
) -> list[str]:
    """Why a version may not start on `effective_from` (empty if it may).

    One version per day. A new version starts today or later: starting it earlier would change
    what was in force on days already past (bills, notices and disconnects already worked out
    under the old numbers). With `allow_unconfigured_past`, a past day on which no version was in
    force is accepted: nothing was computed on such a day, so nothing is rewritten (a new
    installation loading its first preset for an earlier date).
    """
    if not isinstance(effective_from, datetime.date):
        return []  # the field's own validation reports it
    existing = Policy.objects.filter(effective_from=effective_from).exclude(pk=policy_pk).first()
    if existing is not None:
        return [
            f"A policy version already starts on {effective_from:%Y-%m-%d}: {existing}. Choose "
            "another day, or change that version instead if it is not yet in force."
        ]
    today = _today()
    if effective_from >= today:
        return []
    if allow_unconfigured_past and not Policy.objects.filter(effective_from__lte=effective_from).exists():
        return []
    return [
        f"A new version cannot start in the past ({effective_from:%Y-%m-%d}; today is "
        f"{today:%Y-%m-%d}): that would change the rules of days already billed. Choose today or "
        "a later day."
    ]


def _validate_policy(policy: Policy, *, check_date: bool, allow_unconfigured_past: bool = False) -> None:
    """full_clean, with the cross-field rules reported on their fields (see policy_field_errors)
    and, with `check_date`, the start day checked (policy_effective_date_errors).

    The model's check constraints say the same as policy_field_errors but name no field ("The
    restore level may not be below ..." above the form); with the fields excluded from full_clean
    the constraints that read them are skipped, so each rule is reported once, on its field."""
    errors: dict = {}
    try:
        policy.clean_fields()  # also turns valid raw input ("20.00", "2026-05-01") into values
    except ValidationError as exc:
        errors = exc.update_error_dict(errors)
    if check_date and "effective_from" not in errors:
        date_errors = policy_effective_date_errors(
            policy.effective_from, policy_pk=policy.pk, allow_unconfigured_past=allow_unconfigured_past
        )
        if date_errors:
            errors["effective_from"] = [ValidationError(m) for m in date_errors]
    for name, message in policy_field_errors(policy.__dict__).items():
        if name not in errors:
            errors[name] = [ValidationError(message)]
    try:
        policy.full_clean(exclude=list(errors))
    except ValidationError as exc:
        errors = exc.update_error_dict(errors)
    if errors:
        raise ValidationError(errors)


def _check_setting_names(values: Mapping, *, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(
            f"Not policy settings: {', '.join(unknown)}. Settings are the fields of coop.models.Policy "
            f"({', '.join(allowed[:3])}, ...)."
        )


@transaction.atomic
def policy_create_version(
    *,
    actor,
    effective_from: datetime.date,
    name: str,
    values: Mapping,
    notes: str = "",
    allow_unconfigured_past: bool = False,
) -> Policy:
    """Create a new policy version starting on `effective_from` (today or later).

    `values` holds the settings that differ from the model defaults; anything not given keeps its
    default (the admin pre-fills the form from the version in force, so it passes every setting).
    Bad input raises ValidationError naming the field, and nothing is saved.
    """
    _check_setting_names(values, allowed=POLICY_SETTING_FIELDS)
    _refuse_floats(values)
    policy = Policy(effective_from=effective_from, name=name, notes=notes, created_by=actor, **values)
    _validate_policy(policy, check_date=True, allow_unconfigured_past=allow_unconfigured_past)
    policy._history_user = actor
    policy.save()
    return policy


@transaction.atomic
def policy_update_pending(*, actor, policy: Policy, values: Mapping) -> Policy:
    """Change a version that is not yet in force (its settings, name, notes or start day).

    A version in force (effective today or earlier) raises PolicyHistoryLocked: create a new
    version instead. Moving a version's start into the past is refused like a new version's.
    """
    _check_setting_names(values, allowed=POLICY_SETTING_FIELDS + POLICY_VERSION_FIELDS)
    _refuse_floats(values)
    # Lock the row so two managers (or a change racing midnight) see one state.
    locked = Policy.objects.select_for_update().get(pk=policy.pk)
    if _is_in_force(locked):
        raise PolicyHistoryLocked(
            f"{locked} has been in force since {locked.effective_from:%Y-%m-%d} and cannot be "
            "changed: the past keeps the rules it had. Create a new version starting today or later."
        )
    for key, value in values.items():
        setattr(locked, key, value)
    _validate_policy(locked, check_date="effective_from" in values)
    locked._history_user = actor
    locked.save()
    return locked


@transaction.atomic
def policy_delete_pending(*, actor, policy: Policy) -> None:
    """Delete a version that is not yet in force (scheduled by mistake). One in force is kept."""
    locked = Policy.objects.select_for_update().get(pk=policy.pk)
    if _is_in_force(locked):
        raise PolicyHistoryLocked(
            f"{locked} has been in force since {locked.effective_from:%Y-%m-%d} and cannot be deleted."
        )
    locked._history_user = actor
    locked.delete()


@transaction.atomic
def policy_load_presets(
    *,
    names: list[str],
    effective_from: datetime.date,
    actor=None,
    name: str = "",
) -> Policy:
    """Create a policy version from presets (coop/presets.py) merged in order over the model
    defaults (`B C`: prepaid program B with postpaid schedule C), and create the billing cycles
    the presets define.

    Refused (ValidationError on effective_from) if a version already starts that day, or if the
    day is past while an earlier version was in force (it would rewrite history). Cycles are
    created by code if missing; an existing cycle is left as a manager may have edited it.
    """
    chosen = presets.get_presets(names)  # raises UnknownPreset listing the known ones
    label = " + ".join(p.name for p in chosen)
    policy = policy_create_version(
        actor=actor,
        effective_from=effective_from,
        name=name or f"Presets {label}",
        values=presets.merged_values(names),
        notes="Loaded from presets "
        + "; ".join(f"{p.name} (seeds/{p.source}): {p.description}" for p in chosen),
        allow_unconfigured_past=True,
    )
    billing_cycles_ensure(actor=actor, cycles=presets.merged_cycles(names))
    return policy


@transaction.atomic
def billing_cycles_ensure(*, actor, cycles: list[dict]) -> list[tuple[BillingCycle, bool]]:
    """Create each cycle (by code) that does not exist yet; returns (cycle, created) pairs.

    An existing cycle is not overwritten: a manager may have corrected its days, and bills already
    made on it must keep their dates. Loading the same presets twice creates nothing new.
    """
    out = []
    for spec in cycles:
        cycle = BillingCycle.objects.filter(code=spec["code"]).first()
        out.append((cycle, False) if cycle is not None else (billing_cycle_save(actor=actor, **spec), True))
    return out


@transaction.atomic
def billing_cycle_save(
    *,
    actor,
    code: str,
    name: str,
    bill_day: int,
    due_day: int,
    is_active: bool = True,
    cycle: BillingCycle | None = None,
) -> BillingCycle:
    """Create a billing cycle, or change `cycle`."""
    cycle = cycle or BillingCycle()
    cycle.code, cycle.name, cycle.bill_day, cycle.due_day, cycle.is_active = (
        code,
        name,
        bill_day,
        due_day,
        is_active,
    )
    cycle.full_clean()
    cycle._history_user = actor
    cycle.save()
    return cycle


@transaction.atomic
def fee_schedule_entry_save(
    *,
    actor,
    code: str,
    description: str,
    amount,
    is_active: bool = True,
    entry: FeeScheduleEntry | None = None,
) -> FeeScheduleEntry:
    """Add a fee to the schedule, or change `entry`. A fee already charged keeps the amount it was
    charged at, so changing an amount here never changes what members owe."""
    _refuse_floats({"amount": amount})
    check_texts(description=description)
    entry = entry or FeeScheduleEntry()
    entry.code, entry.description, entry.amount, entry.is_active = code, description, amount, is_active
    entry.full_clean()
    entry._history_user = actor
    entry.save()
    return entry


def _date_range_save(instance, *, actor, start_date, end_date, reason):
    check_texts(reason=reason)
    instance.start_date, instance.end_date, instance.reason = start_date, end_date, reason
    if instance.pk is None:
        instance.entered_by = actor
    instance.full_clean()
    instance._history_user = actor
    instance.save()
    return instance


@transaction.atomic
def office_closure_create(
    *, actor, start_date: datetime.date, end_date: datetime.date, reason: str
) -> OfficeClosure:
    """Days the office is closed (not business days), first and last day included."""
    return _date_range_save(
        OfficeClosure(), actor=actor, start_date=start_date, end_date=end_date, reason=reason
    )


@transaction.atomic
def office_closure_update(
    *, actor, closure: OfficeClosure, start_date: datetime.date, end_date: datetime.date, reason: str
) -> OfficeClosure:
    """Correct a closure. Who entered it stays; who changed it is in its history."""
    return _date_range_save(closure, actor=actor, start_date=start_date, end_date=end_date, reason=reason)


@transaction.atomic
def weather_hold_create(
    *, actor, start_date: datetime.date, end_date: datetime.date, reason: str
) -> WeatherHold:
    """Days of extreme heat or cold without prepaid disconnections (where the policy grants it)."""
    return _date_range_save(
        WeatherHold(), actor=actor, start_date=start_date, end_date=end_date, reason=reason
    )


@transaction.atomic
def weather_hold_update(
    *, actor, hold: WeatherHold, start_date: datetime.date, end_date: datetime.date, reason: str
) -> WeatherHold:
    return _date_range_save(hold, actor=actor, start_date=start_date, end_date=end_date, reason=reason)


@transaction.atomic
def setting_entry_delete(
    *, actor, entry: BillingCycle | FeeScheduleEntry | OfficeClosure | WeatherHold
) -> None:
    """Delete a billing cycle, fee entry, office closure or weather hold (one entered by mistake;
    a cycle still used by an account is protected); its history keeps who deleted it."""
    delete_with_history(entry, actor=actor)
