import datetime

import pytest
from django.core.exceptions import ValidationError

from accounts.tests import factories
from meters import services
from meters.models import MeterInstallation

pytestmark = pytest.mark.django_db


def test_a_meter_is_installed_at_one_location_at_a_time():
    meter = services.meter_create(serial="AMI-00000001")
    first, second = factories.location(), factories.location()
    installation = services.meter_install(meter=meter, location=first, installed_on=datetime.date(2025, 5, 1))
    with pytest.raises(ValidationError, match="still installed"):
        services.meter_install(meter=meter, location=second, installed_on=datetime.date(2026, 1, 1))
    services.meter_remove(installation=installation, removed_on=datetime.date(2025, 12, 31))
    services.meter_install(meter=meter, location=second, installed_on=datetime.date(2026, 1, 1))
    assert list(MeterInstallation.objects.filter(meter=meter).values_list("location", flat=True)) == [
        second.pk,
        first.pk,
    ]


def test_a_meter_cannot_be_removed_before_it_was_installed():
    meter = services.meter_create(serial="AMI-00000002")
    inst = services.meter_install(
        meter=meter, location=factories.location(), installed_on=datetime.date(2026, 3, 1)
    )
    with pytest.raises(ValidationError) as exc:
        services.meter_remove(installation=inst, removed_on=datetime.date(2026, 2, 1))
    assert "removed_on" in exc.value.message_dict
    inst.refresh_from_db()
    assert inst.removed_on is None


def test_duplicate_serials_are_refused():
    services.meter_create(serial="AMI-00000003")
    with pytest.raises(ValidationError) as exc:
        services.meter_create(serial="AMI-00000003")
    assert "serial" in exc.value.message_dict
