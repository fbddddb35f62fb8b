"""The start banner of ./dev passes --base-url to seed_demo: every URL seed_demo prints is a page
that exists (moved here from coop/tests/test_dev_script.py with the demo)."""

import io
import re

import pytest
from django.core.management import call_command
from django.urls import Resolver404, resolve


@pytest.mark.django_db
def test_every_url_seed_demo_prints_is_a_page_that_exists(settings):
    settings.DEBUG = True  # seed_demo refuses without it (published passwords)
    out = io.StringIO()
    call_command(
        "seed_demo",
        members=2,
        history_accounts=0,
        daily_days=0,
        if_empty=True,
        base_url="http://example.test:9000",
        stdout=out,
    )
    printed = out.getvalue()
    urls = re.findall(r"https?://\S+", printed)
    assert urls, printed
    for url in urls:
        assert url.startswith("http://example.test:9000/")
        try:
            resolve(url.removeprefix("http://example.test:9000"))
        except Resolver404:
            pytest.fail(f"seed_demo prints {url}, which is no page")
    assert "member pages" not in printed  # there are none yet
