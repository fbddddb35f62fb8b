"""Plain rows for tests. Anything with rules goes through the services."""

import datetime
import itertools

from accounts import services
from accounts.models import Account
from coop.models import BillingCycle

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


def staff(role: str, username: str):
    """A staff user in one of the roles of coop/roles.py (password "x")."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user(username, password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user
