"""A message's status moves only along Message.TRANSITIONS: one at a time through
notifications.services._move, or set-based by the two bulk updates, which check their one move."""

import pytest
from django.utils import timezone

from coop.lifecycle import IllegalTransition, map_problems
from notifications import services
from notifications.exceptions import IllegalMessageTransition
from notifications.models import Message

pytestmark = pytest.mark.django_db
S = Message.Status


def _message(status, **fields):
    return Message.objects.create(
        notice="restored", channel="email", recipient="a@example.org", body="b", status=status, **fields
    )


def test_the_map_covers_every_message_status_and_names_no_other():
    assert map_problems(Message.TRANSITIONS, S.values) == []
    assert set(Message.RESENDABLE) <= {s for s, targets in Message.TRANSITIONS.items() if not targets}


def test_a_delivered_message_cannot_become_sent_and_nothing_changes():
    message = _message(S.DELIVERED, dedupe_key="d1")
    with pytest.raises(IllegalMessageTransition) as exc:
        services._move(message, S.SENT, now=timezone.now(), error_code="x")
    assert isinstance(exc.value, IllegalTransition)
    assert str(exc.value) == (
        f"Message #{message.pk} is delivered and cannot become sent. From delivered it can become: none."
    )
    message.refresh_from_db()
    assert (message.status, message.error_code) == (S.DELIVERED, "")


def test_the_stuck_sending_sweep_refuses_when_the_map_no_longer_allows_its_move(monkeypatch):
    long_ago = timezone.now() - services.STALE_SENDING * 2
    message = _message(S.SENDING, dedupe_key="s1", claimed_at=long_ago)
    monkeypatch.setitem(Message.TRANSITIONS, S.SENDING, Message.TRANSITIONS[S.SENDING] - {S.FAILED})
    with pytest.raises(
        IllegalMessageTransition, match="A sending message is sending and cannot become failed"
    ):
        services.messages_retry_due()
    message.refresh_from_db()
    assert message.status == S.SENDING


def test_the_claim_refuses_when_the_map_no_longer_allows_queued_to_sending(monkeypatch):
    message = _message(S.QUEUED, dedupe_key="q1")
    monkeypatch.setitem(Message.TRANSITIONS, S.QUEUED, Message.TRANSITIONS[S.QUEUED] - {S.SENDING})
    with pytest.raises(
        IllegalMessageTransition, match="A queued message is queued and cannot become sending"
    ):
        services._claim([message.pk], timezone.now())
    message.refresh_from_db()
    assert message.status == S.QUEUED
