import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import ServiceLocation
from accounts.tests import factories
from coop import roles
from meters import services
from meters.models import Meter, MeterInstallation

pytestmark = pytest.mark.django_db

METERS = reverse("admin:meters_meter_changelist")
INSTALLATIONS = reverse("admin:meters_meterinstallation_changelist")


def _found(response):
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def _bulk_meters(n, *, start=0):
    """n meters, every tenth without a remote switch, each installed at a location of its own."""
    ids = range(start, start + n)
    meters = Meter.objects.bulk_create(
        Meter(serial=f"LG{i:08d}", remote_disconnect_capable=bool(i % 10)) for i in ids
    )
    locations = ServiceLocation.objects.bulk_create(
        ServiceLocation(line1=f"N{i} County Road E", city="Hawkins", state="WI", postal_code="54530")
        for i in ids
    )
    MeterInstallation.objects.bulk_create(
        MeterInstallation(meter=m, location=loc, installed_on=datetime.date(2024, 1, 1))
        for m, loc in zip(meters, locations, strict=True)
    )


def _query_count(client, url, params=None):
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url, params or {}).status_code == 200
    return ctx


def test_meter_search_finds_a_serial_by_its_beginning_in_any_case(admin_client):
    _bulk_meters(30)
    assert [m.serial for m in _found(admin_client.get(METERS, {"q": "lg00000012"}))] == ["LG00000012"]
    assert [m.serial for m in _found(admin_client.get(METERS, {"q": "LG0000001"}))] == [
        f"LG0000001{d}" for d in range(10)
    ]
    assert _found(admin_client.get(METERS, {"q": "00000012"})) == []  # beginning, not middle


def test_meter_list_filters_on_remote_disconnect_capability(admin_client):
    _bulk_meters(30)
    found = _found(admin_client.get(METERS, {"remote_disconnect_capable__exact": "0"}))
    assert sorted(m.serial for m in found) == ["LG00000000", "LG00000010", "LG00000020"]


def test_meter_list_shows_where_each_meter_is_installed_now(admin_client):
    _bulk_meters(3)
    page = admin_client.get(METERS).content.decode()
    assert "N2 County Road E" in page


@pytest.mark.parametrize("url", [METERS, INSTALLATIONS])
def test_list_page_with_1000_rows_runs_as_many_queries_as_with_10(admin_client, url):
    _bulk_meters(10)
    few = _query_count(admin_client, url)
    _bulk_meters(990, start=10)
    many = _query_count(admin_client, url)
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


@pytest.mark.parametrize("url", [METERS, INSTALLATIONS])
def test_list_pages_count_only_over_a_limited_subquery(admin_client, url):
    _bulk_meters(30)
    counts = [
        q["sql"]
        for q in _query_count(admin_client, url, {"q": "LG"}).captured_queries
        if "COUNT(" in q["sql"]
    ]
    assert counts and all("LIMIT" in sql for sql in counts), counts


def test_installation_search_finds_by_serial_or_address_and_filters_on_installed_now(admin_client):
    meter = services.meter_create(serial="AMI-00000001")
    location = factories.location(line1="W77 Pine St")
    old = services.meter_install(meter=meter, location=location, installed_on=datetime.date(2020, 1, 1))
    services.meter_remove(installation=old, removed_on=datetime.date(2024, 1, 1))
    current = services.meter_install(meter=meter, location=location, installed_on=datetime.date(2024, 1, 2))
    assert set(_found(admin_client.get(INSTALLATIONS, {"q": "ami-0000"}))) == {old, current}
    assert set(_found(admin_client.get(INSTALLATIONS, {"q": "W77 Pine"}))) == {old, current}
    assert _found(admin_client.get(INSTALLATIONS, {"installed": "now"})) == [current]
    assert _found(admin_client.get(INSTALLATIONS, {"installed": "removed"})) == [old]


def test_installation_form_uses_raw_ids_not_a_select_of_every_meter(admin_client):
    form = admin_client.get(reverse("admin:meters_meterinstallation_add")).context["adminform"].form
    assert form.fields["meter"].widget.__class__.__name__ == "ForeignKeyRawIdWidget"
    assert form.fields["location"].widget.__class__.__name__ == "ForeignKeyRawIdWidget"


def test_a_meter_installed_twice_is_refused_in_the_form(admin_client):
    meter = services.meter_create(serial="AMI-00000002")
    services.meter_install(meter=meter, location=factories.location(), installed_on=datetime.date(2024, 1, 1))
    response = admin_client.post(
        reverse("admin:meters_meterinstallation_add"),
        {"meter": meter.pk, "location": factories.location().pk, "installed_on": "2025-01-01"},
    )
    assert response.status_code == 200
    assert "This meter is already installed at another location." in str(
        response.context["adminform"].form.errors
    )
    assert MeterInstallation.objects.count() == 1


def test_clerk_may_add_meters_but_gets_403_on_delete_and_auditor_on_change(client):
    meter = services.meter_create(serial="AMI-00000003")
    client.force_login(factories.staff(roles.CLERK, "clerk"))
    assert client.get(reverse("admin:meters_meter_add")).status_code == 200
    assert (
        client.post(reverse("admin:meters_meter_delete", args=[meter.pk]), {"post": "yes"}).status_code == 403
    )
    client.force_login(factories.staff(roles.AUDITOR, "auditor"))
    url = reverse("admin:meters_meter_change", args=[meter.pk])
    assert client.get(url).status_code == 200
    assert client.post(url, {"serial": "CHANGED"}).status_code == 403
    meter.refresh_from_db()
    assert meter.serial == "AMI-00000003"
