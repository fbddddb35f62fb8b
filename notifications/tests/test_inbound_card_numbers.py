"""A member who texts a card number to the cooperative's number (issue 5, point 6): the text is
answered as any other, and what is stored of it has the number masked to its last four digits."""

import pytest

from notifications.models import WebhookEvent
from notifications.tests.test_webhooks import inbound

pytestmark = pytest.mark.django_db


def test_a_card_number_texted_in_is_stored_masked(client, twilio):
    response = inbound(client, "pay with 4111 1111 1111 1111 exp 12/29")
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.body == "pay with **** **** **** 1111 exp 12/29"
    assert event.params["Body"] == "pay with **** **** **** 1111 exp 12/29"
    assert "4111" not in str(event.params) and "4111" not in event.outcome
