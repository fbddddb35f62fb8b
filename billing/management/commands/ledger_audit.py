"""Prove the ledger's invariants over every row; exit 1 if any is broken."""

from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import connection
from django.db.models import Sum

from billing import daily
from billing.models import LedgerAccount, Leg, Transaction
from coop.money import to_cents

# Each check: a title, one set-based query returning the rows that break the invariant, how to
# print a row, and which of its columns are money (SQLite returns those as plain numbers). Sums are
# compared in whole cents because SQLite adds decimals in floating point.
CHECKS = [
    (
        "transaction does not sum to zero or has fewer than two legs",
        """SELECT t.id, COALESCE(SUM(l.amount), 0), COUNT(l.id)
             FROM billing_transaction t LEFT JOIN billing_leg l ON l.transaction_id = t.id
            GROUP BY t.id HAVING ROUND(COALESCE(SUM(l.amount), 0) * 100) <> 0 OR COUNT(l.id) < 2""",
        "transaction #{0}: legs sum to {1} over {2} legs",
        (1,),
    ),
    (
        "stored balance differs from the sum of legs",
        """SELECT a.id, a.code, a.balance, COALESCE(s.total, 0)
             FROM billing_ledgeraccount a
             LEFT JOIN (SELECT ledger_account_id, SUM(amount) AS total FROM billing_leg
                         GROUP BY ledger_account_id) s ON s.ledger_account_id = a.id
            WHERE ROUND(a.balance * 100) <> ROUND(COALESCE(s.total, 0) * 100)""",
        "ledger account {1}: stored balance {2}, sum of legs {3}",
        (2, 3),
    ),
    (
        "idempotency key used more than once",
        """SELECT idempotency_key, COUNT(*) FROM billing_transaction
            GROUP BY idempotency_key HAVING COUNT(*) > 1""",
        "idempotency key {0!r} used {1} times",
        (),
    ),
    (
        "postpaid items disagree with the amount due",
        """SELECT la.code, la.balance, COALESCE(r.open, 0), COALESCE(c.unallocated, 0)
             FROM billing_ledgeraccount la
             LEFT JOIN (SELECT account_id, SUM(open_amount) AS open FROM billing_receivable
                         GROUP BY account_id) r ON r.account_id = la.account_id
             LEFT JOIN (SELECT account_id, SUM(unallocated) AS unallocated FROM billing_credit
                         GROUP BY account_id) c ON c.account_id = la.account_id
             JOIN accounts_account acct ON acct.id = la.account_id AND acct.billing_mode = 'postpaid'
            WHERE la.purpose = 'amount_due'
              AND ROUND(la.balance * 100)
                  <> ROUND((COALESCE(r.open, 0) - COALESCE(c.unallocated, 0)) * 100)""",
        "ledger account {0}: amount due {1}, open bills and fees {2} less unallocated credit {3}",
        (1, 2, 3),
    ),
    (
        # The daily run posts each chunk's deductions as one transaction with a leg per member
        # (billing/daily.py); the deduction rows carry no database foreign keys, so this is
        # where their link to the account and to the ledger is proven. (An account has at most
        # one deduction in a transaction: one daily row per account and day, one true-up per
        # account in each pass.)
        "deduction without its account or not posted on the member's prepaid credit",
        """SELECT d.id, d.account_id, d.service_day, d.total, d.transaction_id, l.amount
             FROM billing_deduction d
             LEFT JOIN accounts_account a ON a.id = d.account_id
             LEFT JOIN billing_ledgeraccount la
                    ON la.account_id = d.account_id AND la.purpose = 'prepaid_credit'
             LEFT JOIN billing_leg l ON l.transaction_id = d.transaction_id AND l.ledger_account_id = la.id
            WHERE a.id IS NULL
               OR (d.transaction_id IS NULL AND ROUND(d.total * 100) <> 0)
               OR (d.transaction_id IS NOT NULL
                   AND (l.id IS NULL OR ROUND(l.amount * 100) <> ROUND(d.total * 100)))""",
        "deduction #{0} (account #{1}, {2}): total {3}, transaction #{4} posts {5} on its prepaid credit",
        (3, 5),
    ),
    (
        "daily-run leg on a member's prepaid credit without its deduction",
        f"""SELECT l.id, l.transaction_id, la.code, l.amount
             FROM billing_leg l
             JOIN billing_transaction t
                  ON t.id = l.transaction_id AND t.idempotency_key LIKE '{daily.KEY_PREFIX}%'
             JOIN billing_ledgeraccount la ON la.id = l.ledger_account_id AND la.purpose = 'prepaid_credit'
            WHERE NOT EXISTS (SELECT 1 FROM billing_deduction d
                              WHERE d.transaction_id = l.transaction_id AND d.account_id = la.account_id)
        """,
        "leg #{0} of daily-run transaction #{1} posts {3} on {2} without a deduction",
        (3,),
    ),
    (
        "leg without a transaction",
        """SELECT l.id FROM billing_leg l LEFT JOIN billing_transaction t ON t.id = l.transaction_id
            WHERE t.id IS NULL""",
        "leg #{0} belongs to no transaction",
        (),
    ),
]


class Command(BaseCommand):
    help = (
        "Check every ledger invariant: each transaction sums to zero, every stored balance equals "
        "the sum of its legs, each postpaid amount due equals its open bills and fees less "
        "unallocated credit, idempotency keys are unique, every daily deduction is posted on the "
        "member's prepaid credit and every daily-run leg there has its deduction, no leg without a "
        "transaction. Prints each violation and exits 1 if there is any."
    )

    def handle(self, *args, **options):
        violations = 0
        with connection.cursor() as cursor:
            for _title, sql, line, money_columns in CHECKS:
                cursor.execute(sql)
                for row in cursor.fetchall():
                    violations += 1
                    values = [
                        to_cents(str(v)) if i in money_columns and v is not None else v
                        for i, v in enumerate(row)
                    ]
                    self.stdout.write(line.format(*values))
        if violations:
            self.stdout.write(f"ledger_audit FAILED violations={violations}")
            raise SystemExit(1)
        # The members' side: what the cooperative owes its members (prepaid credit, deposits) less
        # what they owe it (arrears, amounts due). Legs are debit-positive, so that is minus the
        # sum of every member ledger account's balance.
        debit_total = LedgerAccount.objects.filter(account__isnull=False).aggregate(t=Sum("balance"))["t"]
        member_total = -(debit_total or Decimal("0.00"))
        self.stdout.write(
            f"ledger_audit ok transactions={Transaction.objects.count()} legs={Leg.objects.count()} "
            f"member_balance_total={member_total:.2f}"
        )
