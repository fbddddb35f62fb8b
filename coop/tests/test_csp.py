"""A Content-Security-Policy header on every response (django-csp): admin pages, the login and
lockout pages, error pages, the Twilio webhooks. And the admin works under it: real pages in
headless Chromium report no violation (no inline script; inline styles are allowed)."""

import datetime
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections
from django.urls import path, reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

import coop.urls
from accounts.tests import factories
from billing.services import payment_post

PASSWORD = "the-right-password-1"


def boom(request):
    raise RuntimeError("a bug")


urlpatterns = [path("boom/", boom), *coop.urls.urlpatterns]


def directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def assert_strict(response):
    policy = directives(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]  # no inline script, no eval, no other origin
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["form-action"] == ["'self'"]


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_every_kind_of_page_has_the_header(client):
    user = get_user_model().objects.create_superuser("root", password=PASSWORD)
    anonymous = [
        client.get("/admin/login/"),  # the login page
        client.get("/admin/"),  # redirect to it
        client.get("/nowhere/"),  # 404
        client.get("/webhooks/twilio/inbound/"),  # 405
        client.post("/webhooks/twilio/inbound/", {"Body": "BAL"}),  # 403: not signed
    ]
    assert [r.status_code for r in anonymous] == [200, 302, 404, 405, 403]
    for i in range(settings.AXES_FAILURE_LIMIT):
        locked = client.post("/admin/login/", {"username": "root", "password": f"wrong-{i}"})
    assert locked.status_code == 429  # the lockout page
    client.raise_request_exception = False
    error = client.get("/boom/")
    assert error.status_code == 500

    client.force_login(user)
    signed_in = [client.get(p) for p in ("/admin/", "/admin/accounts/account/", "/admin/coop/policy/add/")]
    assert [r.status_code for r in signed_in] == [200, 200, 200]
    for response in [*anonymous, locked, error, *signed_in]:
        assert_strict(response)


# --- In a browser ----------------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
# Records every CSP violation the page reports, before any of its own code runs.
LISTEN = """
window.__csp = [];
window.print = () => { window.__printed = true; };
document.addEventListener("securitypolicyviolation", e => window.__csp.push(
  `${e.effectiveDirective} blocked ${e.blockedURI || "inline"} in ${e.sourceFile}:${e.lineNumber}`));
"""


@pytest.fixture
def browser(monkeypatch):
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # see billing/tests/test_admin_browser.py
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        connections.close_all()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_admin_works_in_a_browser_without_a_csp_violation(browser, live_server, settings):
    settings.COOP_STAFF_OTP_REQUIRED = True  # as in production: the two-factor login page too
    root = get_user_model().objects.create_superuser("root", password=PASSWORD)
    device = TOTPDevice.objects.create(user=root, name="Phone", confirmed=True)
    factories.policy(effective_from=datetime.date(2020, 1, 1))
    account = factories.account(number="4000778")
    payment, _ = payment_post(account=account, amount=Decimal("30.00"), tender="cash", reference="CSP-1")

    context = browser.new_context()
    context.add_init_script(LISTEN)
    page = context.new_page()
    console = []
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
    seen = {}

    def visit(url):
        response = page.goto(live_server.url + url)
        assert response.status in (200, 404), (url, response.status)
        assert "Content-Security-Policy" in response.headers or "content-security-policy" in response.headers
        seen[url] = page.evaluate("window.__csp")

    visit(reverse("admin:login"))
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", f"{totp(device.bin_key):06d}")
    page.click("input[type=submit][value='Log in']")
    page.wait_for_url(re.compile(r"/admin/$"))
    seen["after login"] = page.evaluate("window.__csp")

    for url in [
        reverse("admin:index"),
        reverse("admin:accounts_account_changelist") + "?q=4000",
        reverse("admin:accounts_account_change", args=[account.pk]),
        reverse("admin:billing_payment_post", args=[account.pk]),
        reverse("admin:billing_payment_receipt", args=[payment.pk]),
        reverse("admin:coop_policy_add"),
        reverse("admin:meters_serviceorder_field_list"),
        reverse("admin:notifications_message_changelist"),
        reverse("admin:auth_user_change", args=[root.pk]),
        reverse("admin:accounts_account_history", args=[account.pk]),
        "/admin/no-such-page/",
    ]:
        visit(url)
    # The print buttons work without inline script (coop/static/coop/print.js).
    for url, button in [
        (reverse("admin:billing_payment_receipt", args=[payment.pk]), "text=Print receipt"),
        (reverse("admin:meters_serviceorder_field_list"), "button:text('Print')"),
    ]:
        page.goto(live_server.url + url)
        page.click(button)
        assert page.evaluate("window.__printed") is True, url
        seen[f"print {url}"] = page.evaluate("window.__csp")
    # The admin's own scripts ran (the sidebar toggle, the date widgets' calendar links).
    page.goto(live_server.url + reverse("admin:coop_policy_add"))
    assert page.locator(".datetimeshortcuts").count() > 0
    seen["policy form scripts"] = page.evaluate("window.__csp")

    assert {url: v for url, v in seen.items() if v} == {}
    assert console == []
    context.close()
