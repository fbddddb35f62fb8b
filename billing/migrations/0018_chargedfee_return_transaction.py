"""A fee charged by a payment's return links to that return's reversal transaction
(ChargedFee.return_transaction), so the receipt lists the return's fees by the link instead of
searching fee descriptions for the receipt number.

The fees charged before this migration are linked by the rule the receipt used until now: a
returned-payment or collection fee of the same account, charged after the return's reversal,
whose description names the payment's receipt number. Fees are append-only on PostgreSQL (0013:
the guard refuses any UPDATE but a waiver), so the guard is switched off for that one UPDATE, by
the owner who runs migrations, and on again in the same transaction. New fees get the link when
payment_return charges them."""

import django.db.models.deletion
from django.db import migrations, models

RETURN_FEE_CODES = ("returned-payment", "returned-payment-collection")


def link_return_fees(apps, schema_editor):
    ReturnedPayment = apps.get_model("billing", "ReturnedPayment")
    ChargedFee = apps.get_model("billing", "ChargedFee")
    links = {}
    for returned in ReturnedPayment.objects.select_related("payment").order_by("id").iterator():
        for fee_id in ChargedFee.objects.filter(
            account_id=returned.payment.account_id,
            code__in=RETURN_FEE_CODES,
            transaction_id__gt=returned.transaction_id,
            description__contains=returned.payment.receipt_number,
        ).values_list("id", flat=True):
            links[fee_id] = returned.transaction_id
    if not links:
        return
    postgres = schema_editor.connection.vendor == "postgresql"
    if postgres:
        schema_editor.execute("ALTER TABLE billing_chargedfee DISABLE TRIGGER billing_chargedfee_append_only")
    for fee_id, reversal_id in links.items():
        ChargedFee.objects.filter(pk=fee_id).update(return_transaction_id=reversal_id)
    if postgres:
        # The new foreign key's deferred checks run now: ALTER TABLE refuses pending trigger events.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        schema_editor.execute("ALTER TABLE billing_chargedfee ENABLE TRIGGER billing_chargedfee_append_only")


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0017_rates_history"),
    ]

    operations = [
        migrations.AddField(
            model_name="chargedfee",
            name="return_transaction",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="return_fees",
                to="billing.transaction",
            ),
        ),
        migrations.RunPython(link_return_fees, migrations.RunPython.noop),
    ]
