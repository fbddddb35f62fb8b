import datetime
import json
from decimal import Decimal

import pytest
from django_q import tasks as q_tasks
from twilio.http import HttpClient
from twilio.http.response import Response

from accounts.models import Account
from accounts.services import account_change_status
from accounts.tests import factories
from notifications import services
from notifications.models import NotificationPreference

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
SERVICE_SID = "MG" + "2" * 32
PUBLIC = "https://billing.coop.example"


class FakeTwilioHttp(HttpClient):
    """Twilio's HTTP edge: records every request the official client would send and answers with
    the queued responses (201 with a new SID by default)."""

    def __init__(self, *responses: Response):
        super().__init__(logger=None, is_async=False)
        self.requests: list[dict] = []
        self.responses = list(responses)

    def request(self, method, uri, params=None, data=None, headers=None, auth=None, timeout=None, **kw):
        self.requests.append(
            {"method": method, "uri": uri, "params": params, "data": data, "headers": headers, "auth": auth}
        )
        if self.responses:
            answer = self.responses.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        sid = f"SM{len(self.requests):032d}"
        return Response(201, json.dumps({"sid": sid, "status": "queued", "to": data.get("To")}))


def twilio_error(status: int, code: int, message: str) -> Response:
    return Response(status, json.dumps({"code": code, "message": message, "status": status}))


@pytest.fixture
def twilio(settings):
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.TWILIO_MESSAGING_SERVICE_SID = SERVICE_SID
    settings.TWILIO_FROM_NUMBER = ""
    settings.TWILIO_WEBHOOK_BASE_URL = PUBLIC
    settings.COOP_SMS_BACKEND = ""
    settings.COOP_SMS_NAME = "Demo Co-op"
    settings.COOP_HELP_PHONE = "(715) 532-5524"
    return settings


@pytest.fixture(autouse=True)
def email_in_memory(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.COOP_SMS_BACKEND = "console"


@pytest.fixture
def enqueued(monkeypatch):
    """The batches handed to django-q2's send task, instead of a broker (other tasks go on to
    django-q2 as before)."""
    batches: list[list[int]] = []
    original = q_tasks.async_task

    def fake_async_task(func, *args, **kwargs):
        if func != "notifications.tasks.messages_send_task":
            return original(func, *args, **kwargs)
        (ids,) = args
        batches.append(list(ids))

    monkeypatch.setattr(q_tasks, "async_task", fake_async_task)
    return batches


@pytest.fixture
def policy(request, db):
    """The notices' policy: warnings below $20.00, restored at $10.00 (marks may change it, see the
    root conftest.py)."""
    return factories.policy_marked(
        request.node,
        effective_from=datetime.date(2020, 1, 1),
        low_balance_threshold_default=Decimal("20.00"),
        restore_level=Decimal("10.00"),
    )


def member_with(*, phone="+17155320101", email="jane@example.org", consent=True, **prefs):
    member = factories.member(mobile_phone=phone, email=email)
    if consent or prefs:
        services.preference_update(member=member, sms_consent=consent, **prefs)
    return member


def prepaid_account(member=None, **prefs):
    member = member or member_with(**prefs)
    account = factories.account(member=member)
    return account_change_status(account=account, to_status=Account.Status.ACTIVE, actor=None, reason="test")


def pref(member) -> NotificationPreference:
    return NotificationPreference.objects.get(member=member)
