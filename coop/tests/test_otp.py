"""Two-factor sign-in for staff (django-otp TOTP): required whenever DEBUG is off, enrolled with
`otp_enrol`, reset by a superuser with `otp_reset`, which is logged.

The test suite's settings are a development machine's (DEBUG on when settings load), so the
requirement is off by default here, as for `./dev start`; tests that need it switch on
COOP_STAFF_OTP_REQUIRED, which is what DEBUG off sets (test_production_always_requires_it)."""

import base64
import builtins
import io
import logging
import re

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.core.management import CommandError, call_command
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.tests import factories
from coop import roles
from coop.tests.test_settings import SETUP, run_python

pytestmark = pytest.mark.django_db
LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "the-right-password-1"
PAGES = ["/admin/", "/admin/accounts/account/", "/admin/coop/policy/"]


@pytest.fixture
def clerk():
    return factories.staff(roles.CLERK, "clerk", password=PASSWORD)


@pytest.fixture
def superuser():
    return factories.superuser("root", password=PASSWORD)


@pytest.fixture
def otp_on(settings):
    settings.COOP_STAFF_OTP_REQUIRED = True


def device_for(user, name="Phone"):
    return TOTPDevice.objects.create(user=user, name=name, confirmed=True)


def code(device, drift=0) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=drift):06d}"


def sign_in(client, username, password=PASSWORD, **otp):
    return client.post(LOGIN, {"username": username, "password": password, **otp})


def reaches(client, page) -> bool:
    response = client.get(page)
    assert response.status_code in (200, 302), response.status_code
    if response.status_code == 302:
        assert response["Location"].startswith("/admin/login/")
    return response.status_code == 200


def test_production_always_requires_it():
    code_ = SETUP + "from django.conf import settings as s; print('required', s.COOP_STAFF_OTP_REQUIRED)"
    production = run_python(
        code_, DJANGO_DEBUG="false", DJANGO_SECRET_KEY="x" * 50, COOP_STAFF_OTP_IN_DEBUG="false"
    )
    assert "required True" in production.stdout, production.stderr
    development = run_python(code_, DJANGO_DEBUG="true")
    assert "required False" in development.stdout, development.stderr


def test_in_development_a_password_is_enough(client, clerk):
    assert sign_in(client, "clerk").status_code == 302
    assert all(reaches(client, page) for page in PAGES)


def test_without_a_device_a_staff_user_cannot_reach_the_admin(client, clerk, otp_on):
    response = sign_in(client, "clerk")
    assert response.status_code == 200
    assert "no authenticator enrolled" in response.content.decode()
    assert "otp_enrol clerk" in response.content.decode()
    assert not any(reaches(client, page) for page in PAGES)
    # Signed in by password alone some other way (a session from before), still not let in.
    client.force_login(clerk)
    assert not any(reaches(client, page) for page in PAGES)


def test_with_a_device_the_right_code_lets_the_user_in_and_a_wrong_one_does_not(
    client, clerk, otp_on, caplog
):
    device = device_for(clerk)
    response = sign_in(client, "clerk")  # no code
    assert response.status_code == 200 and "Enter the 6-digit code" in response.content.decode()
    wrong = f"{(int(code(device)) + 1) % 1_000_000:06d}"
    with caplog.at_level(logging.WARNING, logger="coop.security"):
        response = sign_in(client, "clerk", otp_token=wrong)
    assert response.status_code == 200 and "That code is not right" in response.content.decode()
    assert "wrong two-factor code for clerk from 127.0.0.1" in caplog.text
    assert not reaches(client, "/admin/")

    device.refresh_from_db()
    device.throttling_failure_count = 0  # django-otp slows down retries after a wrong code
    device.save()
    response = sign_in(client, "clerk", otp_token=code(device))
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert all(reaches(client, page) for page in PAGES)


def test_a_code_is_good_once(client, clerk, otp_on):
    device = device_for(clerk)
    token = code(device)
    assert sign_in(client, "clerk", otp_token=token).status_code == 302
    client.post("/admin/logout/")
    assert sign_in(client, "clerk", otp_token=token).status_code == 200  # replayed: refused


def test_another_users_device_cannot_be_used(client, clerk, superuser, otp_on):
    device_for(clerk)
    theirs = device_for(superuser)
    response = sign_in(client, "clerk", otp_device=theirs.persistent_id, otp_token=code(theirs))
    assert response.status_code == 200
    assert not reaches(client, "/admin/")


# --- otp_enrol -----------------------------------------------------------------------------------


def enrol(monkeypatch, username, answers):
    """Run otp_enrol, answering its prompts with answers(out_so_far) -> code."""
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(builtins, "input", lambda prompt: answers(out.getvalue()))
    call_command("otp_enrol", username, stdout=out, stderr=err)
    return out.getvalue()


def code_from(printed: str) -> str:
    key = re.search(r"secret=([A-Z2-7]+)", printed)[1]
    device = TOTPDevice.objects.get(key=base64.b32decode(key).hex())
    return code(device)


def test_otp_enrol_prints_the_link_and_qr_code_and_confirms_with_the_first_code(
    monkeypatch, client, clerk, otp_on
):
    printed = enrol(monkeypatch, "clerk", code_from)
    assert "otpauth://totp/Demo%20Electric%20Cooperative%3Aclerk?secret=" in printed
    assert "█" in printed  # the QR code, drawn in the terminal
    assert "Enrolled: clerk now signs in with a code" in printed
    device = TOTPDevice.objects.get(user=clerk)
    assert device.confirmed
    entry = LogEntry.objects.get(object_id=str(device.pk))
    assert entry.user == clerk and entry.action_flag == ADDITION and "otp_enrol" in entry.change_message

    # The enrolled device signs in (the next time step: the code used to confirm is spent).
    assert sign_in(client, "clerk", otp_token=code(device, drift=1)).status_code == 302
    assert reaches(client, "/admin/")


def test_otp_enrol_writes_the_qr_code_as_svg(monkeypatch, clerk, tmp_path):
    out, path = io.StringIO(), tmp_path / "qr.svg"
    monkeypatch.setattr(builtins, "input", lambda prompt: code_from(out.getvalue()))
    call_command("otp_enrol", "clerk", "--svg", str(path), stdout=out)
    assert path.read_text().lstrip().startswith("<?xml") and "<svg" in path.read_text()


def test_otp_enrol_with_wrong_codes_enrols_nothing(monkeypatch, clerk):
    with pytest.raises(CommandError, match="No right code in 3 tries"):
        enrol(monkeypatch, "clerk", lambda printed: "000000" if code_from(printed) != "000000" else "111111")
    assert not TOTPDevice.objects.filter(user=clerk).exists()


def test_otp_enrol_will_not_add_a_second_device_or_enrol_an_unknown_user(monkeypatch, clerk):
    device_for(clerk)
    with pytest.raises(CommandError, match="already has a two-factor device.*otp_reset clerk"):
        enrol(monkeypatch, "clerk", code_from)
    with pytest.raises(CommandError, match="No active user 'nobody'"):
        enrol(monkeypatch, "nobody", code_from)
    assert TOTPDevice.objects.count() == 1


# --- otp_reset -----------------------------------------------------------------------------------


def test_otp_reset_by_a_superuser_removes_the_devices_and_is_logged(client, clerk, superuser, otp_on, caplog):
    device = device_for(clerk)
    assert sign_in(client, "clerk", otp_token=code(device)).status_code == 302
    assert reaches(client, "/admin/")

    out = io.StringIO()
    with caplog.at_level(logging.WARNING, logger="coop.security"):
        call_command("otp_reset", "clerk", "--by", "root", "--reason", "phone lost, ticket 4711", stdout=out)
    assert not TOTPDevice.objects.filter(user=clerk).exists()
    entry = LogEntry.objects.get(object_id=str(clerk.pk), action_flag=CHANGE)
    assert entry.user == superuser
    assert (
        entry.change_message
        == "Two-factor sign-in reset: removed 1 device(s) ('Phone'). Reason: phone lost, ticket 4711"
    )
    assert "by root for clerk" in caplog.text and "ticket 4711" in caplog.text
    assert "manage.py otp_enrol clerk" in out.getvalue()
    # The session signed in with the removed device is no longer let in.
    assert not reaches(client, "/admin/")


@pytest.mark.parametrize(
    ("by", "reason", "message"),
    [
        ("clerk", "lost", "--by 'clerk' is not an active superuser"),
        ("nobody", "lost", "--by 'nobody' is not an active superuser"),
        ("root", "   ", "--reason must say why"),
    ],
)
def test_otp_reset_needs_a_superuser_and_a_reason(clerk, superuser, by, reason, message):
    device_for(clerk)
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("otp_reset", "clerk", "--by", by, "--reason", reason)
    assert TOTPDevice.objects.filter(user=clerk).count() == 1
    assert not LogEntry.objects.exists()


def test_otp_reset_refuses_a_reason_with_a_card_number(clerk, superuser):
    """The reason is kept in the admin's log: no card number, as in every other reason."""
    device_for(clerk)
    with pytest.raises(CommandError, match="looks like a payment card number"):
        call_command("otp_reset", "clerk", "--by", "root", "--reason", "card 4111 1111 1111 1111 on file")
    assert TOTPDevice.objects.filter(user=clerk).count() == 1
    assert not LogEntry.objects.exists()
