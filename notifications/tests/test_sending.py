"""Exactly once, on time, to the channel the member chose: queueing, claiming, quiet hours,
rollbacks, and the offline transports."""

import datetime
import json
import smtplib
import threading

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from notifications import events, services, transports, webhooks
from notifications.exceptions import NotResendable
from notifications.models import Message
from notifications.tests.conftest import FakeTwilioHttp, member_with, pref, prepaid_account
from notifications.transports import TwilioSms

pytestmark = pytest.mark.django_db
UTC = datetime.UTC
NOON = datetime.datetime(2026, 3, 3, 18, 0, tzinfo=UTC)  # 12:00 in Chicago (CST, UTC-6)
LATE = datetime.datetime(2026, 3, 4, 5, 30, tzinfo=UTC)  # 23:30 on March 3 in Chicago


def channels(ids):
    return sorted(Message.objects.filter(pk__in=ids).values_list("channel", flat=True))


@time_machine.travel(NOON, tick=False)
def test_a_send_task_that_runs_twice_sends_each_message_once(policy, twilio):
    ids = events.notify_restored(account_id=prepaid_account().pk)
    fake = FakeTwilioHttp()
    first = services.messages_send(message_ids=ids, sms=TwilioSms(http_client=fake))
    second = services.messages_send(message_ids=ids, sms=TwilioSms(http_client=fake))
    assert first["sent"] == 2 and sum(second.values()) == 0
    assert len(fake.requests) == 1 and len(mail.outbox) == 1


@time_machine.travel(NOON, tick=False)
def test_the_same_event_queued_twice_is_one_message_per_channel(policy):
    account = prepaid_account()
    first = events.notify_restored(account_id=account.pk)
    again = events.notify_restored(account_id=account.pk)
    assert len(first) == 2 and again == []
    assert Message.objects.count() == 2


@time_machine.travel(NOON, tick=False)
def test_an_opted_out_number_gets_no_sms_while_the_email_still_goes(policy):
    account = prepaid_account(member_with(consent=False))
    ids = events.notify_pending_disconnect(
        account_id=account.pk, window_start=NOON + datetime.timedelta(days=1), window_end=NOON
    )
    assert channels(ids) == ["email"]


@time_machine.travel(NOON, tick=False)
def test_sms_only_member_who_opted_out_still_gets_required_notices_by_email(policy):
    account = prepaid_account(member_with(consent=False, channels="sms"))
    assert channels(events.notify_disconnected(account_id=account.pk)) == ["email"]


@time_machine.travel(NOON, tick=False)
def test_a_member_who_chose_email_only_gets_no_sms(policy):
    account = prepaid_account(member_with(channels="email"))
    assert channels(events.notify_restored(account_id=account.pk)) == ["email"]


@time_machine.travel(NOON, tick=False)
def test_optional_notices_can_be_turned_off_but_disconnect_warnings_cannot(policy):
    account = prepaid_account(member_with(muted_notices=["restored"]))
    assert events.notify_restored(account_id=account.pk) == []
    assert channels(events.notify_disconnected(account_id=account.pk)) == ["email", "sms"]
    with pytest.raises(ValidationError, match="cannot be turned off"):
        services.preference_update(member=account.member, muted_notices=["disconnected"])


@time_machine.travel(NOON, tick=False)
def test_a_member_who_texts_stop_after_queueing_gets_no_sms(policy, twilio):
    account = prepaid_account()
    ids = events.notify_restored(account_id=account.pk)
    services.preference_update(member=account.member, sms_consent=False)
    fake = FakeTwilioHttp()
    counts = services.messages_send(message_ids=ids, sms=TwilioSms(http_client=fake))
    assert counts == {"sent": 1, "held": 0, "retry": 0, "failed": 0, "cancelled": 1}
    assert fake.requests == []
    sms = Message.objects.get(pk__in=ids, channel="sms")
    assert sms.status == Message.Status.CANCELLED and "agreed to texts" in sms.error_message


def test_quiet_hours_hold_an_sms_until_eight_in_the_morning(
    policy, twilio, enqueued, django_capture_on_commit_callbacks
):
    with time_machine.travel(LATE, tick=False) as clock:
        account = prepaid_account()
        with django_capture_on_commit_callbacks(execute=True):
            ids = events.notify_restored(account_id=account.pk)
        sms = Message.objects.get(pk__in=ids, channel="sms")
        email = Message.objects.get(pk__in=ids, channel="email")
        # 08:00 on March 4 in Chicago is 14:00 UTC.
        assert sms.send_after == datetime.datetime(2026, 3, 4, 14, 0, tzinfo=UTC)
        assert email.send_after is None

        assert enqueued == [[email.pk]]  # the email goes now (no quiet hours for email)
        fake = FakeTwilioHttp()
        assert services.messages_send(message_ids=ids, sms=TwilioSms(http_client=fake))["sent"] == 1
        assert services.messages_retry_due()["enqueued"] == 0

        clock.move_to(datetime.datetime(2026, 3, 4, 13, 59, tzinfo=UTC))
        assert services.messages_retry_due()["enqueued"] == 0
        clock.move_to(datetime.datetime(2026, 3, 4, 14, 0, tzinfo=UTC))
        assert services.messages_retry_due()["enqueued"] == 1
        services.messages_send(message_ids=[sms.pk], sms=TwilioSms(http_client=fake))
    sms.refresh_from_db()
    assert sms.status == Message.Status.SENT and sms.sent_at == datetime.datetime(
        2026, 3, 4, 14, 0, tzinfo=UTC
    )
    assert len(fake.requests) == 1


def test_quiet_hours_end_at_eight_local_time_on_the_day_clocks_spring_forward(policy):
    # Saturday 7 March 2026, 22:00 CST; the clocks go forward at 02:00 on Sunday 8 March, so
    # 08:00 that morning is CDT (UTC-5): 13:00 UTC, not 14:00.
    with time_machine.travel(datetime.datetime(2026, 3, 8, 4, 0, tzinfo=UTC), tick=False):
        ids = events.notify_restored(account_id=prepaid_account().pk)
    sms = Message.objects.get(pk__in=ids, channel="sms")
    assert sms.send_after == datetime.datetime(2026, 3, 8, 13, 0, tzinfo=UTC)


@time_machine.travel(datetime.datetime(2026, 3, 4, 4, 30, tzinfo=UTC), tick=False)  # 22:30 local
def test_a_members_own_quiet_hours_apply(policy):
    account = prepaid_account(
        member_with(quiet_hours_start=datetime.time(23, 0), quiet_hours_end=datetime.time(6, 30))
    )
    sms = Message.objects.get(pk__in=events.notify_restored(account_id=account.pk), channel="sms")
    assert sms.send_after is None  # 22:30 is before this member's quiet hours


def test_a_retry_that_falls_in_quiet_hours_is_held_again(policy, twilio):
    with time_machine.travel(NOON, tick=False) as clock:
        sms = Message.objects.get(
            pk__in=events.notify_restored(account_id=prepaid_account().pk), channel="sms"
        )
        Message.objects.filter(pk=sms.pk).update(send_after=LATE)
        clock.move_to(LATE)
        counts = services.messages_send(message_ids=[sms.pk], sms=TwilioSms(http_client=FakeTwilioHttp()))
    sms.refresh_from_db()
    assert counts["held"] == 1
    assert (sms.status, sms.attempts) == (Message.Status.QUEUED, 0)
    assert sms.send_after == datetime.datetime(2026, 3, 4, 14, 0, tzinfo=UTC)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_transaction_that_rolls_back_sends_nothing(policy, enqueued):
    account = prepaid_account()
    with time_machine.travel(NOON, tick=False):
        with pytest.raises(RuntimeError), transaction.atomic():
            events.notify_restored(account_id=account.pk)
            raise RuntimeError("the payment failed")
        assert Message.objects.count() == 0 and enqueued == []

        with transaction.atomic():
            ids = events.notify_restored(account_id=account.pk)
            assert enqueued == []  # not before the commit
    assert enqueued == [sorted(ids)]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_messages_are_enqueued_in_batches_after_commit(policy, enqueued, settings):
    settings.COOP_NOTIFY_BATCH_SIZE = 3
    accounts = [prepaid_account(member_with(phone="")) for _ in range(7)]
    with time_machine.travel(NOON, tick=False), transaction.atomic():
        for account in accounts:
            events.notify_restored(account_id=account.pk)
    assert [len(b) for b in enqueued] == [1] * 7  # one event, one email, one batch


def test_a_worker_that_died_while_sending_leaves_the_message_failed_not_resent(policy):
    with time_machine.travel(NOON, tick=False) as clock:
        ids = events.notify_restored(account_id=prepaid_account().pk)
        Message.objects.filter(pk__in=ids).update(status=Message.Status.SENDING, claimed_at=NOON)
        clock.shift(services.STALE_SENDING - datetime.timedelta(seconds=1))
        assert services.messages_retry_due()["stuck_failed"] == 0
        clock.shift(datetime.timedelta(seconds=2))
        assert services.messages_retry_due()["stuck_failed"] == 2
    assert set(Message.objects.values_list("status", "error_code")) == {(Message.Status.FAILED, "unknown")}


def test_a_queued_message_whose_task_was_lost_is_handed_out_again(policy):
    with time_machine.travel(NOON, tick=False) as clock:
        ids = events.notify_restored(account_id=prepaid_account().pk)
        assert services.messages_retry_due()["enqueued"] == 0  # their task was enqueued just now
        clock.shift(services.REENQUEUE_AFTER + datetime.timedelta(seconds=1))
        assert services.messages_retry_due()["enqueued"] == len(ids)
        assert services.messages_retry_due()["enqueued"] == 0


@time_machine.travel(NOON, tick=False)
def test_twilios_callback_arriving_before_the_worker_records_the_send_is_kept(policy, twilio):
    sms = Message.objects.get(pk__in=events.notify_restored(account_id=prepaid_account().pk), channel="sms")

    class CallbackFirst:
        transport = "twilio"

        def send(self, outgoing):
            webhooks.sms_status_record(
                params={"MessageSid": "SMfast", "MessageStatus": "delivered"}, message_hint=str(outgoing.id)
            )
            return "SMfast"

    services.messages_send(message_ids=[sms.pk], sms=CallbackFirst())
    sms.refresh_from_db()
    assert (sms.status, sms.provider_id, sms.attempts) == (Message.Status.DELIVERED, "SMfast", 1)


@time_machine.travel(NOON, tick=False)
def test_email_has_a_plain_text_and_an_html_part(policy, settings):
    settings.COOP_HELP_PHONE = "(715) 532-5524"
    account = prepaid_account()
    ids = events.notify_disconnected(account_id=account.pk)
    services.messages_send(message_ids=ids)
    [email] = mail.outbox
    assert email.to == ["jane@example.org"]
    assert email.subject == f"Your power was shut off: account {account.number}"
    assert "Pay $10.00 to have it restored" in email.body
    [(html, mime)] = email.alternatives
    assert mime == "text/html" and "Pay $10.00 to have it restored" in html and "<html" in html
    message = Message.objects.get(pk__in=ids, channel="email")
    assert (message.status, message.transport) == (Message.Status.SENT, "memory")
    assert message.provider_id == email.extra_headers["Message-ID"]


@time_machine.travel(NOON, tick=False)
def test_without_twilio_settings_texts_go_to_the_console_and_say_so(policy, settings, capsys):
    settings.COOP_SMS_BACKEND = ""
    settings.TWILIO_ACCOUNT_SID = ""
    ids = events.notify_restored(account_id=prepaid_account().pk)
    services.messages_send(message_ids=ids)
    sms = Message.objects.get(pk__in=ids, channel="sms")
    assert (sms.status, sms.transport) == (Message.Status.SENT, "console")
    assert sms.get_transport_display() == "Console (not sent)"
    assert f"SMS #{sms.pk} to +17155320101" in capsys.readouterr().out


@time_machine.travel(NOON, tick=False)
def test_the_file_transport_writes_one_json_line_per_text(policy, settings, tmp_path):
    settings.COOP_SMS_BACKEND = "file"
    settings.COOP_SMS_FILE_PATH = tmp_path
    ids = events.notify_restored(account_id=prepaid_account().pk)
    services.messages_send(message_ids=ids)
    [line] = (tmp_path / "sms-20260303.jsonl").read_text().splitlines()
    sms = Message.objects.get(pk__in=ids, channel="sms")
    assert json.loads(line)["body"] == sms.body and sms.transport == "file"


@time_machine.travel(NOON, tick=False)
def test_a_refused_email_address_fails_and_a_mail_server_hiccup_is_retried(policy, monkeypatch):
    account = prepaid_account(member_with(phone=""))
    refused = events.notify_restored(account_id=account.pk)
    hiccup = events.notify_disconnected(account_id=account.pk)

    def refuse(self, messages):
        raise smtplib.SMTPRecipientsRefused({"jane@example.org": (550, b"5.1.1 user unknown")})

    monkeypatch.setattr("django.core.mail.backends.locmem.EmailBackend.send_messages", refuse)
    services.messages_send(message_ids=refused)

    def disconnect(self, messages):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    monkeypatch.setattr("django.core.mail.backends.locmem.EmailBackend.send_messages", disconnect)
    services.messages_send(message_ids=hiccup)
    assert Message.objects.get(pk=refused[0]).status == Message.Status.FAILED
    assert Message.objects.get(pk=refused[0]).error_code == "smtp-550"
    retried = Message.objects.get(pk=hiccup[0])
    assert (retried.status, retried.attempts) == (Message.Status.QUEUED, 1)


def test_the_gsm7_look_alikes_are_replaced_so_a_text_stays_one_segment(policy):
    member = member_with()
    member.first_name = "Zoë"
    member.save()
    account = prepaid_account(member)
    with time_machine.travel(NOON, tick=False):
        ids = events.notify_restored(account_id=account.pk)
    assert Message.objects.get(pk__in=ids, channel="sms").segments == 1


def test_a_clerk_resend_makes_a_new_message_once(policy, twilio, django_user_model):
    clerk = django_user_model.objects.create_user("clerk")
    with time_machine.travel(NOON, tick=False):
        sms = Message.objects.get(
            pk__in=events.notify_restored(account_id=prepaid_account().pk), channel="sms"
        )
        Message.objects.filter(pk=sms.pk).update(status=Message.Status.FAILED, error_code="30003")
        sms.refresh_from_db()
        copy = services.message_resend(message=sms, actor=clerk)
        assert (copy.resend_of, copy.status, copy.body, copy.actor) == (
            sms,
            Message.Status.QUEUED,
            sms.body,
            clerk,
        )
        with pytest.raises(NotResendable, match="already resent"):
            services.message_resend(message=sms, actor=clerk)
        with pytest.raises(NotResendable, match="only failed"):
            services.message_resend(message=copy, actor=clerk)


def test_a_resend_to_a_member_who_opted_out_is_refused(policy, django_user_model):
    with time_machine.travel(NOON, tick=False):
        account = prepaid_account()
        sms = Message.objects.get(pk__in=events.notify_restored(account_id=account.pk), channel="sms")
        Message.objects.filter(pk=sms.pk).update(status=Message.Status.FAILED)
        sms.refresh_from_db()
        services.preference_update(member=account.member, sms_consent=False)
        with pytest.raises(NotResendable, match="cannot get texts"):
            services.message_resend(message=sms, actor=None)
    assert pref(account.member).sms_consent_source == "staff"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_workers_running_the_same_batch_at_once_send_each_message_once(policy, twilio):
    accounts = [prepaid_account(member_with(phone=f"+171553201{n:02d}")) for n in range(20)]
    ids = []
    with time_machine.travel(NOON, tick=True):
        for account in accounts:
            ids += events.notify_restored(account_id=account.pk)
        fake = FakeTwilioHttp()
        lock = threading.Lock()
        original = fake.request

        def request(*args, **kwargs):
            with lock:
                return original(*args, **kwargs)

        fake.request = request
        barrier = threading.Barrier(2)

        def worker():
            try:
                barrier.wait()
                services.messages_send(message_ids=ids, sms=TwilioSms(http_client=fake))
            finally:
                connection.close()

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(fake.requests) == 20
    assert len({r["data"]["To"] for r in fake.requests}) == 20
    assert len(mail.outbox) == 20
    assert set(Message.objects.values_list("status", flat=True)) == {Message.Status.SENT}


def test_transports_are_chosen_by_the_settings(settings, twilio):
    assert isinstance(transports.sms_transport(http_client=FakeTwilioHttp()), TwilioSms)
    settings.COOP_SMS_BACKEND = "file"
    assert isinstance(transports.sms_transport(), transports.FileSms)
    settings.COOP_SMS_BACKEND = ""
    settings.TWILIO_AUTH_TOKEN = ""
    assert isinstance(transports.sms_transport(), transports.ConsoleSms)
