"""Idempotency keys never swallow money (issue 5, point 7).

Every service that takes an external reference (a processor or check reference, a cheque number, a
bill's name) returns the earlier posting when the same reference comes again for the same money,
and refuses it, naming the earlier record, when it comes with another account, amount or kind.
The rule lives in one helper, `billing.ledger.ledger_same_as_before`, which `ledger_post` also
applies to every key it is given.
"""

import datetime
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from accounts.models import Account
from accounts.tests import factories
from billing import services
from billing.exceptions import DuplicateReference
from billing.ledger import coop_ledger_account, ledger_post, member_ledger_account
from billing.models import LedgerAccount, Payment, Receivable, RefundPayout, Transaction
from billing.selectors import account_balances

D = Decimal
P = LedgerAccount.Purpose
POSTPAID = Account.BillingMode.POSTPAID
# Friday November 20, 2026, 10:00 at the cooperative.
NOW = datetime.datetime(2026, 11, 20, 16, 0, tzinfo=datetime.UTC)


pytestmark = [
    pytest.mark.django_db,
    pytest.mark.policy(prepaid_minimum_payment=D("10.00")),
    pytest.mark.usefixtures("policy"),
    pytest.mark.frozen(NOW),
]


def _snapshot():
    """Everything a posting would change."""
    return (Transaction.objects.count(), Payment.objects.count(), Receivable.objects.count())


# --- Deposits -------------------------------------------------------------------------------------


def test_the_same_deposit_entered_again_returns_the_first_and_posts_nothing(clerk):
    account = factories.account()
    first = services.deposit_collect(account=account, amount="250.00", tender="check", reference="CK 77")
    before = _snapshot()

    again = services.deposit_collect(
        account=account, amount="250.00", tender="check", reference=" CK 77 ", actor=clerk
    )

    assert again == first
    assert _snapshot() == before
    assert account_balances(account).deposit_held == D("250.00")


@pytest.mark.parametrize(
    "change",
    [{"account": "other"}, {"amount": "60.00"}],
    ids=["another account", "another amount"],
)
def test_a_deposit_reference_already_used_for_other_money_is_refused_naming_the_first(change):
    account, other = factories.account(), factories.account()
    first = services.deposit_collect(account=account, amount="250.00", tender="check", reference="CK 77")
    before = _snapshot()
    target = other if change.get("account") else account

    with pytest.raises(DuplicateReference) as refused:
        services.deposit_collect(
            account=target, amount=change.get("amount", "250.00"), tender="check", reference="CK 77"
        )

    assert str(refused.value) == (
        f"Check reference CK 77 was already posted as transaction #{first.pk}, deposit collected "
        f"($250.00 to account {account.number} on November 20, 2026: Deposit, Check CK 77)."
    )
    assert _snapshot() == before
    assert account_balances(other).deposit_held == D("0.00")


def test_the_admin_shows_the_refusal_not_deposit_collected(client, clerk):
    """The issue's case: $60 on one account with the reference of a $250 deposit on another."""
    first_account, account = factories.account(), factories.account()
    first = services.deposit_collect(
        account=first_account, amount="250.00", tender="cash", reference="BOOK-12", actor=clerk
    )
    client.force_login(clerk)
    url = reverse("admin:billing_deposit_collect", args=[account.pk])
    data = {"amount": "60.00", "tender": "cash", "reference": "BOOK-12"}

    response = client.post(url, data, follow=True)

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        f"Cash reference BOOK-12 was already posted as transaction #{first.pk}, deposit collected "
        f"($250.00 to account {first_account.number} on November 20, 2026: Deposit, Cash BOOK-12)."
    ]
    assert not any("Deposit collected" in str(m) for m in get_messages(response.wsgi_request))
    assert Transaction.objects.count() == 1
    assert account_balances(account).deposit_held == D("0.00")


def test_the_admin_says_a_repeated_deposit_was_already_collected(client, clerk):
    account = factories.account()
    client.force_login(clerk)
    url = reverse("admin:billing_deposit_collect", args=[account.pk])
    data = {"amount": "60.00", "tender": "cash", "reference": "BOOK-13"}
    client.post(url, data, follow=True)  # shows (and so uses up) "Deposit collected"

    response = client.post(url, data, follow=True)

    said = [str(m) for m in get_messages(response.wsgi_request)]
    assert said == [
        "Deposit, Cash BOOK-13 was already collected on November 20, 2026. Nothing new was posted."
    ]
    assert Transaction.objects.count() == 1
    assert account_balances(account).deposit_held == D("60.00")


# --- Payments -------------------------------------------------------------------------------------


def test_the_same_payment_again_returns_its_receipt_and_another_is_refused_naming_it():
    account, other = factories.account(), factories.account()
    first, created = services.payment_post(account=account, amount="50.00", tender="ach", reference="A-1")
    before = _snapshot()

    assert services.payment_post(account=account, amount="50.00", tender="ach", reference="A-1") == (
        first,
        False,
    )
    for target, amount in ((other, "50.00"), (account, "51.00")):
        with pytest.raises(DuplicateReference, match=f"as receipt {first.receipt_number} "):
            services.payment_post(account=target, amount=amount, tender="ach", reference="A-1")
    assert created and _snapshot() == before


def test_a_check_already_posted_as_a_payment_cannot_be_collected_as_a_deposit_too():
    """One check, one posting: the same tender and reference as a payment and as a deposit would
    count one $250 check twice (their keys name their kinds, so the ledger alone takes both)."""
    account, other = factories.account(), factories.account()
    first, _ = services.payment_post(account=account, amount="250.00", tender="check", reference="CK 88")
    before = _snapshot()

    for target in (account, other):
        with pytest.raises(DuplicateReference) as refused:
            services.deposit_collect(account=target, amount="250.00", tender="check", reference="CK 88")
        assert str(refused.value) == (
            f"Check reference CK 88 was already posted as receipt {first.receipt_number} "
            f"($250.00 to account {account.number} on November 20, 2026)."
        )
    assert _snapshot() == before
    assert account_balances(account).deposit_held == D("0.00")


def test_a_check_already_collected_as_a_deposit_cannot_be_posted_as_a_payment_too():
    account = factories.account()
    first = services.deposit_collect(account=account, amount="250.00", tender="check", reference="CK 89")
    before = _snapshot()

    with pytest.raises(DuplicateReference) as refused:
        services.payment_post(account=account, amount="250.00", tender="check", reference="CK 89")

    assert str(refused.value) == (
        f"Check reference CK 89 was already posted as transaction #{first.pk}, deposit collected "
        f"($250.00 to account {account.number} on November 20, 2026: Deposit, Check CK 89)."
    )
    assert _snapshot() == before
    # The same reference with another tender is another piece of paper.
    services.payment_post(account=account, amount="250.00", tender="ach", reference="CK 89")


# --- Refund payouts -------------------------------------------------------------------------------


@pytest.fixture
def refund(manager):
    account = factories.account(billing_mode=POSTPAID)
    services.deposit_collect(account=account, amount="100.00", tender="cash", reference="d-1")
    return services.deposit_refund(account=account, actor=manager, reason="moved away")


def test_a_refund_paid_again_with_the_same_check_returns_the_payout(manager, refund):
    payout = services.refund_pay(refund=refund, actor=manager, reference="CK 9001")
    before = _snapshot()

    assert services.refund_pay(refund=refund, actor=manager, reference="CK 9001") == payout
    assert _snapshot() == before


def test_a_refund_paid_again_with_another_check_is_refused_naming_the_first_payout(manager, refund):
    payout = services.refund_pay(refund=refund, actor=manager, reference="CK 9001")
    before = _snapshot()

    with pytest.raises(DuplicateReference) as refused:
        services.refund_pay(refund=refund, actor=manager, reference="CK 9002")

    assert str(refused.value) == (
        f"The payout of refund #{refund.pk} was already posted as transaction #{payout.pk}, credit refund "
        f"($100.00 to account {refund.account.number} on November 20, 2026: "
        f"Refund #{refund.pk} paid, check CK 9001)."
    )
    assert _snapshot() == before


def test_a_check_that_paid_one_refund_cannot_pay_another(manager, refund):
    payout = services.refund_pay(refund=refund, actor=manager, reference="CK 9001")
    account = factories.account(billing_mode=POSTPAID)
    services.deposit_collect(account=account, amount="100.00", tender="cash", reference="d-2")
    second = services.deposit_refund(account=account, actor=manager, reason="moved away")
    before = _snapshot()

    with pytest.raises(DuplicateReference) as refused:
        services.refund_pay(refund=second, actor=manager, reference="CK 9001")

    assert str(refused.value) == (
        f"Check CK 9001 already paid out refund #{refund.pk} as transaction #{payout.pk} "
        "($100.00 on November 20, 2026)."
    )
    assert _snapshot() == before
    assert RefundPayout.objects.get().refund == refund


def test_a_payout_is_not_a_refund_to_pay_out(manager, refund):
    payout = services.refund_pay(refund=refund, actor=manager, reference="CK 9001")
    with pytest.raises(services.BillingError, match=f"#{payout.pk} is the payout of a refund"):
        services.refund_pay(refund=payout, actor=manager, reference="CK 9003")


# --- Bills ----------------------------------------------------------------------------------------


def test_a_bill_key_used_again_for_another_account_or_amount_is_refused_naming_the_bill():
    account, other = factories.account(billing_mode=POSTPAID), factories.account(billing_mode=POSTPAID)
    due = datetime.date(2026, 12, 10)
    bill, _ = services.receivable_add(
        account=account, amount="80.00", due_date=due, description="Nov", idempotency_key="bill:n"
    )
    before = _snapshot()

    assert services.receivable_add(
        account=account, amount="80.00", due_date=due, description="Nov", idempotency_key="bill:n"
    ) == (bill, False)
    for target, amount in ((other, "80.00"), (account, "8.00")):
        with pytest.raises(DuplicateReference) as refused:
            services.receivable_add(
                account=target, amount=amount, due_date=due, description="Nov", idempotency_key="bill:n"
            )
        assert str(refused.value) == (
            f"Bill bill:n was already posted as transaction #{bill.transaction_id}, postpaid bill "
            f"($80.00 to account {account.number} on November 20, 2026: Nov)."
        )
    assert _snapshot() == before


# --- The ledger's own guard: any key, any service -------------------------------------------------


def _deposit_legs(account, amount, tender="cash"):
    return [
        (coop_ledger_account(P.CASH_CLEARING, tender=tender), D(amount)),
        (member_ledger_account(account, P.DEPOSIT_HELD), -D(amount)),
    ]


@pytest.mark.parametrize("change", ["account", "amount", "kind", "tender"])
def test_ledger_post_refuses_a_key_already_used_for_other_money(change):
    account, other = factories.account(), factories.account()
    same = {"kind": Transaction.Kind.DEPOSIT_COLLECT, "account": account, "amount": "40.00", "tender": "cash"}
    first, _ = ledger_post(
        legs=_deposit_legs(account, "40.00"),
        kind=same["kind"],
        account=account,
        idempotency_key="k-1",
        effective_date=datetime.date(2026, 11, 20),
    )
    changed = {
        **same,
        **{
            "account": {"account": other},
            "amount": {"amount": "41.00"},
            "kind": {"kind": Transaction.Kind.PAYMENT},
            "tender": {"tender": "check"},
        }[change],
    }
    before = _snapshot()

    with pytest.raises(DuplicateReference, match=f"Key k-1 was already posted as transaction #{first.pk}"):
        ledger_post(
            legs=_deposit_legs(changed["account"], changed["amount"], changed["tender"]),
            kind=changed["kind"],
            account=changed["account"],
            idempotency_key="k-1",
            effective_date=datetime.date(2026, 11, 20),
        )

    assert _snapshot() == before
    again, created = ledger_post(
        legs=_deposit_legs(account, "40.00"),
        kind=same["kind"],
        account=account,
        idempotency_key="k-1",
        effective_date=datetime.date(2026, 11, 20),
    )
    assert (again, created) == (first, False)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_clerks_racing_one_reference_onto_two_accounts_post_one_deposit_and_refuse_the_other():
    """Each clerk locks only their own account, so both pass the first check; the unique key
    stops the second insert, and `ledger_post` then refuses it rather than return the first."""
    import threading

    from django.db import connection

    accounts = [factories.account(), factories.account()]
    barrier, outcomes = threading.Barrier(2), []

    def clerk(account, amount):
        try:
            barrier.wait()
            services.deposit_collect(account=account, amount=amount, tender="check", reference="CK 5")
            outcomes.append("posted")
        except DuplicateReference as exc:
            outcomes.append(str(exc))
        finally:
            connection.close()

    threads = [
        threading.Thread(target=clerk, args=(a, amount))
        for a, amount in zip(accounts, ("250.00", "60.00"), strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(outcomes)[1] == "posted"
    assert "was already posted as transaction #" in sorted(outcomes)[0]
    assert Transaction.objects.filter(kind=Transaction.Kind.DEPOSIT_COLLECT).count() == 1
    assert sum(account_balances(a).deposit_held for a in accounts) in (D("250.00"), D("60.00"))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_check_posted_as_a_payment_and_a_deposit_at_the_same_moment_posts_once(monkeypatch):
    """The payment's and the deposit's keys differ, so the unique key cannot stop the second: the
    clerk posting the payment is still inside its database transaction (its receipt being
    announced) when the other clerk's deposit checks the reference."""
    import threading
    import time

    from django.db import connection

    from billing.events import PaymentPosted
    from coop import events

    payer_account, depositor_account = factories.account(), factories.account()
    paid, outcomes = threading.Event(), []
    publish = events.publish

    def slow_publish(event):
        publish(event)
        if isinstance(event, PaymentPosted):
            paid.set()
            time.sleep(1.0)  # the payment is posted, not yet committed

    monkeypatch.setattr(events, "publish", slow_publish)
    # No one hears the payment: its receipt, queued after the commit, would hold the payment's
    # clerk back from recording "posted" while the other clerk is already refused.
    monkeypatch.setattr(events, "_subscribers", {})

    def run(post):
        try:
            post()
            outcomes.append("posted")
        except DuplicateReference as exc:
            outcomes.append(str(exc))
        finally:
            connection.close()

    def payment():
        services.payment_post(account=payer_account, amount="250.00", tender="check", reference="CK 6")

    def deposit():
        assert paid.wait(timeout=20)
        services.deposit_collect(account=depositor_account, amount="250.00", tender="check", reference="CK 6")

    threads = [threading.Thread(target=run, args=(post,)) for post in (payment, deposit)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert outcomes[0] == "posted"
    assert outcomes[1].startswith("Check reference CK 6 was already posted as receipt R")
    assert account_balances(depositor_account).deposit_held == D("0.00")
