"""Recovery when a staff member has lost their authenticator: a superuser removes the devices.

manage.py otp_reset USERNAME --by SUPERUSER --reason "phone lost, ticket 4711"

Removes every two-factor device of USERNAME (their sessions signed in with it stop being let in
at once) and records who did it and why: an entry in the admin's log (on the user's History page
and under Recent actions) and a warning in the application log. The user then enrols a new device
with `manage.py otp_enrol USERNAME`.
"""

import logging

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp import devices_for_user

from coop.validators import CARD_NUMBER_MESSAGE, contains_card_number

log = logging.getLogger("coop.security")


class Command(BaseCommand):
    help = "Remove USERNAME's two-factor devices (lost phone). Done by a superuser, with a reason; logged."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--by", required=True, metavar="SUPERUSER", help="The superuser doing this.")
        parser.add_argument("--reason", required=True, help="Why (recorded in the admin log).")

    @transaction.atomic
    def handle(self, *args, username, by, reason, **options):
        User = get_user_model()
        reason = reason.strip()
        if not reason:
            raise CommandError("--reason must say why the devices are removed (it is recorded).")
        if contains_card_number(reason):
            raise CommandError(f"--reason {CARD_NUMBER_MESSAGE}")
        actor = User.objects.filter(username=by, is_active=True, is_superuser=True).first()
        if actor is None:
            raise CommandError(
                f"--by {by!r} is not an active superuser: only a superuser resets two-factor sign-in."
            )
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        devices = list(devices_for_user(user, confirmed=None))
        if not devices:
            raise CommandError(f"{username} has no two-factor device: nothing to reset.")
        names = ", ".join(repr(d.name) for d in devices)
        for device in devices:
            device.delete()
        message = f"Two-factor sign-in reset: removed {len(devices)} device(s) ({names}). Reason: {reason}"
        LogEntry.objects.log_actions(
            user_id=actor.pk, queryset=[user], action_flag=CHANGE, change_message=message, single_object=True
        )
        log.warning("%s by %s for %s", message, by, username)
        self.stdout.write(
            self.style.SUCCESS(
                f"{message}. {username} enrols a new device with: manage.py otp_enrol {username}"
            )
        )
