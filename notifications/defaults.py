"""The texts a fresh database starts with (migration 0002 writes them as `NoticeTemplate` rows,
which billing managers then edit), and the fallback when a row is missing.

Django template language. Every template sees `coop` (the short name texts are signed with,
COOP_SMS_NAME), `coop_name`, `help_phone` (COOP_HELP_PHONE, or "the co-op office"), `office_phone`
(COOP_HELP_PHONE or empty), `pay_url`, `first_name`, `last_name`, `account`,
`balance` and `days` (None when unknown), plus the notice's own values (notifications/notices.py,
SAMPLES). SMS texts are written to fit one GSM-7 segment (160 characters) with typical values.
"""

from notifications.notices import Channel, Notice

N, E, S = Notice, Channel.EMAIL, Channel.SMS

_DAYS = "{% if days is not None %}, about {{ days }} day{{ days|pluralize }} left{% endif %}"
_SIGN = "<p>{{ coop_name }}{% if office_phone %} · {{ office_phone }}{% endif %}</p>"

SMS = {
    N.LOW_BALANCE: "{{ coop }}: acct {{ account }} balance {{ balance }}" + _DAYS + ". Pay soon to keep "
    "your power on. Reply BAL for balance, STOP to opt out",
    N.LOW_BALANCE_REMINDER: "{{ coop }}: reminder, acct {{ account }} balance is still low: {{ balance }}"
    + _DAYS
    + ". Reply BAL for balance, STOP to opt out",
    N.PENDING_DISCONNECT: "{{ coop }}: acct {{ account }} balance {{ balance }}. Power will be shut off "
    "{{ window_date }} {{ window_start }}-{{ window_end }} unless paid. Call {{ help_phone }}",
    N.DISCONNECTED: "{{ coop }}: power at acct {{ account }} was shut off, balance {{ balance }}. "
    "Pay {{ restore_amount }} to restore it. Call {{ help_phone }}",
    N.RESTORED: "{{ coop }}: power at acct {{ account }} is back on. Balance {{ balance }}. Thank you! "
    "Reply STOP to opt out",
    N.PAYMENT_RECEIPT: "{{ coop }}: {{ amount }} received for acct {{ account }}, receipt {{ receipt }}. "
    "Balance {{ balance }}. Thank you!",
    N.RETURNED_PAYMENT: "{{ coop }}: your {{ amount }} {{ tender }} payment on acct {{ account }} was "
    "returned ({{ reason }}). Balance {{ balance }}. Call {{ help_phone }}",
    N.DEPOSIT_CHANGE: "{{ coop }}: deposit {{ change }} on acct {{ account }}: {{ amount }}. Deposit held "
    "now {{ deposit_held }}.",
    N.PLAN_CHANGE: "{{ coop }}: payment plan on acct {{ account }} {{ change }}."
    "{% if remaining %} Remaining {{ remaining }}.{% endif %} Call {{ help_phone }}",
    N.REPLY_STOP: "{{ coop }}: you are unsubscribed and will get no more texts. Reply START to "
    "resubscribe. Questions? Call {{ help_phone }}",
    N.REPLY_START: "{{ coop }}: you are subscribed to account texts again. Msg&data rates may apply. "
    "Reply HELP for help, STOP to opt out.",
    N.REPLY_HELP: "{{ coop }} account alerts. Help: call {{ help_phone }}. Msg&data rates may apply. "
    "Reply BAL for balance, STOP to opt out.",
    N.REPLY_BALANCE: "{{ coop }}: {% for a in accounts %}acct {{ a.number }} {{ a.balance }}"
    "{% if a.days is not None %}, about {{ a.days }} day{{ a.days|pluralize }}{% endif %}"
    "{% if not forloop.last %}; {% endif %}{% empty %}no account found for this number. "
    "Call {{ help_phone }}{% endfor %}",
    N.REPLY_OTHER: "{{ coop }}: this number does not read replies. Call {{ help_phone }}. Reply BAL for "
    "balance, HELP for help, STOP to opt out.",
}

SUBJECTS = {
    N.LOW_BALANCE: "Your balance is low: {{ balance }} on account {{ account }}",
    N.LOW_BALANCE_REMINDER: "Reminder: your balance is still low on account {{ account }}",
    N.PENDING_DISCONNECT: "Your power will be shut off {{ window_date }} unless you pay",
    N.DISCONNECTED: "Your power was shut off: account {{ account }}",
    N.RESTORED: "Your power is back on: account {{ account }}",
    N.PAYMENT_RECEIPT: "Payment received: {{ amount }}, receipt {{ receipt }}",
    N.RETURNED_PAYMENT: "Your payment of {{ amount }} was returned",
    N.DEPOSIT_CHANGE: "Your deposit on account {{ account }}: {{ change }}",
    N.PLAN_CHANGE: "Your payment plan on account {{ account }} {{ change }}",
}

TEXTS = {
    N.LOW_BALANCE: "Dear {{ first_name }},\n\nThe prepaid balance of account {{ account }} is {{ balance }}"
    + _DAYS
    + ", below your warning level of {{ threshold }}.\n\nPay soon to keep your power on"
    "{% if pay_url %}: {{ pay_url }}{% endif %}.",
    N.LOW_BALANCE_REMINDER: "Dear {{ first_name }},\n\nThe prepaid balance of account {{ account }} has "
    "been below {{ threshold }} since {{ since }}. It is now {{ balance }}" + _DAYS + ".\n\nPay soon to keep "
    "your power on{% if pay_url %}: {{ pay_url }}{% endif %}.",
    N.PENDING_DISCONNECT: "Dear {{ first_name }},\n\nThe prepaid balance of account {{ account }} is "
    "{{ balance }}. Unless you pay, your power will be shut off on {{ window_date }} between "
    "{{ window_start }} and {{ window_end }}.\n\nPay now{% if pay_url %} at {{ pay_url }}{% endif %}, or "
    "call us at {{ help_phone }} if you need help.",
    N.DISCONNECTED: "Dear {{ first_name }},\n\nThe power at account {{ account }} was shut off because its "
    "prepaid balance ran out (balance {{ balance }}).\n\nPay {{ restore_amount }} to have it restored"
    "{% if pay_url %}: {{ pay_url }}{% endif %}. Questions: call {{ help_phone }}.",
    N.RESTORED: "Dear {{ first_name }},\n\nThe power at account {{ account }} is back on. Your balance is "
    "{{ balance }}" + _DAYS + ".\n\nThank you.",
    N.PAYMENT_RECEIPT: "Dear {{ first_name }},\n\nWe received your {{ tender }} payment of {{ amount }} "
    "for account {{ account }}. Receipt number: {{ receipt }}.\n\nYour balance is now {{ balance }}.\n\n"
    "Thank you.",
    N.RETURNED_PAYMENT: "Dear {{ first_name }},\n\nYour {{ tender }} payment of {{ amount }} (receipt "
    "{{ receipt }}) for account {{ account }} was returned by your bank: {{ reason }}."
    "{% if fee %} A returned-payment fee of {{ fee }} applies.{% endif %}\n\nYour balance is now "
    "{{ balance }}. Please pay another way, or call us at {{ help_phone }}.",
    N.DEPOSIT_CHANGE: "Dear {{ first_name }},\n\nA security deposit of {{ amount }} was {{ change }} on "
    "account {{ account }}. The deposit we now hold is {{ deposit_held }}.\n\n"
    "Questions: call {{ help_phone }}.",
    N.PLAN_CHANGE: "Dear {{ first_name }},\n\nThe debt-management plan on account {{ account }} "
    "{{ change }}.{% if share %} {{ share }} of each payment goes to the old balance.{% endif %}"
    "{% if remaining %} Remaining: {{ remaining }}.{% endif %}\n\nQuestions: call {{ help_phone }}.",
}


def _html(text: str) -> str:
    """The plain text as HTML paragraphs (the default HTML part says the same as the text part)."""
    paragraphs = text.split("\n\n")
    return "".join(f"<p>{p}</p>" for p in paragraphs) + _SIGN


def defaults() -> dict[tuple[str, str], dict[str, str]]:
    """{(notice, channel): {"subject", "body", "html_body"}} for every notice and channel."""
    result = {(n, S): {"subject": "", "body": body, "html_body": ""} for n, body in SMS.items()}
    for n, text in TEXTS.items():
        result[(n, E)] = {
            "subject": SUBJECTS[n],
            "body": text + "\n\n{{ coop_name }}{% if office_phone %}, {{ office_phone }}{% endif %}",
            "html_body": _html(text),
        }
    return result
