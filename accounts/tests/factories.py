"""The shared test data: members, locations, accounts (with a meter), policy versions and staff
users.

Plain rows for tests; anything with rules goes through the services. The root conftest.py turns
the common ones into fixtures (`policy`, `clerk`, `manager`, `auditor`, `superuser`).
"""

import datetime
import itertools

import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from accounts import services
from accounts.models import Account
from coop import presets
from coop import services as coop_services
from coop.calendar import coop_zone
from coop.models import BillingCycle, Policy
from meters import services as meter_services

_seq = itertools.count(1)


def member(**overrides):
    n = next(_seq)
    fields = {
        "first_name": "Jane",
        "last_name": f"Member{n}",
        "email": f"member{n}@example.org",
        "mobile_phone": "",
        "line1": f"N{n} County Road E",
        "city": "Ladysmith",
        "state": "WI",
        "postal_code": "54848",
    }
    fields.update(overrides)
    return services.member_create(**fields)


def location(**overrides):
    n = next(_seq)
    fields = {"line1": f"W{n} Deer Trail Rd", "city": "Hawkins", "state": "WI", "postal_code": "54530"}
    fields.update(overrides)
    return services.location_create(**fields)


def cycle(code="cycle-1", bill_day=7, due_day=28):
    return BillingCycle.objects.get_or_create(
        code=code, defaults={"name": code.replace("-", " ").title(), "bill_day": bill_day, "due_day": due_day}
    )[0]


def account(*, billing_mode=Account.BillingMode.PREPAID, actor=None, **overrides):
    fields = {
        "member": overrides.pop("member", None) or member(),
        "location": overrides.pop("location", None) or location(),
        "billing_mode": billing_mode,
        "billing_cycle": cycle() if billing_mode == Account.BillingMode.POSTPAID else None,
        "opened_on": datetime.date(2026, 1, 5),
    }
    fields.update(overrides)
    return services.account_open(actor=actor, **fields)


def account_with_meter(*, serial: str = "", remote: bool = True, **overrides) -> Account:
    """An account enrolled (pending to active) with a meter installed at its location on
    2026-01-05; `remote`: the meter has a remote disconnect switch (AMI)."""
    enrolled = services.account_change_status(
        account=account(**overrides), to_status=Account.Status.ACTIVE, actor=None, reason="enrolled"
    )
    meter = meter_services.meter_create(
        serial=serial or f"AMI{next(_seq):06d}", remote_disconnect_capable=remote
    )
    meter_services.meter_install(
        meter=meter, location=enrolled.location, installed_on=datetime.date(2026, 1, 5)
    )
    return enrolled


def staff(role: str, username: str = "", password: str = "x", **fields):
    """A staff user (may sign in to the admin; no superuser powers) in one role's group of
    coop/roles.py; named after the role unless `username` is given."""
    username = username or role.lower().replace(" ", "_")
    user = get_user_model().objects.create_user(username, password=password, is_staff=True, **fields)
    user.groups.add(Group.objects.get(name=role))
    return user


def superuser(username: str = "boss", password: str = "x"):
    return get_user_model().objects.create_superuser(username, f"{username}@coop.example", password)


def policy(*preset_names: str, effective_from=datetime.date(2026, 1, 1), name: str = "", **values) -> Policy:
    """A policy version made the way a manager makes one (coop.services), before any test reads it.

    Its settings are the model's neutral defaults, then the presets named (coop/presets.py, merged
    in order, with their billing cycles), then `values`. A test that needs other numbers from a
    day on makes a later version; it never edits one in force.
    """
    names = list(preset_names)
    version = coop_services.policy_create_version(
        actor=None,
        effective_from=effective_from,
        name=name or (f"Presets {' + '.join(n.upper() for n in names)}" if names else "test"),
        values={**(presets.merged_values(names) if names else {}), **values},
        allow_unconfigured_past=True,
    )
    if names:
        coop_services.billing_cycles_ensure(actor=None, cycles=presets.merged_cycles(names))
    return version


def policy_scheduled(*preset_names: str, effective_from: datetime.date, **values) -> Policy:
    """A later policy version, scheduled as a manager schedules one: made at noon the day before
    it comes into force, so it rewrites no day already past whatever today is."""
    eve = datetime.datetime.combine(effective_from - datetime.timedelta(days=1), datetime.time(12))
    with time_machine.travel(eve.replace(tzinfo=coop_zone()), tick=False):
        return policy(*preset_names, effective_from=effective_from, **values)


def policy_marked(node, **defaults) -> Policy:
    """factories.policy with the presets and settings of the `policy` marks on a test (pytest's
    `request.node`: the test's own mark over its class's over its module's) over `defaults`."""
    names: tuple = ()
    values = dict(defaults)
    for mark in reversed(list(node.iter_markers("policy"))):
        names = mark.args or names
        values.update(mark.kwargs)
    return policy(*names, **values)
