"""PostgreSQL guards for the ledger and the money records that the application's own database role
cannot switch off (see README.md, "Database roles": the application logs in as a role that owns
no table; only the owner, who runs migrations, or a superuser can disable a trigger).

1. The zero-sum rule, for every writer. Migration 0008 let a transaction skip the per-leg check by
   setting `coop.ledger_bulk_checked`, a setting anyone may set. Now:

   - every transaction inserted is *open* (a row in `billing_ledger_open`, added by a
     statement-level trigger over the inserted rows), and is checked once, at commit, by a
     deferred constraint trigger on that row: at least two legs summing to zero (one indexed
     query over its legs). The check then deletes the row: the transaction is *closed*;
   - a statement-level trigger on `billing_leg` refuses, over the inserted rows' transition table,
     any leg whose transaction is not open: legs are added only in the database transaction that
     created their transaction, before its check. Nobody can add legs to a posted transaction,
     not even two that cancel each other out;
   - a reversal must mirror, account by account, the transaction it reverses (the same check).

   Why at commit and not at the end of each INSERT: the daily run inserts a chunk's member legs
   and the cooperative's legs in separate statements (with the row locks on the shared revenue
   and tax rows taken between them, billing/daily.py), and bench_daily writes a transaction's legs
   in batches. Why a row per transaction and not one per leg: the daily run posts tens of
   thousands of legs in one transaction; it now pays one check per transaction (the same grouped
   query it used to run itself) plus the cost of the transition table. `SET CONSTRAINTS ... IMMEDIATE`
   only makes the check earlier (and closes the transaction sooner); no setting makes it later or
   skips it. (So the daily run, which runs its legs' foreign-key checks early, names those
   constraints instead of saying ALL: its chunk is half posted at that point.) A check made early
   inside a savepoint that is then rolled back is made again at commit. A transaction inserted
   with no legs fails the same check.

   The trigger functions that read or write `billing_ledger_open` run as the owner (SECURITY
   DEFINER): the application's role has no privilege on that table, and even if granted one,
   a guard trigger refuses any write not made by the table's owner (so the functions and the table
   keep one owner: `REASSIGN OWNED` moves both). Every function here fixes its search
   path (pg_temp last): a temporary table named `billing_leg` would otherwise come first in the
   search path of the session that made it, and a check reading it would see fake legs.

2. TRUNCATE passes row triggers, so every append-only table refuses it with a statement trigger:
   the ledger's (billing_leg, billing_transaction) and the money records' (billing_payment,
   billing_returnedpayment, billing_chargedfee). Django's test runner empties the database with
   TRUNCATE between transactional tests; the test settings do that as the superuser with the
   session's triggers off (conftest.py) — a superuser power, not the application's.

3. Payments, returns and fees are records (deposits are ledger transactions, covered by 1):
   UPDATE and DELETE are refused except for the two one-way changes the services make —
   billing.services.payment_return marks a payment returned (posted -> returned, nothing else,
   and only once the reversal of its transaction exists), billing.services.fee_waive records a
   fee's waiver once (the waiver transaction, which must reverse the fee's own charge, a reason
   and who waived it; nothing else). A column added later is frozen too: rows are compared whole,
   as JSON, less the columns the change may set. `ledger_audit` proves each record against its
   ledger transaction.

4. A ledger account's identity is fixed: only its stored balance changes (ledger_post and the
   daily run move it; `ledger_audit` proves it equals the sum of its legs). Re-pointing a member's
   prepaid credit at another member would move all its money without a leg. The check is an AFTER
   trigger with a WHEN clause: for the daily run's stored-balance UPDATE (a row per account) it is
   one row comparison per row, and nothing is queued.

SQLite has no such triggers; there `billing.ledger` and the services are the only writers.
"""

import importlib

from django.db import migrations

LEDGER_TABLES = ["billing_leg", "billing_transaction"]
RECORD_TABLES = ["billing_payment", "billing_returnedpayment", "billing_chargedfee"]

# {path}: pg_catalog, the schema the tables are in, then pg_temp, fixed in each function (see 1).
FORWARD = """
DROP TRIGGER IF EXISTS billing_leg_balanced ON billing_leg;
DROP TRIGGER IF EXISTS billing_transaction_has_legs ON billing_transaction;
DROP FUNCTION IF EXISTS billing_check_balanced();

-- 1. Open transactions, each checked once at commit.
CREATE TABLE billing_ledger_open (transaction_id bigint PRIMARY KEY);
REVOKE ALL ON billing_ledger_open FROM PUBLIC;

CREATE FUNCTION billing_ledger_open_guard() RETURNS trigger LANGUAGE plpgsql
SET search_path = {path} AS $$
BEGIN
    -- Inside the SECURITY DEFINER functions below, current_user is the owner.
    IF current_user <> (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = TG_RELID) THEN
        RAISE EXCEPTION 'billing_ledger_open is written only by the ledger''s triggers: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER billing_ledger_open_guard BEFORE INSERT OR UPDATE OR DELETE ON billing_ledger_open
    FOR EACH ROW EXECUTE FUNCTION billing_ledger_open_guard();
CREATE TRIGGER billing_ledger_open_no_truncate BEFORE TRUNCATE ON billing_ledger_open
    FOR EACH STATEMENT EXECUTE FUNCTION billing_refuse_change();

CREATE FUNCTION billing_transactions_open() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {path} AS $$
BEGIN
    INSERT INTO billing_ledger_open (transaction_id) SELECT id FROM new_transactions;
    RETURN NULL;
END $$;
CREATE TRIGGER billing_transaction_open AFTER INSERT ON billing_transaction
    REFERENCING NEW TABLE AS new_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION billing_transactions_open();

CREATE FUNCTION billing_legs_of_open_transactions() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {path} AS $$
DECLARE
    posted bigint;
BEGIN
    SELECT l.transaction_id INTO posted
      FROM (SELECT DISTINCT transaction_id FROM new_legs) l
     WHERE NOT EXISTS (SELECT 1 FROM billing_ledger_open o WHERE o.transaction_id = l.transaction_id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transaction % is already posted: its legs are added only in the database '
            'transaction that creates it (post a new transaction instead)', posted
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER billing_leg_of_open_transaction AFTER INSERT ON billing_leg
    REFERENCING NEW TABLE AS new_legs
    FOR EACH STATEMENT EXECUTE FUNCTION billing_legs_of_open_transactions();

CREATE FUNCTION billing_ledger_close() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {path} AS $$
DECLARE
    total numeric;
    n integer;
    original bigint;
BEGIN
    SELECT COALESCE(SUM(amount), 0), COUNT(*) INTO total, n
      FROM billing_leg WHERE transaction_id = NEW.transaction_id;
    IF total <> 0 OR n < 2 THEN
        RAISE EXCEPTION 'ledger transaction % is unbalanced: % legs summing to %', NEW.transaction_id, n, total
            USING ERRCODE = 'check_violation';
    END IF;
    -- A reversal (a returned payment, a waived fee, a reversed adjustment) is the mirror image of
    -- the transaction it reverses, account by account.
    SELECT reverses_id INTO original FROM billing_transaction WHERE id = NEW.transaction_id;
    IF original IS NOT NULL AND EXISTS (
        SELECT 1 FROM billing_leg WHERE transaction_id IN (NEW.transaction_id, original)
         GROUP BY ledger_account_id HAVING SUM(amount) <> 0) THEN
        RAISE EXCEPTION 'ledger transaction % does not mirror transaction %, which it reverses',
            NEW.transaction_id, original USING ERRCODE = 'check_violation';
    END IF;
    DELETE FROM billing_ledger_open WHERE transaction_id = NEW.transaction_id;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER billing_ledger_balanced AFTER INSERT ON billing_ledger_open
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION billing_ledger_close();

-- 2. No TRUNCATE of an append-only table.
CREATE FUNCTION billing_refuse_record_change() RETURNS trigger LANGUAGE plpgsql
SET search_path = {path} AS $$
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        RAISE EXCEPTION 'money records are append-only: % on % #% refused', TG_OP, TG_TABLE_NAME, OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RAISE EXCEPTION 'money records are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;
{truncate_guards}

-- 3. Payments, returns and fees: the services' one-way changes and nothing else.
CREATE FUNCTION billing_payment_guard() RETURNS trigger LANGUAGE plpgsql
SET search_path = {path} AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = 'posted' AND NEW.status = 'returned'
       AND to_jsonb(NEW) - 'status' = to_jsonb(OLD) - 'status'
       AND EXISTS (SELECT 1 FROM billing_transaction r
                    WHERE r.reverses_id = OLD.transaction_id AND r.kind = 'payment_return') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'money records are append-only: % on billing_payment #% refused (a payment is only '
        'marked returned, by payment_return, after its reversal is posted)', TG_OP, OLD.id
        USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER billing_payment_append_only BEFORE UPDATE OR DELETE ON billing_payment
    FOR EACH ROW EXECUTE FUNCTION billing_payment_guard();

CREATE FUNCTION billing_chargedfee_guard() RETURNS trigger LANGUAGE plpgsql
SET search_path = {path} AS $$
DECLARE
    waiver text[] := ARRAY['waiver_transaction_id', 'waive_reason', 'waived_by_id'];
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.waiver_transaction_id IS NULL AND OLD.waive_reason = ''
       AND OLD.waived_by_id IS NULL
       AND NEW.waiver_transaction_id IS NOT NULL AND btrim(NEW.waive_reason) <> ''
       AND NEW.waived_by_id IS NOT NULL
       AND to_jsonb(NEW) - waiver = to_jsonb(OLD) - waiver
       AND EXISTS (SELECT 1 FROM billing_transaction w
                    WHERE w.id = NEW.waiver_transaction_id AND w.reverses_id = OLD.transaction_id
                      AND w.kind = 'fee_waiver') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'money records are append-only: % on billing_chargedfee #% refused (a fee is only '
        'waived once, by fee_waive, with the reversal of its charge)', TG_OP, OLD.id
        USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER billing_chargedfee_append_only BEFORE UPDATE OR DELETE ON billing_chargedfee
    FOR EACH ROW EXECUTE FUNCTION billing_chargedfee_guard();

CREATE TRIGGER billing_returnedpayment_append_only BEFORE UPDATE OR DELETE ON billing_returnedpayment
    FOR EACH ROW EXECUTE FUNCTION billing_refuse_record_change();

-- 4. Ledger accounts: the balance moves, nothing else does.
CREATE FUNCTION billing_ledgeraccount_fixed() RETURNS trigger LANGUAGE plpgsql
SET search_path = {path} AS $$
BEGIN
    RAISE EXCEPTION 'ledger account % (#%) keeps its code, name, kind, purpose, member account and tender; '
        'only its stored balance changes', OLD.code, OLD.id
        USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER billing_ledgeraccount_fixed AFTER UPDATE ON billing_ledgeraccount FOR EACH ROW
    WHEN (ROW(OLD.id, OLD.code, OLD.name, OLD.kind, OLD.purpose, OLD.account_id, OLD.tender)
          IS DISTINCT FROM ROW(NEW.id, NEW.code, NEW.name, NEW.kind, NEW.purpose, NEW.account_id, NEW.tender))
    EXECUTE FUNCTION billing_ledgeraccount_fixed();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS billing_ledgeraccount_fixed ON billing_ledgeraccount;
DROP FUNCTION IF EXISTS billing_ledgeraccount_fixed();
DROP TRIGGER IF EXISTS billing_returnedpayment_append_only ON billing_returnedpayment;
DROP TRIGGER IF EXISTS billing_chargedfee_append_only ON billing_chargedfee;
DROP TRIGGER IF EXISTS billing_payment_append_only ON billing_payment;
DROP FUNCTION IF EXISTS billing_chargedfee_guard();
DROP FUNCTION IF EXISTS billing_payment_guard();
{drop_truncate_guards}
DROP FUNCTION IF EXISTS billing_refuse_record_change();
DROP TRIGGER IF EXISTS billing_leg_of_open_transaction ON billing_leg;
DROP TRIGGER IF EXISTS billing_transaction_open ON billing_transaction;
DROP TABLE IF EXISTS billing_ledger_open;
DROP FUNCTION IF EXISTS billing_ledger_close();
DROP FUNCTION IF EXISTS billing_legs_of_open_transactions();
DROP FUNCTION IF EXISTS billing_transactions_open();
DROP FUNCTION IF EXISTS billing_ledger_open_guard();
"""


def _truncate_guards() -> str:
    """One BEFORE TRUNCATE trigger per append-only table: the ledger's message for its tables."""
    function = dict.fromkeys(LEDGER_TABLES, "billing_refuse_change") | dict.fromkeys(
        RECORD_TABLES, "billing_refuse_record_change"
    )
    return "\n".join(
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}"
        f" FOR EACH STATEMENT EXECUTE FUNCTION {name}();"
        for table, name in function.items()
    )


def forward(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = cursor.fetchone()[0]
    path = f"pg_catalog, {connection.ops.quote_name(schema)}, pg_temp"
    sql = FORWARD.replace("{path}", path).replace("{truncate_guards}", _truncate_guards())
    schema_editor.execute(sql, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    drops = "\n".join(
        f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};" for table in LEDGER_TABLES + RECORD_TABLES
    )
    schema_editor.execute(BACKWARD.replace("{drop_truncate_guards}", drops), params=None)
    # Back to 0008: the per-leg deferred check with its bulk-check setting.
    initial = importlib.import_module("billing.migrations.0002_ledger_triggers")
    bulk = importlib.import_module("billing.migrations.0008_ledger_bulk_check")
    check = initial.FORWARD[initial.FORWARD.index("CREATE OR REPLACE FUNCTION billing_check_balanced") :]
    check = check[: check.index("CREATE CONSTRAINT TRIGGER")]
    schema_editor.execute(check, params=None)
    schema_editor.execute(bulk.FORWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0012_deduction_fewer_checks_per_row")]

    operations = [migrations.RunPython(forward, backward)]
