"""Bad values get a clear error, never a traceback (issue 5, point 8).

A NUL byte, an amount of 9,999,999,999.99 or any value outside its column's range (amounts are 12
digits with 2 decimals; text has a maximum length; dates have a range), typed into the admin or
found in a payment file, is reported as that field's error (with its line, in a file) and nothing
is applied. An amount above the policy's confirmation limit for its tender needs the clerk's
confirmation, which is recorded with the payment; a file's rows above it need
`import_payments --confirm-over-limit`, recorded the same way.
"""

import datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.tests import factories
from billing import services
from billing.ledger import MAX_BALANCE, coop_ledger_account
from billing.models import DebtPlan, LedgerAccount, Payment, ReturnedPayment, Transaction
from coop import roles
from coop.models import FeeScheduleEntry
from coop.validators import ValueRefused

D = Decimal
P = LedgerAccount.Purpose
NOW = datetime.datetime(2026, 11, 20, 16, 0, tzinfo=datetime.UTC)  # Friday 10:00 in Chicago
HUGE = "9999999999.99"


pytestmark = [
    pytest.mark.django_db,
    pytest.mark.policy(
        debt_plan_share_percent=D("35"),
        amount_maximum=D("100000.00"),
        payment_confirm_above_cash=D("5000.00"),
        payment_confirm_above=D("10000.00"),
    ),
    pytest.mark.frozen(NOW),
]


@pytest.fixture
def account(policy):
    account = factories.account(number="3000100")
    # The cash drawer already holds money: a huge amount would overflow its balance.
    services.payment_post(account=account, amount="100.00", tender="cash", reference="BOOK-0")
    return account


def url(name, obj):
    return reverse(f"admin:billing_{name}", args=[obj.pk])


def _writes():
    return (
        Transaction.objects.count(),
        Payment.objects.count(),
        ReturnedPayment.objects.count(),
        DebtPlan.objects.count(),
        tuple(LedgerAccount.objects.order_by("pk").values_list("balance", flat=True)),
    )


def _field_errors(response, field):
    assert response.status_code == 200
    return response.context["form"].errors.get(field, [])


PAYMENT = {"amount": "50.00", "tender": "check", "reference": "CK 100", "received_at": "2026-11-20T09:45"}


# --- The take-payment form ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, says",
    [
        ("amount", HUGE, "more than the largest amount the policy accepts ($100,000.00)"),
        ("amount", "99999999999.99", "no more than 12 digits"),
        ("amount", "10000000000", "no more than 10 digits before the decimal point"),
        ("amount", "0", "greater than or equal to 0.01"),
        ("amount", "-5.00", "greater than or equal to 0.01"),
        ("amount", "1.005", "no more than 2 decimal places"),
        ("amount", "NaN", "Enter a number"),
        ("amount", "1e400", "no more than 12 digits"),
        ("reference", "CK\x00100", "Null characters are not allowed"),
        ("reference", "x" * 81, "at most 80 characters"),
        ("received_at", "9999-12-31T23:59", "cannot be received in the future"),
        ("received_at", "0001-01-01T00:00", "No policy is in force"),
        ("received_at", "10000-01-01T00:00", "Enter a valid date/time"),
        ("tender", "bitcoin", "Select a valid choice"),
    ],
)
def test_a_bad_value_on_the_payment_form_is_that_fields_error_and_nothing_is_posted(
    client, clerk, account, field, value, says
):
    client.force_login(clerk)
    before = _writes()
    response = client.post(url("payment_post", account), {**PAYMENT, field: value})
    errors = _field_errors(response, field)
    assert errors and says in errors[0], response.context["form"].errors
    assert _writes() == before


@pytest.mark.parametrize("tender", ["check", "cash"])
def test_a_huge_amount_confirmed_is_still_refused_and_never_reaches_the_ledger(
    client, clerk, account, tender
):
    client.force_login(clerk)
    before = _writes()
    response = client.post(
        url("payment_post", account),
        {**PAYMENT, "tender": tender, "amount": HUGE, "confirm_over_limit": "on"},
    )
    assert "largest amount" in _field_errors(response, "amount")[0]
    assert _writes() == before


@pytest.mark.parametrize(
    "action, data, field, says",
    [
        (
            "deposit_collect",
            {"amount": HUGE, "tender": "cash", "reference": "B-1"},
            "amount",
            "largest amount",
        ),
        ("deposit_collect", {"amount": "60", "tender": "cash", "reference": "B\x001"}, "reference", "Null"),
        (
            "deposit_collect",
            {"amount": "100000000000", "tender": "cash", "reference": "B"},
            "amount",
            "10 digits before",
        ),
        (
            "adjustment_post",
            {"direction": "credit", "amount": HUGE, "reason": "x"},
            "amount",
            "largest amount",
        ),
        (
            "adjustment_post",
            {"direction": "debit", "amount": "5", "reason": "r" * 251},
            "reason",
            "at most 250",
        ),
        ("adjustment_post", {"direction": "debit", "amount": "5", "reason": "a\x00b"}, "reason", "Null"),
        ("arrears_write_off", {"amount": "-1", "reason": "gone"}, "amount", "greater than or equal to 0.01"),
        ("plan_enroll", {"share_percent": "100.01", "override_reason": "x"}, "share_percent", "less than or"),
        ("plan_enroll", {"share_percent": "0", "override_reason": "x"}, "share_percent", "greater than"),
        ("deposit_apply", {"amount": "1e3", "reason": "x"}, "amount", None),
    ],
)
def test_a_bad_value_on_an_account_form_is_that_fields_error_and_nothing_is_written(
    client, manager, account, action, data, field, says
):
    """Values the form refuses itself, and amounts only a service or the ledger can judge (a huge
    deposit or adjustment would overflow a balance): either way, a field error and no write."""
    services.deposit_collect(account=account, amount="60", tender="cash", reference="B-0", actor=manager)
    client.force_login(manager)
    before = _writes()
    response = client.post(url(action, account), data)
    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors, "refused"
    if says:
        assert says in form.errors[field][0], form.errors
    assert _writes() == before


@pytest.mark.parametrize(
    "day, says",
    [
        ("0001-01-01", "it cannot be returned before"),
        ("2026-11-19", "it cannot be returned before"),  # the payment came in on the 20th
        ("2026-11-21", "cannot be returned in the future"),
        ("10000-01-01", "Enter a valid date"),
        ("2026-13-01", "Enter a valid date"),
    ],
)
def test_the_payment_return_form_refuses_a_day_out_of_range_on_the_field(client, clerk, account, day, says):
    payment = Payment.objects.get()
    client.force_login(clerk)
    before = _writes()
    response = client.post(url("payment_return", payment), {"reason": "nsf", "returned_on": day})
    errors = _field_errors(response, "returned_on")
    assert errors and says in errors[0], errors
    assert _writes() == before


# --- The services and the ledger, for callers other than the forms -----------------------------


def test_the_service_refuses_an_amount_above_the_policys_largest_payment(account):
    with pytest.raises(ValueRefused) as refused:
        services.payment_post(account=account, amount="100000.01", tender="check", reference="CK 1")
    assert refused.value.field == "amount"
    assert "$100,000.01 is more than the largest amount the policy accepts ($100,000.00)" in str(
        refused.value
    )


POSTINGS = {
    "deposit_collect": lambda a, m: services.deposit_collect(
        account=a, amount=HUGE, tender="cash", reference="DEP-9", actor=m
    ),
    "adjustment_post": lambda a, m: services.adjustment_post(account=a, amount=HUGE, actor=m, reason="x"),
    "adjustment_post debit": lambda a, m: services.adjustment_post(
        account=a, amount="-" + HUGE, actor=m, reason="x"
    ),
    "debt_transfer_to_arrears": lambda a, m: services.debt_transfer_to_arrears(
        account=a, amount=HUGE, actor=m, reason="x"
    ),
    "fee_charge": lambda a, m: services.fee_charge(account=a, code="x", amount=HUGE, actor=m, memo="x"),
    "fee_charge from the schedule": lambda a, m: services.fee_charge(
        account=a,
        code=FeeScheduleEntry.objects.create(code="typo", description="Typo", amount=D(HUGE)).code,
        actor=m,
    ),
    "receivable_add": lambda a, m: services.receivable_add(
        account=factories.account(billing_mode="postpaid"),
        amount=HUGE,
        due_date=datetime.date(2026, 12, 1),
        description="bill",
    ),
}


@pytest.mark.parametrize("name", POSTINGS)
def test_every_service_refuses_an_amount_above_the_policys_largest_even_on_an_empty_ledger(
    name, policy, manager
):
    """On a new ledger 9,999,999,999.99 would still fit every balance: the policy refuses it."""
    account = factories.account(number="3000200")
    before = _writes()
    with pytest.raises(ValueRefused, match="more than the largest amount the policy accepts") as refused:
        POSTINGS[name](account, manager)
    assert refused.value.field == "amount"
    assert _writes()[:4] == before[:4]


@pytest.mark.policy(amount_maximum=MAX_BALANCE)
def test_the_ledger_refuses_a_posting_that_would_overflow_a_balance(account, manager):
    before = _writes()
    with pytest.raises(services.BillingError, match="would hold more than \\$9,999,999,999.99"):
        services.payment_post(
            account=account, amount=HUGE, tender="cash", reference="BIG", over_limit_confirmed="test"
        )
    assert _writes() == before
    assert coop_ledger_account(P.CASH_CLEARING, tender="cash").balance == D("100.00")


def test_the_service_refuses_text_longer_than_its_column_and_a_nul(account):
    with pytest.raises(ValueRefused, match="longer than 80 characters") as refused:
        services.payment_post(account=account, amount="5", tender="check", reference="x" * 81)
    assert refused.value.field == "reference"
    with pytest.raises(ValueRefused, match="NUL character") as refused:
        services.payment_post(account=account, amount="5", tender="check", reference="a\x00b")
    assert refused.value.field == "reference"
    payment = Payment.objects.get()
    with pytest.raises(ValueRefused, match="longer than 300 characters"):
        services.payment_return(payment=payment, reason="nsf", note="n" * 301)


# --- Amounts above the policy's confirmation limit -------------------------------------------------


def test_a_cash_payment_above_the_limit_asks_the_clerk_to_confirm_and_records_the_confirmation(
    client, clerk, account
):
    client.force_login(clerk)
    page = client.get(url("payment_post", account)).content.decode()
    assert "A payment by cash above $5,000.00 or another tender above $10,000.00 asks you to confirm" in page
    assert 'type="checkbox" name="confirm_over_limit"' not in page  # not shown until needed
    before = _writes()
    data = {**PAYMENT, "tender": "cash", "reference": "BOOK-77", "amount": "6000.00"}
    refused = client.post(url("payment_post", account), data)
    errors = _field_errors(refused, "amount")
    assert errors == [
        "$6,000.00 by cash is above the policy's $5,000.00 limit for cash payments. Check the amount, "
        "then confirm it (tick “Confirm the amount” on the form, or run the file with --confirm-over-limit)."
    ]
    assert 'type="checkbox" name="confirm_over_limit"' in refused.content.decode()
    assert _writes() == before

    posted = client.post(url("payment_post", account), {**data, "confirm_over_limit": "on"})
    assert posted.status_code == 302
    payment = Payment.objects.get(reference="BOOK-77")
    assert payment.amount == D("6000.00") and payment.actor == clerk
    assert payment.transaction.actor == clerk
    assert payment.transaction.memo == (
        "Cash BOOK-77; over the $5,000.00 cash limit, confirmed by clerk (on the payment form)"
    )


def test_a_check_below_its_own_limit_needs_no_confirmation_but_cash_of_the_same_amount_does(account):
    payment, _ = services.payment_post(account=account, amount="6000.00", tender="check", reference="CK 6")
    assert payment.transaction.memo == "Check CK 6"
    with pytest.raises(ValueRefused, match="above the policy's \\$5,000.00 limit for cash payments"):
        services.payment_post(account=account, amount="6000.00", tender="cash", reference="BOOK-6")
    with pytest.raises(ValueRefused, match="above the policy's \\$10,000.00 limit for check payments"):
        services.payment_post(account=account, amount="10000.01", tender="check", reference="CK 7")
    # Exactly at the limit is within it.
    services.payment_post(account=account, amount="5000.00", tender="cash", reference="BOOK-5")


@pytest.mark.policy(payment_confirm_above_cash=D("0"))
def test_a_limit_of_zero_never_asks(account):
    payment, _ = services.payment_post(account=account, amount="99000.00", tender="cash", reference="BOOK-9")
    assert payment.transaction.memo == "Cash BOOK-9"


def test_a_policy_whose_confirmation_limit_is_above_its_largest_payment_is_invalid(policy):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as invalid:
        factories.policy(
            effective_from=datetime.date(2026, 12, 1),
            amount_maximum=policy.amount_maximum,
            payment_confirm_above=D("200000.00"),
        )
    assert "payment_confirm_above" in invalid.value.message_dict


# --- import_payments ----------------------------------------------------------------------------


HEADER = "account_number,amount,tender,reference,received_at"


OPERATOR = "lockbox-clerk"


def _operator():
    """The clerk the imports are run by (--operator), made once per test."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(username=OPERATOR).first()
    return user or factories.staff(roles.CLERK, OPERATOR)


def _run(tmp_path, *rows, args=()):
    """Run import_payments on the rows; return (exit status, everything it said)."""
    path = tmp_path / "lockbox.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    out, err = StringIO(), StringIO()
    _operator()
    try:
        call_command("import_payments", str(path), "--operator", OPERATOR, *args, stdout=out, stderr=err)
    except CommandError as exc:
        return 1, out.getvalue() + err.getvalue() + str(exc)
    return 0, out.getvalue() + err.getvalue()


GOOD = "3000100,50.00,check,CK-1,2026-11-19"


@pytest.mark.parametrize(
    "row, expected",
    [
        ("3000100,50.00,check,CK\x002,2026-11-19", "line 3: reference: contains a NUL character"),
        ("30001\x0000,50.00,check,CK-2,2026-11-19", "line 3: account_number: contains a NUL character"),
        ("3000100,50.00,check,CK-2,2026-11\x0019", "line 3: received_at: contains a NUL character"),
        ("3000100,50.00,ch\x00eck,CK-2,2026-11-19", "line 3: tender: contains a NUL character"),
        ("3000100,5\x000.00,check,CK-2,2026-11-19", "line 3: amount: contains a NUL character"),
        (
            f"3000100,{HUGE},check,CK-2,2026-11-19",
            "line 3: amount: $9,999,999,999.99 is more than the largest",
        ),
        ("3000100,10000000000.00,check,CK-2,2026-11-19", "line 3: amount: too large (10000000000.00)"),
        ("3000100,-5.00,check,CK-2,2026-11-19", "line 3: amount: must be more than $0.00"),
        ("3000100,0.00,check,CK-2,2026-11-19", "line 3: amount: must be more than $0.00"),
        (f"3000100,50.00,check,{'x' * 81},2026-11-19", "line 3: reference: longer than 80 characters"),
        (
            "3000100,50.00,check,CK-2,0001-01-01",
            "line 3: received_at: 0001-01-01 is out of range (before 1900)",
        ),
        (
            "3000100,50.00,check,CK-2,0001-01-01T00:00:00+14:00",
            "line 3: received_at: 0001-01-01T00:00:00+14:00 is out of range (before 1900)",
        ),
        ("3000100,50.00,check,CK-2,9999-12-31", "line 3: received_at: 9999-12-31 is in the future"),
        ("3000100,50.00,check,CK-2,1950-06-01", "line 3: received_at: No policy is in force on 1950-06-01"),
        (f"{'3' * 500},50.00,check,CK-2,2026-11-19", "line 3: account_number: no account numbered 333"),
    ],
)
def test_a_bad_value_in_a_payment_file_is_that_fields_error_on_its_line_and_nothing_is_posted(
    tmp_path, account, row, expected
):
    before = _writes()
    status, output = _run(tmp_path, GOOD, row)
    assert status == 1
    assert expected in output, output
    assert "Nothing was posted: 1 bad row(s)" in output
    assert "\x00" not in output and "Traceback" not in output
    assert _writes() == before


def test_a_file_row_above_the_limit_is_refused_without_the_flag(tmp_path, account):
    before = _writes()
    status, output = _run(tmp_path, GOOD, "3000100,6000.00,cash,BOOK-60,2026-11-19")
    assert status == 1
    assert (
        "line 3: amount: $6,000.00 by cash is above the policy's $5,000.00 limit for cash payments." in output
    )
    assert _writes() == before


def test_with_confirm_over_limit_the_row_is_posted_and_the_confirmation_recorded(tmp_path, account):
    status, output = _run(
        tmp_path, GOOD, "3000100,6000.00,cash,BOOK-60,2026-11-19", args=["--confirm-over-limit"]
    )
    assert status == 0, output
    assert "import_payments posted=2" in output
    over = Payment.objects.get(reference="BOOK-60")
    assert over.transaction.memo == (
        "Cash BOOK-60; over the $5,000.00 cash limit, confirmed by lockbox-clerk "
        "(import_payments --confirm-over-limit, file lockbox.csv)"
    )
    assert Payment.objects.get(reference="CK-1").transaction.memo == "Check CK-1"  # within its limit
