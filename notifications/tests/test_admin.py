"""The message log, preferences, templates and webhook events in the admin, the account page's
messages panel, and who may do what."""

import datetime

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from notifications import events
from notifications.models import Message, NoticeTemplate, NotificationPreference
from notifications.tests.conftest import member_with, pref, prepaid_account

UTC = datetime.UTC
NOON = datetime.datetime(2026, 3, 3, 18, 0, tzinfo=UTC)
LOG = reverse("admin:notifications_message_changelist")
PREFS = reverse("admin:notifications_notificationpreference_changelist")
TEMPLATES = reverse("admin:notifications_noticetemplate_changelist")
EVENTS = reverse("admin:notifications_webhookevent_changelist")


pytestmark = [pytest.mark.django_db, pytest.mark.frozen(NOON)]


def found(response):
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


@pytest.fixture
def history(policy):
    """Two accounts' messages: one failed SMS today, one failed yesterday, the rest sent."""
    a = prepaid_account()
    b = prepaid_account(member_with(phone="+17155320102", email="bob@example.org"))
    ids_a = events.notify_restored(account_id=a.pk)
    ids_b = events.notify_disconnected(account_id=b.pk)
    Message.objects.filter(pk__in=ids_a + ids_b).update(status=Message.Status.SENT)
    failed_today = Message.objects.get(pk__in=ids_a, channel="sms")
    Message.objects.filter(pk=failed_today.pk).update(status=Message.Status.FAILED, error_code="21211")
    failed_before = Message.objects.get(pk__in=ids_b, channel="sms")
    Message.objects.filter(pk=failed_before.pk).update(
        status=Message.Status.UNDELIVERED, status_changed_at=NOON - datetime.timedelta(days=1)
    )
    return {"a": a, "b": b, "failed_today": failed_today, "failed_before": failed_before}


def test_every_role_sees_the_message_log_and_nobody_writes_it(client, clerk, manager, auditor, history):
    for user in (clerk, manager, auditor):
        assert user.has_perm("notifications.view_message")
        assert not any(user.has_perm(f"notifications.{a}_message") for a in ("add", "change", "delete"))
        client.force_login(user)
        assert len(found(client.get(LOG))) == 4
        message = history["failed_today"]
        response = client.get(reverse("admin:notifications_message_change", args=[message.pk]))
        assert response.status_code == 200 and message.body.encode() in response.content.replace(
            b"&#x27;", b"'"
        )


def test_failed_today_at_a_glance(client, clerk, history):
    client.force_login(clerk)
    response = client.get(LOG)
    assert b"1 message failed today" in response.content
    assert [m.pk for m in found(client.get(LOG, {"attention": "failed_today"}))] == [
        history["failed_today"].pk
    ]
    week = found(client.get(LOG, {"attention": "failed_week"}))
    assert {m.pk for m in week} == {history["failed_today"].pk, history["failed_before"].pk}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status__exact": "undelivered"}, 1),
        ({"channel__exact": "email"}, 2),
        ({"notice__exact": "disconnected"}, 2),
        ({"created_at__gte": "2026-03-03 00:00:00-06:00", "created_at__lt": "2026-03-04 00:00:00-06:00"}, 4),
        ({"transport__exact": "twilio"}, 0),
    ],
)
def test_the_log_filters_by_status_channel_notice_and_date(client, clerk, history, params, expected):
    client.force_login(clerk)
    assert len(found(client.get(LOG, params))) == expected


@pytest.mark.parametrize("term", ["(715) 532-0102", "715.532.0102", "bob@example.org"])
def test_the_log_finds_a_members_messages_by_phone_or_email(client, clerk, history, term):
    client.force_login(clerk)
    rows = found(client.get(LOG, {"q": term}))
    assert rows and {m.account_id for m in rows} == {history["b"].pk}


def test_the_log_finds_an_accounts_messages_by_number_and_from_the_account_page(client, clerk, history):
    client.force_login(clerk)
    assert len(found(client.get(LOG, {"q": history["a"].number}))) == 2
    assert len(found(client.get(LOG, {"account__id__exact": history["a"].pk}))) == 2


def test_the_log_page_costs_the_same_queries_for_more_messages(client, clerk, policy):
    client.force_login(clerk)
    counts = []
    for n in (2, 12):
        while Message.objects.count() < n * 2:
            events.notify_restored(account_id=prepaid_account(member_with(phone="")).pk)
            Message.objects.update(status=Message.Status.SENT)
        with CaptureQueriesContext(connection) as queries:
            client.get(LOG)
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_a_clerk_resends_failed_messages_and_an_auditor_cannot(client, clerk, auditor, history):
    failed = history["failed_today"]
    client.force_login(auditor)
    response = client.get(LOG)
    assert "resend" not in dict(response.context["cl"].model_admin.get_action_choices(response.wsgi_request))
    client.post(LOG, {"action": "resend", "_selected_action": [failed.pk]})
    assert not Message.objects.filter(resend_of=failed).exists()

    # Watching the failed notices is the clerks' daily work: they may send one again.
    client.force_login(clerk)
    response = client.post(LOG, {"action": "resend", "_selected_action": [failed.pk]}, follow=True)
    copy = Message.objects.get(resend_of=failed)
    assert (copy.status, copy.actor, copy.recipient) == (Message.Status.QUEUED, clerk, failed.recipient)
    assert "1 message(s) queued to be sent again." in [str(m) for m in get_messages(response.wsgi_request)]
    response = client.post(LOG, {"action": "resend", "_selected_action": [failed.pk]}, follow=True)
    assert any("already resent" in str(m) for m in get_messages(response.wsgi_request))


def test_the_account_page_shows_the_message_history(client, clerk, history):
    client.force_login(clerk)
    response = client.get(reverse("admin:accounts_account_change", args=[history["a"].pk]))
    html = response.content.decode()
    assert 'id="messages"' in html and "Service restored" in html
    assert f"?account__id__exact={history['a'].pk}" in html
    assert "SMS consent: <strong>yes</strong>" in html


def test_the_account_page_warns_when_texts_to_the_number_are_stopped(client, clerk, policy):
    from notifications.services import phone_problem_flag

    account = prepaid_account()
    phone_problem_flag(member_id=account.member_id, number="+17155320101", problem="Invalid phone number")
    client.force_login(clerk)
    html = client.get(reverse("admin:accounts_account_change", args=[account.pk])).content.decode()
    assert "Texts to +17155320101 are stopped: Invalid phone number" in html
    assert [p.member_id for p in found(client.get(PREFS, {"phone_problem": "yes"}))] == [account.member_id]


def test_a_clerk_records_sms_consent_and_preferences_in_the_admin(client, clerk, policy):
    member = member_with(consent=False)
    client.force_login(clerk)
    response = client.post(
        reverse("admin:notifications_notificationpreference_add"),
        {
            "member": member.pk,
            "channels": "both",
            "muted_notices": ["payment_receipt"],
            "low_balance_unit": "days",
            "low_balance_days": "4",
            "low_balance_reminder_days": "2",
            "quiet_hours_start": "22:00",
            "quiet_hours_end": "07:30",
            "sms_consent": "on",
            "phone_problem": "",
        },
    )
    assert response.status_code == 302, response.content
    saved = pref(member)
    assert saved.sms_consent and saved.sms_consent_source == "clerk clerk"
    assert saved.muted_notices == ["payment_receipt"] and saved.low_balance_days == 4
    assert saved.quiet_hours_end == datetime.time(7, 30) and saved.updated_by == clerk
    assert not clerk.has_perm("notifications.delete_notificationpreference")


def test_a_days_warning_needs_its_number(client, clerk, policy):
    member = member_with(consent=False)
    client.force_login(clerk)
    response = client.post(
        reverse("admin:notifications_notificationpreference_add"),
        {
            "member": member.pk,
            "channels": "email",
            "low_balance_unit": "days",
            "quiet_hours_start": "21:00",
            "quiet_hours_end": "08:00",
        },
    )
    assert response.status_code == 200 and not NotificationPreference.objects.filter(member=member).exists()


def test_only_managers_edit_templates_and_an_sms_must_fit_one_segment(client, clerk, manager):
    template = NoticeTemplate.objects.get(notice="low_balance", channel="sms")
    url = reverse("admin:notifications_noticetemplate_change", args=[template.pk])
    client.force_login(clerk)
    assert client.get(url).status_code == 200  # view only
    assert client.post(url, {"body": "x"}).status_code == 403

    client.force_login(manager)
    too_long = {"subject": "", "body": "{{ coop }}: " + "word " * 40, "html_body": ""}
    response = client.post(url, too_long)
    assert response.status_code == 200 and b"more than one SMS segment" in response.content
    curly = {
        "subject": "",
        "body": "{{ coop }}: you\u2019re low \u2014 pay {{ balance }} \u263a",
        "html_body": "",
    }
    assert b"not in the SMS alphabet" in client.post(url, curly).content
    broken = {"subject": "", "body": "{% if %}", "html_body": ""}
    assert b"does not render" in client.post(url, broken).content
    good = {
        "subject": "",
        "body": "{{ coop }}: acct {{ account }} is low: {{ balance }}. STOP to opt out",
        "html_body": "",
    }
    assert client.post(url, good).status_code == 302
    template.refresh_from_db()
    assert template.body == good["body"] and template.updated_by == manager
    assert client.post(url, {**too_long, "allow_multipart": "on"}).status_code == 302


def test_an_edited_template_is_what_the_next_notice_says(policy, manager):
    from notifications.services import notice_template_save

    template = NoticeTemplate.objects.get(notice="restored", channel="sms")
    notice_template_save(
        template=template,
        actor=manager,
        subject="",
        body="{{ coop }}: lights on at {{ account }}!",
        html_body="",
        allow_multipart=False,
    )
    account = prepaid_account()
    sms = Message.objects.get(pk__in=events.notify_restored(account_id=account.pk), channel="sms")
    assert sms.body == f"Demo Electric Cooperative: lights on at {account.number}!"
    assert sms.template == template


def test_webhook_events_are_read_only_for_everyone(client, manager):
    client.force_login(manager)
    assert client.get(EVENTS).status_code == 200
    assert not manager.has_perm("notifications.change_webhookevent")
    assert client.get(reverse("admin:notifications_webhookevent_add")).status_code == 403
