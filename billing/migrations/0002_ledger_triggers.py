"""PostgreSQL enforces the ledger's two rules itself, whatever writes to it:

1. the legs of a transaction sum to zero (and there are at least two), checked at commit by a
   deferred constraint trigger, so a transaction's legs can be inserted one by one;
2. posted legs and transactions are never updated or deleted.

SQLite has no deferred triggers; there `billing.ledger` is the only writer and checks rule 1.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION billing_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % refused (post a reversing transaction instead)',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$ LANGUAGE plpgsql;

CREATE TRIGGER billing_leg_append_only BEFORE UPDATE OR DELETE ON billing_leg
    FOR EACH ROW EXECUTE FUNCTION billing_refuse_change();
CREATE TRIGGER billing_transaction_append_only BEFORE UPDATE OR DELETE ON billing_transaction
    FOR EACH ROW EXECUTE FUNCTION billing_refuse_change();

CREATE OR REPLACE FUNCTION billing_check_balanced() RETURNS trigger AS $$
DECLARE
    txn_id bigint;
    total numeric;
    n integer;
BEGIN
    IF TG_TABLE_NAME = 'billing_leg' THEN
        txn_id := NEW.transaction_id;
    ELSE
        txn_id := NEW.id;
    END IF;
    SELECT COALESCE(SUM(amount), 0), COUNT(*) INTO total, n FROM billing_leg WHERE transaction_id = txn_id;
    IF total <> 0 OR n < 2 THEN
        RAISE EXCEPTION 'ledger transaction % is unbalanced: % legs summing to %', txn_id, n, total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER billing_leg_balanced AFTER INSERT ON billing_leg
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION billing_check_balanced();
CREATE CONSTRAINT TRIGGER billing_transaction_has_legs AFTER INSERT ON billing_transaction
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION billing_check_balanced();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS billing_transaction_has_legs ON billing_transaction;
DROP TRIGGER IF EXISTS billing_leg_balanced ON billing_leg;
DROP TRIGGER IF EXISTS billing_transaction_append_only ON billing_transaction;
DROP TRIGGER IF EXISTS billing_leg_append_only ON billing_leg;
DROP FUNCTION IF EXISTS billing_check_balanced();
DROP FUNCTION IF EXISTS billing_refuse_change();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(forward, backward)]
