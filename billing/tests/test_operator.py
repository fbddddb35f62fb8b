"""Who did it, always: an imported payment records the operator who ran the import (issue 5,
point 9). `import_payments --operator USERNAME` is required and checked before the file is read."""

import datetime
import zoneinfo
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.tests import factories
from billing.imports import PaymentFileError, payment_file_import
from billing.models import Payment, Transaction
from coop import roles

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
HEADER = "account_number,amount,tender,reference,received_at"


pytestmark = [
    pytest.mark.django_db,
    pytest.mark.frozen(datetime.datetime(2026, 11, 20, 15, 0, tzinfo=CHICAGO)),
    pytest.mark.usefixtures("policy"),
]


@pytest.fixture
def clerk():
    return factories.staff(roles.CLERK, "lockbox", first_name="Lena", last_name="Box")


@pytest.fixture
def payment_file(tmp_path):
    a, b = factories.account(), factories.account()
    path = tmp_path / "lockbox.csv"
    path.write_text(
        "\n".join(
            [
                HEADER,
                f"{a.number},50.00,check,CK 1,2026-11-19",
                f"{b.number},25.10,ach,ACH 2,2026-11-19",
                f"{a.number},12.00,cash,B 3,2026-11-20",
            ]
        )
        + "\n"
    )
    return path


def _run(*args):
    out, err = StringIO(), StringIO()
    call_command("import_payments", *map(str, args), stdout=out, stderr=err)
    return out.getvalue()


def test_the_import_records_the_operator_on_every_payment_and_its_transaction(clerk, payment_file):
    out = _run(payment_file, "--operator", "lockbox")

    assert out.splitlines()[-1] == "import_payments posted=3 duplicates=0 bad=0 total=$87.10"
    assert list(Payment.objects.values_list("actor__username", flat=True)) == ["lockbox"] * 3
    assert list(Transaction.objects.values_list("actor__username", flat=True)) == ["lockbox"] * 3


def test_the_command_without_an_operator_fails_with_a_clear_message(payment_file):
    with pytest.raises(CommandError, match="the following arguments are required: --operator"):
        _run(payment_file)
    assert Payment.objects.count() == 0


@pytest.mark.parametrize(
    "username, problem",
    [
        ("nobody", "There is no user 'nobody'; give the username of the operator."),
        ("gone", "User 'gone' is inactive; they cannot import payments."),
        ("viewer", "User 'viewer' may not post payments (billing.add_payment); they cannot import them."),
    ],
)
def test_an_operator_who_may_not_import_is_refused_before_the_file_is_read(tmp_path, username, problem):
    factories.staff(roles.CLERK, "gone", is_active=False)
    factories.staff(roles.AUDITOR, "viewer")

    with pytest.raises(CommandError) as refused:
        _run(tmp_path / "not-even-there.csv", "--operator", username)  # a file that cannot be read

    assert str(refused.value) == f"{problem} Nothing was posted."
    assert Payment.objects.count() == 0


def test_the_import_service_needs_an_operator_too(payment_file):
    with pytest.raises(PaymentFileError, match="needs the operator who runs it"):
        payment_file_import(path=payment_file, actor=None)
    assert Payment.objects.count() == 0
