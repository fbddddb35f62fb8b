"""The answer to a signed BAL text names each account by the last four digits of its number only:
whoever holds (or spoofs) the phone number learns a balance, never a whole account number."""

from decimal import Decimal

import pytest

from accounts.models import Account
from accounts.services import account_change_status
from accounts.tests import factories
from billing.services import payment_post
from notifications.models import Message
from notifications.tests.conftest import member_with
from notifications.tests.test_webhooks import NOON, inbound, reply_of

pytestmark = pytest.mark.django_db


def test_bal_shows_only_the_last_four_digits_of_each_account_number(client, twilio, policy):
    member = member_with()
    numbers = ["700012345671", "700098761234"]
    for number in numbers:
        account = factories.account(member=member, number=number)
        account_change_status(account=account, to_status=Account.Status.ACTIVE, actor=None, reason="test")
        payment_post(
            account=account, amount=Decimal("10.00"), tender="cash", reference=number, received_at=NOON
        )

    text = reply_of(inbound(client, "BAL"))

    assert text == "Demo Co-op: acct *5671 $10.00; acct *1234 $10.00"
    reply = Message.objects.get(notice="reply_balance")
    for number in numbers:
        assert number not in text and number[:-4] not in text
        assert number not in reply.body  # nor in the stored copy of the reply
