"""Checks on the values staff and files type into the cooperative's records.

No card numbers, anywhere
-------------------------
The cooperative never stores, shows or logs a payment card number (PAN): it is not a card
processor, and a PAN in a payment reference would be copied into the immutable ledger memo, the
receipt, the search index and the logs. A card number is 13 to 19 digits passing the Luhn check,
written with or without spaces or dashes between the digit groups (of any kind: a no-break space
pasted from a web page, an en dash, two spaces), anywhere inside a text
(`4111 1111 1111 1111 exp 12/29 cvv 123` contains one).

- `contains_card_number(text)` says whether a text holds one;
- `refuse_card_number(value, field=...)` raises `CardNumberRefused` (a CoopError naming the field)
  for the services, which are the one entry of every path (admin forms, imports, demo data);
- `no_card_number` is the same check as a Django validator, for form fields, so a clerk sees the
  error on the field;
- `mask_card_numbers(text)` and `CardNumberLogFilter` keep card numbers out of the logs.

Messages never repeat the number they refuse.

How digits are read: a *run* is digit groups separated by one separator each (spaces, or a dash
with or without spaces around it; never a line break). Every span of
whole groups with 13 to 19 digits is a candidate ("4111 1111 1111 1111 1229 123" holds the card
followed by its expiry and code): one unbroken group of 13 to 19 digits, or groups laid out as a
card is printed (4-4-4-4, 4-4-4-4-3, Amex 4-6-5, Diners 4-6-4). A candidate passing Luhn is a card
number. About one in ten random digit strings passes Luhn, so the layout rule is what keeps
references such as "CH-261120-0000125" (a date and a sequence number) from being refused, and
windows inside one unbroken string of more than 19 digits are not searched for the same reason.

Values out of range
-------------------
`refuse_bad_text` refuses a NUL character (PostgreSQL text cannot hold one) and text longer than
its column, with the field's name, before anything is written.
"""

import logging
import re

from django.core.exceptions import ValidationError

from coop.exceptions import CoopError

CARD_MIN_DIGITS, CARD_MAX_DIGITS = 13, 19
CARD_NUMBER_MESSAGE = (
    "looks like a payment card number. Card numbers are never recorded: enter the last four digits "
    "only, or the processor's reference."
)
# Digits with at most one separator between two of them: up to three spaces of any kind on one
# line (a no-break or thin space pasted from a web page or a PDF), or a dash of any kind with
# such spaces around it ("4111 - 1111"). A line break separates numbers; nothing else joins them.
_SPACES = r"[^\S\r\n]{1,3}"
_RUN = re.compile(rf"\d(?:(?:{_SPACES}|(?:{_SPACES})?[-\u2010-\u2015\u2212](?:{_SPACES})?)?\d)*")
_NOT_DIGITS = re.compile(r"\D")


class ValueRefused(CoopError):
    """A value that may not be recorded; `field` names it (a form field, or a file's column)."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class CardNumberRefused(ValueRefused):
    """A text that contains a payment card number."""


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check of a string of digits."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)  # any script's decimal digit (full-width ones too)
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _is_card(digits: str) -> bool:
    return CARD_MIN_DIGITS <= len(digits) <= CARD_MAX_DIGITS and luhn_ok(digits)


def _card_layout(lengths: list[int]) -> bool:
    """Whether digit groups split by spaces or dashes are laid out as cards are printed: fours
    with a shorter last group (4-4-4-4, 4-4-4-4-3), or American Express and Diners (4-6-5, 4-6-4)."""
    if len(lengths) == 1:
        return True
    return lengths in ([4, 6, 5], [4, 6, 4]) or (all(n == 4 for n in lengths[:-1]) and 1 <= lengths[-1] <= 4)


def _card_spans(text: str):
    """(start, end) of each card number in `text`, as character positions (separators included)."""
    for run in _RUN.finditer(text):
        if run.end() - run.start() < CARD_MIN_DIGITS:
            continue
        groups = [(m.start() + run.start(), m.end() + run.start()) for m in re.finditer(r"\d+", run[0])]
        for first in range(len(groups)):
            length = 0
            for last in range(first, len(groups)):
                length += groups[last][1] - groups[last][0]
                if length > CARD_MAX_DIGITS:
                    break
                if length < CARD_MIN_DIGITS:
                    continue
                span = groups[first : last + 1]
                start, end = span[0][0], span[-1][1]
                if _card_layout([b - a for a, b in span]) and luhn_ok(_NOT_DIGITS.sub("", text[start:end])):
                    yield start, end


def contains_card_number(text) -> bool:
    """Whether `text` contains a payment card number (see the module's docstring)."""
    if not text or not isinstance(text, str):
        return False
    return next(_card_spans(text), None) is not None


def mask_card_numbers(text: str) -> str:
    """`text` with every digit of each card number in it replaced by `*` except the last four."""
    spans = list(_card_spans(text))
    if not spans:
        return text
    chars = list(text)
    for start, end in spans:
        digits = [i for i in range(start, end) if chars[i].isdigit()]
        for i in digits[:-4]:
            chars[i] = "*"
    return "".join(chars)


def refuse_card_number(value, *, field: str, label: str | None = None) -> None:
    """Raise `CardNumberRefused` (naming the field, never the number) if `value` holds a card
    number. For the services: every path that records a value goes through one of them."""
    if contains_card_number(value):
        raise CardNumberRefused(f"{(label or field).capitalize()} {CARD_NUMBER_MESSAGE}", field=field)


def check_texts(**values) -> None:
    """For the services: refuse a NUL character or a card number in any of the free texts given
    as keyword arguments (the keyword is the field's name, used in the message)."""
    for field, value in values.items():
        refuse_bad_text(value, field=field)
        refuse_card_number(value, field=field, label=field.replace("_", " "))


def no_card_number(value) -> None:
    """A Django validator: the field's value may not contain a card number."""
    if contains_card_number(value):
        raise ValidationError(f"This {CARD_NUMBER_MESSAGE}", code="card_number")


def refuse_bad_text(value, *, field: str, max_length: int | None = None) -> None:
    """Refuse a NUL character, or text longer than its column, naming the field."""
    if not isinstance(value, str):
        return
    if "\x00" in value:
        raise ValueRefused(f"The {field.replace('_', ' ')} contains a NUL character; remove it.", field=field)
    if max_length is not None and len(value) > max_length:
        raise ValueRefused(
            f"The {field.replace('_', ' ')} is longer than {max_length} characters ({len(value)}).",
            field=field,
        )


# --- Logs ---------------------------------------------------------------------------------------


class CardNumberLogFilter(logging.Filter):
    """Mask card numbers in every record a handler emits: the message with its arguments, and the
    traceback text (the exception's message may quote a value). Installed on every handler in
    settings.LOGGING; it never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is the handler's to report, as it would without us
            return True
        masked = mask_card_numbers(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_card_numbers(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_card_numbers(record.stack_info)
        return True
