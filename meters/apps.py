from django.apps import AppConfig


class MetersConfig(AppConfig):
    name = "meters"

    def ready(self):
        # A clerk cannot make a pending account active while its meter is switched off; accounts
        # asks through its registry, so it never imports meters.
        from accounts.services import ACTIVATION_CHECKS
        from meters.services import meter_left_off

        if meter_left_off not in ACTIVATION_CHECKS:
            ACTIVATION_CHECKS.append(meter_left_off)
