"""Seed the fee schedule with the fees of docs/POLICIES.md.

The amounts are frozen here (not imported from coop/presets.py) so this migration does the same
thing forever. get_or_create by code: a fee a manager has already edited is never overwritten,
and running it again adds nothing. Reverse: nothing (the rows may have been edited or charged).
"""

from decimal import Decimal

from django.db import migrations

FEES = [
    # (code, description, amount) -- source seed in the comment.
    # Prepaid program B (001): "New members must ... pay ... $5.00 membership fee, $15.00 account
    # establishment fee".
    ("membership", "Membership fee (new member)", "5.00"),
    ("account-establishment", "Account establishment fee (new account)", "15.00"),
    # Postpaid schedule C (002): "A Collection Fee of $45.00 applies if any disconnect processes
    # have been initiated, payment is made to a collector, or electric service is disconnected".
    ("collection", "Collection fee", "45.00"),
    # C: "Returned check or card payment Service Fee: $15.00" / "... Collection Fee: $45.00".
    # billing.services.payment_return charges these two codes at the Policy's amounts.
    ("returned-payment", "Returned check or card payment service fee", "15.00"),
    ("returned-payment-collection", "Returned check or card payment collection fee", "45.00"),
    # Late-payment policy D (003): "the member's check, together with a processing fee ($20)".
    ("returned-payment-processing", "Returned check processing fee", "20.00"),
    # C, other fees.
    ("switch-removal", "Removal of double-throw switch", "150.00"),
    ("switch-relocation-same-account", "Relocation of double-throw switch at the same account", "250.00"),
    ("switch-relocation-other-account", "Relocation of double-throw switch to another account", "300.00"),
    ("dual-register-meter-upgrade", "Distributed generation dual register meter upgrade", "100.00"),
    ("meter-connect-after-hours", "Meter connect outside regular working hours", "125.00"),
    ("trouble-call", "Member service trouble call during regular working hours", "85.00"),
    ("trouble-call-after-hours", "Member service trouble call outside regular working hours", "150.00"),
    ("meter-check", "Meter check (refunded if cooperative equipment is at fault)", "45.00"),
    (
        "meter-tampering",
        "Meter tampering (plus estimated stolen energy and the cost of investigation and correction)",
        "200.00",
    ),
    # D: "Reconnection of Broadband Service: $25 fee and only performed during business hours".
    ("broadband-reconnect", "Broadband service reconnect (business hours only)", "25.00"),
]


def seed_fee_schedule(apps, schema_editor):
    FeeScheduleEntry = apps.get_model("coop", "FeeScheduleEntry")
    for code, description, amount in FEES:
        FeeScheduleEntry.objects.get_or_create(
            code=code, defaults={"description": description, "amount": Decimal(amount), "is_active": True}
        )


class Migration(migrations.Migration):
    dependencies = [("coop", "0002_roles")]

    operations = [migrations.RunPython(seed_fee_schedule, migrations.RunPython.noop)]
