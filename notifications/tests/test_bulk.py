"""insert_new: one statement, the ORM's own values back, conflicts skipped."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.tests import factories
from notifications.bulk import insert_new
from notifications.models import Message, NotificationPreference

pytestmark = pytest.mark.django_db


def test_rows_come_back_as_the_orm_wrote_them_and_existing_keys_are_skipped():
    members = [factories.member() for _ in range(3)]
    rows = [
        NotificationPreference(
            member=m,
            channels="sms",
            muted_notices=["payment_receipt"],
            low_balance_dollars=Decimal("12.34"),
            low_balance_reminder_days=2,
            quiet_hours_start=datetime.time(22, 30),
            sms_consent=True,
            sms_consent_changed_at=datetime.datetime(2026, 3, 3, 18, 0, 5, 123456, tzinfo=datetime.UTC),
        )
        for m in members
    ]
    with CaptureQueriesContext(connection) as queries:
        ids = insert_new(rows, unique_field="member")
    assert len(queries) == 1 and len(ids) == 3
    saved = NotificationPreference.objects.get(member=members[0])
    assert saved.muted_notices == ["payment_receipt"] and saved.low_balance_dollars == Decimal("12.34")
    assert saved.quiet_hours_start == datetime.time(22, 30) and saved.quiet_hours_end == datetime.time(8, 0)
    assert saved.sms_consent is True and saved.low_balance_days is None
    assert saved.sms_consent_changed_at == datetime.datetime(
        2026, 3, 3, 18, 0, 5, 123456, tzinfo=datetime.UTC
    )
    assert insert_new(rows, unique_field="member") == []


def test_a_chunk_is_one_statement():
    rows = [
        Message(notice="restored", channel="email", recipient="a@example.org", body="b", dedupe_key=f"k{i}")
        for i in range(25)
    ]
    with CaptureQueriesContext(connection) as queries:
        ids = insert_new(rows, unique_field="dedupe_key", chunk=10)
    assert len(queries) == 3 and sorted(ids) == list(
        Message.objects.order_by("pk").values_list("pk", flat=True)
    )
