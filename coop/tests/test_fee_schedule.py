"""The fee schedule: seeded by a data migration, edited by managers through the service/admin."""

import importlib
from decimal import Decimal

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.tests import factories
from coop import roles, services
from coop.models import FeeScheduleEntry

pytestmark = pytest.mark.django_db

seed_migration = importlib.import_module("coop.migrations.0003_seed_fee_schedule")

ADD = reverse("admin:coop_feescheduleentry_add")
CHANGELIST = reverse("admin:coop_feescheduleentry_changelist")


@pytest.mark.parametrize(
    ("code", "amount"),
    [
        ("membership", "5.00"),
        ("account-establishment", "15.00"),
        ("collection", "45.00"),
        ("returned-payment", "15.00"),
        ("returned-payment-collection", "45.00"),
        ("returned-payment-processing", "20.00"),
        ("switch-removal", "150.00"),
        ("switch-relocation-same-account", "250.00"),
        ("switch-relocation-other-account", "300.00"),
        ("dual-register-meter-upgrade", "100.00"),
        ("meter-connect-after-hours", "125.00"),
        ("trouble-call", "85.00"),
        ("trouble-call-after-hours", "150.00"),
        ("meter-check", "45.00"),
        ("meter-tampering", "200.00"),
        ("broadband-reconnect", "25.00"),
    ],
)
def test_the_fee_schedule_is_seeded_with_the_fees_of_the_policies(code, amount):
    entry = FeeScheduleEntry.objects.get(code=code)
    assert entry.amount == Decimal(amount)
    assert entry.is_active
    entry.full_clean()


def test_the_seed_has_sixteen_fees_and_says_the_meter_check_is_refundable():
    assert FeeScheduleEntry.objects.count() == len(seed_migration.FEES) == 16
    assert (
        "refunded if cooperative equipment is at fault"
        in FeeScheduleEntry.objects.get(code="meter-check").description
    )


def test_seeding_again_never_overwrites_a_managers_edit(manager):
    entry = FeeScheduleEntry.objects.get(code="trouble-call")
    services.fee_schedule_entry_save(
        actor=manager, entry=entry, code="trouble-call", description="Trouble call", amount=Decimal("95.00")
    )
    FeeScheduleEntry.objects.filter(code="broadband-reconnect").delete()
    seed_migration.seed_fee_schedule(django_apps, None)
    assert FeeScheduleEntry.objects.get(code="trouble-call").amount == Decimal("95.00")
    assert FeeScheduleEntry.objects.get(code="broadband-reconnect").amount == Decimal("25.00")  # re-added
    assert FeeScheduleEntry.objects.count() == 16


def test_a_manager_adds_a_fee_and_the_history_says_who(manager):
    entry = services.fee_schedule_entry_save(
        actor=manager, code="pole-attachment", description="Pole attachment", amount="35"
    )
    entry.refresh_from_db()
    assert entry.amount == Decimal("35.00")
    assert entry.history.get().history_user == manager


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (Decimal("-5.00"), "Ensure this value is greater than or equal to 0.00."),
        (Decimal("5.001"), "Ensure that there are no more than 2 decimal places."),
        ("five", "must be a decimal number"),
    ],
)
def test_a_bad_fee_amount_names_the_field_and_saves_nothing(manager, amount, message):
    before = FeeScheduleEntry.objects.count()
    with pytest.raises(ValidationError) as exc:
        services.fee_schedule_entry_save(
            actor=manager, code="pole-attachment", description="Pole", amount=amount
        )
    assert message in " ".join(exc.value.message_dict["amount"])
    assert FeeScheduleEntry.objects.count() == before


def test_a_float_fee_amount_is_refused(manager):
    with pytest.raises(TypeError, match="never float"):
        services.fee_schedule_entry_save(actor=manager, code="pole", description="Pole", amount=35.1)


def test_a_duplicate_fee_code_is_refused(manager):
    with pytest.raises(ValidationError) as exc:
        services.fee_schedule_entry_save(actor=manager, code="meter-check", description="Again", amount="1")
    assert "code" in exc.value.message_dict
    assert FeeScheduleEntry.objects.get(code="meter-check").amount == Decimal("45.00")


def test_admin_add_with_a_negative_fee_shows_the_error_and_saves_nothing(manager_client):
    before = FeeScheduleEntry.objects.count()
    response = manager_client.post(
        ADD,
        {"code": "pole-attachment", "description": "Pole attachment", "amount": "-35.00", "is_active": "on"},
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["amount"] == [
        "Ensure this value is greater than or equal to 0.00."
    ]
    assert FeeScheduleEntry.objects.count() == before


def test_admin_add_saves_through_the_service_with_the_manager_in_the_history(manager_client, manager):
    response = manager_client.post(
        ADD,
        {"code": "pole-attachment", "description": "Pole attachment", "amount": "35.00", "is_active": "on"},
    )
    assert response.status_code == 302
    entry = FeeScheduleEntry.objects.get(code="pole-attachment")
    assert entry.history.get().history_user == manager


def test_admin_fee_list_shows_code_description_amount_and_searches_both(manager_client):
    response = manager_client.get(CHANGELIST, {"q": "tamper"})
    assert [e.code for e in response.context["cl"].result_list] == ["meter-tampering"]
    assert list(response.context["cl"].list_display)[1:] == ["code", "description", "amount", "is_active"]
    response = manager_client.get(CHANGELIST, {"q": "trouble-call"})
    assert {e.code for e in response.context["cl"].result_list} == {
        "trouble-call",
        "trouble-call-after-hours",
    }


def test_a_clerk_cannot_change_a_fee_by_reverting_it_from_its_history(client, manager):
    entry = FeeScheduleEntry.objects.get(code="meter-check")
    services.fee_schedule_entry_save(
        actor=manager, entry=entry, code="meter-check", description=entry.description, amount="50.00"
    )
    first = entry.history.earliest()
    clerk = factories.staff(roles.CLERK)
    client.force_login(clerk)
    url = reverse("admin:coop_feescheduleentry_simple_history", args=[entry.pk, first.history_id])
    assert client.get(url).status_code == 200  # clerks may look at the history ...
    response = client.post(
        url, {"code": "meter-check", "description": entry.description, "amount": "1.00", "is_active": "on"}
    )
    assert response.status_code == 403  # ... but not revert it
    assert FeeScheduleEntry.objects.get(code="meter-check").amount == Decimal("50.00")
