"""coop.events: typed events, delivered to their subscribers after the publishing transaction
commits, each handler in its own transaction.

Each test runs twice: once in a transactional test (Django's real commit and on_commit), once in
an ordinary test inside the test case's transaction, where conftest.py's events_after_commit
emulates the commit; both must behave alike, or the suite's other tests would prove nothing."""

import dataclasses
import logging

import pytest
from django.contrib.auth.models import Group
from django.db import transaction

from coop import events


@dataclasses.dataclass(frozen=True)
class Happened(events.Event):
    thing_id: int


@dataclasses.dataclass(frozen=True)
class Other(events.Event):
    thing_id: int


pytestmark = pytest.mark.parametrize(
    "committed_by",
    [
        pytest.param("django", marks=pytest.mark.django_db(transaction=True, serialized_rollback=True)),
        pytest.param("conftest", marks=pytest.mark.django_db),
    ],
)


@pytest.fixture
def heard(monkeypatch):
    """A registry of its own, with one handler that records what it heard and whether the
    publishing transaction had committed by then (its group is visible)."""
    monkeypatch.setattr(events, "_subscribers", {})
    log = []

    def handler(event):
        log.append((event, Group.objects.filter(name=f"thing {event.thing_id}").exists()))

    events.subscribe(Happened, handler)
    return log


def change_and_publish(thing_id: int, event_type=Happened):
    """What a service does: a change and its announcement, in one transaction."""
    Group.objects.create(name=f"thing {thing_id}")
    events.publish(event_type(thing_id=thing_id))


def test_an_event_is_delivered_after_the_transaction_commits_not_inside_it(committed_by, heard):
    with transaction.atomic():
        change_and_publish(1)
        with transaction.atomic():  # a nested block ending is no commit
            change_and_publish(2)
        assert heard == []
    assert heard == [(Happened(1), True), (Happened(2), True)]


def test_an_event_published_outside_any_transaction_is_delivered_at_once(committed_by, heard):
    change_and_publish(3)
    assert heard == [(Happened(3), True)]


def test_nothing_is_delivered_when_the_transaction_rolls_back(committed_by, heard):
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        change_and_publish(4)
        raise ZeroDivisionError
    with transaction.atomic():
        try:
            with transaction.atomic():
                change_and_publish(5)
                raise ZeroDivisionError
        except ZeroDivisionError:
            pass  # the inner block rolled back; the outer one commits
        change_and_publish(6)
    assert heard == [(Happened(6), True)]
    assert not Group.objects.filter(name__in=["thing 4", "thing 5"]).exists()


def test_an_event_is_heard_only_by_the_subscribers_of_its_type(committed_by, heard):
    change_and_publish(7, Other)
    assert heard == []


def test_a_failing_handler_is_logged_and_rolled_back_alone_and_the_others_still_run(
    committed_by, heard, caplog
):
    def failing(event):
        Group.objects.create(name="half done")
        raise RuntimeError("template missing")

    def after(event):
        Group.objects.create(name="after")

    events.subscribe(Happened, failing)
    events.subscribe(Happened, after)
    with caplog.at_level(logging.ERROR, logger="coop.events"), transaction.atomic():
        change_and_publish(8)
    assert heard == [(Happened(8), True)]
    assert "could not handle Happened(thing_id=8); the change it announces stands" in caplog.text
    assert "template missing" in caplog.text
    assert set(
        Group.objects.filter(name__in=["thing 8", "half done", "after"]).values_list("name", flat=True)
    ) == {
        "thing 8",
        "after",
    }


def test_subscribing_the_same_handler_again_delivers_once(committed_by, heard):
    (handler,) = events.subscribers(Happened)
    events.subscribe(Happened, handler)
    change_and_publish(9)
    assert len(heard) == 1


def test_nothing_published_while_muted_is_delivered_even_when_the_commit_comes_after(committed_by, heard):
    with transaction.atomic():
        with events.muted():
            change_and_publish(10)
        change_and_publish(11)
    change_and_publish(12)
    assert heard == [(Happened(11), True), (Happened(12), True)]


@dataclasses.dataclass
class NotFrozen(events.Event):
    thing_id: int


@dataclasses.dataclass(frozen=True)
class NotAnEvent:
    thing_id: int


@dataclasses.dataclass(frozen=True)
class CarriesAModel(events.Event):
    group: object


def test_events_are_frozen_dataclasses_of_the_event_type_and_carry_no_model_instances(committed_by, heard):
    for wrong in (NotFrozen, NotAnEvent, dict):
        with pytest.raises(TypeError, match="is not an event type"):
            events.subscribe(wrong, print)
    with pytest.raises(TypeError, match="is not an event type"):
        events.publish(NotFrozen(thing_id=1))
    with pytest.raises(TypeError, match="CarriesAModel.group is a model instance; events carry ids"):
        events.publish(CarriesAModel(group=Group.objects.create(name="g")))
    with pytest.raises(dataclasses.FrozenInstanceError):
        Happened(1).thing_id = 2
    assert heard == []
