"""seed_demo's notices: preferences, a message history with failures, members who opted out."""

import pytest

from demo.notices import seed_notifications_demo
from demo.seed import seed_demo
from notifications.models import Message, NotificationPreference, WebhookEvent

pytestmark = pytest.mark.django_db


def test_the_demo_has_preferences_a_history_with_failures_and_opted_out_members():
    # seed_demo seeds the notifications demo itself (demo.notices.seed_notifications_demo).
    result = seed_demo(members=120, history_accounts=40, daily_days=0).notifications
    assert NotificationPreference.objects.count() == result.preferences == 120
    assert NotificationPreference.objects.filter(sms_consent=True).count() == result.sms_consent > 0
    assert result.opted_out > 0
    assert NotificationPreference.objects.filter(
        sms_consent_source="texted 'STOP'", sms_consent=False
    ).exists()
    assert WebhookEvent.objects.filter(kind="inbound").exists()
    assert Message.objects.count() == result.messages > 0
    assert Message.objects.filter(status__in=["failed", "undelivered"]).exists()
    assert set(Message.objects.values_list("channel", flat=True)) == {"email", "sms"}
    assert (
        not Message.objects.filter(channel="sms", member__notification_preference__sms_consent=False)
        .exclude(status="queued")
        .exists()
    )
    assert "preferences" in result.summary()
    # Again: nothing new.
    again = seed_notifications_demo(seed=2026, history_accounts=40)
    assert (again.preferences, again.messages) == (0, 0)
