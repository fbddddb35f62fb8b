import pytest
from django.core.exceptions import ValidationError

from accounts import services
from accounts.exceptions import IllegalStatusTransition
from accounts.models import Account, AccountStatusChange, Member
from accounts.tests import factories

pytestmark = pytest.mark.django_db

S = Account.Status


def test_member_phone_in_any_common_format_is_stored_as_e164():
    for typed in ["(715) 532-5524", "715-532-5524", "715.532.5524", "+1 715 532 5524"]:
        m = factories.member(mobile_phone=typed)
        assert m.mobile_phone.as_e164 == "+17155325524"


@pytest.mark.parametrize("bad", ["123", "+44 20 7946 0958", "555-0100", "(000) 532-5524"])
def test_member_with_a_phone_invalid_for_the_region_is_refused_and_nothing_saved(bad):
    with pytest.raises(ValidationError) as exc:
        factories.member(mobile_phone=bad)
    assert "mobile_phone" in exc.value.message_dict
    assert Member.objects.count() == 0


def test_member_with_a_malformed_email_is_refused():
    with pytest.raises(ValidationError) as exc:
        factories.member(email="not-an-email")
    assert "email" in exc.value.message_dict


def test_account_opens_pending_with_a_seven_digit_number():
    a = factories.account()
    b = factories.account()
    assert a.status == S.PENDING
    assert len(a.number) == 7 and int(b.number) == int(a.number) + 1


def test_postpaid_account_needs_a_cycle_and_prepaid_may_not_have_one():
    with pytest.raises(ValidationError) as exc:
        factories.account(billing_mode=Account.BillingMode.POSTPAID, billing_cycle=None)
    assert "billing_cycle" in exc.value.message_dict
    with pytest.raises(ValidationError):
        factories.account(billing_mode=Account.BillingMode.PREPAID, billing_cycle=factories.cycle())
    assert Account.objects.count() == 0


def test_a_location_has_one_open_account_at_a_time(clerk):
    first = factories.account()
    with pytest.raises(ValidationError):
        factories.account(location=first.location)
    services.account_change_status(account=first, to_status=S.CLOSED, actor=clerk, reason="withdrawn")
    second = factories.account(location=first.location)
    assert second.status == S.PENDING


def test_the_whole_lifecycle_is_allowed_and_audited(clerk):
    account = factories.account()
    path = [S.ACTIVE, S.DISCONNECTED, S.ACTIVE, S.DISCONNECTED, S.INACTIVE, S.CLOSED]
    for to in path:
        services.account_change_status(account=account, to_status=to, actor=clerk, reason=f"to {to}")
    account.refresh_from_db()
    assert account.status == S.CLOSED
    assert account.closed_on is not None
    changes = list(AccountStatusChange.objects.filter(account=account).order_by("id"))
    assert [(c.from_status, c.to_status) for c in changes] == list(
        zip([S.PENDING, *path[:-1]], path, strict=True)
    )
    assert all(c.actor == clerk for c in changes)


@pytest.mark.parametrize(
    "start_path, illegal",
    [
        ([], S.DISCONNECTED),
        ([], S.INACTIVE),
        ([S.ACTIVE], S.INACTIVE),
        ([S.ACTIVE], S.PENDING),
        ([S.ACTIVE, S.DISCONNECTED], S.CLOSED),
        ([S.ACTIVE, S.DISCONNECTED, S.INACTIVE], S.ACTIVE),
        ([S.CLOSED], S.ACTIVE),
    ],
)
def test_illegal_status_moves_are_refused_with_a_clear_message(clerk, start_path, illegal):
    account = factories.account()
    for to in start_path:
        services.account_change_status(account=account, to_status=to, actor=clerk, reason="setup")
    before = AccountStatusChange.objects.count()
    status_before = Account.objects.get(pk=account.pk).status
    with pytest.raises(IllegalStatusTransition) as exc:
        services.account_change_status(account=account, to_status=illegal, actor=clerk, reason="try")
    assert account.number in str(exc.value)
    assert f"cannot become {S(illegal).label.lower()}" in str(exc.value)
    assert Account.objects.get(pk=account.pk).status == status_before
    assert AccountStatusChange.objects.count() == before


def test_a_status_change_needs_a_reason(clerk):
    account = factories.account()
    with pytest.raises(IllegalStatusTransition, match="why"):
        services.account_change_status(account=account, to_status=S.ACTIVE, actor=clerk, reason="  ")


def test_status_change_is_recorded_in_the_account_history(clerk):
    account = factories.account(actor=clerk)
    services.account_change_status(
        account=account, to_status=S.ACTIVE, actor=clerk, reason="deposit received"
    )
    latest = account.history.first()
    assert latest.status == S.ACTIVE
    assert latest.history_user == clerk
    assert latest.history_change_reason == "deposit received"
