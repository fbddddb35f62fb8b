import datetime
import threading
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from accounts.tests import factories
from billing import services
from billing.daily import daily_run
from billing.models import Deduction
from billing.selectors import account_balances
from billing.tests import factories as bf

D = Decimal


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_payments_posted_while_the_run_deducts_the_same_accounts_are_neither_lost_nor_deadlocked():
    """Two chunks at a time and four clerks posting payments to the same accounts."""
    factories.policy(effective_from=datetime.date(2020, 1, 1))
    bf.tariff(tax_percent=D("5"))
    accounts = [bf.prepaid_account() for _ in range(40)]
    day = datetime.date.today() - datetime.timedelta(days=2)
    for account in accounts:
        bf.read(account.meter, day, "15")
    barrier, errors = threading.Barrier(5), []

    def run():
        try:
            barrier.wait()
            daily_run(day=day, chunk_size=7, workers=2)  # two chunks at a time, as well
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)
        finally:
            connection.close()

    def clerk(k):
        try:
            barrier.wait()
            for i, account in enumerate(accounts):
                if i % 4 == k:
                    services.payment_post(
                        account=account, amount="20.00", tender="cash", reference=f"c{k}-{i}"
                    )
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run)] + [threading.Thread(target=clerk, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for account in accounts:
        charge = Deduction.objects.get(account=account, service_day=day).total
        assert account_balances(account).prepaid_credit == D("20.00") - charge
    call_command("ledger_audit")
