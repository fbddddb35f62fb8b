"""The three staff roles (coop/roles.py) as the admin enforces them on the co-op's settings."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from coop import roles

pytestmark = pytest.mark.django_db

SETTINGS_MODELS = ["policy", "feescheduleentry", "officeclosure", "weatherhold", "billingcycle"]


def test_the_three_groups_exist_after_migrate():
    assert set(Group.objects.values_list("name", flat=True)) >= {roles.CLERK, roles.MANAGER, roles.AUDITOR}


@pytest.mark.parametrize("model", SETTINGS_MODELS)
def test_a_clerk_sees_the_cooperative_settings_but_cannot_add_or_change_them(client, clerk, model):
    assert clerk.has_perm(f"coop.view_{model}")
    assert not clerk.has_perm(f"coop.add_{model}")
    assert not clerk.has_perm(f"coop.change_{model}")
    assert not clerk.has_perm(f"coop.delete_{model}")
    client.force_login(clerk)
    assert client.get(reverse(f"admin:coop_{model}_changelist")).status_code == 200
    assert client.get(reverse(f"admin:coop_{model}_add")).status_code == 403
    assert client.post(reverse(f"admin:coop_{model}_add"), {}).status_code == 403


def test_a_clerk_cannot_waive_fees(clerk):
    assert not clerk.has_perm("coop.waive_fee")


@pytest.mark.parametrize("model", SETTINGS_MODELS)
def test_a_manager_may_add_and_change_the_cooperative_settings(client, manager, model):
    assert manager.has_perm(f"coop.add_{model}")
    assert manager.has_perm(f"coop.change_{model}")
    client.force_login(manager)
    assert client.get(reverse(f"admin:coop_{model}_add")).status_code == 200


def test_a_manager_may_waive_fees(manager):
    assert manager.has_perm("coop.waive_fee")


def test_an_auditor_has_view_permissions_and_nothing_else(client, auditor):
    codenames = list(Permission.objects.filter(group__name=roles.AUDITOR).values_list("codename", flat=True))
    assert "view_policy" in codenames
    assert [c for c in codenames if not c.startswith("view_")] == []
    assert not any(
        auditor.has_perm(f"coop.{action}_{m}")
        for action in ("add", "change", "delete")
        for m in SETTINGS_MODELS
    )
    assert not auditor.has_perm("coop.waive_fee")
    client.force_login(auditor)
    assert client.get(reverse("admin:coop_policy_changelist")).status_code == 200
    assert client.get(reverse("admin:coop_policy_add")).status_code == 403


@pytest.mark.parametrize("role", [roles.CLERK, roles.MANAGER, roles.AUDITOR])
@pytest.mark.parametrize(
    "model", ["payment", "chargedfee", "leg", "transaction", "debtplan", "anyfuturemodel"]
)
def test_nobody_may_delete_a_billing_record(role, model):
    assert not roles._role_allows(role, "billing", model, f"delete_{model}")


def test_no_group_holds_a_delete_permission_on_billing_models():
    assert not Permission.objects.filter(
        group__isnull=False, content_type__app_label="billing", codename__startswith="delete_"
    ).exists()
