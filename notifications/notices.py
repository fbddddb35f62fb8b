"""What the cooperative tells members, and by which channels.

Every notice is rendered from a `NoticeTemplate` a billing manager edits (one per notice and
channel); `notifications/defaults.py` holds the texts a fresh database starts with and falls back
to when a row is missing.

Required notices (disconnect warnings, the disconnection itself, a returned payment) cannot be
turned off by the member; the others can. A text (SMS) still needs the member's consent: a member
who texted STOP gets no SMS of any kind, and a required notice then goes by email.
"""

from django.db import models


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"


class Notice(models.TextChoices):
    LOW_BALANCE = "low_balance", "Low balance"
    LOW_BALANCE_REMINDER = "low_balance_reminder", "Low balance reminder"
    PENDING_DISCONNECT = "pending_disconnect", "Pending disconnect"
    DISCONNECTED = "disconnected", "Disconnected"
    RESTORED = "restored", "Service restored"
    PAYMENT_RECEIPT = "payment_receipt", "Payment receipt"
    RETURNED_PAYMENT = "returned_payment", "Returned payment"
    DEPOSIT_CHANGE = "deposit_change", "Deposit change"
    PLAN_CHANGE = "plan_change", "Payment plan change"
    # Answers to a member's text (SMS only, sent as the webhook's reply).
    REPLY_STOP = "reply_stop", "Reply to STOP"
    REPLY_START = "reply_start", "Reply to START"
    REPLY_HELP = "reply_help", "Reply to HELP"
    REPLY_BALANCE = "reply_balance", "Reply to BAL"
    REPLY_OTHER = "reply_other", "Reply to any other text"


# Cannot be turned off: the member must hear about these before and when the power goes off.
REQUIRED_NOTICES = frozenset({Notice.PENDING_DISCONNECT, Notice.DISCONNECTED, Notice.RETURNED_PAYMENT})
REPLY_NOTICES = frozenset(
    {Notice.REPLY_STOP, Notice.REPLY_START, Notice.REPLY_HELP, Notice.REPLY_BALANCE, Notice.REPLY_OTHER}
)
# What a member may turn off. Turning off low balance turns off its reminder too.
OPTIONAL_NOTICES = (
    Notice.LOW_BALANCE,
    Notice.RESTORED,
    Notice.PAYMENT_RECEIPT,
    Notice.DEPOSIT_CHANGE,
    Notice.PLAN_CHANGE,
)
MUTED_WITH = {Notice.LOW_BALANCE_REMINDER: Notice.LOW_BALANCE}


def channels_of(notice: str) -> tuple[str, ...]:
    """The channels a notice has templates for."""
    if notice in REPLY_NOTICES:
        return (Channel.SMS,)
    return (Channel.EMAIL, Channel.SMS)


def is_muted(notice: str, muted: list | tuple | set | None) -> bool:
    if notice in REQUIRED_NOTICES or notice in REPLY_NOTICES or not muted:
        return False
    return notice in muted or MUTED_WITH.get(notice) in muted


# Values a template sees, by notice: the sample is what the template editor previews and checks
# the one-segment rule against. Amounts arrive formatted ("$12.34"), days as a number or None.
COMMON_SAMPLE = {
    "first_name": "Karen",
    "last_name": "Halvorson",
    "account": "100234",
    "balance": "$12.34",
    "days": 3,
}
SAMPLES = {
    Notice.LOW_BALANCE: {"threshold": "$20.00"},
    Notice.LOW_BALANCE_REMINDER: {"threshold": "$20.00", "since": "Mar 3"},
    Notice.PENDING_DISCONNECT: {"window_date": "Tue Mar 10", "window_start": "10am", "window_end": "2pm"},
    Notice.DISCONNECTED: {"restore_amount": "$45.10"},
    Notice.RESTORED: {},
    Notice.PAYMENT_RECEIPT: {"amount": "$50.00", "receipt": "R000012345", "tender": "card"},
    Notice.RETURNED_PAYMENT: {
        "amount": "$50.00",
        "receipt": "R000012345",
        "tender": "check",
        "reason": "insufficient funds",
        "fee": "$25.00",
    },
    Notice.DEPOSIT_CHANGE: {"change": "collected", "amount": "$150.00", "deposit_held": "$150.00"},
    Notice.PLAN_CHANGE: {"change": "started", "share": "35%", "remaining": "$412.50"},
    Notice.REPLY_STOP: {},
    Notice.REPLY_START: {},
    Notice.REPLY_HELP: {},
    Notice.REPLY_BALANCE: {
        "accounts": [{"number": "100234", "balance": "$12.34", "days": 3}],
    },
    Notice.REPLY_OTHER: {},
}
