"""A receipt lists the fees its payment's return charged by their link to the return
(ChargedFee.return_transaction), never by what a fee's description says."""

from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.tests import factories
from billing import services
from coop import roles

D = Decimal
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.policy(
        returned_payment_fee=Decimal("15.00"), returned_payment_collection_fee=Decimal("45.00")
    ),
]


@pytest.fixture
def account(policy):
    return factories.account(number="3000200")


def test_the_return_links_the_fees_it_charges(account):
    payment, _ = services.payment_post(account=account, amount="80.00", tender="check", reference="5510")
    record = services.payment_return(payment=payment, reason="nsf")
    fees = list(record.transaction.return_fees.order_by("transaction_id").values_list("code", "amount"))
    assert fees == [("returned-payment", D("15.00")), ("returned-payment-collection", D("45.00"))]


def test_a_fee_that_only_names_the_receipt_is_not_listed_on_it(client, account):
    payment, _ = services.payment_post(account=account, amount="80.00", tender="check", reference="5511")
    services.payment_return(payment=payment, reason="nsf")
    # A clerk's fee whose description happens to name the receipt is not one the return charged.
    services.fee_charge(
        account=account,
        code="returned-payment",
        amount=D("7.00"),
        memo=f"Re-typed fee ({payment.receipt_number})",
    )
    client.force_login(factories.staff(roles.CLERK, "clerk"))
    page = client.get(reverse("admin:billing_payment_receipt", args=[payment.pk])).content.decode()
    assert f"Returned payment fee ({payment.receipt_number})</th><td>$15.00" in page
    assert f"Collection fee ({payment.receipt_number})</th><td>$45.00" in page
    assert "Re-typed fee" not in page
