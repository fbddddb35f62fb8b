"""The SMS alphabet and the default notice texts."""

import pytest

from notifications import gsm7
from notifications.defaults import defaults
from notifications.models import NoticeTemplate
from notifications.notices import REPLY_NOTICES, Channel, Notice
from notifications.rendering import template_check, usd


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("{" * 80, 1),  # extension characters take two septets
        ("{" * 81, 2),
        ("é" * 160, 1),  # é is in the GSM-7 basic set
        ("\u263a" * 70, 1),  # anything else: UCS-2, 70 a segment
        ("\u263a" * 71, 2),
    ],
)
def test_segments_are_counted_as_carriers_bill_them(text, segments):
    assert gsm7.segments(text) == segments


def test_look_alikes_from_word_processors_become_gsm7():
    text = gsm7.normalize("You\u2019re \u201clow\u201d \u2014 pay\u2026 Zo\u00eb")
    assert text == 'You\'re "low" - pay... Zoe' and gsm7.is_gsm7(text)


def test_amounts_use_an_ascii_minus():
    from decimal import Decimal

    assert (usd(Decimal("-5")), usd(Decimal("1234.5"))) == ("-$5.00", "$1,234.50")


@pytest.mark.parametrize(("key", "text"), sorted(defaults().items()))
def test_every_default_text_renders_and_every_sms_fits_one_segment(settings, key, text):
    settings.COOP_HELP_PHONE = "(715) 532-5524"
    notice, channel = key
    rendered = template_check(notice=notice, channel=channel, allow_multipart=False, **text)
    if channel == Channel.SMS:
        assert rendered.segments == 1 and gsm7.is_gsm7(rendered.body)
    else:
        assert rendered.subject and rendered.body and "<html" in rendered.html_body


@pytest.mark.django_db
def test_a_fresh_database_has_an_editable_template_for_every_notice_and_channel():
    rows = set(NoticeTemplate.objects.values_list("notice", "channel"))
    expected = {
        (n.value, c.value) for n in Notice for c in Channel if c == Channel.SMS or n not in REPLY_NOTICES
    }
    assert rows == expected
