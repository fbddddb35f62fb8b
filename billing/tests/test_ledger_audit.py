from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from accounts.tests import factories
from billing.tests.test_ledger import books, post  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


def audit():
    out = StringIO()
    try:
        call_command("ledger_audit", stdout=out)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue()


def test_a_clean_ledger_passes_with_its_totals(books):  # noqa: F811
    post("a", [(books["cash"], Decimal("70.00")), (books["credit"], Decimal("-70.00"))])
    post("b", [(books["credit"], Decimal("3.21")), (books["revenue"], Decimal("-3.21"))])
    code, out = audit()
    assert code == 0
    assert out.strip().splitlines()[-1] == "ledger_audit ok transactions=2 legs=4 member_balance_total=66.79"


@pytest.mark.skipif("connection.vendor == 'postgresql'", reason="PostgreSQL triggers refuse the tampering")
def test_a_tampered_balance_and_an_unbalanced_transaction_are_each_reported(books):  # noqa: F811
    txn, _ = post("a", [(books["cash"], Decimal("70.00")), (books["credit"], Decimal("-70.00"))])
    with connection.cursor() as c:
        c.execute("UPDATE billing_ledgeraccount SET balance = balance + 1 WHERE id = %s", [books["cash"].pk])
        c.execute("UPDATE billing_leg SET amount = -69 WHERE transaction_id = %s AND amount < 0", [txn.pk])
    code, out = audit()
    assert code == 1
    assert f"transaction #{txn.pk}: legs sum to 1.00 over 2 legs" in out
    assert "ledger account coop:cash_clearing:cash: stored balance 71.00, sum of legs 70.00" in out
    assert "ledger account member:" in out  # the credit account no longer matches its legs either
    assert out.strip().splitlines()[-1] == "ledger_audit FAILED violations=3"


@pytest.mark.skipif("connection.vendor == 'postgresql'", reason="PostgreSQL triggers refuse the tampering")
def test_a_postpaid_amount_due_that_disagrees_with_its_open_bills_is_reported():
    import datetime

    from accounts.models import Account
    from accounts.tests import factories
    from billing.models import Receivable
    from billing.services import receivable_add

    factories.policy()
    account = factories.account(billing_mode=Account.BillingMode.POSTPAID)
    receivable_add(account=account, amount="80.00", due_date=datetime.date(2026, 2, 1), description="Bill")
    assert audit()[0] == 0
    Receivable.objects.filter(account=account).update(open_amount="70.00")
    code, out = audit()
    assert code == 1
    assert (
        f"ledger account member:{account.number}:amount_due: amount due 80.00, open bills and fees 70.00"
        in out
    )


def test_a_daily_deduction_that_its_transaction_does_not_post_is_reported():
    # On PostgreSQL deductions are append-only (billing/migrations/0016): tampering goes behind
    # the triggers, as only the owner or a superuser can.
    import datetime

    import time_machine

    from billing import services
    from billing.daily import daily_run
    from billing.models import Deduction
    from billing.tests import factories as bf
    from billing.tests.test_ledger_audit_records import tamper

    factories.policy(effective_from=datetime.date(2020, 1, 1))
    bf.tariff(customer_charge=Decimal("31.00"))
    account = bf.prepaid_account()
    services.payment_post(account=account, amount=Decimal("50.00"), tender="cash", reference="start")
    day = datetime.date(2026, 12, 14)
    bf.read(account.meter, day, Decimal("20"))
    with time_machine.travel("2026-12-15 18:00:00+00:00", tick=False):
        daily_run(day=day)
    row = Deduction.objects.get(account=account, service_day=day)
    assert audit()[0] == 0
    tamper("UPDATE billing_deduction SET total = total + 1 WHERE id = %s", [row.pk])
    code, out = audit()
    assert code == 1
    assert (
        f"deduction #{row.pk} (account #{account.pk}, 2026-12-14): total {row.total + 1}, "
        f"transaction #{row.transaction_id} posts {row.total} on its prepaid credit"
    ) in out
    tamper("UPDATE billing_deduction SET total = total - 1, transaction_id = NULL WHERE id = %s", [row.pk])
    code, out = audit()
    assert (
        f"deduction #{row.pk} (account #{account.pk}, 2026-12-14): total {row.total}, transaction #None"
        in out
    )
    tamper(
        "UPDATE billing_deduction SET transaction_id = %s, account_id = %s WHERE id = %s",
        [row.transaction_id, account.pk + 1000, row.pk],
    )
    code, out = audit()
    assert f"deduction #{row.pk} (account #{account.pk + 1000}, 2026-12-14)" in out
    assert f"of daily-run transaction #{row.transaction_id} posts {row.total} on member:" in out
    assert "without a deduction" in out
