"""SECURITY.md's table of roles against admin permissions is the one the code gives, and the test
files it names exist."""

import io
import pathlib
import re

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import RequestFactory

from coop import roles
from coop.management.commands import security_roles_table as command

REGENERATE = "run `.venv/bin/python manage.py security_roles_table --write` and commit SECURITY.md"


def test_security_md_holds_the_roles_table_the_code_gives():
    text = command.security_md_path().read_text()
    table = command.table_in(text)
    assert table is not None, f"SECURITY.md lost its roles-table markers ({command.START} … {command.END})"
    out = io.StringIO()
    call_command("security_roles_table", stdout=out)
    assert table == out.getvalue().strip(), f"SECURITY.md's roles table is out of date: {REGENERATE}"


def test_the_table_says_what_the_code_allows():
    table = command.roles_table()
    rows = {line.split(" | ")[1]: line for line in table.splitlines()[2:]}
    schedule = rows["Scheduled tasks (`schedule`)"]
    assert schedule.endswith("| view | view | view |")  # nobody writes a schedule
    assert rows["policies (`policy`)"].endswith("| view | view add change delete | view |")
    assert "**waive_fee**" in rows["fee schedule (`feescheduleentry`)"].split(" | ")[3]  # manager's
    assert "**pause_schedule**" not in rows["schedule changes (`schedulechange`)"].split(" | ")[2]  # clerk's
    assert rows["users (`user`)"].endswith("| — | — | — |")  # only a superuser manages staff logins


@pytest.mark.django_db
@pytest.mark.parametrize("role", [roles.CLERK, roles.MANAGER, roles.AUDITOR])
def test_the_table_agrees_with_a_real_user_of_each_role(role):
    """The table asks each admin page with a stand-in user; a real one in the group (permissions
    from the database, as sync_roles set them) gets the same answers."""
    from django.contrib import admin

    user = get_user_model().objects.create_user("someone", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    user = get_user_model().objects.get(pk=user.pk)
    real, stand_in = RequestFactory().get("/admin/"), RequestFactory().get("/admin/")
    real.user, stand_in.user = user, command.RoleUser(role)
    for model, model_admin in admin.site._registry.items():
        for action in command.ACTIONS:
            check = getattr(model_admin, f"has_{action}_permission")
            assert check(real) == check(stand_in), (model._meta.label, action)


def test_every_test_file_security_md_names_exists():
    text = command.security_md_path().read_text()
    base = pathlib.Path(settings.BASE_DIR)
    named = set(re.findall(r"`(\w+/tests/test_\w+\.py)`", text))
    assert named
    missing = sorted(name for name in named if not (base / name).exists())
    assert not missing, f"SECURITY.md names test files that do not exist: {missing}"
