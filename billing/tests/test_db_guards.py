"""The ledger's and the money records' guards in PostgreSQL (billing/migrations/0013), tried the way
an attacker with the application's database role would try them: raw SQL, the old bulk-check
setting, TRUNCATE, a temporary table shadowing a ledger table, and the role's own privileges.

Every test here needs PostgreSQL: SQLite has no triggers, and there `billing.ledger` and the
services are the only writers."""

import datetime
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from accounts.tests import factories
from billing import services
from billing.ledger import coop_ledger_account, ledger_post, ledger_reverse, member_ledger_account
from billing.models import ChargedFee, LedgerAccount, Leg, Payment, RefundPayout, ReturnedPayment, Transaction

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
P = LedgerAccount.Purpose
D = Decimal
DAY = datetime.date(2026, 11, 20)
APPEND_ONLY_TABLES = [
    "billing_leg",
    "billing_transaction",
    "billing_payment",
    "billing_returnedpayment",
    "billing_chargedfee",
    "billing_refundpayout",
    "billing_deduction",
]


def sql(statement, params=None):
    with connection.cursor() as c:
        c.execute(statement, params)
        return c.fetchall() if c.description else None


def refused(statement, params=None, *, match):
    """Run `statement` in its own savepoint and assert PostgreSQL refuses it with `match`."""
    with pytest.raises(DatabaseError, match=match), transaction.atomic():
        sql(statement, params)


def raw_transaction(key):
    return sql(
        "INSERT INTO billing_transaction (kind, effective_date, posted_at, memo, idempotency_key)"
        " VALUES ('adjustment', %s, now(), '', %s) RETURNING id",
        [DAY, key],
    )[0][0]


def insert_legs(txn, *pairs):
    """Insert (ledger account, amount) legs into transaction `txn` in one raw statement."""
    values = ", ".join(["(%s, %s, %s)"] * len(pairs))
    params = [v for la, amount in pairs for v in (txn, la.pk, amount)]
    sql(f"INSERT INTO billing_leg (transaction_id, ledger_account_id, amount) VALUES {values}", params)


@pytest.fixture
def books():
    account = factories.account()
    return {
        "account": account,
        "credit": member_ledger_account(account, P.PREPAID_CREDIT),
        "cash": coop_ledger_account(P.CASH_CLEARING, tender="cash"),
    }


# --- Point 4: the zero-sum check cannot be skipped ------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_old_bulk_check_setting_no_longer_lets_a_one_legged_million_commit(books):
    with pytest.raises(DatabaseError, match="unbalanced: 1 legs summing to 1000000.00"), transaction.atomic():
        sql("SET LOCAL coop.ledger_bulk_checked = 'on'")
        txn = raw_transaction("million")
        insert_legs(txn, (books["credit"], 1000000))
    assert not Transaction.objects.exists() and not Leg.objects.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_transaction_with_no_legs_cannot_commit(books):
    with pytest.raises(DatabaseError, match="unbalanced: 0 legs summing to 0"), transaction.atomic():
        raw_transaction("empty")
    assert not Transaction.objects.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_legs_cannot_be_added_to_a_transaction_already_posted(books):
    txn, _ = ledger_post(
        kind=Transaction.Kind.ADJUSTMENT,
        legs=[(books["cash"], D("10.00")), (books["credit"], D("-10.00"))],
        idempotency_key="posted",
        effective_date=DAY,
    )
    # Two legs that balance each other would keep the sum at zero, but they would rewrite history.
    with pytest.raises(DatabaseError, match=f"transaction {txn.pk} is already posted"), transaction.atomic():
        insert_legs(txn.pk, (books["cash"], 5), (books["credit"], -5))
    assert Leg.objects.filter(transaction=txn).count() == 2


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_reversal_must_mirror_what_it_reverses(books):
    original, _ = ledger_post(
        kind=Transaction.Kind.ADJUSTMENT,
        legs=[(books["cash"], D("25.00")), (books["credit"], D("-25.00"))],
        idempotency_key="original",
        effective_date=DAY,
    )
    # Balanced, but it gives back only a cent of the $25.
    with (
        pytest.raises(DatabaseError, match=f"does not mirror transaction {original.pk}"),
        transaction.atomic(),
    ):
        ledger_post(
            kind=Transaction.Kind.REVERSAL,
            legs=[(books["cash"], D("-0.01")), (books["credit"], D("0.01"))],
            idempotency_key="not-a-mirror",
            effective_date=DAY,
            reverses=original,
        )
    assert ledger_reverse(original=original).legs.count() == 2


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_balanced_transaction_whose_legs_come_in_several_statements_commits(books):
    # The daily run inserts a chunk's member legs, then the cooperative's legs.
    with transaction.atomic():
        txn = raw_transaction("two-statements")
        for amount, la in ((D("7.00"), books["cash"]), (D("-7.00"), books["credit"])):
            insert_legs(txn, (la, amount))
    assert Leg.objects.filter(transaction_id=txn).count() == 2
    assert sql("SELECT count(*) FROM billing_ledger_open") == [(0,)]  # nothing left open


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_checking_constraints_early_only_closes_the_transaction_sooner(books):
    with pytest.raises(DatabaseError, match="unbalanced: 0 legs"), transaction.atomic():
        sql("SET CONSTRAINTS ALL IMMEDIATE")
        raw_transaction("immediate")  # checked at once: it has no legs yet
    with pytest.raises(DatabaseError, match="already posted"), transaction.atomic():
        txn = raw_transaction("checked-early")
        insert_legs(txn, (books["cash"], 3), (books["credit"], -3))
        sql("SET CONSTRAINTS ALL IMMEDIATE")  # checked and closed here
        insert_legs(txn, (books["cash"], 900))
    assert not Transaction.objects.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_check_made_early_inside_a_savepoint_that_is_rolled_back_is_made_again(books):
    # The check passes on legs that the savepoint then takes away; the transaction stays.
    with pytest.raises(DatabaseError, match="unbalanced: 0 legs"), transaction.atomic():
        txn = raw_transaction("savepoint")
        with pytest.raises(DatabaseError, match="rolled back on purpose"), transaction.atomic():
            insert_legs(txn, (books["cash"], 4), (books["credit"], -4))
            sql("SET CONSTRAINTS ALL IMMEDIATE")
            assert sql("SELECT count(*) FROM billing_ledger_open") == [(0,)]
            raise DatabaseError("rolled back on purpose")
        sql("SET CONSTRAINTS ALL DEFERRED")
    assert not Transaction.objects.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_temporary_table_named_like_the_ledger_does_not_fool_the_check(books):
    # A temporary table comes first in every session's search path unless a function says
    # otherwise: a check that read "billing_leg" would read these two balanced fakes instead.
    with pytest.raises(DatabaseError, match="unbalanced: 1 legs"), transaction.atomic():
        txn = raw_transaction("shadowed")
        sql(
            f"INSERT INTO {connection.ops.quote_name(_schema())}.billing_leg"
            " (transaction_id, ledger_account_id, amount) VALUES (%s, %s, 1000000)",
            [txn, books["credit"].pk],
        )
        sql("CREATE TEMP TABLE billing_leg (transaction_id bigint, amount numeric) ON COMMIT DROP")
        sql("CREATE TEMP TABLE billing_ledger_open (transaction_id bigint) ON COMMIT DROP")
        sql("INSERT INTO billing_leg VALUES (%s, 1), (%s, -1)", [txn, txn])
    assert not Transaction.objects.exists()


def _schema():
    return sql("SELECT current_schema()")[0][0]


def test_truncate_is_refused_on_every_append_only_table():
    for table in APPEND_ONLY_TABLES:
        refused(f"TRUNCATE {table} CASCADE", match=f"append-only: TRUNCATE on {table} refused")
    # A TRUNCATE that reaches them by cascading from a table they refer to is refused too.
    refused("TRUNCATE accounts_account CASCADE", match="append-only: TRUNCATE on billing_")
    refused("TRUNCATE billing_ledger_open", match="TRUNCATE on billing_ledger_open refused")


def test_a_ledger_account_keeps_its_identity_and_only_its_balance_moves(books):
    credit, other = books["credit"], factories.account()
    refused(
        "UPDATE billing_ledgeraccount SET account_id = %s WHERE id = %s",
        [other.pk, credit.pk],
        match=f"ledger account {credit.code} .* only its stored balance changes",
    )
    refused(
        "UPDATE billing_ledgeraccount SET purpose = 'arrears' WHERE id = %s", [credit.pk], match="only its"
    )
    sql("UPDATE billing_ledgeraccount SET balance = balance + 1 WHERE id = %s", [credit.pk])


# --- Point 5: payments, returns and fees are records ----------------------------------------------


@pytest.fixture
def records(manager):
    """A payment returned (with its fee charged), another payment posted, a fee waived, a deposit."""
    factories.policy(returned_payment_fee=D("15.00"))
    account = factories.account()
    kept, _ = services.payment_post(account=account, amount=D("40.00"), tender="cash", reference="kept")
    bounced, _ = services.payment_post(account=account, amount=D("25.00"), tender="check", reference="101")
    returned = services.payment_return(payment=bounced, reason="nsf", actor=manager)
    waived = services.fee_charge(account=account, code="x", amount=D("9.00"), memo="Trip charge")
    services.fee_waive(fee=waived, actor=manager, reason="our mistake")
    deposit = services.deposit_collect(account=account, amount=D("60.00"), tender="cash", reference="dep")
    refund = services.deposit_refund(account=account, actor=manager, reason="moved away", amount=D("10.00"))
    services.refund_pay(refund=refund, actor=manager, reference="5001")
    return {
        "payout": RefundPayout.objects.get(refund=refund),
        "payment": kept,
        "returned": returned,
        "fee": ChargedFee.objects.get(code="returned-payment"),
        "waived": ChargedFee.objects.get(pk=waived.pk),
        "deposit": deposit,
    }


def test_a_payment_cannot_be_changed_or_deleted(records):
    pk = records["payment"].pk
    for statement in (
        "UPDATE billing_payment SET amount = 9999 WHERE id = %s",
        "UPDATE billing_payment SET to_credit = 0, to_arrears = to_credit WHERE id = %s",
        "UPDATE billing_payment SET reference = 'other' WHERE id = %s",
        "DELETE FROM billing_payment WHERE id = %s",
    ):
        refused(statement, [pk], match=f"append-only: (UPDATE|DELETE) on billing_payment #{pk} refused")
    assert Payment.objects.get(pk=pk).amount == D("40.00")


def test_a_payment_is_marked_returned_only_with_its_reversal_and_never_back(records):
    pk = records["payment"].pk
    # No reversal of its transaction has been posted: payment_return posts one first.
    refused("UPDATE billing_payment SET status = 'returned' WHERE id = %s", [pk], match="append-only")
    back = records["returned"].payment_id
    refused("UPDATE billing_payment SET status = 'posted' WHERE id = %s", [back], match="append-only")
    refused(
        "UPDATE billing_payment SET status = 'returned', amount = 1 WHERE id = %s",
        [back],
        match="append-only",
    )


def test_a_return_cannot_be_changed_or_deleted(records):
    pk = records["returned"].pk
    refused("UPDATE billing_returnedpayment SET note = 'x' WHERE id = %s", [pk], match="append-only")
    refused("DELETE FROM billing_returnedpayment WHERE id = %s", [pk], match="append-only")
    assert ReturnedPayment.objects.filter(pk=pk).exists()


def test_a_refund_payout_cannot_be_changed_or_deleted(records):
    pk = records["payout"].pk
    refused("UPDATE billing_refundpayout SET check_number = '5002' WHERE id = %s", [pk], match="append-only")
    refused("DELETE FROM billing_refundpayout WHERE id = %s", [pk], match="append-only")
    assert RefundPayout.objects.filter(pk=pk, check_number="5001").exists()


def test_a_daily_deduction_cannot_be_changed_or_deleted():
    """What the member was charged for a day, and the run's proof the day was charged once."""
    import time_machine

    from billing.daily import daily_run
    from billing.models import Deduction
    from billing.tests import factories as bf

    factories.policy(effective_from=datetime.date(2020, 1, 1))
    bf.tariff(customer_charge=D("31.00"))
    account = bf.prepaid_account()
    services.payment_post(account=account, amount=D("50.00"), tender="cash", reference="start")
    bf.read(account.meter, DAY, D("20"))
    with time_machine.travel("2026-11-21 18:00:00+00:00", tick=False):
        daily_run(day=DAY)
    row = Deduction.objects.get(account=account, service_day=DAY)
    refused("UPDATE billing_deduction SET total = 0 WHERE id = %s", [row.pk], match="append-only")
    refused("DELETE FROM billing_deduction WHERE id = %s", [row.pk], match="append-only")
    assert Deduction.objects.get(pk=row.pk).total == row.total


def test_a_fee_can_only_be_waived_once_by_its_own_reversal(records, manager):
    fee, waived = records["fee"], records["waived"]
    refused("UPDATE billing_chargedfee SET amount = 1 WHERE id = %s", [fee.pk], match="append-only")
    refused("DELETE FROM billing_chargedfee WHERE id = %s", [fee.pk], match="append-only")
    # Waived with some other transaction than the reversal of its own charge:
    refused(
        "UPDATE billing_chargedfee SET waiver_transaction_id = %s, waive_reason = 'x', waived_by_id = %s"
        " WHERE id = %s",
        [records["deposit"].pk, manager.pk, fee.pk],
        match="append-only",
    )
    # A waiver is never undone or reworded.
    refused(
        "UPDATE billing_chargedfee SET waiver_transaction_id = NULL, waive_reason = '', waived_by_id = NULL"
        " WHERE id = %s",
        [waived.pk],
        match="append-only",
    )
    refused(
        "UPDATE billing_chargedfee SET waive_reason = 'other' WHERE id = %s", [waived.pk], match="append-only"
    )
    # The service's own waiver still works.
    services.fee_waive(fee=fee, actor=manager, reason="goodwill")
    fee.refresh_from_db()
    assert fee.is_waived and fee.waive_reason == "goodwill"


def test_a_deposit_transaction_cannot_be_changed_or_deleted(records):
    txn = records["deposit"]
    refused("UPDATE billing_transaction SET memo = 'x' WHERE id = %s", [txn.pk], match="append-only")
    refused("DELETE FROM billing_leg WHERE transaction_id = %s", [txn.pk], match="append-only")


# --- The application's own database role ----------------------------------------------------------


def readme_grants(role: str, owner: str) -> list[str]:
    """The GRANTs README.md's "Database roles" section tells the owner to run, for `role`."""
    text = (Path(settings.BASE_DIR) / "README.md").read_text()
    section = text.split("## Database roles", 1)[1].split("\n## ", 1)[0]
    block = next(b for b in re.findall(r"```sql\n(.*?)```", section, re.S) if "GRANT" in b)
    block = re.sub(r"\bcoop_app\b", role, re.sub(r"\bcoop_owner\b", owner, block))
    lines = [line for line in block.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


@pytest.fixture
def app_role():
    """A role with exactly the README's grants (roles are per cluster: the name is this test
    database's), dropped afterwards. The test acts as it with SET ROLE."""
    role = f"coop_app_{connection.settings_dict['NAME']}"[:63]
    owner = sql("SELECT current_user")[0][0]
    sql(f"DROP ROLE IF EXISTS {role}")
    sql(f"CREATE ROLE {role} NOLOGIN")
    try:
        for statement in readme_grants(role, owner):
            sql(statement)
        yield role
    finally:
        sql("RESET ROLE")
        sql(f"DROP OWNED BY {role}")
        sql(f"DROP ROLE {role}")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_application_role_posts_money_but_cannot_switch_any_guard_off(app_role, manager):
    factories.policy()
    account = factories.account()
    cash = coop_ledger_account(P.CASH_CLEARING, tender="cash")
    credit = member_ledger_account(account, P.PREPAID_CREDIT)
    sql(f"SET ROLE {app_role}")
    assert sql("SELECT current_user") == [(app_role,)]

    # What the application does, it can do: services commit as this role.
    payment, _ = services.payment_post(account=account, amount=D("30.00"), tender="cash", reference="r1")
    services.payment_return(payment=payment, reason="nsf", actor=manager)
    fee = services.fee_charge(account=account, code="x", amount=D("5.00"), memo="Trip")
    services.fee_waive(fee=fee, actor=manager, reason="goodwill")
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.RETURNED

    # An unbalanced transaction does not commit.
    with pytest.raises(DatabaseError, match="unbalanced"), transaction.atomic():
        txn = raw_transaction("role-unbalanced")
        insert_legs(txn, (credit, 1000000))
    # Nothing switches the guards off.
    for statement, match in [
        ("TRUNCATE billing_leg", "permission denied"),
        ("ALTER TABLE billing_leg DISABLE TRIGGER USER", "must be owner"),
        ("ALTER TABLE billing_payment DISABLE TRIGGER ALL", "must be owner"),
        ("DROP TRIGGER billing_leg_append_only ON billing_leg", "must be owner"),
        ("SET session_replication_role = replica", "permission denied"),
        ("INSERT INTO billing_ledger_open VALUES (1)", "permission denied"),
        ("UPDATE billing_leg SET amount = amount * 2", "append-only"),
        ("DELETE FROM billing_leg", "append-only"),
        ("UPDATE billing_payment SET amount = 9999", "append-only"),
        ("DELETE FROM billing_payment", "append-only"),
        ("DELETE FROM billing_returnedpayment", "append-only"),
        ("UPDATE billing_chargedfee SET amount = 1", "append-only"),
        ("UPDATE billing_ledgeraccount SET account_id = NULL", "only its stored balance changes"),
    ]:
        refused(statement, match=match)
    assert Leg.objects.filter(ledger_account=cash).count() == 2


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_careless_grant_of_truncate_or_of_the_open_table_still_opens_nothing(app_role, books):
    sql(f"GRANT TRUNCATE ON ALL TABLES IN SCHEMA {connection.ops.quote_name(_schema())} TO {app_role}")
    sql(f"GRANT ALL ON billing_ledger_open TO {app_role}")
    sql(f"SET ROLE {app_role}")
    refused("TRUNCATE billing_leg, billing_transaction CASCADE", match="append-only: TRUNCATE")
    refused("TRUNCATE billing_payment CASCADE", match="append-only: TRUNCATE")
    # Marking an old transaction open again, to add legs to it, is the ledger's triggers' business.
    txn, _ = ledger_post(
        kind=Transaction.Kind.ADJUSTMENT,
        legs=[(books["cash"], D("10.00")), (books["credit"], D("-10.00"))],
        idempotency_key="old",
        effective_date=DAY,
    )
    refused("INSERT INTO billing_ledger_open VALUES (%s)", [txn.pk], match="written only by the ledger")
    with pytest.raises(DatabaseError, match="written only by the ledger"), transaction.atomic():
        raw_transaction("open")  # open until its check at commit, which deleting its row would skip
        sql("DELETE FROM billing_ledger_open")
