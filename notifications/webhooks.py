"""Twilio's webhooks: delivery status callbacks (`sms_status_record`) and incoming texts
(`sms_inbound_handle`: STOP, START, HELP, BAL). Each delivery is recorded once as a WebhookEvent
(Twilio retries), so a repeat changes nothing and gets the first answer again."""

from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from twilio.twiml.messaging_response import MessagingResponse

from accounts.models import Account, Member
from billing.models import Deduction, LedgerAccount
from billing.selectors import member_amount
from coop.validators import contains_card_number, mask_card_numbers
from notifications import transports
from notifications.bulk import insert_new
from notifications.models import Message, WebhookEvent
from notifications.notices import Channel, Notice
from notifications.rendering import TemplateSet, common_context, usd
from notifications.services import _consent_set, _move, phone_problem_flag

S = Message.Status
ZERO = Decimal("0.00")

TWILIO_STATUSES = {
    "accepted": S.SENT,
    "scheduled": S.SENT,
    "queued": S.SENT,
    "sending": S.SENT,
    "sent": S.SENT,
    "delivered": S.DELIVERED,
    "read": S.DELIVERED,
    "undelivered": S.UNDELIVERED,
    "failed": S.FAILED,
}


def _event_first_time(*, kind: str, key: str, params: dict, **fields) -> tuple[WebhookEvent, bool]:
    """The event row for `key`, and whether this delivery is the first (a repeat finds the row)."""
    try:
        with transaction.atomic():
            return WebhookEvent.objects.create(kind=kind, key=key[:150], params=params, **fields), True
    except IntegrityError:
        return WebhookEvent.objects.get(key=key[:150]), False


@transaction.atomic
def sms_status_record(*, params: dict, message_hint: str | None = None) -> WebhookEvent:
    """Record a Twilio status callback, once per (message, status). `message_hint`: the message id
    from the callback URL, for a message whose Twilio SID was never saved."""
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    event, first = _event_first_time(
        kind=WebhookEvent.Kind.STATUS, key=f"status:{sid}:{status}", params=params
    )
    if not first:
        return event
    message = Message.objects.select_for_update().filter(provider_id=sid).first() if sid else None
    if message is None and message_hint and message_hint.isdigit():
        message = (
            Message.objects.select_for_update()
            .filter(pk=int(message_hint), channel=Channel.SMS)
            .filter(Q(provider_id="") | Q(provider_id=sid))
            .first()
        )
    to = TWILIO_STATUSES.get(status)
    if message is None or to is None:
        event.outcome = (
            "No message has this Twilio SID." if message is None else f"Status {status!r} ignored."
        )
        event.message = message
        event.save(update_fields=["outcome", "message"])
        return event
    now = timezone.now()
    code = params.get("ErrorCode") or ""
    fields = {"provider_id": sid}
    if to == S.DELIVERED:
        fields["delivered_at"] = now
    if code:
        fields["error_code"] = code[:20]
        fields["error_message"] = (params.get("ErrorMessage") or f"Twilio delivery error {code}")[:300]
    if message.status == to:
        Message.objects.filter(pk=message.pk).update(**fields)
        event.outcome = f"Already {S(to).label.lower()}."
    elif to in Message.TRANSITIONS[S(message.status)]:
        if message.status == S.SENDING:
            fields.setdefault("sent_at", now)
        _move(message, to, now=now, **fields)
        event.outcome = f"Now {S(to).label.lower()}."
    else:
        event.outcome = f"Ignored {status!r}: the message is already {S(message.status).label.lower()}."
    if code.isdigit() and message.member_id:
        number_code = int(code)
        problem = transports.DELIVERY_PHONE_PROBLEM_CODES.get(
            number_code
        ) or transports.PHONE_PROBLEM_CODES.get(number_code)
        if problem:
            phone_problem_flag(
                member_id=message.member_id,
                number=message.recipient,
                problem=f"{problem} (Twilio {code})",
                unsubscribed=number_code == transports.UNSUBSCRIBED,
            )
    event.message = message
    event.save(update_fields=["outcome", "message"])
    return event


STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})
BALANCE_WORDS = frozenset({"BAL", "BALANCE"})
KEYWORD_NOTICES = {
    "STOP": Notice.REPLY_STOP,
    "START": Notice.REPLY_START,
    "HELP": Notice.REPLY_HELP,
    "BAL": Notice.REPLY_BALANCE,
    "OTHER": Notice.REPLY_OTHER,
}


def keyword_of(body: str) -> str:
    """STOP, START, HELP, BAL or OTHER: the whole text, any case, without surrounding spaces and
    trailing punctuation, as carriers match opt-out keywords."""
    word = (body or "").strip().strip(".!?").strip().upper()
    for name, words in (
        ("STOP", STOP_WORDS),
        ("START", START_WORDS),
        ("HELP", HELP_WORDS),
        ("BAL", BALANCE_WORDS),
    ):
        if word in words:
            return name
    return "OTHER"


def _balances_for(members: list[Member]) -> list[dict]:
    """The prepaid accounts in service of these members, with balance and days remaining (two
    queries), at most three: one SMS segment."""
    accounts = list(
        Account.objects.prepaid()
        .in_service()
        .filter(member__in=members)
        .order_by("number")
        .values("pk", "number")[:3]
    )
    ids = [a["pk"] for a in accounts]
    stored = dict(
        LedgerAccount.objects.filter(
            account_id__in=ids, purpose=LedgerAccount.Purpose.PREPAID_CREDIT
        ).values_list("account_id", "balance")
    )
    days = {}
    for account_id, remaining in (
        Deduction.objects.filter(account_id__in=ids, kind=Deduction.Kind.DAILY)
        .order_by("account_id", "-service_day", "-id")
        .values_list("account_id", "days_remaining")
    ):
        days.setdefault(account_id, remaining)
    # Only the last four digits of the account number: the reply goes to whoever holds (or spoofs)
    # the phone number, and the full number is what a caller gives the office to act on an account.
    # Templates (editable by managers) get no other form of it.
    return [
        {
            "number": f"*{a['number'][-4:]}",
            "balance": usd(member_amount(LedgerAccount.Purpose.PREPAID_CREDIT, stored.get(a["pk"]) or ZERO)),
            "days": days.get(a["pk"]),
        }
        for a in accounts
    ]


@transaction.atomic
def sms_inbound_handle(*, params: dict) -> str:
    """Act on an incoming text and return the TwiML answer. STOP (and synonyms) withdraws SMS
    consent for every member with that number, START gives it back, HELP answers with who we are,
    BAL with the balance and days remaining. Processed once per Twilio MessageSid: a repeated
    delivery gets the first answer again, and nothing changes."""
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    number = params.get("From", "")
    if contains_card_number(params.get("Body", "")):  # a member texted a card number: never stored
        params = {**params, "Body": mask_card_numbers(params["Body"])}
    body = params.get("Body", "")
    event, first = _event_first_time(
        kind=WebhookEvent.Kind.INBOUND, key=f"inbound:{sid}", params=params, from_number=number, body=body
    )
    if not first:
        return event.response
    opt_out_type = (params.get("OptOutType") or "").upper()
    keyword = opt_out_type if opt_out_type in ("STOP", "START", "HELP") else keyword_of(body)
    members = list(Member.objects.filter(mobile_phone=number).order_by("pk")) if number else []
    now = timezone.now()
    outcome = f"{keyword} from {len(members)} member(s)"
    if keyword == "STOP":
        changed = _consent_set(members, consent=False, source=f"texted {body.strip()[:40]!r}", now=now)
        outcome += f"; SMS consent withdrawn for {changed}"
    elif keyword == "START":
        changed = _consent_set(members, consent=True, source=f"texted {body.strip()[:40]!r}", now=now)
        outcome += f"; SMS consent given for {changed}"

    # Twilio answers STOP/START/HELP itself when its opt-out handling is on (OptOutType is then
    # present, or the setting says so): a second answer would reach the member twice.
    twilio_answers = bool(opt_out_type) or not settings.TWILIO_KEYWORD_REPLIES
    reply = ""
    if not (keyword in ("STOP", "START", "HELP") and twilio_answers):
        context = {**common_context()}
        if keyword == "BAL":
            context["accounts"] = _balances_for(members)
        rendered = TemplateSet().render(KEYWORD_NOTICES[keyword], Channel.SMS, context)
        reply = rendered.body
        member = members[0] if members else None
        account = Account.objects.filter(member=member).order_by("-pk").first() if member else None
        reply_row = Message(
            created_at=now,
            status_changed_at=now,
            notice=KEYWORD_NOTICES[keyword],
            channel=Channel.SMS,
            recipient=number,
            body=reply,
            segments=rendered.segments,
            template_id=rendered.template_id,
            member=member,
            account=account,
            dedupe_key=f"reply:{sid}",
            status=S.SENT,
            transport=Message.Transport.REPLY,
            sent_at=now,
            attempts=1,
        )
        insert_new([reply_row], unique_field="dedupe_key")
    response = MessagingResponse()
    if reply:
        response.message(reply)
    event.response = str(response)
    event.outcome = outcome[:300]
    event.save(update_fields=["response", "outcome"])
    return event.response
