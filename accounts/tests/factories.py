"""The shared test data: members, locations, accounts, policy versions and staff users.

Plain rows for tests; anything with rules goes through the services. The root conftest.py turns
the common ones into fixtures (`policy`, `clerk`, `manager`, `auditor`, `superuser`).
"""

import datetime
import itertools

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from accounts import services
from accounts.models import Account
from coop import presets
from coop import services as coop_services
from coop.models import BillingCycle, Policy

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


def staff(role: str, username: str, **fields):
    """A staff user in one of the roles of coop/roles.py (password "x"), in its group only."""
    user = get_user_model().objects.create_user(username, password="x", is_staff=True, **fields)
    user.groups.add(Group.objects.get(name=role))
    return user


def superuser(username: str = "boss"):
    return get_user_model().objects.create_superuser(username, f"{username}@coop.example", "x")


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
