"""Installations are written only by meter_install and meter_remove, from the admin too, with who
in their history."""

import datetime
import threading
import time

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.urls import reverse

from accounts.tests import factories
from meters import services
from meters.models import MeterInstallation

pytestmark = pytest.mark.django_db


@pytest.fixture
def boss(django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@coop.example", "x")


def test_the_admin_installs_and_removes_a_meter_through_the_services(client, boss):
    client.force_login(boss)
    meter = services.meter_create(serial="AMI-00000010")
    location = factories.location()
    response = client.post(
        reverse("admin:meters_meterinstallation_add"),
        {"meter": meter.pk, "location": location.pk, "installed_on": "2025-01-01"},
    )
    assert response.status_code == 302
    installation = MeterInstallation.objects.get()
    assert installation.history.get().history_user == boss
    url = reverse("admin:meters_meterinstallation_change", args=[installation.pk])
    response = client.post(url, {"removed_on": "2024-12-31"})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["removed_on"] == [
        "A meter cannot be removed before it was installed."
    ]
    response = client.post(url, {"removed_on": "2025-06-30"})
    assert response.status_code == 302
    installation.refresh_from_db()
    assert installation.removed_on == datetime.date(2025, 6, 30)
    assert installation.history.first().history_user == boss
    # Removed: the installation is history, nothing on it changes any more.
    assert client.post(url, {"removed_on": "2025-07-31"}).status_code == 403
    installation.refresh_from_db()
    assert installation.removed_on == datetime.date(2025, 6, 30)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_clerks_removing_one_meter_at_once_the_second_is_refused():
    # The "already removed" rule is asked of the locked row: the second clerk waits for the first's
    # commit and then sees the removal, instead of overwriting its day.
    meter = services.meter_create(serial="AMI-00000011")
    installation = services.meter_install(
        meter=meter, location=factories.location(), installed_on=datetime.date(2025, 1, 1)
    )
    first_holds_the_lock, errors = threading.Event(), []

    def first_clerk():
        try:
            with transaction.atomic():
                services.meter_remove(installation=installation, removed_on=datetime.date(2025, 6, 30))
                first_holds_the_lock.set()
                time.sleep(1.0)  # the second clerk reads and waits meanwhile
        finally:
            connection.close()

    thread = threading.Thread(target=first_clerk)
    thread.start()
    assert first_holds_the_lock.wait(10)
    try:
        services.meter_remove(installation=installation, removed_on=datetime.date(2025, 7, 31))
    except ValidationError as exc:
        errors.append(exc)
    thread.join(10)
    assert [e.message_dict for e in errors] == [{"removed_on": ["Meter AMI-00000011 was already removed."]}]
    installation.refresh_from_db()
    assert installation.removed_on == datetime.date(2025, 6, 30)
    assert installation.history.count() == 2  # installed, removed once
