"""Meters and where they are installed."""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords


class Meter(models.Model):
    serial = models.CharField("serial number", max_length=40, unique=True)
    manufacturer = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=100, blank=True)
    remote_disconnect_capable = models.BooleanField(
        default=True, help_text="The AMI head-end can open and close this meter's service switch."
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["serial"]

    def __str__(self):
        return self.serial


class MeterInstallation(models.Model):
    """A meter installed at a service location from one day until (optionally) another."""

    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="installations")
    location = models.ForeignKey(
        "accounts.ServiceLocation", on_delete=models.PROTECT, related_name="meter_installations"
    )
    installed_on = models.DateField()
    removed_on = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["-installed_on", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(removed_on__isnull=True) | Q(removed_on__gte=F("installed_on")),
                name="installation_removed_not_before_installed",
                violation_error_message="A meter cannot be removed before it was installed.",
            ),
            models.UniqueConstraint(
                fields=["meter"],
                condition=Q(removed_on__isnull=True),
                name="meter_installed_once",
                violation_error_message="This meter is already installed at another location.",
            ),
        ]

    def __str__(self):
        return f"{self.meter} at {self.location}"

    def clean(self):
        if self.removed_on and self.installed_on and self.removed_on < self.installed_on:
            raise ValidationError({"removed_on": "A meter cannot be removed before it was installed."})
