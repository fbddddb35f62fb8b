"""The daily run posts up to a million balanced transactions in a few statements. Checking each of
their legs one by one at commit (migration 0002's deferred row triggers) would cost more than the
run itself, so the run checks its own chunk with one grouped query before it commits
(billing/daily.py `_assert_chunk_balanced`) and says so with the transaction-local setting
`coop.ledger_bulk_checked`. Every other writer still gets the per-transaction check; the
append-only triggers apply to everyone.
"""

from django.db import migrations

GUARD = "current_setting('coop.ledger_bulk_checked', true) IS DISTINCT FROM 'on'"

FORWARD = f"""
DROP TRIGGER IF EXISTS billing_leg_balanced ON billing_leg;
DROP TRIGGER IF EXISTS billing_transaction_has_legs ON billing_transaction;
CREATE CONSTRAINT TRIGGER billing_leg_balanced AFTER INSERT ON billing_leg
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN ({GUARD})
    EXECUTE FUNCTION billing_check_balanced();
CREATE CONSTRAINT TRIGGER billing_transaction_has_legs AFTER INSERT ON billing_transaction
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN ({GUARD})
    EXECUTE FUNCTION billing_check_balanced();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS billing_leg_balanced ON billing_leg;
DROP TRIGGER IF EXISTS billing_transaction_has_legs ON billing_transaction;
CREATE CONSTRAINT TRIGGER billing_leg_balanced AFTER INSERT ON billing_leg
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION billing_check_balanced();
CREATE CONSTRAINT TRIGGER billing_transaction_has_legs AFTER INSERT ON billing_transaction
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION billing_check_balanced();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0007_rates_and_daily_run")]

    operations = [migrations.RunPython(forward, backward)]
