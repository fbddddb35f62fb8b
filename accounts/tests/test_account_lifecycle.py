"""An account's status maps, walked against its choices; refusals are lifecycle errors."""

import pytest

from accounts import services
from accounts.exceptions import IllegalStatusTransition
from accounts.models import Account, AccountStatusChange
from accounts.tests import factories
from coop.lifecycle import IllegalTransition, map_problems

S = Account.Status


def test_the_maps_cover_every_account_status_and_name_no_other():
    assert map_problems(Account.ALLOWED_TRANSITIONS, S.values) == []
    assert map_problems(Account.MANUAL_TRANSITIONS, S.values) == []
    for source, targets in Account.MANUAL_TRANSITIONS.items():  # by hand: a part of the lifecycle
        assert targets <= Account.ALLOWED_TRANSITIONS[source]
    for source, target in Account.METER_TRANSITIONS:  # the meter's moves: in it, never by hand
        assert target in Account.ALLOWED_TRANSITIONS[source]
        assert target not in Account.MANUAL_TRANSITIONS[source]


@pytest.mark.django_db
def test_an_illegal_account_move_is_a_lifecycle_error_and_changes_nothing():
    account = factories.account()
    with pytest.raises(IllegalTransition) as exc:
        services.account_change_status(account=account, to_status=S.INACTIVE, actor=None, reason="try")
    assert isinstance(exc.value, IllegalStatusTransition)
    assert str(exc.value) == (
        f"Account {account.number} is pending and cannot become inactive. "
        "From pending it can become: Active, Closed."
    )
    assert Account.objects.get(pk=account.pk).status == S.PENDING
    assert not AccountStatusChange.objects.filter(account=account).exists()
