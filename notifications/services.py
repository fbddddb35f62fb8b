"""Every write of the notifications: preferences, templates, queueing, sending, resends. Twilio's
webhooks (delivery status, incoming texts) are notifications/webhooks.py.

Exactly once, step by step:

1. Queueing writes `Message` rows in the caller's transaction with a unique `dedupe_key`
   (notice:account:day:channel, or the payment / status change it is about). A repeated daily run
   or event inserts nothing (ON CONFLICT DO NOTHING); a rolled-back transaction leaves no row and,
   because sending is enqueued with `transaction.on_commit`, no task.
2. A send task claims its rows with one conditional UPDATE (queued and due -> sending, with a
   fresh claim token); a second run of the same task, or the retry sweep, finds nothing to claim.
3. The provider is called outside any transaction; the outcome is recorded with a conditional
   UPDATE from `sending`. A worker that dies between 2 and 3 leaves the row `sending`: the sweep
   marks it failed ("outcome unknown") after STALE_SENDING, unless Twilio's status callback
   (which carries the message id in its URL) has recorded it first. It is never sent again
   automatically, since it may have gone; a clerk can resend it.

Quiet hours: an SMS due inside the member's quiet hours (default 21:00-08:00, cooperative zone) is
held with `send_after` at their end; `messages_retry_due` (every minute) hands it to a send task
then. Transient errors retry with BACKOFF; permanent ones stop, and a number Twilio refuses for
good (21211, 21610, 21614...) is flagged on the member's preferences for the clerk.
"""

import datetime
import logging
import uuid
from collections.abc import Iterable
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Member
from coop.lifecycle import check_transition
from notifications import transports
from notifications.bulk import insert_new
from notifications.exceptions import (
    IllegalMessageTransition,
    NotResendable,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from notifications.models import Message, NoticeTemplate, NotificationPreference
from notifications.notices import Channel
from notifications.rendering import TemplateSet, template_check
from notifications.selectors import EDITABLE_PREFERENCES, Prefs, channels_for, e164, quiet_until

logger = logging.getLogger(__name__)

S = Message.Status
ZERO = Decimal("0.00")
BACKOFF_MINUTES = (1, 5, 15, 60, 180, 360)
# A message left `sending` this long belongs to a worker that died (django-q2 kills a task after
# Q_TIMEOUT seconds).
STALE_SENDING = datetime.timedelta(seconds=settings.Q_CLUSTER["timeout"]) + datetime.timedelta(minutes=5)
# A queued message handed to a task this long ago and still queued lost its task (a broker
# restart): the sweep hands it out again. The claim makes a duplicate harmless.
REENQUEUE_AFTER = datetime.timedelta(seconds=settings.Q_CLUSTER["retry"]) + datetime.timedelta(minutes=5)
SWEEP_LIMIT = 20_000


# --- Preferences -----------------------------------------------------------------------------------


@transaction.atomic
def preference_update(*, member: Member, actor=None, source: str = "", **fields) -> NotificationPreference:
    """Change a member's notice preferences (clerk in the admin, later the member pages). A change
    of SMS consent records when and how (`source`, default "clerk <username>")."""
    unknown = set(fields) - set(EDITABLE_PREFERENCES)
    if unknown:
        raise TypeError(f"preference_update cannot change {', '.join(sorted(unknown))}")
    pref, _ = NotificationPreference.objects.select_for_update().get_or_create(member=member)
    consent_before = pref.sms_consent
    for name, value in fields.items():
        setattr(pref, name, value)
    if "phone_problem" in fields and not fields["phone_problem"]:
        pref.phone_problem_number, pref.phone_problem_at = "", None
    if pref.sms_consent != consent_before:
        pref.sms_consent_changed_at = timezone.now()
        who = getattr(actor, "username", "") if actor else ""
        pref.sms_consent_source = (source or (f"clerk {who}" if who else "staff"))[:100]
    pref.updated_by = actor
    pref.full_clean(exclude=["member"])
    pref.save()
    return pref


def _consent_set(members: Iterable[Member], *, consent: bool, source: str, now) -> int:
    changed = 0
    for member in members:
        pref, _ = NotificationPreference.objects.select_for_update().get_or_create(member=member)
        if pref.sms_consent != consent:
            pref.sms_consent = consent
            pref.sms_consent_changed_at = now
            pref.sms_consent_source = source[:100]
            pref.save(
                update_fields=["sms_consent", "sms_consent_changed_at", "sms_consent_source", "updated_at"]
            )
            changed += 1
    return changed


def phone_problem_flag(*, member_id: int, number: str, problem: str, unsubscribed: bool = False) -> None:
    """Record that SMS to `number` failed for good, for the clerk to fix; an unsubscribed number
    (the member texted STOP to the carrier) also withdraws consent."""
    now = timezone.now()
    with transaction.atomic():
        pref, _ = NotificationPreference.objects.select_for_update().get_or_create(member_id=member_id)
        pref.phone_problem = problem[:200]
        pref.phone_problem_number = number
        pref.phone_problem_at = now
        if unsubscribed and pref.sms_consent:
            pref.sms_consent = False
            pref.sms_consent_changed_at = now
            pref.sms_consent_source = "carrier: number unsubscribed (Twilio 21610)"
        pref.save()


# --- Templates -------------------------------------------------------------------------------------


@transaction.atomic
def notice_template_save(
    *, template: NoticeTemplate, actor, subject: str, body: str, html_body: str, allow_multipart: bool
) -> NoticeTemplate:
    """Save a manager's edit of a notice template; raises TemplateInvalid when it does not render
    with the sample values, or when an SMS leaves one GSM-7 segment without allow_multipart."""
    template_check(
        notice=template.notice,
        channel=template.channel,
        subject=subject,
        body=body,
        html_body=html_body,
        allow_multipart=allow_multipart,
    )
    template.subject, template.body, template.html_body = subject, body, html_body
    template.allow_multipart = allow_multipart
    template.updated_by = actor
    template.save()
    return template


# --- Queueing --------------------------------------------------------------------------------------


def message_plan(
    *,
    notice: str,
    key: str,
    prefs: Prefs,
    member_id: int | None,
    account_id: int | None,
    email: str,
    phone: str,
    context: dict,
    templates: TemplateSet,
    now: datetime.datetime,
    notice_day: datetime.date | None = None,
) -> list[Message]:
    """The unsaved Message rows of one notice to one member: one per channel that applies
    (selectors.channels_for), rendered, an SMS held to the end of quiet hours. No queries."""
    planned = []
    for channel in channels_for(notice=notice, prefs=prefs, email=email, phone=phone):
        rendered = templates.render(notice, channel, context)
        send_after = None
        if channel == Channel.SMS:
            send_after = quiet_until(now, start=prefs.quiet_start, end=prefs.quiet_end)
        planned.append(
            Message(
                created_at=now,
                status_changed_at=now,
                notice=notice,
                channel=channel,
                recipient=phone if channel == Channel.SMS else email,
                subject=rendered.subject,
                body=rendered.body,
                html_body=rendered.html_body,
                segments=rendered.segments,
                template_id=rendered.template_id,
                account_id=account_id,
                member_id=member_id,
                notice_day=notice_day,
                dedupe_key=f"{key}:{channel}",
                send_after=send_after,
                enqueued_at=None if send_after else now,
            )
        )
    return planned


def messages_queue(messages: list[Message]) -> list[int]:
    """Insert the planned messages (those whose dedupe key exists already are skipped) and hand
    the ones due now to send tasks once the transaction commits. Returns the new rows' ids."""
    if not messages:
        return []
    due_keys = {m.dedupe_key for m in messages if m.send_after is None}
    inserted = insert_new(messages, unique_field="dedupe_key", returning="dedupe_key")
    _enqueue_on_commit(sorted(pk for pk, key in inserted if key in due_keys))
    return [pk for pk, _ in inserted]


def _enqueue_on_commit(ids: list[int]) -> None:
    if not ids:
        return
    size = max(1, settings.COOP_NOTIFY_BATCH_SIZE)
    batches = [ids[i : i + size] for i in range(0, len(ids), size)]

    def enqueue():
        from notifications import tasks

        tasks.enqueue_send(batches)

    transaction.on_commit(enqueue)


# --- Sending ---------------------------------------------------------------------------------------


def _check_move(current: str, to: str, *, what: str) -> None:
    """Message.TRANSITIONS allows current -> to, or IllegalMessageTransition (the one check for
    `_move` and the two set-based moves)."""
    check_transition(Message.TRANSITIONS, current, to, what=what, choices=S, error=IllegalMessageTransition)


def _move(message: Message, to: str, *, now, **fields) -> bool:
    """Move `message` from its current status to `to` if nobody moved it meanwhile (a conditional
    UPDATE); False when it had moved. Raises IllegalMessageTransition for a move the lifecycle
    does not allow (Message.TRANSITIONS), changing nothing. The one place a message's status
    changes, bar the two set-based updates below that check their one move."""
    _check_move(message.status, to, what=f"Message #{message.pk}")
    moved = Message.objects.filter(pk=message.pk, status=message.status).update(
        status=to, status_changed_at=now, **fields
    )
    if moved:
        message.status = to
    return bool(moved)


def _claim(message_ids: list[int], now) -> list[Message]:
    token = uuid.uuid4().hex
    # Set-based for speed: only queued rows move, and queued -> sending must be in the map.
    _check_move(S.QUEUED, S.SENDING, what="A queued message")
    Message.objects.filter(pk__in=message_ids, status=S.QUEUED).filter(
        Q(send_after__isnull=True) | Q(send_after__lte=now)
    ).update(status=S.SENDING, claim_token=token, claimed_at=now, status_changed_at=now)
    return list(
        Message.objects.filter(pk__in=message_ids, claim_token=token, status=S.SENDING)
        .select_related("member__notification_preference")
        .order_by("pk")
    )


def _why_not_sms(message: Message, prefs: Prefs) -> str:
    member = message.member
    if member is None:
        return ""
    if not prefs.sms_consent:
        return "The member has not agreed to texts (or texted STOP)."
    if e164(member.mobile_phone) != message.recipient:
        return "The member's mobile number changed after the message was queued."
    if prefs.phone_flagged(message.recipient):
        return f"The number is flagged: {prefs.phone_problem}"
    return ""


def messages_send(*, message_ids: list[int], sms=None, email=None) -> dict[str, int]:
    """Send the given messages that are queued and due; anything else is left alone, so running it
    twice sends nothing twice. Returns counts by outcome. `sms`/`email`: transports (tests)."""
    now = timezone.now()
    claimed = _claim(list(message_ids), now)
    counts = {"sent": 0, "held": 0, "retry": 0, "failed": 0, "cancelled": 0}
    if not claimed:
        return counts
    email_transport = None
    try:
        for message in claimed:
            prefs = Prefs.of(
                getattr(message.member, "notification_preference", None) if message.member else None
            )
            if message.channel == Channel.SMS:
                reason = _why_not_sms(message, prefs)
                if reason:
                    _move(message, S.CANCELLED, now=now, error_code="not-sent", error_message=reason[:300])
                    counts["cancelled"] += 1
                    continue
                until = quiet_until(timezone.now(), start=prefs.quiet_start, end=prefs.quiet_end)
                if until is not None:
                    _move(message, S.QUEUED, now=now, send_after=until, enqueued_at=None)
                    counts["held"] += 1
                    continue
                if sms is None:
                    sms = transports.sms_transport()
                transport = sms
            else:
                if email_transport is None:
                    email_transport = email or transports.Email()
                transport = email_transport
            counts[_send_one(message, transport)] += 1
    finally:
        if email_transport is not None and email is None:
            email_transport.close()
    return counts


def _send_one(message: Message, transport) -> str:
    outgoing = transports.Outgoing(
        id=message.pk,
        channel=message.channel,
        recipient=message.recipient,
        subject=message.subject,
        body=message.body,
        html_body=message.html_body,
    )
    attempts = message.attempts + 1
    try:
        provider_id = transport.send(outgoing)
    except PermanentDeliveryError as exc:
        now = timezone.now()
        _move(
            message,
            S.FAILED,
            now=now,
            attempts=attempts,
            transport=transport.transport,
            error_code=exc.code[:20],
            error_message=str(exc)[:300],
        )
        if exc.phone_problem and message.member_id and message.channel == Channel.SMS:
            phone_problem_flag(
                member_id=message.member_id,
                number=message.recipient,
                problem=str(exc),
                unsubscribed=exc.code == str(transports.UNSUBSCRIBED),
            )
        return "failed"
    except Exception as exc:  # a transient error, or a bug in a transport: retried, then failed
        if not isinstance(exc, TransientDeliveryError):
            logger.exception("sending message %s failed unexpectedly", message.pk)
        code = getattr(exc, "code", "") or "error"
        now = timezone.now()
        if attempts >= settings.COOP_NOTIFY_MAX_ATTEMPTS:
            _move(
                message,
                S.FAILED,
                now=now,
                attempts=attempts,
                transport=transport.transport,
                error_code=code[:20],
                error_message=f"Gave up after {attempts} attempts: {exc}"[:300],
            )
            return "failed"
        delay = BACKOFF_MINUTES[min(attempts, len(BACKOFF_MINUTES)) - 1]
        _move(
            message,
            S.QUEUED,
            now=now,
            attempts=attempts,
            transport=transport.transport,
            send_after=now + datetime.timedelta(minutes=delay),
            enqueued_at=None,
            error_code=code[:20],
            error_message=str(exc)[:300],
        )
        return "retry"
    now = timezone.now()
    fields = {
        "attempts": attempts,
        "transport": transport.transport,
        "provider_id": provider_id,
        "sent_at": now,
    }
    if not _move(message, S.SENT, now=now, error_code="", error_message="", **fields):
        # Twilio's callback got here first (it found the row by the id in its URL).
        Message.objects.filter(pk=message.pk).update(**fields)
    return "sent"


@transaction.atomic
def messages_retry_due(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """The periodic sweep (every minute): hand queued messages whose time has come (quiet hours
    over, retry due, or a task that was lost) to send tasks, and fail messages stuck in `sending`
    by a dead worker. Returns counts."""
    now = now or timezone.now()
    # Set-based: only rows still sending move, and sending -> failed must be in the map.
    _check_move(S.SENDING, S.FAILED, what="A sending message")
    stuck = Message.objects.filter(status=S.SENDING, claimed_at__lt=now - STALE_SENDING).update(
        status=S.FAILED,
        status_changed_at=now,
        error_code="unknown",
        error_message="The worker stopped while sending: it may or may not have gone. Check with the "
        "member before resending.",
    )
    due = list(
        Message.objects.filter(status=S.QUEUED)
        .filter(Q(send_after__isnull=True) | Q(send_after__lte=now))
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=now - REENQUEUE_AFTER))
        .order_by(F("send_after").asc(nulls_first=True), "pk")
        .values_list("pk", flat=True)[:SWEEP_LIMIT]
    )
    for start in range(0, len(due), 5000):
        Message.objects.filter(pk__in=due[start : start + 5000]).update(enqueued_at=now)
    _enqueue_on_commit(due)
    return {"enqueued": len(due), "stuck_failed": stuck}


@transaction.atomic
def message_resend(*, message: Message, actor) -> Message:
    """Send a failed, undelivered or unsent message again, as a new row (the failed one stays in
    the log), to the member's current number or address. Once per failed row."""
    if message.status not in Message.RESENDABLE:
        raise NotResendable(
            f"Message #{message.pk} is {message.get_status_display().lower()}: only failed, undelivered "
            "or unsent messages can be sent again."
        )
    recipient = message.recipient
    member = message.member
    if member is not None:
        prefs = Prefs.of(NotificationPreference.objects.filter(member=member).first())
        if message.channel == Channel.SMS:
            recipient = e164(member.mobile_phone)
            if not prefs.sms_possible(recipient):
                raise NotResendable(
                    f"{member} cannot get texts now (no mobile number, no SMS consent, or the number is "
                    "flagged): correct the member's number or preferences first."
                )
        else:
            recipient = member.email
            if not recipient:
                raise NotResendable(f"{member} has no email address: add one first.")
    now = timezone.now()
    copy = Message(
        created_at=now,
        status_changed_at=now,
        notice=message.notice,
        channel=message.channel,
        recipient=recipient,
        subject=message.subject,
        body=message.body,
        html_body=message.html_body,
        segments=message.segments,
        template_id=message.template_id,
        account_id=message.account_id,
        member_id=message.member_id,
        notice_day=message.notice_day,
        dedupe_key=f"resend:{message.pk}",
        resend_of=message,
        actor=actor,
        enqueued_at=now,
    )
    ids = messages_queue([copy])
    if not ids:
        already = Message.objects.filter(dedupe_key=copy.dedupe_key).first()
        raise NotResendable(f"Message #{message.pk} was already resent as #{already.pk if already else '?'}.")
    return Message.objects.get(pk=ids[0])
