"""A daily deduction is a money record too: what the member was charged for a day, and the daily
run's proof that the day was charged once (a re-run skips accounts that have their row). On
PostgreSQL no one updates, deletes or truncates one (0013's record guard); the daily run only
inserts them, so the row trigger costs it nothing. `ledger_audit` proves each against its ledger
transaction. SQLite has no such triggers; there the daily run is the only writer."""

from django.db import migrations

FORWARD = """
CREATE TRIGGER billing_deduction_append_only BEFORE UPDATE OR DELETE ON billing_deduction
    FOR EACH ROW EXECUTE FUNCTION billing_refuse_record_change();
CREATE TRIGGER billing_deduction_no_truncate BEFORE TRUNCATE ON billing_deduction
    FOR EACH STATEMENT EXECUTE FUNCTION billing_refuse_record_change();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS billing_deduction_no_truncate ON billing_deduction;
DROP TRIGGER IF EXISTS billing_deduction_append_only ON billing_deduction;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0015_refund_payout_append_only")]

    operations = [migrations.RunPython(forward, backward)]
