"""Writes for meters and their installations."""

import datetime

from django.core.exceptions import ValidationError
from django.db import transaction

from meters.models import Meter, MeterInstallation


@transaction.atomic
def meter_create(*, actor=None, **fields) -> Meter:
    meter = Meter(**fields)
    meter._history_user = actor
    meter.full_clean()
    meter.save()
    return meter


@transaction.atomic
def meter_install(*, actor=None, meter: Meter, location, installed_on: datetime.date) -> MeterInstallation:
    """Install a meter at a location. A meter is installed at one place at a time."""
    Meter.objects.select_for_update().get(pk=meter.pk)  # serialize installs of the same meter
    current = MeterInstallation.objects.filter(meter=meter, removed_on__isnull=True).first()
    if current is not None:
        raise ValidationError(
            {"meter": f"Meter {meter.serial} is still installed at {current.location}; remove it first."}
        )
    installation = MeterInstallation(meter=meter, location=location, installed_on=installed_on)
    installation.full_clean()
    installation.save()
    return installation


@transaction.atomic
def meter_remove(
    *, actor=None, installation: MeterInstallation, removed_on: datetime.date
) -> MeterInstallation:
    installation = MeterInstallation.objects.select_for_update().get(pk=installation.pk)
    if installation.removed_on is not None:
        raise ValidationError({"removed_on": f"Meter {installation.meter} was already removed."})
    installation.removed_on = removed_on
    installation.full_clean()
    installation.save(update_fields=["removed_on"])
    return installation
