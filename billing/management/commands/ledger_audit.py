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
    (
        # Returned payments, waived fees and reversed adjustments are all ledger_reverse's mirrors.
        "reversal that does not mirror the transaction it reverses",
        """SELECT t.id, t.reverses_id, la.code, SUM(l.amount)
             FROM billing_transaction t
             JOIN billing_leg l ON l.transaction_id = t.id OR l.transaction_id = t.reverses_id
             JOIN billing_ledgeraccount la ON la.id = l.ledger_account_id
            WHERE t.reverses_id IS NOT NULL
            GROUP BY t.id, t.reverses_id, la.id, la.code
           HAVING ROUND(SUM(l.amount) * 100) <> 0""",
        "reversal #{0} of transaction #{1} leaves {3} on {2}",
        (3,),
    ),
]

# --- The money records, each proven against its ledger transaction --------------------------------
# On PostgreSQL the records are append-only (billing/migrations/0013); these checks are what proves
# them wherever they are stored, and what finds a record deleted or changed behind the triggers.

# A transaction's legs summed per kind of ledger account, for the record `r` it posts (r.account_id
# is the member account), credits shown positive.
_LEG_PARTS = """
    SUM(CASE WHEN la.purpose = 'cash_clearing' THEN l.amount ELSE 0 END) AS cash,
    0 - SUM(CASE WHEN la.account_id = r.account_id AND la.purpose = 'prepaid_credit' THEN l.amount ELSE 0 END)
        AS credit,
    0 - SUM(CASE WHEN la.account_id = r.account_id AND la.purpose = 'arrears' THEN l.amount ELSE 0 END)
        AS arrears,
    0 - SUM(CASE WHEN la.account_id = r.account_id AND la.purpose = 'amount_due' THEN l.amount ELSE 0 END)
        AS due,
    0 - SUM(CASE WHEN la.purpose = 'fee_revenue' THEN l.amount ELSE 0 END) AS fee_revenue,
    COUNT(l.id) AS legs"""


def _cents(column: str) -> str:
    return f"ROUND(({column}) * 100)"


def _nonzero(column: str) -> str:
    return f"CASE WHEN {_cents(column)} <> 0 THEN 1 ELSE 0 END"


RECORD_CHECKS = [
    (
        # The split into credit, arrears and amount due is what the member sees on the receipt;
        # the ledger posts exactly those parts (ledger_post merges legs per account and drops zero
        # ones, so a payment has one leg per part that is not zero, plus its cash).
        "payment that its ledger transaction does not post",
        f"""SELECT * FROM (
            SELECT r.id, r.receipt_number, r.amount, r.to_credit, r.to_arrears, r.to_amount_due,
                   r.transaction_id, t.kind, t.account_id AS txn_account, r.account_id, {_LEG_PARTS},
                   SUM(CASE WHEN la.purpose = 'cash_clearing' AND la.tender <> r.tender THEN 1 ELSE 0 END)
                       AS other_tender
              FROM billing_payment r
              LEFT JOIN billing_transaction t ON t.id = r.transaction_id
              LEFT JOIN billing_leg l ON l.transaction_id = r.transaction_id
              LEFT JOIN billing_ledgeraccount la ON la.id = l.ledger_account_id
             GROUP BY r.id, r.receipt_number, r.amount, r.to_credit, r.to_arrears, r.to_amount_due,
                      r.transaction_id, t.kind, t.account_id, r.account_id, r.tender
            ) s
            WHERE kind IS NULL OR kind <> 'payment' OR txn_account IS NULL OR txn_account <> account_id
               OR {_cents("to_credit + to_arrears + to_amount_due")} <> {_cents("amount")}
               OR {_cents("cash")} <> {_cents("amount")} OR other_tender > 0
               OR {_cents("credit")} <> {_cents("to_credit")}
               OR {_cents("arrears")} <> {_cents("to_arrears")}
               OR {_cents("due")} <> {_cents("to_amount_due")}
               OR legs <> 1 + {_nonzero("to_credit")} + {_nonzero("to_arrears")} + {_nonzero("to_amount_due")}
        """,
        "payment {1} (#{0}): {2} = credit {3} + arrears {4} + amount due {5}, but transaction "
        "#{6} ({7}) posts cash {10}, credit {11}, arrears {12}, amount due {13} in {15} legs",
        (2, 3, 4, 5, 10, 11, 12, 13),
    ),
    (
        "payment transaction without its payment",
        """SELECT t.id, t.memo FROM billing_transaction t
            WHERE t.kind = 'payment'
              AND NOT EXISTS (SELECT 1 FROM billing_payment p WHERE p.transaction_id = t.id)""",
        "payment transaction #{0} ({1}) has no payment",
        (),
    ),
    (
        "returned payment that is not its payment's reversal",
        """SELECT r.id, p.receipt_number, p.status, r.transaction_id, t.kind, t.reverses_id, p.transaction_id
             FROM billing_returnedpayment r
             LEFT JOIN billing_payment p ON p.id = r.payment_id
             LEFT JOIN billing_transaction t ON t.id = r.transaction_id
            WHERE p.id IS NULL OR t.id IS NULL OR t.kind <> 'payment_return' OR p.status <> 'returned'
               OR t.reverses_id IS NULL OR t.reverses_id <> p.transaction_id""",
        "return #{0} of payment {1} ({2}): transaction #{3} ({4}) reverses #{5}, not the payment's #{6}",
        (),
    ),
    (
        "payment marked returned without its return, or a return transaction without one",
        """SELECT 'payment', p.receipt_number FROM billing_payment p
            WHERE p.status = 'returned'
              AND NOT EXISTS (SELECT 1 FROM billing_returnedpayment r WHERE r.payment_id = p.id)
           UNION ALL
           SELECT 'transaction', CAST(t.id AS VARCHAR(20)) FROM billing_transaction t
            WHERE t.kind = 'payment_return'
              AND NOT EXISTS (SELECT 1 FROM billing_returnedpayment r WHERE r.transaction_id = t.id)""",
        "{0} {1}: returned, but there is no return record",
        (),
    ),
    (
        # A fee is charged to what the member owes (prepaid: off the prepaid credit; postpaid: the
        # amount due), to fee revenue; a waiver is the reversal of that charge, with its reason.
        "fee that its ledger transaction does not post, or a waiver that is not its reversal",
        f"""SELECT * FROM (
            SELECT r.id, r.description, r.amount, r.transaction_id, t.kind, t.account_id AS txn_account,
                   r.account_id, r.waiver_transaction_id, w.kind AS waiver_kind, w.reverses_id,
                   r.waive_reason, r.waived_by_id, {_LEG_PARTS}
              FROM billing_chargedfee r
              LEFT JOIN billing_transaction t ON t.id = r.transaction_id
              LEFT JOIN billing_transaction w ON w.id = r.waiver_transaction_id
              LEFT JOIN billing_leg l ON l.transaction_id = r.transaction_id
              LEFT JOIN billing_ledgeraccount la ON la.id = l.ledger_account_id
             GROUP BY r.id, r.description, r.amount, r.transaction_id, t.kind, t.account_id, r.account_id,
                      r.waiver_transaction_id, w.kind, w.reverses_id, r.waive_reason, r.waived_by_id
            ) s
            WHERE kind IS NULL OR kind <> 'fee' OR txn_account IS NULL OR txn_account <> account_id
               OR {_cents("fee_revenue")} <> {_cents("amount")}
               OR {_cents("credit + due")} <> {_cents("0 - amount")} OR legs <> 2
               OR (waiver_transaction_id IS NOT NULL
                   AND (waiver_kind <> 'fee_waiver' OR reverses_id IS NULL OR reverses_id <> transaction_id
                        OR waive_reason = '' OR waived_by_id IS NULL))
        """,
        "fee #{0} ({1}) {2}: transaction #{3} ({4}) posts fee revenue {16} in {17} legs; "
        "waiver #{7} ({8}) reverses #{9}",
        (2, 16),
    ),
    (
        "fee or waiver transaction without its fee",
        """SELECT t.id, t.kind FROM billing_transaction t
            WHERE (t.kind = 'fee' AND NOT EXISTS
                      (SELECT 1 FROM billing_chargedfee f WHERE f.transaction_id = t.id))
               OR (t.kind = 'fee_waiver' AND NOT EXISTS
                      (SELECT 1 FROM billing_chargedfee f WHERE f.waiver_transaction_id = t.id))""",
        "{1} transaction #{0} has no charged fee",
        (),
    ),
    (
        # Deposits are ledger transactions with no record of their own: collected from cash
        # clearing, applied to the same account's arrears, prepaid credit or amount due, refunded
        # to refunds payable; each moves that account's deposit held, and only that.
        "deposit transaction whose legs are not on its account's deposit held and its counterpart",
        """SELECT * FROM (
            SELECT t.id, t.kind, t.account_id,
                   SUM(CASE WHEN la.purpose = 'deposit_held' AND la.account_id = t.account_id
                            THEN l.amount ELSE 0 END) AS held,
                   SUM(CASE WHEN la.purpose = 'deposit_held' AND la.account_id = t.account_id
                            THEN 1 ELSE 0 END) AS held_legs,
                   SUM(CASE WHEN (t.kind = 'deposit_collect' AND la.purpose = 'cash_clearing')
                              OR (t.kind = 'deposit_refund' AND la.purpose = 'refunds_payable')
                              OR (t.kind = 'deposit_apply' AND la.account_id = t.account_id
                                  AND la.purpose IN ('arrears', 'prepaid_credit', 'amount_due'))
                            THEN l.amount ELSE 0 END) AS counterpart,
                   COUNT(l.id) AS legs
              FROM billing_transaction t
              LEFT JOIN billing_leg l ON l.transaction_id = t.id
              LEFT JOIN billing_ledgeraccount la ON la.id = l.ledger_account_id
             WHERE t.kind IN ('deposit_collect', 'deposit_apply', 'deposit_refund')
             GROUP BY t.id, t.kind, t.account_id
            ) s
            WHERE account_id IS NULL OR held_legs <> 1
               OR (kind = 'deposit_collect' AND ROUND(held * 100) >= 0)
               OR (kind <> 'deposit_collect' AND ROUND(held * 100) <= 0)
               OR ROUND(counterpart * 100) <> ROUND((0 - held) * 100)
               OR (kind <> 'deposit_apply' AND legs <> 2)""",
        "{1} transaction #{0} (account #{2}) moves deposit held by {3} in {4} legs, its counterpart by {5}",
        (3, 5),
    ),
    (
        # A payout (refund_pay) is a refund transaction of its own: refunds payable down by the
        # amount of the refund it pays, check clearing down as much, on the refund's account.
        "refund payout that its ledger transaction does not post",
        """SELECT * FROM (
            SELECT r.id, r.check_number, r.amount, r.transaction_id, t.kind, t.account_id AS txn_account,
                   f.account_id AS refund_account, r.refund_id,
                   SUM(CASE WHEN la.purpose = 'refunds_payable' THEN l.amount ELSE 0 END) AS payable,
                   SUM(CASE WHEN la.purpose = 'cash_clearing' AND la.tender = 'check'
                            THEN 0 - l.amount ELSE 0 END) AS check_out,
                   COUNT(l.id) AS legs,
                   (SELECT 0 - SUM(fl.amount) FROM billing_leg fl
                      JOIN billing_ledgeraccount fla ON fla.id = fl.ledger_account_id
                     WHERE fl.transaction_id = r.refund_id AND fla.purpose = 'refunds_payable') AS refunded
              FROM billing_refundpayout r
              LEFT JOIN billing_transaction t ON t.id = r.transaction_id
              LEFT JOIN billing_transaction f ON f.id = r.refund_id
              LEFT JOIN billing_leg l ON l.transaction_id = r.transaction_id
              LEFT JOIN billing_ledgeraccount la ON la.id = l.ledger_account_id
             GROUP BY r.id, r.check_number, r.amount, r.transaction_id, t.kind, t.account_id,
                      f.account_id, r.refund_id
            ) s
            WHERE kind IS NULL OR kind <> 'refund' OR refund_account IS NULL OR txn_account IS NULL
               OR txn_account <> refund_account OR legs <> 2
               OR ROUND(payable * 100) <> ROUND(amount * 100) OR ROUND(check_out * 100) <> ROUND(amount * 100)
               OR refunded IS NULL OR ROUND(refunded * 100) <> ROUND(amount * 100)""",
        "refund payout #{0} (check {1}) {2}: transaction #{3} ({4}) moves refunds payable by {8} and "
        "check clearing by {9} in {10} legs; refund #{7} owed {11}",
        (2, 8, 9, 11),
    ),
    (
        "refund payout transaction without its payout record",
        """SELECT t.id, t.memo FROM billing_transaction t
            WHERE t.kind = 'refund' AND t.idempotency_key LIKE 'refund-paid:%'
              AND NOT EXISTS (SELECT 1 FROM billing_refundpayout r WHERE r.transaction_id = t.id)""",
        "refund payout transaction #{0} ({1}) has no payout record",
        (),
    ),
    (
        "deposit held below zero",
        """SELECT code, 0 - balance FROM billing_ledgeraccount
            WHERE purpose = 'deposit_held' AND ROUND(balance * 100) > 0""",
        "ledger account {0}: deposit held {1}",
        (1,),
    ),
]


class Command(BaseCommand):
    help = (
        "Check every ledger invariant: each transaction sums to zero, every stored balance equals "
        "the sum of its legs, each postpaid amount due equals its open bills and fees less "
        "unallocated credit, idempotency keys are unique, every daily deduction is posted on the "
        "member's prepaid credit and every daily-run leg there has its deduction, no leg without a "
        "transaction, every reversal mirrors its original; and every money record against its "
        "ledger transaction: each payment's amount and split, each return, each fee and its waiver, "
        "each deposit's legs on deposit held, each refund payout. Prints each violation and exits 1 "
        "if there is any."
    )

    def handle(self, *args, **options):
        violations = 0
        with connection.cursor() as cursor:
            for _title, sql, line, money_columns in CHECKS + RECORD_CHECKS:
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
