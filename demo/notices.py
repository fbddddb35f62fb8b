"""The demo's notices (called by demo.seed.seed_demo once members, accounts and the money history
exist): members' preferences, a message history with some failures, and members who opted out.

Nothing here is sent: the history is written as it would look afterwards (transport "demo"),
except a few texts held for quiet hours, which the worker sends to the console (or Twilio, if it
is configured) when their morning comes. Rows are written a few thousand per statement
(notifications.bulk.insert_new) and keyed like the real ones, so running it again adds nothing.
"""

import datetime
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import Account, Member
from billing.models import Payment
from billing.selectors import account_balances
from coop.calendar import coop_zone, local_today
from notifications.bulk import insert_new
from notifications.models import Message, NotificationPreference, WebhookEvent
from notifications.notices import OPTIONAL_NOTICES, Channel, Notice
from notifications.rendering import TemplateSet, common_context, short_date, short_time, usd
from notifications.selectors import Prefs, channels_for, e164

S = Message.Status
C = NotificationPreference.Channels
CHUNK = 5000
HISTORY_DAYS = 45


@dataclass
class NotificationsDemoSummary:
    preferences: int = 0
    sms_consent: int = 0
    opted_out: int = 0
    messages: int = 0
    by_status: Counter = field(default_factory=Counter)
    phones_flagged: int = 0

    def summary(self) -> str:
        statuses = ", ".join(f"{S(s).label.lower()} {n:,}" for s, n in sorted(self.by_status.items()))
        return (
            f"Notices: {self.preferences:,} preferences ({self.sms_consent:,} agreed to texts, "
            f"{self.opted_out:,} texted STOP), {self.messages:,} messages ({statuses}), "
            f"{self.phones_flagged:,} phone numbers flagged."
        )


def _local(
    day: datetime.date, rng: random.Random, start_hour: int = 8, end_hour: int = 20
) -> datetime.datetime:
    at = datetime.time(rng.randrange(start_hour, end_hour), rng.randrange(60), rng.randrange(60))
    return datetime.datetime.combine(day, at, tzinfo=coop_zone())


def _preference(rng: random.Random, member_id: int, phone: str, email: str, now) -> NotificationPreference:
    pref = NotificationPreference(member_id=member_id, updated_at=now)
    if phone:
        roll = rng.random()
        if roll < 0.70:
            pref.sms_consent = True
            pref.sms_consent_source = rng.choice(("enrollment form", "clerk", "texted 'START'"))
            pref.channels = rng.choices((C.BOTH, C.SMS, C.EMAIL), weights=(50, 30, 20))[0]
        elif roll < 0.76:  # opted out: texted STOP
            pref.sms_consent_source = "texted 'STOP'"
            pref.channels = C.BOTH
        else:
            pref.channels = C.EMAIL if email else C.BOTH
        if pref.sms_consent_source:
            pref.sms_consent_changed_at = now - datetime.timedelta(days=rng.randrange(1, 400))
    else:
        pref.channels = C.EMAIL
    roll = rng.random()
    if roll < 0.15:
        pref.low_balance_unit = NotificationPreference.Unit.DAYS
        pref.low_balance_days = rng.choice((3, 5, 7))
    elif roll < 0.40:
        pref.low_balance_dollars = Decimal(rng.choice(("10.00", "15.00", "25.00", "30.00")))
    if rng.random() < 0.30:
        pref.low_balance_reminder_days = rng.choice((2, 3))
    if rng.random() < 0.10:
        pref.muted_notices = [Notice.PAYMENT_RECEIPT.value]
    elif rng.random() < 0.03:
        pref.muted_notices = [n.value for n in OPTIONAL_NOTICES if n != Notice.LOW_BALANCE]
    if rng.random() < 0.05:
        pref.quiet_hours_start, pref.quiet_hours_end = datetime.time(22, 0), datetime.time(7, 0)
    return pref


def _seed_preferences(rng: random.Random, result: NotificationsDemoSummary, say) -> None:
    now = timezone.now()
    rows = Member.objects.order_by("pk").values_list("pk", "mobile_phone", "email")
    batch: list[NotificationPreference] = []
    for member_id, phone, email in rows.iterator(chunk_size=CHUNK):
        pref = _preference(rng, member_id, e164(phone), email, now)
        result.sms_consent += pref.sms_consent
        result.opted_out += pref.sms_consent_source == "texted 'STOP'"
        batch.append(pref)
        if len(batch) >= CHUNK:
            result.preferences += len(insert_new(batch, unique_field="member"))
            batch = []
    result.preferences += len(insert_new(batch, unique_field="member"))
    say(f"  {result.preferences:,} notice preferences")


@dataclass
class _Outcome:
    status: str
    error_code: str = ""
    error_message: str = ""


def _sms_outcome(rng: random.Random) -> _Outcome:
    roll = rng.random()
    if roll < 0.03:
        return _Outcome(
            S.UNDELIVERED, "30003", "Unreachable destination handset (phone off or out of coverage)"
        )
    if roll < 0.04:
        return _Outcome(S.FAILED, "30007", "Message filtered by the carrier")
    return _Outcome(S.DELIVERED)


def _email_outcome(rng: random.Random) -> _Outcome:
    if rng.random() < 0.02:
        return _Outcome(S.FAILED, "smtp-550", "The mail server refused the address: 550 5.1.1 user unknown")
    return _Outcome(S.SENT)


class _History:
    def __init__(self, seed: str, today: datetime.date):
        self.seed = seed
        self.today = today
        self.templates = TemplateSet()
        self.common = common_context()
        self.rows: list[Message] = []
        self.flag: dict[int, tuple[str, str]] = {}  # member id -> (number, problem)

    def add(
        self, *, account: Account, prefs: Prefs, notice: str, key: str, day, created, context, final=True
    ):
        member = account.member
        phone = e164(member.mobile_phone)
        ctx = {
            **self.common,
            "first_name": member.first_name,
            "last_name": member.last_name,
            "account": account.number,
            **context,
        }
        for channel in channels_for(notice=notice, prefs=prefs, email=member.email, phone=phone):
            rendered = self.templates.render(notice, channel, ctx)
            sms = channel == Channel.SMS
            done = final or not sms  # only texts are held for quiet hours
            # Drawn from the message's own key: a second seeding draws the same outcome for the
            # same message, whatever changed meanwhile (a flagged phone means fewer texts).
            rng = random.Random(f"{self.seed}:{key}:{channel}")
            outcome = (_sms_outcome if sms else _email_outcome)(rng) if done else _Outcome(S.QUEUED)
            if sms and done and rng.random() < 0.01:
                outcome = _Outcome(S.FAILED, "21211", "Invalid phone number (Twilio 21211)")
                self.flag[member.pk] = (phone, "Invalid phone number (Twilio 21211)")
            message = Message(
                created_at=created,
                status_changed_at=created + datetime.timedelta(seconds=12),
                notice=notice,
                channel=channel,
                recipient=phone if sms else member.email,
                subject=rendered.subject,
                body=rendered.body,
                html_body=rendered.html_body,
                segments=rendered.segments,
                template_id=rendered.template_id,
                account_id=account.pk,
                member_id=member.pk,
                notice_day=day,
                dedupe_key=f"{key}:{channel}",
                status=outcome.status,
                error_code=outcome.error_code,
                error_message=outcome.error_message,
            )
            if done:
                message.attempts = 1
                message.transport = Message.Transport.DEMO
                message.provider_id = f"demo-{key}:{channel}"
                message.sent_at = created + datetime.timedelta(seconds=2)
                if outcome.status == S.DELIVERED:
                    message.delivered_at = created + datetime.timedelta(seconds=12)
            else:
                message.status_changed_at = created
                message.send_after = datetime.datetime.combine(
                    self.today + datetime.timedelta(days=1), prefs.quiet_end, tzinfo=coop_zone()
                )
            self.rows.append(message)


def _seed_history(seed: str, today: datetime.date, history_accounts: int, result, say) -> None:
    """Each account's history is drawn from its own generator (seed and account), so seeding
    again draws the same days and keys however the members' preferences changed meanwhile, and
    inserts nothing new."""
    accounts = list(
        Account.objects.in_service()
        .select_related("member__notification_preference")
        .order_by("pk")[:history_accounts]
    )
    history = _History(seed, today)
    payments = {}
    for payment in Payment.objects.filter(account__in=accounts).order_by("pk"):
        payments.setdefault(payment.account_id, []).append(payment)
    for account in accounts:
        try:
            prefs = Prefs.of(account.member.notification_preference)
        except NotificationPreference.DoesNotExist:
            prefs = Prefs()
        balance = account_balances(account).prepaid_credit
        prepaid = account.billing_mode == Account.BillingMode.PREPAID
        rng = random.Random(f"{seed}:{account.pk}")
        for payment in payments.get(account.pk, []):
            day = payment.received_at.astimezone(coop_zone()).date()
            if day < today - datetime.timedelta(days=HISTORY_DAYS):
                continue
            history.add(
                account=account,
                prefs=prefs,
                notice=Notice.PAYMENT_RECEIPT,
                key=f"payment_receipt:{payment.pk}",
                day=day,
                created=payment.received_at + datetime.timedelta(seconds=30),
                context={
                    "amount": usd(payment.amount),
                    "receipt": payment.receipt_number,
                    "tender": payment.get_tender_display().lower(),
                    "balance": usd(balance),
                },
            )
        if not prepaid:
            continue
        threshold = prefs.threshold_text(Decimal("20.00"))
        for _ in range(rng.choice((0, 0, 1, 1, 2))):
            day = today - datetime.timedelta(days=rng.randrange(0, HISTORY_DAYS))
            low = Decimal(rng.randrange(200, 1900)) / 100
            history.add(
                account=account,
                prefs=prefs,
                notice=Notice.LOW_BALANCE,
                key=f"low_balance:{account.pk}:{day.isoformat()}",
                day=day,
                created=_local(day, rng, 6, 7),
                context={"balance": usd(low), "days": rng.randrange(1, 6), "threshold": threshold},
            )
        if account.status == Account.Status.DISCONNECTED:
            day = today - datetime.timedelta(days=rng.randrange(1, 20))
            start = _local(day, rng, 10, 11).replace(minute=0, second=0)
            history.add(
                account=account,
                prefs=prefs,
                notice=Notice.PENDING_DISCONNECT,
                key=f"pending_disconnect:{account.pk}:{day.isoformat()}",
                day=day,
                created=_local(day - datetime.timedelta(days=1), rng, 9, 17),
                context={
                    "balance": usd(Decimal("1.25")),
                    "days": 0,
                    "window_date": short_date(day),
                    "window_start": short_time(start.time()),
                    "window_end": short_time((start + datetime.timedelta(hours=4)).time()),
                },
            )
            history.add(
                account=account,
                prefs=prefs,
                notice=Notice.DISCONNECTED,
                key=f"disconnected:{account.pk}:{day.isoformat()}",
                day=day,
                created=start + datetime.timedelta(minutes=20),
                context={
                    "balance": usd(balance),
                    "days": 0,
                    "restore_amount": usd(max(-balance, Decimal(0))),
                },
            )
        elif rng.random() < 0.05:
            # Tonight's warning for a member who wants texts: held until their quiet hours end.
            history.add(
                account=account,
                prefs=prefs,
                notice=Notice.LOW_BALANCE,
                key=f"low_balance:{account.pk}:{today.isoformat()}",
                day=today,
                created=timezone.now(),
                context={"balance": usd(Decimal("14.80")), "days": 3, "threshold": threshold},
                final=False,
            )
    # A few of today's failures, so "failed today" has something to show.
    todays = [m for m in history.rows if m.channel == Channel.SMS and m.status == S.DELIVERED][:3]
    for message in todays:
        message.status, message.error_code = S.UNDELIVERED, "30003"
        message.error_message = "Unreachable destination handset (phone off or out of coverage)"
        message.created_at = timezone.now() - datetime.timedelta(hours=1)
        message.status_changed_at, message.delivered_at = timezone.now(), None
    ids = insert_new(history.rows, unique_field="dedupe_key")
    inserted = set(ids)
    result.messages += len(ids)
    for status, n in Counter(
        s for s in Message.objects.filter(pk__in=inserted).values_list("status", flat=True)
    ).items():
        result.by_status[status] += n
    now = timezone.now()
    for member_id, (number, problem) in history.flag.items():
        NotificationPreference.objects.filter(member_id=member_id).update(
            phone_problem=problem, phone_problem_number=number, phone_problem_at=now
        )
    result.phones_flagged = len(history.flag)
    say(f"  {result.messages:,} messages in the history")


def _seed_stop_texts(rng: random.Random) -> None:
    """The STOP texts behind a few opted-out members, as the webhook would have logged them."""
    opted = list(
        NotificationPreference.objects.filter(sms_consent=False, sms_consent_source="texted 'STOP'")
        .select_related("member")
        .order_by("pk")[:25]
    )
    events = []
    for pref in opted:
        number = e164(pref.member.mobile_phone)
        if not number:
            continue
        sid = f"SMdemo{pref.member_id:026d}"
        events.append(
            WebhookEvent(
                kind=WebhookEvent.Kind.INBOUND,
                key=f"inbound:{sid}",
                received_at=pref.sms_consent_changed_at or timezone.now(),
                from_number=number,
                body=rng.choice(("STOP", "Stop", "stop", "UNSUBSCRIBE", "Cancel")),
                outcome="STOP from 1 member(s); SMS consent withdrawn for 1",
                response='<?xml version="1.0" encoding="UTF-8"?><Response />',
                params={"MessageSid": sid, "From": number, "Body": "STOP"},
            )
        )
    WebhookEvent.objects.bulk_create(events, ignore_conflicts=True)


def seed_notifications_demo(
    *,
    seed: int = 2026,
    today: datetime.date | None = None,
    history_accounts: int = 300,
    progress: Callable[[str], None] | None = None,
) -> NotificationsDemoSummary:
    """Preferences for every member, a message history for the first `history_accounts` accounts
    in service (the ones with a money history), and the STOP texts of some who opted out."""
    say = progress or (lambda _msg: None)
    today = today or local_today()
    rng = random.Random(f"{seed}-notifications")
    result = NotificationsDemoSummary()
    with transaction.atomic():
        _seed_preferences(rng, result, say)
        if history_accounts > 0:
            _seed_history(f"{seed}-notifications", today, history_accounts, result, say)
        _seed_stop_texts(rng)
    return result
