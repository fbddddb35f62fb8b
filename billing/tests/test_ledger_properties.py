"""A Hypothesis state machine over the money services.

Each step pays, returns, charges or waives a fee, adds a postpaid bill, moves a deposit, enrolls or
cancels a plan, adjusts or reverses, against two prepaid and two postpaid member accounts, and
after every step checks the ledger's invariants, that each balance equals what a plain Python
model of the same steps expects, and that each postpaid account's receivables reconcile with its
amount due (open receivables - unallocated credit == AMOUNT_DUE, every stored open and unallocated
amount equal to its amount less its live allocations). A payment to a postpaid account must pay
the receivables that were open, oldest due date first. The CI profile runs 500 examples
(conftest.py).
"""

import datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from accounts.models import Account
from accounts.tests import factories
from billing import services
from billing.exceptions import BillingError
from billing.models import Allocation, ChargedFee, Credit, Payment, Receivable, Transaction
from billing.selectors import account_balances, active_plan, open_receivables, receivables_audit
from coop import roles

D = Decimal
ZERO = D("0.00")
amounts = st.decimals(min_value=D("0.01"), max_value=D("400.00"), places=2)
shares = st.sampled_from([D("20"), D("35"), D("33.33"), D("50")])
# Accounts 0 and 1 are prepaid, 2 and 3 postpaid.
any_account = st.integers(0, 3)
postpaid_account = st.integers(2, 3)
BASE_DUE = datetime.date(2026, 6, 1)
due_dates = st.integers(-60, 60).map(lambda days: BASE_DUE + datetime.timedelta(days=days))


class Model:
    """What one account's balances must be, kept by hand. `credit` is what the member has: the
    prepaid balance, or minus the amount due on a postpaid account."""

    def __init__(self):
        self.credit = ZERO
        self.arrears = ZERO
        self.deposit = ZERO


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        # Every example runs in a savepoint rolled back at teardown, inside the test's transaction.
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.manager = get_user_model().objects.get(username="machine-manager")
        self.accounts = [factories.account() for _ in range(2)] + [
            factories.account(billing_mode=Account.BillingMode.POSTPAID) for _ in range(2)
        ]
        self.models = {a.pk: Model() for a in self.accounts}
        self.refs = 0

    def teardown(self):
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    def _ref(self):
        self.refs += 1
        return f"ref-{self.refs}"

    @staticmethod
    def _is_postpaid(account):
        return account.billing_mode == Account.BillingMode.POSTPAID

    @rule(i=any_account, amount=amounts, tender=st.sampled_from(["cash", "card", "ach", "online"]))
    def pay(self, i, amount, tender):
        account = self.accounts[i]
        was_open = [(r.pk, r.open_amount) for r in open_receivables(account)]
        payment, created = services.payment_post(
            account=account, amount=amount, tender=tender, reference=self._ref()
        )
        assert created
        assert payment.to_credit + payment.to_arrears + payment.to_amount_due == amount
        if self._is_postpaid(account):
            assert payment.to_credit == ZERO
            # The payment pays what was open, oldest due date first, then oldest id.
            expected, left = [], payment.to_amount_due
            for pk, open_amount in was_open:
                if not left:
                    break
                expected.append((pk, min(left, open_amount)))
                left -= expected[-1][1]
            made = Allocation.objects.filter(credit__payment=payment).order_by("id")
            assert [(a.receivable_id, a.amount) for a in made] == expected
        else:
            assert payment.to_amount_due == ZERO
        plan = active_plan(account) or account.debt_plans.filter(status="completed").first()
        model = self.models[account.pk]
        if plan is None:
            assert payment.to_arrears == ZERO
        assert payment.to_arrears <= model.arrears
        model.arrears -= payment.to_arrears
        model.credit += payment.to_credit + payment.to_amount_due

    @rule(data=st.data())
    def return_payment(self, data):
        posted = list(Payment.objects.filter(status=Payment.Status.POSTED, account__in=self.accounts))
        if not posted:
            return
        payment = data.draw(st.sampled_from(posted))
        services.payment_return(payment=payment, reason="nsf", actor=self.manager)
        model = self.models[payment.account_id]
        model.credit -= payment.to_credit + payment.to_amount_due
        model.arrears += payment.to_arrears
        # Policy fees for a returned payment are charged at once (to the prepaid balance, or due
        # at once on a postpaid account).
        model.credit -= D("15.00") + D("45.00")

    @rule(i=any_account, amount=amounts, due_date=due_dates)
    def fee(self, i, amount, due_date):
        services.fee_charge(
            account=self.accounts[i], code="misc", amount=amount, memo="Test fee", due_date=due_date
        )
        self.models[self.accounts[i].pk].credit -= amount

    @rule(i=postpaid_account, amount=amounts, due_date=due_dates)
    def bill(self, i, amount, due_date):
        receivable, created = services.receivable_add(
            account=self.accounts[i], amount=amount, due_date=due_date, description="Test bill"
        )
        assert created and receivable.due_date == due_date
        self.models[self.accounts[i].pk].credit -= amount

    @rule(data=st.data())
    def waive(self, data):
        open_fees = list(
            ChargedFee.objects.filter(account__in=self.accounts, waiver_transaction__isnull=True)
        )
        if not open_fees:
            return
        fee = data.draw(st.sampled_from(open_fees))
        services.fee_waive(fee=fee, actor=self.manager, reason="goodwill")
        self.models[fee.account_id].credit += fee.amount

    @rule(i=any_account, amount=amounts)
    def deposit(self, i, amount):
        services.deposit_collect(
            account=self.accounts[i], amount=amount, tender="cash", reference=self._ref()
        )
        self.models[self.accounts[i].pk].deposit += amount

    @rule(i=any_account, refund=st.booleans())
    def use_deposit(self, i, refund):
        account, model = self.accounts[i], self.models[self.accounts[i].pk]
        if model.deposit <= 0:
            return
        if refund:
            services.deposit_refund(account=account, actor=self.manager, reason="test")
        else:
            services.deposit_apply(account=account, actor=self.manager, reason="conversion")
            to_arrears = min(model.deposit, max(model.arrears, ZERO))
            model.arrears -= to_arrears
            model.credit += model.deposit - to_arrears
        model.deposit = ZERO

    @rule(i=any_account, amount=amounts)
    def add_arrears(self, i, amount):
        account, model = self.accounts[i], self.models[self.accounts[i].pk]
        services.debt_transfer_to_arrears(account=account, amount=amount, actor=self.manager, reason="old")
        model.arrears += amount
        if self._is_postpaid(account):
            # What is due moves to arrears; the rest is unbilled debt recognised as revenue.
            model.credit += min(amount, max(-model.credit, D("0.00")))

    @rule(i=any_account, share=shares)
    def enroll(self, i, share):
        account, model = self.accounts[i], self.models[self.accounts[i].pk]
        if active_plan(account) is not None or model.arrears <= 0:
            with pytest.raises(BillingError):
                services.plan_enroll(
                    account=account, actor=self.manager, share_percent=share, override_reason="t"
                )
            return
        services.plan_enroll(account=account, actor=self.manager, share_percent=share, override_reason="test")

    @rule(i=any_account)
    def cancel(self, i):
        plan = active_plan(self.accounts[i])
        if plan is not None:
            services.plan_cancel(plan=plan, actor=self.manager, reason="member asked")

    @rule(i=any_account, amount=amounts, credit=st.booleans())
    def adjust(self, i, amount, credit):
        signed = amount if credit else -amount
        services.adjustment_post(account=self.accounts[i], amount=signed, actor=self.manager, reason="test")
        self.models[self.accounts[i].pk].credit += signed

    @precondition(
        lambda self: Transaction.objects.filter(kind="adjustment", reversed_by__isnull=True).exists()
    )
    @rule(data=st.data())
    def reverse_adjustment(self, data):
        txns = list(
            Transaction.objects.filter(
                kind="adjustment",
                reversed_by__isnull=True,
                account__in=self.accounts,
                idempotency_key__startswith="adjustment:",
            )
        )
        if not txns:
            return
        txn = data.draw(st.sampled_from(txns))
        services.adjustment_reverse(adjustment=txn, actor=self.manager, reason="keyed wrong")
        leg = txn.legs.get(ledger_account__account=txn.account)
        self.models[txn.account_id].credit += leg.amount  # undo the credit (leg was -amount)

    @invariant()
    def balances_match_the_model(self):
        for account in self.accounts:
            b, m = account_balances(account), self.models[account.pk]
            if self._is_postpaid(account):
                assert (-b.amount_due, b.prepaid_credit) == (m.credit, ZERO)
            else:
                assert b.prepaid_credit == m.credit
            assert (b.arrears, b.deposit_held) == (m.arrears, m.deposit)
            assert b.arrears >= 0

    @invariant()
    def postpaid_receivables_reconcile_with_the_amount_due(self):
        for account in self.accounts:
            if self._is_postpaid(account):
                assert receivables_audit(account) == []
            else:
                assert not Receivable.objects.filter(account=account).exists()
                assert not Credit.objects.filter(account=account).exists()

    @invariant()
    def ledger_audit_passes(self):
        out = StringIO()
        call_command("ledger_audit", stdout=out)
        assert out.getvalue().strip().splitlines()[-1].startswith("ledger_audit ok")


@pytest.mark.django_db
def test_money_services_keep_every_ledger_invariant():
    factories.staff(roles.MANAGER, "machine-manager")  # the machine's actor (found by name)
    factories.policy(
        effective_from=datetime.date(2000, 1, 1),
        name="machine",
        debt_plan_share_percent=D("35"),
        debt_plan_exempts_initial_minimum=True,
        prepaid_minimum_starting_balance=D("50.00"),
        returned_payment_fee=D("15.00"),
        returned_payment_collection_fee=D("45.00"),
        check_restriction_returns=0,
    )
    run_state_machine_as_test(LedgerMachine)
