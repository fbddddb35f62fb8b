"""The admin site, and how staff sign in to it.

`coop.admin_config.CoopAdminConfig` replaces "django.contrib.admin" in INSTALLED_APPS and makes
`CoopAdminSite` the default site, so `admin.site` and every `admin.site.register` (or
`@admin.register`) keep working.

- Two-factor sign-in: when COOP_STAFF_OTP_REQUIRED is on (always when DEBUG is off) the login form
  asks for the code of the user's authenticator app (django-otp's TOTP device), and a user who
  has signed in without a code (or whose device was since removed) is not let in: the site treats
  them as it treats a user who is not staff. Devices are enrolled with `manage.py otp_enrol` and
  removed by a superuser with `manage.py otp_reset` (coop/management/commands/).
- Lockout: django-axes refuses sign-ins after too many failures; `lockout_response` is the page
  it shows then, `client_ip` tells it the client's address behind trusted proxies, and
  `login_username` the username (any card number in it masked: axes stores it).
"""

import logging

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm

from coop.validators import mask_card_numbers

log = logging.getLogger("coop.security")


class StaffOTPAuthenticationForm(OTPAdminAuthenticationForm):
    """The admin login with the authenticator code. A user with one device need not choose it;
    a user with none is told how to get one instead of being asked for a code they cannot have."""

    otp_error_messages = {
        **OTPAdminAuthenticationForm.otp_error_messages,
        "token_required": "Enter the 6-digit code from your authenticator app.",
        "invalid_token": "That code is not right (or was already used): enter the current code.",
    }

    def clean_otp(self, user):
        if user is not None and not any(devices_for_user(user)):
            log.warning("staff sign-in refused: %s has no two-factor device enrolled", user.get_username())
            raise ValidationError(
                "Two-factor sign-in is required for staff and this login has no authenticator "
                "enrolled. Ask the system administrator to run `manage.py otp_enrol "
                f"{user.get_username()}` with you.",
                code="no_device",
            )
        try:
            super().clean_otp(user)
        except ValidationError as error:
            if user is not None and error.code != "token_required":
                # The password was right: a wrong code is worth a line in the log (django-otp
                # also slows down the device's next tries, doubling the wait after each).
                log.warning(
                    "staff sign-in refused: wrong two-factor code for %s from %s",
                    user.get_username(),
                    client_ip(self.request) if self.request else "?",
                )
            raise

    def _chosen_device(self, user):
        device = super()._chosen_device(user)
        if device is None and not self.cleaned_data.get("otp_device"):
            devices = list(devices_for_user(user, for_verify=True))  # inside clean_otp's transaction
            if len(devices) == 1:
                device = devices[0]
        return device


class CoopAdminSite(admin.AdminSite):
    site_header = "Cooperative back office"
    site_title = "Co-op billing"
    index_title = "Billing"

    @staticmethod
    def otp_required() -> bool:
        return settings.COOP_STAFF_OTP_REQUIRED

    # Read when the login view runs, so the setting can change (tests override it).
    @property
    def login_form(self):
        return StaffOTPAuthenticationForm if self.otp_required() else AdminAuthenticationForm

    @property
    def login_template(self):
        return "admin/otp_login.html" if self.otp_required() else None

    def has_permission(self, request):
        """Staff, and (when required) signed in with a code of a device they still have."""
        if not super().has_permission(request):
            return False
        return not self.otp_required() or request.user.is_verified()


def lockout_response(request, original_response=None, credentials=None):
    """django-axes' answer to a sign-in from a locked-out username and address: a page in the
    admin's style that says why and for how long, with status 429 (Too Many Requests)."""
    from axes.helpers import get_client_username, get_cool_off

    cool_off = get_cool_off(request)
    minutes = int(cool_off.total_seconds() // 60) if cool_off else None
    username = get_client_username(request, credentials) or ""
    # Not the username: a password typed into its box would land in the log (axes' table has it).
    log.warning("sign-in refused, locked out: from %s", client_ip(request))
    context = {
        **admin.site.each_context(request),
        "title": "Sign-in locked",
        "username": username,
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "cooloff_minutes": minutes,
    }
    return TemplateResponse(request, "registration/locked_out.html", context, status=429).render()


def login_username(request, credentials=None) -> str | None:
    """The username django-axes counts failures for and keeps in its tables: the one typed, with
    any card number in it masked (a card number pasted into the username box is never stored)."""
    if credentials:
        username = credentials.get(settings.AXES_USERNAME_FORM_FIELD)
    else:
        username = getattr(request, "data", request.POST).get(settings.AXES_USERNAME_FORM_FIELD)
    return mask_card_numbers(username) if isinstance(username, str) else username


def client_ip(request) -> str:
    """The client's address for login throttling. Without trusted proxies (COOP_TRUSTED_PROXIES=0)
    it is the connection's address. Behind N proxies that each append the address they received
    from to X-Forwarded-For, it is the N-th entry from the right: entries further left were
    written by the client itself and could be anything."""
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = settings.COOP_TRUSTED_PROXIES
    if proxies <= 0:
        return remote
    forwarded = [
        part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()
    ]
    return forwarded[-proxies] if len(forwarded) >= proxies else remote
