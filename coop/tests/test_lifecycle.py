"""coop.lifecycle: the shared check every status change asks, and the map check the apps' tests
walk their maps with."""

import pytest
from django.db import models

from coop.exceptions import CoopError
from coop.lifecycle import IllegalTransition, check_transition, map_problems


class Colour(models.TextChoices):
    RED = "red", "Red"
    AMBER = "amber", "Amber"
    GREEN = "green", "Green"


MAP = {Colour.RED: {Colour.GREEN}, Colour.GREEN: {Colour.AMBER}, Colour.AMBER: {Colour.RED}}


class LampError(IllegalTransition):
    pass


def test_an_allowed_move_passes():
    assert check_transition(MAP, Colour.RED, Colour.GREEN, what="Lamp 1", choices=Colour) is None
    # The status read back from the database is a plain string.
    assert check_transition(MAP, "red", "green", what="Lamp 1", choices=Colour) is None


def test_an_illegal_move_is_refused_naming_the_object_and_both_statuses():
    with pytest.raises(LampError) as exc:
        check_transition(MAP, "red", Colour.AMBER, what="Lamp 1", choices=Colour, error=LampError)
    assert str(exc.value) == "Lamp 1 is red and cannot become amber. From red it can become: Green."
    assert isinstance(exc.value, CoopError)


def test_a_status_with_no_moves_says_none_and_an_unknown_status_is_named():
    with pytest.raises(IllegalTransition, match="From red it can become: none"):
        check_transition({Colour.RED: set()}, "red", "green", what="Lamp 1", choices=Colour)
    with pytest.raises(IllegalTransition, match="Lamp 1 has the unknown status 'blue'"):
        check_transition(MAP, "blue", "green", what="Lamp 1", choices=Colour)


def test_the_name_is_only_worked_out_when_the_move_is_refused():
    asked = []

    def name():
        asked.append(1)
        return "Lamp 1"

    check_transition(MAP, "red", "green", what=name, choices=Colour)
    assert asked == []
    with pytest.raises(IllegalTransition, match="^Lamp 1 is red"):
        check_transition(MAP, "red", "amber", what=name, choices=Colour)
    assert asked == [1]


def test_map_problems_finds_a_missing_status_an_unknown_entry_and_an_unknown_target():
    assert map_problems(MAP, Colour.values) == []
    broken = {Colour.RED: {"blue"}, "pink": set()}
    assert map_problems(broken, Colour.values) == [
        "'amber' has no entry",
        "'green' has no entry",
        "'pink' is not a status",
        "'red' -> 'blue': not a status",
    ]
