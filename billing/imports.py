"""Payment files from a card/ACH processor or a bank lockbox: read them, check every row, and post
the good rows through `billing.services.payment_post`, all in one database transaction.

How a file is checked (nothing is committed until every row has been checked):

1. The file is read once, streaming, for what the file itself says: the columns, each value's
   shape (an amount in dollars and cents, a known tender, a reference, a date that is not in the
   future), account numbers that exist (looked up one chunk at a time, not one row at a time), and
   the same tender + reference appearing twice with a different account or amount.
2. Inside one database transaction the file is read again and each row that passed is posted with
   `payment_post` in its own savepoint. The cooperative's rules (closed account, the prepaid
   minimum payment, the returned-check restriction, a reference already posted elsewhere) are
   therefore the very checks a clerk's payment goes through, not a copy of them: a row that
   breaks one has its savepoint rolled back and is reported. At the end the transaction commits
   only if no row was bad (or `skip_bad` was given) and this is not a dry run; otherwise it is
   rolled back and nothing was posted.

Posting each row in step 2 also means a row is checked against the rows above it exactly as it
will be posted (a debt plan's split, for example, sees the earlier payments of the same file).
"""

import csv
import datetime
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts.models import Account
from billing.exceptions import BillingError, DuplicatePayment, PaymentRefused
from billing.models import Payment
from billing.services import payment_post
from coop.exceptions import CoopError, PolicyNotConfigured
from coop.imports import (
    NOTHING_POSTED,
    RowProblem,
    column_name,
    header_check,
    header_empty,
    open_file,
    unreadable,
)
from coop.validators import CARD_NUMBER_MESSAGE, contains_card_number

COLUMNS = ("account_number", "amount", "tender", "reference", "received_at")
TENDERS = tuple(Payment.Tender.values)
REFERENCE_MAX_LENGTH = Payment._meta.get_field("reference").max_length
# The largest amount a MoneyField holds (12 digits, 2 of them cents).
MAX_AMOUNT = Decimal("9999999999.99")
# Rows looked up together: one query for the account numbers of each chunk.
CHUNK_SIZE = 500
ZERO = Decimal("0.00")
NOON = datetime.time(12, 0)
# Dates before this are typing errors (and the first years of the calendar cannot be moved to
# another time zone at all).
EARLIEST_YEAR = 1900

_AMOUNT = re.compile(r"([+-]?)\$?(\d*)(?:\.(\d*))?")


class PaymentFileError(BillingError):
    """The file as a whole cannot be imported (unreadable, wrong columns). Nothing was posted."""


def import_operator(username: str):
    """The staff user an import is done by, checked before anything is read: every payment posted
    records who imported it (Payment.actor and its transaction's actor)."""
    user = get_user_model().objects.filter(username=(username or "").strip()).first()
    if user is None:
        raise PaymentFileError(
            f"There is no user '{username}'; give the username of the operator. Nothing was posted."
        )
    return _checked_operator(user)


def _checked_operator(user):
    if user is None:
        raise PaymentFileError(
            "An import needs the operator who runs it (--operator USERNAME). Nothing was posted."
        )
    if not user.is_active:
        raise PaymentFileError(
            f"User '{user.get_username()}' is inactive; they cannot import payments. Nothing was posted."
        )
    if not user.has_perm("billing.add_payment"):
        raise PaymentFileError(
            f"User '{user.get_username()}' may not post payments (billing.add_payment); "
            "they cannot import them. Nothing was posted."
        )
    return user


@dataclass(frozen=True)
class RowDuplicate:
    """A row already posted (by an earlier import, a clerk, or a line above it in this file)."""

    line: int
    of: str
    note: str

    def __str__(self):
        return f"line {self.line}: duplicate of {self.of} ({self.note})"


@dataclass(frozen=True)
class PostedRow:
    line: int
    receipt_number: str
    amount: Decimal
    account_number: str


@dataclass
class ImportResult:
    posted: int = 0  # rows posted (in a dry run or a refused import: rows that would have been)
    total: Decimal = ZERO
    problems: list[RowProblem] = field(default_factory=list)
    duplicates: list[RowDuplicate] = field(default_factory=list)
    receipts: list[PostedRow] = field(default_factory=list)  # only when asked for
    accepted: bool = False  # no bad row, or skip_bad: the good rows are (or in a dry run would be) posted
    applied: bool = False  # the posted rows were committed
    dry_run: bool = False

    @property
    def bad(self) -> int:
        """The number of bad rows (a row may have more than one problem)."""
        return len({p.line for p in self.problems})

    def reports(self) -> list[RowProblem | RowDuplicate]:
        """Every problem and duplicate, in the order of the file."""
        order = ("row", *COLUMNS)

        def key(report):
            if isinstance(report, RowDuplicate):
                return report.line, len(order)
            return report.line, order.index(report.field) if report.field in order else 0

        return sorted([*self.problems, *self.duplicates], key=key)


@dataclass(frozen=True)
class _Row:
    line: int
    account_number: str
    amount: Decimal
    tender: str
    reference: str
    received_at: datetime.datetime


# --- Reading ------------------------------------------------------------------------------------


def _columns(header: list[str], *, name: str, default_tender: str | None) -> dict[str, int]:
    """Map each expected column to its position, or refuse the file naming every wrong column."""
    checked = header_check(header, known=COLUMNS)
    required = [c for c in COLUMNS if c != "tender" or not default_tender]
    missing = [c for c in required if not checked.has(c)]
    parts = []
    if missing:
        hint = " (or give --tender)" if "tender" in missing else ""
        parts.append(f"missing required column(s): {', '.join(missing)}{hint}")
    parts += checked.problems()
    if parts:
        raise PaymentFileError(
            f"{name}: {'; '.join(parts)}. The header row must name the columns "
            f"{', '.join(COLUMNS)} (tender may be left out when --tender is given). Nothing was posted."
        )
    return checked.positions(COLUMNS)


def _decoded(handle, name: str) -> Iterator[str]:
    """The file's lines as text, decoded one at a time so a bad byte is reported on its own line."""
    for number, raw in enumerate(handle, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise PaymentFileError(
                f"{name}: line {number} is not UTF-8 text ({exc.reason}). Save the file as CSV UTF-8 "
                "and import it again. Nothing was posted."
            ) from exc


def _records(path: Path, *, default_tender: str | None) -> Iterator[tuple[int, dict[str, str], int]]:
    """Yield (physical line number, values by column, number of extra values) for each non-blank row.

    Streams the file: one row in memory at a time. A UTF-8 byte order mark is accepted.
    """
    name = path.name
    with open_file(path, error=PaymentFileError, nothing=NOTHING_POSTED) as handle:
        reader = csv.reader(_decoded(handle, name))
        start = 1  # the physical line a record starts on (a quoted value may span lines)
        try:
            header = next(reader, None)
            if header_empty(header):
                raise PaymentFileError(
                    f"{name}: the file is empty; it needs a header row. Nothing was posted."
                )
            columns = _columns(header, name=name, default_tender=default_tender)
            start = reader.line_num + 1
            for values in reader:
                line, start = start, reader.line_num + 1
                if not any(v.strip() for v in values):
                    continue  # a blank line, or a spreadsheet's row of empty cells
                row = {c: values[i].strip() if i < len(values) else "" for c, i in columns.items()}
                yield line, row, len(values) - len(header)
        except csv.Error as exc:
            raise PaymentFileError(
                f"{name}: line {start}: not valid CSV ({exc}). Nothing was posted."
            ) from exc


# --- Checking one row's values --------------------------------------------------------------------


def _parse_amount(text: str) -> tuple[Decimal | None, str | None]:
    if not text:
        return None, "missing"
    match = _AMOUNT.fullmatch(text)
    if not match or not (match[2] or match[3]):
        return None, f"not a number ('{text}'); write dollars and cents like 52.75"
    sign, whole, fraction = match[1], match[2] or "0", match[3] or "0"
    amount = Decimal(f"{sign}{whole}.{fraction}")
    # Trailing zeros (52.750) are exact; anything finer than a cent would have to be rounded.
    if amount != amount.quantize(Decimal("0.01")):
        return None, f"more than 2 decimal places ({text}); amounts are dollars and cents"
    if amount <= 0:
        return None, f"must be more than $0.00 (got {text})"
    if amount > MAX_AMOUNT:
        return None, f"too large ({text})"
    return amount.quantize(Decimal("0.01")), None


def _parse_tender(text: str, default_tender: str | None) -> tuple[str | None, str | None]:
    if not text:
        if default_tender:
            return default_tender, None
        return None, "missing (or give --tender)"
    tender = column_name(text)
    if tender not in TENDERS:
        return None, f"unknown tender '{text}'; use one of {', '.join(TENDERS)}"
    return tender, None


def _parse_reference(text: str) -> tuple[str | None, str | None]:
    if not text:
        return None, "missing; every payment needs its processor, lockbox or check reference"
    if _unreadable(text):  # never a key below: the conflict message would quote it
        return None, _unreadable(text)
    if len(text) > REFERENCE_MAX_LENGTH:
        return None, f"longer than {REFERENCE_MAX_LENGTH} characters"
    return text, None


def _parse_received_at(text: str, now: datetime.datetime) -> tuple[datetime.datetime | None, str | None]:
    """ISO 8601 date-time (with an offset, or read in the cooperative's zone), or a date (noon
    local). Nothing after `now`."""
    if not text:
        return None, "missing"
    zone = timezone.get_default_timezone()
    today = timezone.localdate(now)
    try:
        if len(text) <= 10:
            day = datetime.date.fromisoformat(text)
            if day.year < EARLIEST_YEAR:
                return None, f"{text} is out of range (before {EARLIEST_YEAR})"
            if day > today:
                return None, f"{text} is in the future"
            # A date alone means noon local; a payment dated today is not stamped later than now.
            return min(datetime.datetime.combine(day, NOON, tzinfo=zone), now), None
        value = datetime.datetime.fromisoformat(text)
        if value.year < EARLIEST_YEAR:
            return None, f"{text} is out of range (before {EARLIEST_YEAR})"
    except ValueError:
        return None, (
            f"not a date ('{text}'); use 2026-11-20, or 2026-11-20T14:05:00-06:00 with the time and offset"
        )
    if value.tzinfo is None:
        # A wall-clock time in the hour the clocks go back happens twice, and one in the hour they go
        # forward never happens; only an offset says which moment was meant.
        early, late = value.replace(tzinfo=zone, fold=0), value.replace(tzinfo=zone, fold=1)
        if early.utcoffset() != late.utcoffset():
            return None, f"{text} falls in a daylight-saving change in {zone}; give the UTC offset"
        value = early
    if value > now:
        return None, f"{text} is in the future"
    return value, None


def _unreadable(text: str) -> str | None:
    """Why a value may not be read at all, before anything else is said about it (the other
    messages quote the value: a card number must not be quoted, a NUL cannot be stored)."""
    if "\x00" in text:
        return "contains a NUL character (byte 0); export the file again as plain CSV"
    if contains_card_number(text):
        return CARD_NUMBER_MESSAGE
    return None


def _parse(
    line: int, values: dict[str, str], extra: int, *, default_tender: str | None, now: datetime.datetime
) -> tuple[_Row | None, list[RowProblem]]:
    problems = []
    if extra > 0:
        problems.append(RowProblem(line, "row", f"{extra} more value(s) than the header has columns"))
    unreadable = {name: why for name, text in values.items() if (why := _unreadable(text))}
    problems.extend(RowProblem(line, name, reason) for name, reason in unreadable.items())
    account_number = values["account_number"]
    if not account_number:
        problems.append(RowProblem(line, "account_number", "missing"))
    parsed = {}
    for name, (value, reason) in (
        ("amount", _parse_amount(values["amount"])),
        ("tender", _parse_tender(values.get("tender", ""), default_tender)),
        ("reference", _parse_reference(values["reference"])),
        ("received_at", _parse_received_at(values["received_at"], now)),
    ):
        if name in unreadable:
            continue
        if reason:
            problems.append(RowProblem(line, name, reason))
        parsed[name] = value
    if problems:
        return None, problems
    return _Row(line=line, account_number=account_number, **parsed), []


def _field_of(exc: CoopError) -> str:
    """Which column a refusal from `payment_post` is about.

    `payment_post` raises one PaymentRefused for several rules; until it says which value it
    refused (a `field` attribute), the rule is recognised from its message, and anything not
    recognised is reported against the row as a whole.
    """
    if getattr(exc, "field", None):
        return exc.field
    if isinstance(exc, DuplicatePayment):
        return "reference"
    if isinstance(exc, PolicyNotConfigured):
        return "received_at"
    if isinstance(exc, PaymentRefused):
        message = str(exc)
        for needle, name in (
            (" is closed", "account_number"),
            ("minimum prepaid payment", "amount"),
            ("more than $0.00", "amount"),
            ("by check", "tender"),
            ("needs a reference", "reference"),
        ):
            if needle in message:
                return name
    return "row"


# --- The import -----------------------------------------------------------------------------------


def _check_file(
    path: Path, *, default_tender: str | None, now: datetime.datetime, result: ImportResult
) -> tuple[set[int], dict[int, int]]:
    """First reading: every value's shape, unknown accounts, and conflicts inside the file.

    Returns the bad lines and, for a row repeating an earlier one exactly, the earlier line.
    """
    bad: set[int] = set()
    # (tender, reference) -> (line, account number, amount) of its first row; later rows with the
    # same key are kept only for the (rare) keys that repeat.
    first: dict[tuple[str, str], tuple[int, str, object]] = {}
    repeats: dict[tuple[str, str], list[tuple[int, str, object]]] = {}
    pending: list[tuple[int, str]] = []  # (line, account number) awaiting the chunk's lookup

    def report(problems):
        problems = list(problems)
        result.problems.extend(problems)
        bad.update(p.line for p in problems)

    def look_up_accounts():
        numbers = {n for _, n in pending}
        known = set(Account.objects.filter(number__in=numbers).values_list("number", flat=True))
        report(
            RowProblem(line, "account_number", f"no account numbered {number}")
            for line, number in pending
            if number not in known
        )
        pending.clear()

    for line, values, extra in _records(path, default_tender=default_tender):
        row, problems = _parse(line, values, extra, default_tender=default_tender, now=now)
        report(problems)
        if values["account_number"] and not _unreadable(values["account_number"]):
            pending.append((line, values["account_number"]))
            if len(pending) >= CHUNK_SIZE:
                look_up_accounts()
        tender, _ = _parse_tender(values.get("tender", ""), default_tender)
        reference, _ = _parse_reference(values["reference"])
        if tender and reference:
            key = (tender, reference)
            amount, _ = _parse_amount(values["amount"])
            seen = (line, values["account_number"], values["amount"] if amount is None else amount)
            if key in first:
                repeats.setdefault(key, []).append(seen)
            else:
                first[key] = seen
    if pending:
        look_up_accounts()

    repeat_of: dict[int, int] = {}
    for key, later in repeats.items():
        rows = [first[key], *later]
        if all((account, amount) == rows[0][1:] for _, account, amount in rows):
            # The same payment twice: the first good row of them is posted, the others are duplicates.
            good = [line for line, _, _ in rows if line not in bad]
            repeat_of.update((line, good[0]) for line in good[1:])
            continue
        lines = ", ".join(str(line) for line, _, _ in rows)
        tender, reference = key
        report(
            RowProblem(
                line,
                "reference",
                f"{Payment.Tender(tender).label} reference {reference} is on lines {lines} with different "
                "accounts or amounts; post the right one by hand",
            )
            for line, _, _ in rows
        )
    return bad, repeat_of


def _post_rows(
    path: Path,
    *,
    default_tender: str | None,
    now: datetime.datetime,
    skip: set[int],
    repeat_of: dict[int, int],
    actor,
    keep_receipts: bool,
    result: ImportResult,
    over_limit_confirmed: str = "",
) -> None:
    """Second reading, inside the import's transaction: post each good row in its own savepoint."""
    chunk: list[_Row] = []

    def post_chunk():
        accounts = Account.objects.in_bulk({r.account_number for r in chunk}, field_name="number")
        for row in chunk:
            try:
                # The savepoint undoes a refused row's writes and leaves the rows before it posted.
                with transaction.atomic():
                    payment, created = payment_post(
                        account=accounts[row.account_number],
                        amount=row.amount,
                        tender=row.tender,
                        reference=row.reference,
                        received_at=row.received_at,
                        actor=actor,
                        over_limit_confirmed=over_limit_confirmed,
                    )
            except CoopError as exc:
                result.problems.append(RowProblem(row.line, _field_of(exc), str(exc)))
                continue
            if not created:
                note = "already posted" + (
                    "; since returned" if payment.status == Payment.Status.RETURNED else ""
                )
                result.duplicates.append(RowDuplicate(row.line, f"receipt {payment.receipt_number}", note))
                continue
            result.posted += 1
            result.total += payment.amount
            if keep_receipts:
                result.receipts.append(
                    PostedRow(row.line, payment.receipt_number, payment.amount, row.account_number)
                )
        chunk.clear()

    for line, values, extra in _records(path, default_tender=default_tender):
        if line in skip:
            continue
        if line in repeat_of:
            result.duplicates.append(
                RowDuplicate(line, f"line {repeat_of[line]}", "same reference earlier in this file")
            )
            continue
        row, problems = _parse(line, values, extra, default_tender=default_tender, now=now)
        if row is None:  # the file changed since the first reading
            raise PaymentFileError(f"{path.name} changed while it was being imported. Nothing was posted.")
        chunk.append(row)
        if len(chunk) >= CHUNK_SIZE:
            post_chunk()
    if chunk:
        post_chunk()


def payment_file_import(
    *,
    path,
    default_tender: str | None = None,
    skip_bad: bool = False,
    dry_run: bool = False,
    actor,
    keep_receipts: bool = False,
    confirm_over_limit: bool = False,
) -> ImportResult:
    """Import a payment file (see the module's docstring). Idempotent: a row whose tender and
    reference were already posted to the same account for the same amount is a duplicate, not an
    error, so importing a file again posts nothing new.

    `actor` is the staff user doing the import (see `import_operator`); it is recorded on every
    payment. Raises PaymentFileError, before reading the file, if it is missing, inactive or may
    not post payments.

    Raises PaymentFileError when the file cannot be imported at all. Otherwise returns what was
    found; `result.applied` says whether the posted rows were committed (not in a dry run, and
    not when a row was bad unless `skip_bad`).
    """
    actor = _checked_operator(actor)
    path = Path(path)
    if default_tender is not None:
        default_tender = Payment.Tender(default_tender).value
    now = timezone.now()
    result = ImportResult(dry_run=dry_run)
    before = _fingerprint(path)
    bad, repeat_of = _check_file(path, default_tender=default_tender, now=now, result=result)
    # All good rows are posted in one transaction: the file is posted entirely or not at all.
    # The touched ledger accounts (the tender's cash clearing among them) stay locked until it ends.
    with transaction.atomic():
        _post_rows(
            path,
            default_tender=default_tender,
            now=now,
            skip=bad,
            repeat_of=repeat_of,
            actor=actor,
            keep_receipts=keep_receipts,
            result=result,
            # The operator confirmed every amount above the policy's limit (recorded in each memo).
            over_limit_confirmed=f"import_payments --confirm-over-limit, file {path.name}"
            if confirm_over_limit
            else "",
        )
        if _fingerprint(path) != before:
            raise PaymentFileError(f"{path.name} changed while it was being imported. Nothing was posted.")
        result.accepted = skip_bad or not result.problems
        result.applied = result.accepted and not dry_run
        if not result.applied:
            transaction.set_rollback(True)
    return result


def _fingerprint(path: Path) -> tuple[int, int]:
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise PaymentFileError(unreadable(path, exc, nothing=NOTHING_POSTED)) from exc
    return stat.st_size, stat.st_mtime_ns
