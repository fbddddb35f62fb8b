"""The notices a member must hear of when something happened in billing or meters.

Billing and meters announce what happened through coop.events (billing/events.py,
meters/events.py); notifications/apps.py subscribes the handlers at the end of this module, which
coop.events calls after the announcing transaction committed, each in its own transaction. Each
notify_* is safe to call again for the same event: the message's dedupe key (the payment, the
status change, the account and day) makes a second call insert nothing. Each returns the ids of
the messages it queued (empty when the member turned the notice off or cannot be reached); the
messages are handed to the send tasks after its transaction commits.
"""

import datetime
import functools
import logging
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from accounts.models import Account, AccountStatusChange
from billing.daily import daily_run_failure_add
from billing.events import (
    DailyRunFinished,
    DebtPlanChanged,
    DepositChanged,
    DisconnectsPending,
    PaymentPosted,
    PaymentReturned,
)
from billing.models import DebtPlan, Deduction, LedgerAccount, Payment, ReturnedPayment, Transaction
from billing.prepaid import restore_amount_needed
from billing.selectors import Balances, balances_after, balances_as_of, member_amount
from coop import events
from coop.calendar import local_date, local_today, to_local
from coop.models import Policy
from meters.events import AccountDisconnected, AccountRestored
from notifications.models import NotificationPreference
from notifications.notices import Notice
from notifications.rendering import TemplateSet, common_context, short_date, short_time, usd
from notifications.selectors import (
    PREF,
    PREF_FIELDS,
    Prefs,
    balance_context,
    e164,
    low_balance_crossings,
    low_balance_reminders,
)
from notifications.services import message_plan, messages_queue

ZERO = Decimal("0.00")
logger = logging.getLogger(__name__)


def _never_undoes_the_change(notify):
    """A notice that cannot be queued (a template error, no policy in force...) is logged and
    skipped in its own savepoint: the payment, return or disconnect it announces stands."""

    @functools.wraps(notify)
    def wrapper(*args, **kwargs):
        try:
            with transaction.atomic():
                return notify(*args, **kwargs)
        except Exception:
            logger.exception(
                "%s%s could not be queued; the change it announces stands", notify.__name__, kwargs
            )
            return []

    return wrapper


def _account(account_id: int) -> Account:
    return Account.objects.select_related("member__notification_preference").get(pk=account_id)


def _queue(
    *,
    account: Account,
    notice: str,
    key: str,
    context: dict,
    notice_day=None,
    balances: Balances | None = None,
) -> list[int]:
    """Queue one notice about `account`. `balances`: as of the posting it reports; a notice is
    queued after the commit, when later postings of the same transaction (a payment file) are in."""
    member = account.member
    try:
        pref = member.notification_preference
    except NotificationPreference.DoesNotExist:
        pref = None
    ctx = {
        **common_context(),
        "first_name": member.first_name,
        "last_name": member.last_name,
        "account": account.number,
        **balance_context(account, balances),
        **context,
    }
    planned = message_plan(
        notice=notice,
        key=key,
        prefs=Prefs.of(pref),
        member_id=member.pk,
        account_id=account.pk,
        email=member.email,
        phone=e164(member.mobile_phone),
        context=ctx,
        templates=TemplateSet(),
        now=timezone.now(),
        notice_day=notice_day or local_today(),
    )
    return messages_queue(planned)


@_never_undoes_the_change
def notify_payment_receipt(*, payment_id: int) -> list[int]:
    """A payment was posted (billing.services.payment_post, when it returns created=True)."""
    payment = Payment.objects.get(pk=payment_id)
    return _queue(
        account=_account(payment.account_id),
        notice=Notice.PAYMENT_RECEIPT,
        key=f"payment_receipt:{payment.pk}",
        context={
            "amount": usd(payment.amount),
            "receipt": payment.receipt_number,
            "tender": payment.get_tender_display().lower(),
        },
        notice_day=local_date(payment.received_at),
        balances=balances_after(payment),
    )


@_never_undoes_the_change
def notify_returned_payment(*, payment_id: int, fee: Decimal | None = None) -> list[int]:
    """A posted payment came back (billing.services.payment_return). `fee`: the returned-payment
    fee charged for it, if any, to mention in the email."""
    returned = ReturnedPayment.objects.select_related("payment").get(payment_id=payment_id)
    payment = returned.payment
    # The balance after the return and the fees it charged (linked to its transaction).
    last = max(
        [returned.transaction_id, *returned.transaction.return_fees.values_list("transaction_id", flat=True)]
    )
    return _queue(
        account=_account(payment.account_id),
        notice=Notice.RETURNED_PAYMENT,
        key=f"returned_payment:{payment.pk}",
        context={
            "amount": usd(payment.amount),
            "receipt": payment.receipt_number,
            "tender": payment.get_tender_display().lower(),
            "reason": returned.get_reason_display().lower(),
            "fee": usd(fee) if fee else "",
        },
        notice_day=returned.returned_on,
        balances=balances_as_of(payment.account_id, last),
    )


DEPOSIT_CHANGES = {
    Transaction.Kind.DEPOSIT_COLLECT: "collected",
    Transaction.Kind.DEPOSIT_APPLY: "applied to your balance",
    Transaction.Kind.DEPOSIT_REFUND: "refunded",
}


@_never_undoes_the_change
def notify_deposit_change(*, transaction_id: int) -> list[int]:
    """A deposit was collected, applied or refunded (billing.services.deposit_collect,
    deposit_apply, deposit_refund: pass the transaction they return)."""
    txn = Transaction.objects.get(pk=transaction_id)
    if txn.kind not in DEPOSIT_CHANGES or txn.account_id is None:
        raise ValueError(f"Transaction #{txn.pk} ({txn.kind}) is not a member's deposit change.")
    moved = sum(
        (leg.amount for leg in txn.legs.filter(ledger_account__purpose=LedgerAccount.Purpose.DEPOSIT_HELD)),
        ZERO,
    )
    account = _account(txn.account_id)
    after = balances_as_of(txn.account_id, txn.pk)
    return _queue(
        account=account,
        notice=Notice.DEPOSIT_CHANGE,
        key=f"deposit_change:{txn.pk}",
        context={
            "change": DEPOSIT_CHANGES[txn.kind],
            "amount": usd(abs(moved)),
            "deposit_held": usd(after.deposit_held),
        },
        notice_day=txn.effective_date,
        balances=after,
    )


PLAN_CHANGES = {
    DebtPlan.Status.ACTIVE: "started",
    DebtPlan.Status.COMPLETED: "is paid off",
    DebtPlan.Status.CANCELLED: "was cancelled",
}


@_never_undoes_the_change
def notify_plan_change(*, plan_id: int) -> list[int]:
    """A debt-management plan started, was completed or was cancelled (billing.services.
    plan_enroll, plan_cancel, and payment_post when a payment completes the plan). Once per plan
    and status."""
    plan = DebtPlan.objects.get(pk=plan_id)
    account = _account(plan.account_id)
    # The arrears when the plan began (the notice is queued after the commit, when a payment of
    # the same transaction may already have paid some).
    arrears = plan.enrolled_amount
    return _queue(
        account=account,
        notice=Notice.PLAN_CHANGE,
        key=f"plan_change:{plan.pk}:{plan.status}",
        context={
            "change": PLAN_CHANGES[plan.status],
            "share": f"{plan.share_percent.normalize():f}%" if plan.status == DebtPlan.Status.ACTIVE else "",
            "remaining": usd(arrears) if arrears > 0 and plan.status == DebtPlan.Status.ACTIVE else "",
        },
        notice_day=plan.ended_on or plan.enrolled_on,
    )


def _status_change_key(notice: str, account: Account, to_status: str, status_change_id: int | None) -> str:
    """One notice per status change: the given one, else the account's latest move to
    `to_status`, else (no audit row) one per account and day."""
    changes = AccountStatusChange.objects.filter(account=account, to_status=to_status)
    if status_change_id is not None:
        changes = changes.filter(pk=status_change_id)
    change_id = changes.order_by("-changed_at", "-id").values_list("pk", flat=True).first()
    if change_id is None:
        return f"{notice}:{account.pk}:{local_today().isoformat()}"
    return f"{notice}:change-{change_id}"


@_never_undoes_the_change
def notify_disconnected(
    *, account_id: int, amount_to_restore: Decimal | None = None, status_change_id: int | None = None
) -> list[int]:
    """Service was cut for a low prepaid balance (after the account moved to disconnected).
    `amount_to_restore`: what the member must pay to be reconnected; by default billing's
    restore_amount_needed (the restore level less the balance, grossed up for a debt plan)."""
    account = _account(account_id)
    if amount_to_restore is None:
        amount_to_restore = _restore_amount(account)
    return _queue(
        account=account,
        notice=Notice.DISCONNECTED,
        key=_status_change_key(Notice.DISCONNECTED, account, Account.Status.DISCONNECTED, status_change_id),
        context={"restore_amount": usd(amount_to_restore)},
    )


def _restore_amount(account: Account) -> Decimal:
    return restore_amount_needed(account)


@_never_undoes_the_change
def notify_restored(*, account_id: int, status_change_id: int | None = None) -> list[int]:
    """Service was restored (after the account moved from disconnected back to active)."""
    account = _account(account_id)
    return _queue(
        account=account,
        notice=Notice.RESTORED,
        key=_status_change_key(Notice.RESTORED, account, Account.Status.ACTIVE, status_change_id),
        context={},
    )


def _window_context(window_start: datetime.datetime, window_end: datetime.datetime) -> dict:
    start, end = to_local(window_start), to_local(window_end)
    return {
        "window_date": short_date(start.date()),
        "window_start": short_time(start.time()),
        "window_end": "midnight" if end.time() == datetime.time(0) else short_time(end.time()),
    }


@_never_undoes_the_change
def notify_pending_disconnect(
    *, account_id: int, window_start: datetime.datetime, window_end: datetime.datetime
) -> list[int]:
    """Service will be cut between `window_start` and `window_end` (aware datetimes, e.g. billing.
    prepaid.next_disconnect_window) unless the member pays. Once per account and local day of the
    window. For many accounts at once use notify_pending_disconnects."""
    return notify_pending_disconnects(
        account_ids=[account_id], window_start=window_start, window_end=window_end
    )


ACCOUNT_PREF = "member__notification_preference__"
CHUNK = 5000


@_never_undoes_the_change
def notify_pending_disconnects(
    *, account_ids: list[int], window_start: datetime.datetime, window_end: datetime.datetime
) -> list[int]:
    """notify_pending_disconnect for many accounts with the same window (the day's disconnect
    candidates): one query per 5,000 accounts reads members, preferences, balances and days
    remaining; their messages are inserted in one statement."""
    day = to_local(window_start).date()
    window = _window_context(window_start, window_end)
    common, templates, now = common_context(), TemplateSet(), timezone.now()
    credit = LedgerAccount.objects.filter(
        account=OuterRef("pk"), purpose=LedgerAccount.Purpose.PREPAID_CREDIT
    ).values("balance")[:1]
    days = (
        Deduction.objects.filter(account=OuterRef("pk"), kind=Deduction.Kind.DAILY)
        .order_by("-service_day", "-id")
        .values("days_remaining")[:1]
    )
    planned = []
    ids = sorted(set(account_ids))
    for first in range(0, len(ids), CHUNK):
        rows = (
            Account.objects.filter(pk__in=ids[first : first + CHUNK])
            .annotate(debit=Subquery(credit), days_left=Subquery(days))
            .values(
                "pk",
                "number",
                "member_id",
                "member__first_name",
                "member__last_name",
                "member__email",
                "member__mobile_phone",
                "debit",
                "days_left",
                *(ACCOUNT_PREF + f for f in PREF_FIELDS),
            )
        )
        for row in rows:
            prefs = Prefs.from_row(row, ACCOUNT_PREF)
            context = {
                **common,
                "first_name": row["member__first_name"],
                "last_name": row["member__last_name"],
                "account": row["number"],
                "balance": usd(member_amount(LedgerAccount.Purpose.PREPAID_CREDIT, row["debit"] or ZERO)),
                "days": row["days_left"],
                **window,
            }
            planned += message_plan(
                notice=Notice.PENDING_DISCONNECT,
                key=f"{Notice.PENDING_DISCONNECT}:{row['pk']}:{day.isoformat()}",
                prefs=prefs,
                member_id=row["member_id"],
                account_id=row["pk"],
                email=row["member__email"],
                phone=e164(row["member__mobile_phone"]),
                context=context,
                templates=templates,
                now=now,
                notice_day=day,
            )
    return messages_queue(planned)


# --- After the daily run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DailyNotices:
    crossings: int
    reminders: int
    queued: int


def _row_context(row: dict, prefs: Prefs, default: Decimal, common: dict) -> dict:
    return {
        **common,
        "first_name": row["account__member__first_name"],
        "last_name": row["account__member__last_name"],
        "account": row["account__number"],
        "balance": usd(row["balance_after"]),
        "days": row["days_remaining"],
        "threshold": prefs.threshold_text(default),
    }


@transaction.atomic
def notices_after_daily_run(*, service_day: datetime.date) -> DailyNotices:
    """Low-balance warnings (and due reminders) for every account the daily run of `service_day`
    took below its member's level: one query finds them all, one statement inserts their
    messages (per 20,000), and sending is enqueued in batches after commit. Safe to run again
    for the same day: nothing new is queued. Call it when the run for the day has finished."""
    policy = Policy.objects.in_force(service_day)
    default = policy.low_balance_threshold_default
    templates = TemplateSet()
    common = common_context()
    now = timezone.now()
    crossings = low_balance_crossings(service_day=service_day, default_threshold=default)
    crossed = {row["account_id"] for row in crossings}
    reminders = [
        row
        for row in low_balance_reminders(service_day=service_day, default_threshold=default)
        if row["account_id"] not in crossed
    ]
    planned = []
    for notice, rows in ((Notice.LOW_BALANCE, crossings), (Notice.LOW_BALANCE_REMINDER, reminders)):
        for row in rows:
            prefs = Prefs.from_row(row, PREF)
            context = _row_context(row, prefs, default, common)
            if notice == Notice.LOW_BALANCE_REMINDER:
                context["since"] = short_date(row["last_warning"])
            planned += message_plan(
                notice=notice,
                key=f"{notice}:{row['account_id']}:{service_day.isoformat()}",
                prefs=prefs,
                member_id=row["account__member_id"],
                account_id=row["account_id"],
                email=row["account__member__email"],
                phone=e164(row["account__member__mobile_phone"]),
                context=context,
                templates=templates,
                now=now,
                notice_day=service_day,
            )
    ids = messages_queue(planned)
    return DailyNotices(crossings=len(crossings), reminders=len(reminders), queued=len(ids))


# --- What notifications hears (subscribed in notifications/apps.py) ----------------------------------


def on_payment_posted(event: PaymentPosted) -> None:
    notify_payment_receipt(payment_id=event.payment_id)


def on_payment_returned(event: PaymentReturned) -> None:
    notify_returned_payment(payment_id=event.payment_id, fee=event.fee)


def on_deposit_changed(event: DepositChanged) -> None:
    notify_deposit_change(transaction_id=event.transaction_id)


def on_debt_plan_changed(event: DebtPlanChanged) -> None:
    notify_plan_change(plan_id=event.plan_id)


def on_daily_run_finished(event: DailyRunFinished) -> None:
    """The low-balance notices of the day. When they fail, the day's run says so (the staff watch
    the run's page, not the log), and running the day again queues them."""
    try:
        notices_after_daily_run(service_day=event.service_day)
    except Exception as exc:
        logger.exception("daily run %s: notices failed", event.service_day)
        daily_run_failure_add(service_day=event.service_day, detail=f"notices: {exc}")


def on_disconnects_pending(event: DisconnectsPending) -> None:
    notify_pending_disconnects(
        account_ids=list(event.account_ids), window_start=event.window_start, window_end=event.window_end
    )


def on_account_disconnected(event: AccountDisconnected) -> None:
    notify_disconnected(account_id=event.account_id)


def on_account_restored(event: AccountRestored) -> None:
    notify_restored(account_id=event.account_id)


HANDLERS = {
    PaymentPosted: on_payment_posted,
    PaymentReturned: on_payment_returned,
    DepositChanged: on_deposit_changed,
    DebtPlanChanged: on_debt_plan_changed,
    DailyRunFinished: on_daily_run_finished,
    DisconnectsPending: on_disconnects_pending,
    AccountDisconnected: on_account_disconnected,
    AccountRestored: on_account_restored,
}


def subscribe_handlers() -> None:
    for event_type, handler in HANDLERS.items():
        events.subscribe(event_type, handler)
