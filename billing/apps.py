from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_schedules(sender, using, verbosity=1, stdout=None, **kwargs):
    """After `migrate` (and on test database creation), make the recurring jobs' django-q2
    schedules exist and match the settings (coop/schedules.py). Idempotent and a few queries."""
    from coop.schedules import ensure_schedules

    changed = {name: what for name, what in ensure_schedules(using=using).items() if what != "unchanged"}
    if changed and verbosity >= 1 and stdout is not None:
        stdout.write("Schedules: " + ", ".join(f"{name} {what}" for name, what in changed.items()) + "\n")


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self):
        # sender=self: post_migrate is sent once per app, this runs once per migrate.
        post_migrate.connect(_ensure_schedules, sender=self, dispatch_uid="billing.ensure_schedules")
        # Every disconnect order is re-checked against the prepaid rules before it is sent and when
        # it is confirmed; meters asks through its registry, so it never imports billing.
        from billing.prepaid import disconnect_objection
        from meters.services import DISCONNECT_CHECKS

        if disconnect_objection not in DISCONNECT_CHECKS:
            DISCONNECT_CHECKS.append(disconnect_objection)
