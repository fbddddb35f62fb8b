"""POST /webhooks/twilio/status/ and /webhooks/twilio/inbound/: signatures computed with twilio's
RequestValidator (valid, wrong, missing), delivery statuses, keywords, and repeated deliveries."""

import datetime
from decimal import Decimal

import pytest
import time_machine
from twilio.request_validator import RequestValidator

from billing.services import payment_post
from notifications import events
from notifications.models import Message, NotificationPreference, WebhookEvent
from notifications.tests.conftest import AUTH_TOKEN, PUBLIC, member_with, pref, prepaid_account
from notifications.tests.test_daily_notices import deduction

pytestmark = pytest.mark.django_db
NOON = datetime.datetime(2026, 3, 3, 18, 0, tzinfo=datetime.UTC)
STATUS = "/webhooks/twilio/status/"
INBOUND = "/webhooks/twilio/inbound/"
PHONE = "+17155320101"


def post(client, path, params, *, signature="valid", url=None, **headers):
    """POST form `params` to `path`, signed for the public URL unless told otherwise."""
    url = url or PUBLIC + path
    if signature == "valid":
        headers["HTTP_X_TWILIO_SIGNATURE"] = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    elif signature == "wrong":
        headers["HTTP_X_TWILIO_SIGNATURE"] = RequestValidator("not-the-token").compute_signature(url, params)
    return client.post(path, params, **headers)


def inbound(client, body, sid="SMin0001", number=PHONE, **kw):
    params = {"MessageSid": sid, "From": number, "To": "+17155550199", "Body": body, "AccountSid": "AC1"}
    params.update(kw.pop("extra", {}))
    return post(client, INBOUND, params, **kw)


def reply_of(response) -> str:
    text = response.content.decode()
    assert response["Content-Type"] == "application/xml"
    if "<Message>" not in text:
        return ""
    return text.split("<Message>")[1].split("</Message>")[0]


@pytest.fixture
def sent_sms(policy, twilio):
    with time_machine.travel(NOON, tick=False):
        ids = events.notify_restored(account_id=prepaid_account().pk)
    sms = Message.objects.get(pk__in=ids, channel="sms")
    Message.objects.filter(pk=sms.pk).update(status=Message.Status.SENT, provider_id="SMout0001")
    sms.refresh_from_db()
    return sms


def status_params(status, sid="SMout0001", **extra):
    return {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC1", "To": PHONE, **extra}


# --- Signatures ----------------------------------------------------------------------------------


@pytest.mark.parametrize("signature", ["wrong", "missing"])
def test_a_status_callback_without_a_valid_signature_is_refused_and_writes_nothing(
    client, sent_sms, signature
):
    response = post(client, f"{STATUS}?m={sent_sms.pk}", status_params("delivered"), signature=signature)
    assert response.status_code == 403
    assert WebhookEvent.objects.count() == 0
    sent_sms.refresh_from_db()
    assert sent_sms.status == Message.Status.SENT


@pytest.mark.parametrize("signature", ["wrong", "missing"])
def test_an_inbound_text_without_a_valid_signature_is_refused_and_writes_nothing(client, twilio, signature):
    member = member_with()
    response = inbound(client, "STOP", signature=signature)
    assert response.status_code == 403
    assert WebhookEvent.objects.count() == 0 and Message.objects.count() == 0
    assert pref(member).sms_consent is True


def test_without_an_auth_token_no_webhook_is_accepted(client, twilio):
    params = {"MessageSid": "SM1", "From": PHONE, "Body": "STOP"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + INBOUND, params)
    twilio.TWILIO_AUTH_TOKEN = ""
    assert client.post(INBOUND, params, HTTP_X_TWILIO_SIGNATURE=signature).status_code == 403


def test_a_signature_for_another_url_is_refused(client, twilio):
    assert inbound(client, "HELP", url="https://evil.example" + INBOUND).status_code == 403


def test_webhooks_only_take_post(client, twilio):
    assert client.get(INBOUND).status_code == 405


def test_behind_a_tls_proxy_the_forwarded_https_url_is_validated(client, twilio, settings):
    twilio.TWILIO_WEBHOOK_BASE_URL = ""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLOWED_HOSTS = ["billing.coop.example"]
    member_with()
    response = inbound(client, "HELP", HTTP_HOST="billing.coop.example", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200
    # The same request seen as plain http (the proxy's header missing) does not validate.
    response = inbound(client, "HELP", sid="SMin0002", HTTP_HOST="billing.coop.example")
    assert response.status_code == 403


# --- Delivery status -----------------------------------------------------------------------------


def test_a_delivered_callback_marks_the_message_delivered(client, sent_sms):
    with time_machine.travel(NOON + datetime.timedelta(seconds=9), tick=False):
        response = post(client, f"{STATUS}?m={sent_sms.pk}", status_params("delivered"))
    assert response.status_code == 204
    sent_sms.refresh_from_db()
    assert sent_sms.status == Message.Status.DELIVERED
    assert sent_sms.delivered_at == NOON + datetime.timedelta(seconds=9)


def test_a_repeated_callback_is_processed_once(client, sent_sms):
    for _ in range(3):
        assert (
            post(
                client, f"{STATUS}?m={sent_sms.pk}", status_params("undelivered", ErrorCode="30003")
            ).status_code
            == 204
        )
    assert WebhookEvent.objects.count() == 1
    sent_sms.refresh_from_db()
    assert (sent_sms.status, sent_sms.error_code) == (Message.Status.UNDELIVERED, "30003")


def test_a_late_sent_callback_does_not_undo_delivered(client, sent_sms):
    post(client, f"{STATUS}?m={sent_sms.pk}", status_params("delivered"))
    post(client, f"{STATUS}?m={sent_sms.pk}", status_params("sent"))
    sent_sms.refresh_from_db()
    assert sent_sms.status == Message.Status.DELIVERED
    assert "already delivered" in WebhookEvent.objects.get(key="status:SMout0001:sent").outcome


def test_a_callback_finds_a_message_whose_sid_was_never_saved_by_its_id(client, sent_sms):
    Message.objects.filter(pk=sent_sms.pk).update(status=Message.Status.SENDING, provider_id="")
    post(client, f"{STATUS}?m={sent_sms.pk}", status_params("sent", sid="SMlost"))
    sent_sms.refresh_from_db()
    assert (sent_sms.status, sent_sms.provider_id) == (Message.Status.SENT, "SMlost")


def test_a_delivery_failure_for_an_unknown_number_flags_the_phone(client, sent_sms):
    post(client, f"{STATUS}?m={sent_sms.pk}", status_params("undelivered", ErrorCode="30005"))
    flagged = pref(sent_sms.member)
    assert "Unknown destination" in flagged.phone_problem and flagged.phone_problem_number == PHONE


# --- Incoming texts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "word", ["STOP", "stop", " Stop. ", "UNSUBSCRIBE", "cancel", "END", "QUIT", "STOPALL"]
)
def test_stop_and_its_synonyms_withdraw_sms_consent_and_are_answered_once(client, twilio, word):
    member = member_with()
    response = inbound(client, word)
    assert response.status_code == 200
    assert "unsubscribed and will get no more texts" in reply_of(response)
    assert pref(member).sms_consent is False
    assert pref(member).sms_consent_source.startswith("texted")
    reply = Message.objects.get(notice="reply_stop")
    assert (reply.recipient, reply.status, reply.transport, reply.member) == (PHONE, "sent", "reply", member)


@pytest.mark.parametrize("word", ["START", "yes", "UNSTOP"])
def test_start_gives_consent_back(client, twilio, word):
    member = member_with(consent=False)
    response = inbound(client, word)
    assert "subscribed to account texts again" in reply_of(response)
    assert pref(member).sms_consent is True


@pytest.mark.parametrize("word", ["HELP", "info"])
def test_help_answers_who_we_are_and_how_to_stop(client, twilio, word):
    member_with()
    text = reply_of(inbound(client, word))
    assert text == (
        "Demo Co-op account alerts. Help: call (715) 532-5524. Msg&amp;data rates may apply. Reply BAL for "
        "balance, STOP to opt out."
    )


def test_bal_answers_with_the_balance_and_days_remaining(client, twilio, policy):
    account = prepaid_account()
    payment_post(account=account, amount=Decimal("42.50"), tender="cash", reference="r1", received_at=NOON)
    deduction(account, datetime.date(2026, 3, 2), after="42.50", days=5).save()
    text = reply_of(inbound(client, "bal"))
    assert text == f"Demo Co-op: acct *{account.number[-4:]} $42.50, about 5 days"  # last four only


def test_bal_from_an_unknown_number_says_so(client, twilio):
    assert "no account found for this number" in reply_of(inbound(client, "BAL", number="+17155320999"))


def test_a_repeated_inbound_delivery_is_processed_once_and_answered_the_same(client, twilio):
    member = member_with()
    first = inbound(client, "STOP", sid="SMa")
    inbound(client, "START", sid="SMb")
    again = inbound(client, "STOP", sid="SMa")  # Twilio retries the first delivery
    assert again.content == first.content
    assert pref(member).sms_consent is True  # the repeat did not stop texts again
    assert WebhookEvent.objects.count() == 2
    assert Message.objects.filter(notice="reply_stop").count() == 1


def test_stop_applies_to_every_member_with_that_number(client, twilio):
    members = [member_with(), member_with()]
    inbound(client, "STOP")
    assert [pref(m).sms_consent for m in members] == [False, False]


def test_when_twilio_answers_opt_outs_itself_we_only_record_them(client, twilio):
    member = member_with()
    response = inbound(client, "Stop please", extra={"OptOutType": "STOP"})
    assert reply_of(response) == ""
    assert pref(member).sms_consent is False
    assert not Message.objects.exists()


def test_keyword_replies_can_be_left_to_twilio_but_bal_is_still_answered(client, twilio):
    twilio.TWILIO_KEYWORD_REPLIES = False
    member_with()
    assert reply_of(inbound(client, "HELP", sid="SM1")) == ""
    assert reply_of(inbound(client, "BAL", sid="SM2")) != ""


def test_any_other_text_gets_a_pointer_to_the_office(client, twilio):
    member_with()
    text = reply_of(inbound(client, "I paid yesterday, why is my power off?"))
    assert "does not read replies" in text
    event = WebhookEvent.objects.get()
    assert event.body == "I paid yesterday, why is my power off?" and event.from_number == PHONE


def test_a_member_without_preferences_gets_a_row_when_they_text_stop(client, twilio):
    member = member_with(consent=False)
    NotificationPreference.objects.filter(member=member).delete()
    inbound(client, "STOP")
    assert pref(member).sms_consent is False
