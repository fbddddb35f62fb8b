"""Policy versions: created through the services and the admin, never rewriting the past."""

import datetime
from datetime import date, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.tests import factories
from coop import roles, services
from coop.admin import POLICY_FIELDSETS
from coop.exceptions import PolicyHistoryLocked
from coop.models import OfficeClosure, Policy, WeatherHold

pytestmark = pytest.mark.django_db

CHICAGO = ZoneInfo("America/Chicago")
TODAY = date(2026, 5, 15)
NEXT_MONTH = date(2026, 6, 1)


def at(day: date, hour: int = 12):
    return time_machine.travel(
        datetime.datetime(day.year, day.month, day.day, hour, tzinfo=CHICAGO), tick=False
    )


@pytest.fixture(autouse=True)
def frozen_today(settings):
    settings.TIME_ZONE = "America/Chicago"
    with at(TODAY):
        yield


@pytest.fixture
def current(manager):
    """The version in force today: presets B + C, loaded when the co-op started."""
    return services.policy_load_presets(names=["B", "C"], effective_from=date(2026, 1, 1), actor=manager)


def new_version(actor, effective_from=NEXT_MONTH, **values):
    return services.policy_create_version(
        actor=actor, effective_from=effective_from, name="2026 rates", values=values
    )


# --- Services ------------------------------------------------------------------------------------


def test_a_new_version_records_who_created_it(manager):
    policy = new_version(manager, effective_from=TODAY, restore_level=Decimal("30.00"))
    assert policy.created_by == manager
    assert policy.history.get().history_user == manager
    assert policy.restore_level == Decimal("30.00")
    assert policy.debt_plan_share_percent == 0  # not given: the model default


def test_a_change_effective_next_month_leaves_this_months_results_unchanged(manager, current):
    # Program E's "goes negative" and higher deposits from next month on.
    new_version(
        manager,
        disconnect_rule=Policy.DisconnectRule.BELOW,
        deposit_first_meter_favorable=Decimal("75.00"),
        restore_level=Decimal("25.00"),
    )
    this_month = Policy.objects.in_force(date(2026, 5, 31))
    assert this_month == current
    assert this_month.required_deposit(favorable_credit=True, first_meter=True) == Decimal("60.00")
    assert this_month.is_disconnect_level(Decimal("0.00")) is True
    june = Policy.objects.in_force(NEXT_MONTH)
    assert june.required_deposit(favorable_credit=True, first_meter=True) == Decimal("75.00")
    assert june.is_disconnect_level(Decimal("0.00")) is False
    with at(date(2026, 7, 2)):  # later, May still reads May's rules
        assert Policy.objects.in_force(date(2026, 5, 20)) == current


def test_a_version_in_force_cannot_be_changed_or_deleted(manager, current):
    with pytest.raises(PolicyHistoryLocked, match="Create a new version"):
        services.policy_update_pending(actor=manager, policy=current, values={"restore_level": Decimal("30")})
    with pytest.raises(PolicyHistoryLocked):
        services.policy_delete_pending(actor=manager, policy=current)
    current.refresh_from_db()
    assert current.restore_level == Decimal("25.00")


def test_a_version_starting_today_is_already_in_force_and_locked(manager):
    policy = new_version(manager, effective_from=TODAY)
    with pytest.raises(PolicyHistoryLocked):
        services.policy_update_pending(actor=manager, policy=policy, values={"name": "Renamed"})


def test_a_scheduled_version_may_be_changed_until_it_starts(manager, current):
    pending = new_version(manager)
    changed = services.policy_update_pending(
        actor=manager,
        policy=pending,
        values={"restore_level": Decimal("40.00"), "effective_from": date(2026, 7, 1)},
    )
    assert (changed.restore_level, changed.effective_from) == (Decimal("40.00"), date(2026, 7, 1))
    assert changed.history.first().history_user == manager
    with at(date(2026, 7, 1)), pytest.raises(PolicyHistoryLocked):
        services.policy_update_pending(actor=manager, policy=changed, values={"restore_level": Decimal("45")})


def test_a_scheduled_version_cannot_be_moved_into_the_past(manager, current):
    pending = new_version(manager)
    with pytest.raises(ValidationError) as exc:
        services.policy_update_pending(
            actor=manager, policy=pending, values={"effective_from": date(2026, 5, 1)}
        )
    assert "cannot start in the past" in exc.value.message_dict["effective_from"][0]
    pending.refresh_from_db()
    assert pending.effective_from == NEXT_MONTH


def test_a_scheduled_version_may_be_deleted(manager, current):
    pending = new_version(manager)
    services.policy_delete_pending(actor=manager, policy=pending)
    assert list(Policy.objects.all()) == [current]


@pytest.mark.parametrize("with_earlier_version", [True, False])
def test_a_new_version_effective_in_the_past_is_refused(manager, with_earlier_version):
    if with_earlier_version:
        new_version(manager, effective_from=TODAY)
    before = Policy.objects.count()
    with pytest.raises(ValidationError) as exc:
        new_version(manager, effective_from=TODAY - datetime.timedelta(days=1))
    assert exc.value.message_dict["effective_from"] == [
        "A new version cannot start in the past (2026-05-14; today is 2026-05-15): that would change "
        "the rules of days already billed. Choose today or a later day."
    ]
    assert Policy.objects.count() == before


def test_two_versions_cannot_start_the_same_day(manager):
    new_version(manager)
    with pytest.raises(ValidationError) as exc:
        new_version(manager)
    assert "already starts on 2026-06-01" in exc.value.message_dict["effective_from"][0]
    assert Policy.objects.count() == 1


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"late_fee_amount": Decimal("-1.00")}, "late_fee_amount", "greater than or equal to 0"),
        ({"collection_fee": Decimal("-45")}, "collection_fee", "greater than or equal to 0"),
        (
            {"disconnect_level": Decimal("10.00"), "restore_level": Decimal("5.00")},
            "restore_level",
            "The restore level ($5.00) may not be below the disconnect level ($10.00).",
        ),
        (
            {"disconnect_window_start": time(10)},
            "disconnect_window_end",
            "Give the end of the disconnect window",
        ),
        (
            {"disconnect_window_end": time(11)},
            "disconnect_window_start",
            "Give the start of the disconnect window",
        ),
        (
            {"disconnect_window_start": time(11), "disconnect_window_end": time(10)},
            "disconnect_window_end",
            "must end after it starts",
        ),
        ({"business_hours_end": time(7)}, "business_hours_end", "Business hours must end after they start"),
        ({"late_fee_kind": "flat"}, "late_fee_amount", "A flat late fee needs an amount"),
        ({"debt_plan_share_percent": Decimal("101")}, "debt_plan_share_percent", "less than or equal to 100"),
        ({"late_fee_amount": Decimal("1.005")}, "late_fee_amount", "no more than 2 decimal places"),
        ({"restore_level": "lots"}, "restore_level", "must be a decimal number"),
    ],
)
def test_bad_policy_input_names_the_field_and_saves_nothing(manager, current, values, field, message):
    before = Policy.objects.count()
    with pytest.raises(ValidationError) as exc:
        new_version(manager, **values)
    errors = exc.value.message_dict
    assert message in " ".join(errors[field])
    assert "__all__" not in errors  # every rule on the field to correct, none above the form
    assert Policy.objects.count() == before


def test_amounts_given_as_text_are_accepted_and_stored_exactly(manager):
    policy = new_version(manager, restore_level="25.50", late_fee_percent="1.5")
    policy.refresh_from_db()
    assert (policy.restore_level, policy.late_fee_percent) == (Decimal("25.50"), Decimal("1.50"))


def test_a_float_amount_is_refused(manager):
    with pytest.raises(TypeError, match="never float"):
        new_version(manager, restore_level=25.5)
    assert Policy.objects.count() == 0


def test_a_setting_that_does_not_exist_is_refused(manager):
    with pytest.raises(ValueError, match="Not policy settings: restore_levle"):
        new_version(manager, restore_levle=Decimal("25"))
    with pytest.raises(ValueError, match="created_by"):
        new_version(manager, created_by=None)


# --- Office closures and weather holds -----------------------------------------------------------


def test_an_office_closure_records_who_entered_it(manager):
    closure = services.office_closure_create(
        actor=manager,
        start_date=date(2026, 11, 27),
        end_date=date(2026, 11, 27),
        reason="Day after Thanksgiving",
    )
    assert closure.entered_by == manager
    assert closure.history.get().history_user == manager


def test_a_weather_hold_records_who_entered_it_and_keeps_it_when_corrected(manager):
    hold = services.weather_hold_create(
        actor=manager, start_date=date(2026, 1, 20), end_date=date(2026, 1, 22), reason="Extreme cold"
    )
    other = factories.staff(roles.MANAGER, "manager2")
    services.weather_hold_update(
        actor=other,
        hold=hold,
        start_date=date(2026, 1, 20),
        end_date=date(2026, 1, 23),
        reason="Extreme cold",
    )
    hold.refresh_from_db()
    assert (hold.entered_by, hold.end_date) == (manager, date(2026, 1, 23))
    assert hold.history.first().history_user == other


@pytest.mark.parametrize(
    ("create", "model"),
    [(services.weather_hold_create, WeatherHold), (services.office_closure_create, OfficeClosure)],
)
def test_a_range_ending_before_it_starts_is_refused_and_nothing_saved(manager, create, model):
    with pytest.raises(ValidationError) as exc:
        create(actor=manager, start_date=date(2026, 1, 22), end_date=date(2026, 1, 20), reason="Cold")
    assert exc.value.message_dict["end_date"] == ["The last day may not be before the first day."]
    assert model.objects.count() == 0


def test_a_range_without_a_reason_is_refused(manager):
    with pytest.raises(ValidationError) as exc:
        services.weather_hold_create(actor=manager, start_date=TODAY, end_date=TODAY, reason="")
    assert "reason" in exc.value.message_dict
    assert WeatherHold.objects.count() == 0


# --- Admin ---------------------------------------------------------------------------------------


def form_data(policy: Policy, **overrides) -> dict:
    """What the admin form posts for `policy` (a checkbox is absent when unticked)."""
    data = {}
    for name in (*services.POLICY_VERSION_FIELDS, *services.POLICY_SETTING_FIELDS):
        value = overrides.get(name, getattr(policy, name))
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is None:
            data[name] = ""
        elif isinstance(value, time):
            data[name] = value.strftime("%H:%M")
        else:
            data[name] = str(value)
    return data


ADD = reverse("admin:coop_policy_add")


def change_url(policy):
    return reverse("admin:coop_policy_change", args=[policy.pk])


def test_admin_fieldsets_show_every_setting_once():
    shown = [name for _title, options in POLICY_FIELDSETS for name in options["fields"]]
    assert sorted(shown) == sorted(
        [*services.POLICY_VERSION_FIELDS, *services.POLICY_SETTING_FIELDS, "created_by", "created_at"]
    )
    titles = [title for title, _options in POLICY_FIELDSETS]
    assert titles == [
        "Version",
        "Prepaid eligibility",
        "Prepaid money",
        "Prepaid disconnect and restore",
        "Debt-management plans",
        "Postpaid billing and collections",
        "Returned payments",
        "Payment arrangements",
        "Deposits",
        "Amount guards",
    ]


def test_admin_add_form_starts_as_a_copy_of_the_version_in_force(manager_client, current):
    form = manager_client.get(ADD).context["adminform"].form
    assert form.initial["restore_level"] == Decimal("25.00")
    assert form.initial["late_fee_amount"] == Decimal("10.00")
    assert form.initial["name"] == current.name
    assert "effective_from" not in form.initial


def test_admin_manager_changes_one_number_and_picks_a_day(manager_client, manager, current):
    data = form_data(current, effective_from="2026-06-01", name="B + C, 2026-06", restore_level="30.00")
    response = manager_client.post(ADD, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    new = Policy.objects.get(effective_from=NEXT_MONTH)
    assert (new.restore_level, new.late_fee_amount, new.created_by) == (
        Decimal("30.00"),
        Decimal("10.00"),
        manager,
    )
    assert new.history.get().history_user == manager
    assert Policy.objects.in_force(TODAY) == current


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"late_fee_amount": "-10.00"}, "late_fee_amount", "greater than or equal to 0"),
        (
            {"disconnect_level": "30.00", "restore_level": "25.00"},
            "restore_level",
            "may not be below the disconnect level",
        ),
        (
            {"disconnect_window_start": "10:00"},
            "disconnect_window_end",
            "Give the end of the disconnect window",
        ),
        ({"effective_from": "2026-05-14"}, "effective_from", "cannot start in the past"),
        ({"effective_from": "2026-01-01"}, "effective_from", "already starts on 2026-01-01"),
    ],
)
def test_admin_add_with_bad_input_shows_the_error_on_the_field_and_saves_nothing(
    manager_client, current, overrides, field, message
):
    before = Policy.objects.count()
    data = form_data(current, **{"effective_from": "2026-06-01", **overrides})
    response = manager_client.post(ADD, data)
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert message in " ".join(form.errors[field])
    assert not form.non_field_errors()
    assert message.split(" $")[0] in response.content.decode()
    assert Policy.objects.count() == before


def test_admin_shows_a_version_in_force_read_only_with_a_way_to_create_a_new_one(manager_client, current):
    response = manager_client.get(change_url(current))
    assert response.status_code == 200
    page = response.content.decode()
    assert "create a new version" in page
    assert ADD in page
    assert 'name="restore_level"' not in page  # shown, not editable
    assert response.context["has_change_permission"] is False


def test_admin_refuses_a_post_changing_a_version_in_force(manager_client, current):
    response = manager_client.post(change_url(current), form_data(current, restore_level="99.00"))
    assert response.status_code == 403
    current.refresh_from_db()
    assert current.restore_level == Decimal("25.00")


def test_admin_refuses_reverting_a_version_in_force_from_its_history(manager_client, current):
    version = current.history.get()
    url = reverse("admin:coop_policy_simple_history", args=[current.pk, version.history_id])
    response = manager_client.post(url, form_data(current, restore_level="99.00"))
    assert response.status_code == 403
    current.refresh_from_db()
    assert current.restore_level == Decimal("25.00")


def test_admin_refuses_deleting_a_version_in_force(manager_client, current):
    response = manager_client.post(reverse("admin:coop_policy_delete", args=[current.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert Policy.objects.filter(pk=current.pk).exists()


def test_admin_changes_a_scheduled_version_through_the_service(manager_client, manager, current):
    pending = new_version(manager)
    response = manager_client.post(change_url(pending), form_data(pending, restore_level="35.00"))
    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.restore_level == Decimal("35.00")
    assert pending.history.first().history_user == manager


def test_admin_list_says_which_version_is_in_force_scheduled_or_past(manager_client, manager, current):
    older = factories.policy_scheduled(effective_from=date(2025, 1, 1), name="Old rules")
    pending = new_version(manager)
    rows = {
        p.pk: p for p in manager_client.get(reverse("admin:coop_policy_changelist")).context["cl"].result_list
    }
    admin_obj = manager_client.get(reverse("admin:coop_policy_changelist")).context["cl"].model_admin
    assert admin_obj.status(rows[current.pk]) == "In force now"
    assert admin_obj.status(rows[pending.pk]) == "Scheduled"
    assert admin_obj.status(rows[older.pk]) == "Past"
    page = manager_client.get(reverse("admin:coop_policy_changelist")).content.decode()
    assert "In force now" in page and "Scheduled" in page and "Past" in page


def test_admin_add_closure_records_the_manager_as_entered_by(manager_client, manager):
    response = manager_client.post(
        reverse("admin:coop_officeclosure_add"),
        {"start_date": "2026-11-27", "end_date": "2026-11-27", "reason": "Day after Thanksgiving"},
    )
    assert response.status_code == 302
    assert OfficeClosure.objects.get().entered_by == manager


def test_admin_add_weather_hold_ending_before_it_starts_shows_the_error_and_saves_nothing(manager_client):
    response = manager_client.post(
        reverse("admin:coop_weatherhold_add"),
        {"start_date": "2026-01-22", "end_date": "2026-01-20", "reason": "Cold"},
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["end_date"] == [
        "The last day may not be before the first day."
    ]
    assert WeatherHold.objects.count() == 0
