"""Disconnect holds are written by accounts.services (hold_create, hold_update, hold_end), from the
hold pages and the account page's inline alike, with who in the hold's history."""

import datetime

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts import services
from accounts.models import ServiceHold
from accounts.tests import factories

pytestmark = pytest.mark.django_db

TODAY = datetime.date(2026, 3, 10)


@pytest.fixture
def boss(django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@coop.example", "x")


@pytest.fixture
def admin_client(client, boss):
    client.force_login(boss)
    return client


def _hold(account, actor, **overrides):
    fields = {
        "kind": ServiceHold.Kind.MEDICAL,
        "starts_on": TODAY,
        "expires_on": TODAY + datetime.timedelta(30),
    }
    return services.hold_create(actor=actor, account=account, **{**fields, **overrides})


@time_machine.travel(datetime.datetime(2026, 3, 10, 15, 0), tick=False)
def test_a_hold_ended_early_lasts_through_yesterday_with_who_and_why(boss):
    hold = _hold(factories.account(), boss, starts_on=TODAY - datetime.timedelta(5))
    ended = services.hold_end(actor=boss, hold=hold, reason="certificate withdrawn")
    assert ended.expires_on == TODAY - datetime.timedelta(1)
    latest = ended.history.first()
    assert (latest.history_user, latest.history_change_reason) == (boss, "certificate withdrawn")
    assert ended.entered_by == boss


@time_machine.travel(datetime.datetime(2026, 3, 10, 15, 0), tick=False)
def test_a_hold_not_started_before_today_is_corrected_not_ended(boss):
    hold = _hold(factories.account(), boss)
    with pytest.raises(ValidationError, match="change its dates"):
        services.hold_end(actor=boss, hold=hold)
    hold.refresh_from_db()
    assert hold.expires_on == TODAY + datetime.timedelta(30)


def test_a_hold_keeps_its_account_and_who_entered_it(boss):
    hold = _hold(factories.account(), boss)
    with pytest.raises(TypeError, match="entered_by"):
        services.hold_update(actor=boss, hold=hold, entered_by=None)


def test_the_account_page_adds_a_hold_through_the_service(admin_client, boss):
    account = factories.account()
    url = reverse("admin:accounts_account_change", args=[account.pk])
    response = admin_client.post(
        url,
        {
            "holds-TOTAL_FORMS": "1",
            "holds-INITIAL_FORMS": "0",
            "holds-0-kind": "medical",
            "holds-0-starts_on": "2026-03-01",
            "holds-0-expires_on": "2026-06-30",
            "holds-0-note": "certificate on file",
            "status_changes-TOTAL_FORMS": "0",
            "status_changes-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.context and response.context["errors"]
    hold = ServiceHold.objects.get(account=account)
    assert (hold.entered_by, hold.history.get().history_user) == (boss, boss)


@time_machine.travel(datetime.datetime(2026, 3, 10, 15, 0), tick=False)
def test_the_end_action_ends_the_selected_holds(admin_client, boss):
    hold = _hold(factories.account(), boss, starts_on=TODAY - datetime.timedelta(5))
    response = admin_client.post(
        reverse("admin:accounts_servicehold_changelist"),
        {"action": "end_holds", "_selected_action": [hold.pk]},
    )
    assert response.status_code == 302
    hold.refresh_from_db()
    assert hold.expires_on == TODAY - datetime.timedelta(1)
