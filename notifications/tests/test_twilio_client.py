"""The official twilio client, driven through a fake `http_client` at its HTTP edge: what exactly
it would send, and what each kind of answer does to the message and the member's number."""

import datetime

import pytest
import requests
import time_machine

from notifications import events, services
from notifications.models import Message
from notifications.tests.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC,
    SERVICE_SID,
    FakeTwilioHttp,
    member_with,
    pref,
    prepaid_account,
    twilio_error,
)
from notifications.transports import TwilioSms

pytestmark = pytest.mark.django_db
NOON = datetime.datetime(2026, 3, 3, 18, 0, tzinfo=datetime.UTC)  # 12:00 in Chicago


def restored_notice(account) -> tuple[Message, list[int]]:
    ids = events.notify_restored(account_id=account.pk)
    return Message.objects.get(pk__in=ids, channel="sms"), ids


@time_machine.travel(NOON, tick=False)
def test_an_sms_goes_to_twilio_as_exactly_this_request(policy, twilio):
    account = prepaid_account()
    sms, ids = restored_notice(account)
    fake = FakeTwilioHttp()

    counts = services.messages_send(message_ids=ids, sms=TwilioSms(http_client=fake))

    assert counts["sent"] == 2  # the SMS through Twilio, the email through Django's backend
    assert len(fake.requests) == 1
    request = fake.requests[0]
    assert request["method"] == "POST"
    assert request["uri"] == f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request["auth"] == (ACCOUNT_SID, AUTH_TOKEN)
    assert request["data"] == {
        "To": "+17155320101",
        "Body": f"Demo Co-op: power at acct {account.number} is back on. Balance $0.00. Thank you! "
        "Reply STOP to opt out",
        "MessagingServiceSid": SERVICE_SID,
        "StatusCallback": f"{PUBLIC}/webhooks/twilio/status/?m={sms.pk}",
    }
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    sms.refresh_from_db()
    assert (sms.status, sms.transport, sms.attempts) == (Message.Status.SENT, "twilio", 1)
    assert sms.provider_id == f"SM{1:032d}"
    assert sms.sent_at == NOON
    assert sms.segments == 1


@time_machine.travel(NOON, tick=False)
def test_without_a_messaging_service_the_from_number_sends_and_no_callback_without_a_public_url(
    policy, twilio
):
    twilio.TWILIO_MESSAGING_SERVICE_SID = ""
    twilio.TWILIO_FROM_NUMBER = "+17155550199"
    twilio.TWILIO_WEBHOOK_BASE_URL = ""
    sms, _ = restored_notice(prepaid_account())
    fake = FakeTwilioHttp()
    services.messages_send(message_ids=[sms.pk], sms=TwilioSms(http_client=fake))
    data = fake.requests[0]["data"]
    assert data["From"] == "+17155550199"
    assert "MessagingServiceSid" not in data and "StatusCallback" not in data


@pytest.mark.parametrize(
    ("code", "unsubscribed"),
    [(21211, False), (21614, False), (21610, True)],
)
@time_machine.travel(NOON, tick=False)
def test_a_permanent_twilio_error_stops_and_flags_the_members_phone(policy, twilio, code, unsubscribed):
    account = prepaid_account()
    sms, _ = restored_notice(account)
    fake = FakeTwilioHttp(twilio_error(400, code, "The 'To' number is not valid."))

    services.messages_send(message_ids=[sms.pk], sms=TwilioSms(http_client=fake))

    sms.refresh_from_db()
    assert (sms.status, sms.error_code, sms.attempts) == (Message.Status.FAILED, str(code), 1)
    assert sms.send_after is None
    flagged = pref(account.member)
    assert flagged.phone_problem and flagged.phone_problem_number == "+17155320101"
    assert flagged.sms_consent is not unsubscribed
    # The next notice goes by email only, and nothing more is sent to the number.
    ids = events.notify_pending_disconnect(
        account_id=account.pk, window_start=NOON + datetime.timedelta(days=1), window_end=NOON
    )
    assert list(Message.objects.filter(pk__in=ids).values_list("channel", flat=True)) == ["email"]
    services.messages_send(message_ids=[sms.pk], sms=TwilioSms(http_client=fake))
    assert len(fake.requests) == 1


def test_a_new_mobile_number_is_not_blocked_by_the_old_ones_flag(policy, twilio):
    member = member_with()
    services.phone_problem_flag(member_id=member.pk, number="+17155320101", problem="Invalid (21211)")
    member.mobile_phone = "+17155320102"
    member.save()
    account = prepaid_account(member)
    ids = events.notify_restored(account_id=account.pk)
    assert set(Message.objects.filter(pk__in=ids).values_list("channel", flat=True)) == {"email", "sms"}


@pytest.mark.parametrize(
    "answer",
    [
        twilio_error(500, 20500, "Internal Server Error"),
        twilio_error(429, 20429, "Too Many Requests"),
        requests.ConnectionError("connection reset"),
    ],
    ids=["500", "429", "network"],
)
def test_a_transient_error_is_retried_with_backoff_until_it_goes(policy, twilio, enqueued, answer):
    with time_machine.travel(NOON, tick=False) as clock:
        sms, _ = restored_notice(prepaid_account())
        fake = FakeTwilioHttp(answer)
        services.messages_send(message_ids=[sms.pk], sms=TwilioSms(http_client=fake))
        sms.refresh_from_db()
        assert (sms.status, sms.attempts) == (Message.Status.QUEUED, 1)
        assert sms.send_after == NOON + datetime.timedelta(minutes=1)
        assert sms.error_code

        # Not due yet: the sweep leaves it alone and a stray task cannot claim it.
        assert services.messages_retry_due()["enqueued"] == 0
        services.messages_send(message_ids=[sms.pk], sms=TwilioSms(http_client=fake))
        assert len(fake.requests) == 1

        clock.shift(datetime.timedelta(minutes=1))
        assert services.messages_retry_due()["enqueued"] == 1
        services.messages_send(message_ids=[sms.pk], sms=TwilioSms(http_client=fake))
    sms.refresh_from_db()
    assert (sms.status, sms.attempts, sms.error_code) == (Message.Status.SENT, 2, "")
    assert len(fake.requests) == 2


def test_after_the_last_attempt_a_transient_error_fails_the_message(policy, twilio):
    twilio.COOP_NOTIFY_MAX_ATTEMPTS = 3
    with time_machine.travel(NOON, tick=False) as clock:
        sms, _ = restored_notice(prepaid_account())
        fake = FakeTwilioHttp(*[twilio_error(503, 20503, "Service Unavailable")] * 3)
        for _ in range(3):
            services.messages_send(message_ids=[sms.pk], sms=TwilioSms(http_client=fake))
            sms.refresh_from_db()
            if sms.status == Message.Status.QUEUED:
                clock.move_to(sms.send_after)
    assert (sms.status, sms.attempts) == (Message.Status.FAILED, 3)
    assert sms.error_message.startswith("Gave up after 3 attempts")
    assert len(fake.requests) == 3


def test_backoff_grows_between_attempts(policy, twilio):
    with time_machine.travel(NOON, tick=False) as clock:
        sms, _ = restored_notice(prepaid_account())
        fake = FakeTwilioHttp(*[twilio_error(500, 20500, "boom")] * 4)
        waits = []
        for _ in range(4):
            before = datetime.datetime.now(datetime.UTC)
            services.messages_send(message_ids=[sms.pk], sms=TwilioSms(http_client=fake))
            sms.refresh_from_db()
            waits.append(sms.send_after - before)
            clock.move_to(sms.send_after)
    assert waits == [datetime.timedelta(minutes=m) for m in services.BACKOFF_MINUTES[:4]]


@time_machine.travel(NOON, tick=False)
def test_when_twilio_cannot_be_reached_the_rest_of_the_batch_waits_for_the_retry(policy, twilio):
    accounts = [prepaid_account(member_with(phone=f"+171553201{n:02d}")) for n in range(3)]
    ids = [restored_notice(a)[0].pk for a in accounts]
    fake = FakeTwilioHttp(requests.Timeout("read timed out"))
    counts = services.messages_send(message_ids=ids, sms=TwilioSms(http_client=fake))
    assert counts["retry"] == 3 and len(fake.requests) == 1
    assert set(Message.objects.filter(pk__in=ids).values_list("status", "attempts")) == {("queued", 1)}
