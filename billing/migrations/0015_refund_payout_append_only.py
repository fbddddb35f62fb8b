"""Refund payouts (0014) are money records like payments, returns and fees (0013): on PostgreSQL no
one updates, deletes or truncates one; `ledger_audit` proves each against its ledger transaction.
SQLite has no such triggers; there billing.services is the only writer."""

from django.db import migrations

FORWARD = """
CREATE TRIGGER billing_refundpayout_append_only BEFORE UPDATE OR DELETE ON billing_refundpayout
    FOR EACH ROW EXECUTE FUNCTION billing_refuse_record_change();
CREATE TRIGGER billing_refundpayout_no_truncate BEFORE TRUNCATE ON billing_refundpayout
    FOR EACH STATEMENT EXECUTE FUNCTION billing_refuse_record_change();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS billing_refundpayout_no_truncate ON billing_refundpayout;
DROP TRIGGER IF EXISTS billing_refundpayout_append_only ON billing_refundpayout;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0014_money_records_who_and_payouts")]

    operations = [migrations.RunPython(forward, backward)]
