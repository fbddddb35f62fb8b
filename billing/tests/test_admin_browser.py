"""A clerk posts a payment in a real browser (Playwright driving Debian's Chromium) and gets the
receipt; the money panel and the receipt fit a phone's screen.

Screenshots go to /tmp/billing-admin-*.png (desktop 1280 wide, phone 390x844) for a person to look
at. Needs /usr/bin/chromium (`apt-get install chromium`); Playwright's own browser download is not
used.
"""

import datetime
import os
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connections
from django.urls import reverse

from accounts.tests import factories
from billing.models import Payment
from billing.selectors import account_balances
from coop import roles

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SHOTS = Path("/tmp")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)"
)


@pytest.fixture
def browser(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # still plain synchronous code, so Django's async-safety check must not refuse them.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # While Playwright's event loop is set on this thread, Django keeps the thread's database
        # connection per context (asgiref's Local sees an async thread), apart from the one the
        # test database was set up with. Close it before the loop goes, or it stays open and
        # PostgreSQL refuses to drop the test database.
        connections.close_all()


def _log_in(page, live_server, username):
    page.goto(f"{live_server.url}{reverse('admin:login')}")
    page.fill("#id_username", username)
    page.fill("#id_password", "clerk-password-1")
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))


def _fits(page, selector) -> bool:
    """The element is within the viewport's width and nothing in it scrolls sideways."""
    return page.eval_on_selector(
        selector,
        "el => el.getBoundingClientRect().right <= window.innerWidth + 1"
        " && el.scrollWidth <= el.clientWidth + 1",
    )


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_clerk_posts_a_payment_and_reads_the_receipt_on_desktop_and_phone(browser, live_server):
    factories.policy(
        effective_from=datetime.date(2020, 1, 1),
        name="Browser test",
        prepaid_minimum_payment=Decimal("20.00"),
    )
    clerk = get_user_model().objects.create_user(
        "clerk", password="clerk-password-1", is_staff=True, first_name="Carla", last_name="Clerk"
    )
    clerk.groups.add(Group.objects.get(name=roles.CLERK))
    account = factories.account(
        number="4000777", member=factories.member(first_name="Rosa", last_name="Nakamura-Whitfield")
    )
    account_url = f"{live_server.url}{reverse('admin:accounts_account_change', args=[account.pk])}"

    # --- desktop: find the money panel, post a payment, get the receipt ---
    desktop = browser.new_context(viewport=DESKTOP)
    page = desktop.new_page()
    _log_in(page, live_server, "clerk")
    page.goto(account_url)
    panel = page.locator("#money")
    assert panel.locator("#money-prepaid").inner_text() == "$0.00"
    assert "No money has moved on this account yet." in panel.inner_text()
    panel.screenshot(path=str(SHOTS / "billing-admin-panel-desktop.png"))

    page.click("text=Post payment")
    page.fill("#id_amount", "10.00")  # below the $20 minimum: refused, nothing posted
    page.select_option("#id_tender", "cash")
    page.fill("#id_reference", "BOOK-2231")
    page.click("input[type=submit][value='Post payment']")
    assert "The minimum prepaid payment is $20.00; $10.00 is less." in page.locator(".errorlist").inner_text()
    assert not Payment.objects.exists()

    page.fill("#id_amount", "75.50")
    page.click("input[type=submit][value='Post payment']")
    page.wait_for_url(re.compile(r"/receipt/$"))
    payment = Payment.objects.get()
    receipt = page.locator("#receipt")
    text = receipt.inner_text()
    assert f"Receipt {payment.receipt_number}" in text
    assert "Rosa Nakamura-Whitfield" in text and "4000777" in text
    assert page.locator("#receipt-amount").inner_text() == "$75.50"
    assert page.locator("#receipt-balance").inner_text() == "$75.50"
    assert f"Payment posted: receipt {payment.receipt_number}." in page.locator(".messagelist").inner_text()
    page.screenshot(path=str(SHOTS / "billing-admin-receipt-desktop.png"), full_page=True)
    # Printed, the receipt is all there is: no header, breadcrumbs or buttons.
    page.emulate_media(media="print")
    assert not page.locator("#header").is_visible() and not page.locator(".receipt-tools").is_visible()
    assert receipt.is_visible()
    page.emulate_media(media="screen")

    # The same payment keyed in again (a second click, a second clerk) posts nothing new.
    page.goto(f"{live_server.url}{reverse('admin:billing_payment_post', args=[account.pk])}")
    page.fill("#id_amount", "75.50")
    page.fill("#id_reference", "BOOK-2231")
    page.click("input[type=submit][value='Post payment']")
    page.wait_for_url(re.compile(r"/receipt/$"))
    assert "Nothing new was posted" in page.locator(".messagelist").inner_text()
    assert Payment.objects.count() == 1
    assert account_balances(account).prepaid_credit == Decimal("75.50")
    desktop.close()

    # --- phone: the money panel and the receipt fit the screen ---
    phone = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = phone.new_page()
    _log_in(page, live_server, "clerk")
    page.goto(account_url)
    page.locator("#money").scroll_into_view_if_needed()
    assert page.locator("#money-prepaid").inner_text() == "$75.50"
    assert _fits(page, "#money")
    assert page.locator("#money .money-txns").inner_text().count(payment.receipt_number) == 1
    page.locator("#money").screenshot(path=str(SHOTS / "billing-admin-panel-phone.png"))

    page.goto(f"{live_server.url}{reverse('admin:billing_payment_receipt', args=[payment.pk])}")
    assert _fits(page, "#receipt")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    font_px = page.eval_on_selector("#receipt-amount", "el => parseFloat(getComputedStyle(el).fontSize)")
    assert font_px >= 13
    page.screenshot(path=str(SHOTS / "billing-admin-receipt-phone.png"), full_page=True)
    phone.close()

    for name in ("panel-desktop", "receipt-desktop", "panel-phone", "receipt-phone"):
        assert os.path.getsize(SHOTS / f"billing-admin-{name}.png") > 5_000
