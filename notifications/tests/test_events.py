"""The functions billing and meters call when something happened (notifications/events.py)."""

import datetime
import logging
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.models import Account
from accounts.services import account_change_status
from accounts.tests import factories
from billing import services as billing
from notifications import events
from notifications.models import Message
from notifications.tests.conftest import member_with, prepaid_account

NOON = datetime.datetime(2026, 3, 3, 18, 0, tzinfo=datetime.UTC)


pytestmark = [pytest.mark.django_db, pytest.mark.frozen(NOON)]


def queued(account, notice) -> list[int]:
    """The messages of `notice` the billing services queued for the account, in order."""
    return list(
        Message.objects.filter(account=account, notice=notice).order_by("pk").values_list("pk", flat=True)
    )


def sms_of(ids) -> Message:
    return Message.objects.get(pk__in=ids, channel="sms")


def test_a_payment_receipt_is_sent_once_per_payment(policy):
    account = prepaid_account()
    payment, _ = billing.payment_post(
        account=account, amount=Decimal("50.00"), tender="card", reference="ch_1", received_at=NOON
    )
    # payment_post queued the receipt in its own transaction; calling again queues nothing.
    ids = queued(account, "payment_receipt")
    assert sms_of(ids).body == (
        f"Demo Electric Cooperative: $50.00 received for acct {account.number}, receipt "
        f"{payment.receipt_number}. Balance $50.00. Thank you!"
    )
    email = Message.objects.get(pk__in=ids, channel="email")
    assert email.subject == f"Payment received: $50.00, receipt {payment.receipt_number}"
    assert "We received your card payment of $50.00" in email.body
    assert email.notice_day == datetime.date(2026, 3, 3)
    assert events.notify_payment_receipt(payment_id=payment.pk) == []


@pytest.mark.policy(returned_payment_fee=Decimal("25.00"))
def test_a_returned_payment_says_why_and_is_required(policy):
    account = prepaid_account(member_with(muted_notices=["payment_receipt"]))
    payment, _ = billing.payment_post(
        account=account, amount=Decimal("80.00"), tender="check", reference="1042", received_at=NOON
    )
    assert events.notify_payment_receipt(payment_id=payment.pk) == []  # turned off by the member
    assert queued(account, "payment_receipt") == []
    billing.payment_return(payment=payment, reason="nsf")
    ids = queued(account, "returned_payment")  # queued by payment_return with the fee it charged
    assert events.notify_returned_payment(payment_id=payment.pk, fee=Decimal("25.00")) == []
    # The $25.00 fee was charged at once: the balance is now -$25.00.
    assert "was returned (insufficient funds). Balance -$25.00." in sms_of(ids).body
    assert (
        "A returned-payment fee of $25.00 applies." in Message.objects.get(pk__in=ids, channel="email").body
    )


@pytest.mark.policy(returned_payment_fee=Decimal("25.00"))
def test_each_notice_states_the_balance_after_its_own_posting_when_several_commit_together(policy, manager):
    # A payment file posts in one transaction (billing/imports.py); its receipts are queued after
    # the commit, when every payment of the file is in. Each says what its own payment left.
    account = prepaid_account()
    with transaction.atomic():
        first, _ = billing.payment_post(
            account=account, amount=Decimal("50.00"), tender="check", reference="1001", received_at=NOON
        )
        second, _ = billing.payment_post(
            account=account, amount=Decimal("30.00"), tender="check", reference="1002", received_at=NOON
        )
        billing.payment_return(payment=first, reason="nsf")
        billing.deposit_collect(account=account, amount=Decimal("100.00"), tender="cash", reference="d1")
        billing.deposit_collect(account=account, amount=Decimal("20.00"), tender="cash", reference="d2")
    receipts = texts(account, "payment_receipt")
    assert receipts == [
        f"Demo Electric Cooperative: $50.00 received for acct {account.number}, receipt "
        f"{first.receipt_number}. Balance $50.00. Thank you!",
        f"Demo Electric Cooperative: $30.00 received for acct {account.number}, receipt "
        f"{second.receipt_number}. Balance $80.00. Thank you!",
    ]
    # 80.00, less the 50.00 returned and its 25.00 fee
    assert "Balance $5.00." in texts(account, "returned_payment")[0]
    held = texts(account, "deposit_change")
    assert ("held now $100.00" in held[0], "held now $120.00" in held[1]) == (True, True)


def texts(account, notice) -> list[str]:
    return list(
        Message.objects.filter(account=account, notice=notice, channel="sms")
        .order_by("pk")
        .values_list("body", flat=True)
    )


def test_deposit_collected_and_refunded_are_each_announced(policy, manager, caplog):
    account = prepaid_account()
    txn = billing.deposit_collect(account=account, amount=Decimal("150.00"), tender="cash", reference="d1")
    ids = queued(account, "deposit_change")
    assert events.notify_deposit_change(transaction_id=txn.pk) == []
    assert "deposit collected on acct" in sms_of(ids).body and "held now $150.00" in sms_of(ids).body
    billing.deposit_refund(account=account, actor=manager, reason="moved away")
    again = [pk for pk in queued(account, "deposit_change") if pk not in ids]
    assert "deposit refunded" in sms_of(again).body and "held now $0.00" in sms_of(again).body
    payment, _ = billing.payment_post(account=account, amount=Decimal("5.00"), tender="cash", reference="x")
    # A notice that cannot be made is logged and skipped: it never undoes the change it announces.
    with caplog.at_level(logging.ERROR, logger="notifications.events"):
        assert events.notify_deposit_change(transaction_id=payment.transaction_id) == []
    assert "not a member's deposit change" in caplog.text


def test_a_plan_start_and_cancellation_are_announced_once_each(policy, manager):
    account = prepaid_account()
    billing.debt_transfer_to_arrears(
        account=account, amount=Decimal("400.00"), actor=manager, reason="old bill"
    )
    plan = billing.plan_enroll(
        account=account, actor=manager, share_percent=Decimal("35"), override_reason="hardship"
    )
    started = queued(account, "plan_change")
    assert (
        "payment plan on acct" in sms_of(started).body
        and "started. Remaining $400.00." in sms_of(started).body
    )
    assert events.notify_plan_change(plan_id=plan.pk) == []
    billing.plan_cancel(plan=plan, actor=manager, reason="member asked")
    cancelled = [pk for pk in queued(account, "plan_change") if pk not in started]
    assert "was cancelled." in sms_of(cancelled).body


def test_each_disconnection_and_restoration_is_one_notice(policy):
    account = prepaid_account()
    account_change_status(
        account=account, to_status=Account.Status.DISCONNECTED, actor=None, reason="credit out"
    )
    first = events.notify_disconnected(account_id=account.pk)
    assert "Pay $10.00 to restore it." in sms_of(first).body  # the policy's restore level less $0.00
    assert events.notify_disconnected(account_id=account.pk) == []
    account_change_status(account=account, to_status=Account.Status.ACTIVE, actor=None, reason="paid")
    assert len(events.notify_restored(account_id=account.pk)) == 2
    assert events.notify_restored(account_id=account.pk) == []
    account_change_status(account=account, to_status=Account.Status.DISCONNECTED, actor=None, reason="again")
    second = events.notify_disconnected(account_id=account.pk, amount_to_restore=Decimal("35.00"))
    assert "Pay $35.00 to restore it." in sms_of(second).body


def test_a_pending_disconnect_gives_the_day_and_window_in_local_time(policy):
    account = prepaid_account()
    start = datetime.datetime(2026, 3, 10, 15, 0, tzinfo=datetime.UTC)  # 10:00 CDT
    ids = events.notify_pending_disconnect(
        account_id=account.pk, window_start=start, window_end=start + datetime.timedelta(hours=4)
    )
    assert "Power will be shut off Tue Mar 10 10am-2pm unless paid." in sms_of(ids).body
    email = Message.objects.get(pk__in=ids, channel="email")
    assert email.subject == "Your power will be shut off Tue Mar 10 unless you pay"
    assert (
        events.notify_pending_disconnect(
            account_id=account.pk, window_start=start, window_end=start + datetime.timedelta(hours=4)
        )
        == []
    )


def test_a_postpaid_accounts_balance_reads_as_the_amount_due(policy):
    member = member_with(channels="email")
    account = factories.account(member=member, billing_mode=Account.BillingMode.POSTPAID)
    billing.receivable_add(
        account=account,
        amount=Decimal("61.20"),
        due_date=datetime.date(2026, 3, 28),
        description="March bill",
    )
    billing.payment_post(account=account, amount=Decimal("20.00"), tender="cash", reference="p")
    ids = queued(account, "payment_receipt")
    assert "Your balance is now $41.20 due." in Message.objects.get(pk__in=ids).body


def test_pending_disconnects_for_many_accounts_cost_the_same_queries(policy):
    accounts = [prepaid_account(member_with(phone=f"+171553201{n:02d}")) for n in range(13)]
    start = datetime.datetime(2026, 3, 10, 15, 0, tzinfo=datetime.UTC)
    end = start + datetime.timedelta(hours=4)
    counts = []
    for group in (accounts[:1], accounts[1:]):
        with CaptureQueriesContext(connection) as queries:
            ids = events.notify_pending_disconnects(
                account_ids=[a.pk for a in group], window_start=start, window_end=end
            )
        assert len(ids) == 2 * len(group)
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 5
    assert (
        events.notify_pending_disconnects(account_ids=[accounts[0].pk], window_start=start, window_end=end)
        == []
    )


def test_a_window_to_the_end_of_the_day_says_midnight(policy):
    account = prepaid_account()
    start = datetime.datetime(2026, 3, 10, 20, 15, tzinfo=datetime.UTC)  # 15:15 CDT
    end = datetime.datetime(2026, 3, 11, 5, 0, tzinfo=datetime.UTC)  # midnight CDT
    ids = events.notify_pending_disconnect(account_id=account.pk, window_start=start, window_end=end)
    assert "shut off Tue Mar 10 3:15pm-midnight unless paid" in sms_of(ids).body


def test_notifications_hears_every_event_billing_and_meters_announce():
    from billing import events as billing_events
    from coop import events as registry
    from meters import events as meters_events

    announced = {
        value
        for module in (billing_events, meters_events)
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, registry.Event) and value is not registry.Event
    }
    assert announced == set(events.HANDLERS)
    for event_type, handler in events.HANDLERS.items():
        assert registry.subscribers(event_type) == [handler]  # subscribed once, in apps.py


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_payment_receipt_is_queued_only_after_the_payment_has_committed(policy, monkeypatch):
    """payment_post announces PaymentPosted; coop.events delivers it after the commit: when the
    receipt is queued another connection already sees the payment, and a payment that rolls back
    queues none."""
    import threading

    from django.db import transaction

    from billing.models import Payment

    account = prepaid_account()
    seen_by_another_connection = []
    queue_receipt = events.notify_payment_receipt

    def receipt(**kwargs):
        def look():
            try:
                seen_by_another_connection.append(Payment.objects.filter(pk=kwargs["payment_id"]).exists())
            finally:
                connection.close()

        thread = threading.Thread(target=look)
        thread.start()
        thread.join(timeout=20)
        return queue_receipt(**kwargs)

    monkeypatch.setattr(events, "notify_payment_receipt", receipt)
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        billing.payment_post(account=account, amount=Decimal("5.00"), tender="cash", reference="cash 1")
        raise ZeroDivisionError
    with transaction.atomic():
        billing.payment_post(
            account=account, amount=Decimal("50.00"), tender="card", reference="ch_9", received_at=NOON
        )
        assert queued(account, "payment_receipt") == []
    assert seen_by_another_connection == [True]
    assert set(
        Message.objects.filter(pk__in=queued(account, "payment_receipt")).values_list("channel", flat=True)
    ) == {"sms", "email"}
