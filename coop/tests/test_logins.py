"""Sign-in that holds up: django-axes locks a username and address out after too many failed
sign-ins, and staff sessions end after 8 idle hours and when the browser closes.

Sign-ins go through the admin's login form (client.post), as a person's would: the test client's
login() calls authenticate() without the request, which django-axes refuses."""

import datetime

import pytest
import time_machine
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.test import Client

from accounts.tests import factories
from coop import roles

pytestmark = pytest.mark.django_db
LOGIN = "/admin/login/?next=/admin/"
T0 = datetime.datetime(2026, 3, 3, 15, 0, tzinfo=datetime.UTC)
PASSWORD = "the-right-password-1"


@pytest.fixture
def clerk():
    return factories.staff(roles.CLERK, "clerk", password=PASSWORD)


def sign_in(client, username, password, address="203.0.113.7"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def signed_in(client) -> bool:
    return client.get("/admin/").status_code == 200


def test_the_defaults_are_a_lockout_after_five_failures_for_thirty_minutes():
    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME.total_seconds() == 30 * 60
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesBackend"
    assert settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"


def test_twenty_wrong_passwords_lock_the_login_out_and_the_right_one_is_refused_until_the_cool_off(
    client, clerk
):
    limit = settings.AXES_FAILURE_LIMIT
    with time_machine.travel(T0, tick=False) as clock:
        answers = []
        for i in range(20):
            answers.append(sign_in(client, "clerk", f"wrong-{i}").status_code)
            clock.shift(datetime.timedelta(seconds=10))
        # The form answers "wrong password" until the limit; from the limit on, the lockout page.
        assert answers[: limit - 1] == [200] * (limit - 1)
        assert answers[limit - 1 :] == [429] * (20 - limit + 1)

        locked = sign_in(client, "clerk", PASSWORD)
        assert locked.status_code == 429
        page = locked.content.decode()
        assert "Sign-in locked" in page and "Too many failed sign-ins" in page
        assert "clerk" in page and "30 minutes" in page
        assert not signed_in(client)

        # Every attempt is recorded: the count on the username/address pair and one row each.
        attempt = AccessAttempt.objects.get(username="clerk", ip_address="203.0.113.7")
        assert attempt.failures_since_start >= 20
        assert AccessFailureLog.objects.filter(username="clerk", ip_address="203.0.113.7").count() >= 20
        # ... without the passwords tried.
        assert "wrong-" not in attempt.post_data and "password=*****" in attempt.post_data

        # Still refused just before the cool-off ends (counted from the last attempt) ...
        clock.shift(settings.AXES_COOLOFF_TIME - datetime.timedelta(seconds=30))
        assert sign_in(client, "clerk", PASSWORD).status_code == 429
        # ... that attempt restarted the cool-off; once it has passed, the right password works.
        clock.shift(settings.AXES_COOLOFF_TIME + datetime.timedelta(seconds=1))
        response = sign_in(client, "clerk", PASSWORD)
        assert response.status_code == 302 and response["Location"] == "/admin/"
        assert signed_in(client)
        assert AccessLog.objects.filter(username="clerk").exists()


def test_the_lockout_is_for_that_username_from_that_address(client, clerk):
    for i in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "clerk", f"wrong-{i}")
    assert sign_in(client, "clerk", PASSWORD).status_code == 429
    # The clerk at another desk (another address) is not locked out by someone guessing elsewhere.
    elsewhere = Client()
    assert sign_in(elsewhere, "clerk", PASSWORD, address="198.51.100.20").status_code == 302


def test_a_successful_sign_in_starts_the_count_again(client, clerk):
    for i in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, "clerk", f"wrong-{i}").status_code == 200
    assert sign_in(client, "clerk", PASSWORD).status_code == 302
    client.post("/admin/logout/")
    for i in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, "clerk", f"wrong-again-{i}").status_code == 200
    assert sign_in(client, "clerk", PASSWORD).status_code == 302


def test_behind_trusted_proxies_the_address_is_the_one_the_proxy_saw(rf, settings):
    from coop.admin_site import client_ip

    request = rf.post(LOGIN, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    settings.COOP_TRUSTED_PROXIES = 0
    assert client_ip(request) == "10.0.0.2"  # no proxy trusted: the header is ignored
    settings.COOP_TRUSTED_PROXIES = 1
    assert client_ip(request) == "203.0.113.7"  # not the spoofable left-most entry
    settings.COOP_TRUSTED_PROXIES = 3  # fewer entries than proxies: the connection's address
    assert client_ip(request) == "10.0.0.2"


# --- Sessions ------------------------------------------------------------------------------------


def test_the_session_cookie_ends_with_the_browser(client, clerk):
    response = sign_in(client, "clerk", PASSWORD)
    assert response.status_code == 302
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["expires"] == "" and cookie["max-age"] == ""
    assert cookie["httponly"]


def test_a_session_idle_for_eight_hours_is_signed_out_and_activity_keeps_it(client, clerk):
    assert settings.SESSION_COOKIE_AGE == 8 * 3600 and settings.SESSION_SAVE_EVERY_REQUEST
    with time_machine.travel(T0, tick=False) as clock:
        assert sign_in(client, "clerk", PASSWORD).status_code == 302
        # A request every 7 hours keeps the session: each one renews it.
        for _ in range(3):
            clock.shift(datetime.timedelta(hours=7))
            assert signed_in(client)
        clock.shift(datetime.timedelta(hours=8, seconds=1))
        response = client.get("/admin/")
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_a_card_number_typed_as_the_username_is_recorded_masked(client, clerk):
    """django-axes keeps each failed sign-in's username in its tables: a card number typed (or
    pasted) into the username box is stored masked, like everywhere else (issue 5, point 6); the
    lockout still counts those tries."""
    pan = "4111 1111 1111 1111"
    for i in range(settings.AXES_FAILURE_LIMIT):
        response = sign_in(client, pan, f"wrong-{i}")
    assert response.status_code == 429
    rows = [
        str(value)
        for model in (AccessAttempt, AccessFailureLog, AccessLog)
        for row in model.objects.values()
        for value in row.values()
    ]
    assert rows and "**** **** **** 1111" in rows
    assert not any(pan in value or pan.replace(" ", "") in value for value in rows)
