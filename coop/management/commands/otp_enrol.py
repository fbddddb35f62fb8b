"""Enrol a user's authenticator app for two-factor sign-in to the admin.

manage.py otp_enrol USERNAME [--name "Phone"] [--svg qr.svg]

Prints the otpauth:// link and its QR code (scan it with any TOTP app: Google Authenticator,
Microsoft Authenticator, FreeOTP, 1Password...), then asks for the first code the app shows: the
device counts only once that code is right, so a mistyped or unscanned secret never locks the
user out. Run it with the user beside you; the secret is shown only here, never in the admin.
"""

import logging
from base64 import b32encode

import segno
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp import devices_for_user
from django_otp.plugins.otp_totp.models import TOTPDevice

log = logging.getLogger("coop.security")
TRIES = 3


class Command(BaseCommand):
    help = "Enrol a TOTP authenticator app for USERNAME (two-factor sign-in), confirmed by a first code."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="Authenticator app", help="What to call the device.")
        parser.add_argument("--svg", metavar="PATH", help="Also write the QR code to this SVG file.")

    def handle(self, *args, username, name, svg=None, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None or not user.is_active:
            raise CommandError(f"No active user {username!r}.")
        if any(devices_for_user(user, confirmed=True)):
            raise CommandError(
                f"{username} already has a two-factor device. If it is lost, a superuser removes it "
                f"first: manage.py otp_reset {username} --by SUPERUSER --reason '...'"
            )
        # A device left unconfirmed by an enrolment that was given up is replaced.
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        device = TOTPDevice.objects.create(user=user, name=name, confirmed=False)

        url = device.config_url
        qr = segno.make(url, error="m")
        self.stdout.write(
            f"Scan this with {username}'s authenticator app, or enter the link or key by hand.\n"
        )
        qr.terminal(out=self.stdout, compact=True)
        self.stdout.write(f"\n{url}\nKey: {b32encode(device.bin_key).decode()}\n")
        if svg:
            qr.save(svg, kind="svg", scale=6)
            self.stdout.write(f"QR code written to {svg} (delete it once scanned: it holds the secret).\n")
        self.stdout.flush()

        for attempt in range(1, TRIES + 1):
            code = self.ask(f"Code shown by the app ({attempt}/{TRIES}): ").strip()
            if code and device.verify_token(code):
                break
            self.stderr.write("That code is not right: wait for the next one and enter it.")
        else:
            device.delete()
            raise CommandError(f"No right code in {TRIES} tries: nothing enrolled. Check the phone's clock.")

        with transaction.atomic():
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            LogEntry.objects.log_actions(
                user_id=user.pk,
                queryset=[device],
                action_flag=ADDITION,
                change_message=f"Two-factor device {name!r} enrolled (manage.py otp_enrol).",
                single_object=True,
            )
        log.warning("two-factor device %r enrolled for %s", name, username)
        self.stdout.write(self.style.SUCCESS(f"Enrolled: {username} now signs in with a code from {name!r}."))

    def ask(self, prompt: str) -> str:
        """The code, typed at the terminal (the tests replace builtins.input)."""
        try:
            return input(prompt)
        except EOFError:
            raise CommandError("otp_enrol asks for the app's first code: run it at a terminal.") from None
