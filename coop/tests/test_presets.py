"""The five programs of docs/POLICIES.md as presets, and `manage.py load_policy_preset`."""

import datetime
import io
from datetime import date, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from coop import presets
from coop.models import BillingCycle, Policy
from coop.services import policy_load_presets

pytestmark = pytest.mark.django_db

CHICAGO = ZoneInfo("America/Chicago")
TODAY = date(2026, 5, 15)


@pytest.fixture(autouse=True)
def frozen_today(settings):
    """Noon on 15 May 2026 in Wisconsin, whatever the developer's zone."""
    settings.TIME_ZONE = "America/Chicago"
    with time_machine.travel(datetime.datetime(2026, 5, 15, 12, 0, tzinfo=CHICAGO), tick=False):
        yield


def load(*names, on=TODAY) -> Policy:
    return policy_load_presets(names=list(names), effective_from=on)


def run(*args) -> str:
    out = io.StringIO()
    call_command("load_policy_preset", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


# --- Each preset ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["A", "B", "C", "D", "E"])
def test_every_preset_loads_as_a_valid_policy_version(name):
    policy = load(name)
    policy.refresh_from_db()
    policy.full_clean()
    for field, value in presets.PRESETS[name].values.items():
        assert getattr(policy, field) == value, field
    assert Policy.objects.in_force(TODAY) == policy


@pytest.mark.parametrize("name", ["A", "B", "C", "D", "E"])
def test_every_preset_names_its_seed_and_describes_itself(name):
    preset = presets.PRESETS[name]
    assert preset.source.endswith(".txt") and preset.source[:3] == "00" + "01234"["ABCDE".index(name)]
    assert preset.description


def test_program_a_cuts_at_zero_whatever_the_weather_and_restores_at_fifty():
    a = load("A")
    assert (a.is_disconnect_level(Decimal("0.00")), a.is_disconnect_level(Decimal("0.01"))) == (True, False)
    assert not (a.grace_on_weekends or a.grace_on_holidays or a.grace_on_weather_holds)
    assert a.has_disconnect_window is False
    assert a.restore_level == Decimal("50.00") and not a.restore_adds_accrued_debt
    assert a.prepaid_minimum_starting_balance == Decimal("50.00")
    assert a.prepaid_deposit_waiver_term_months == 12
    assert a.prepaid_requires_portal_account and a.prepaid_requires_signed_application
    assert a.prepaid_requires_appointment
    assert a.prepaid_statement == Policy.PrepaidStatement.MONTHLY


def test_program_b_takes_35_percent_for_debt_and_a_ten_dollar_minimum_payment():
    b = load("B")
    assert b.debt_plan_share_percent == Decimal("35.00") and b.debt_plan_exempts_initial_minimum
    assert b.prepaid_minimum_payment == Decimal("10.00")
    assert (b.signup_membership_fee, b.signup_account_establishment_fee) == (
        Decimal("5.00"),
        Decimal("15.00"),
    )
    assert (
        b.signup_membership_fee + b.signup_account_establishment_fee + b.prepaid_minimum_starting_balance
        == 70
    )
    assert b.restore_level == Decimal("25.00")
    assert b.inactive_after_days == 7 and b.charges_continue_while_disconnected
    assert b.prepaid_statement == Policy.PrepaidStatement.ONLINE_ONLY
    assert (b.prepaid_residential_only, b.prepaid_self_contained_meter_only, b.prepaid_required_amperage) == (
        True,
        True,
        200,
    )


def test_program_e_restores_at_twenty_plus_the_debt_and_cuts_only_between_ten_and_eleven():
    e = load("E")
    assert e.restore_level == Decimal("20.00") and e.restore_adds_accrued_debt
    assert e.restore_within_minutes == 15
    assert (e.disconnect_window_start, e.disconnect_window_end) == (time(10, 0), time(11, 0))
    assert e.grace_on_weekends and e.grace_on_holidays and e.grace_on_weather_holds
    # "goes negative": $0.00 keeps the power on, one cent below cuts it.
    assert (e.is_disconnect_level(Decimal("0.00")), e.is_disconnect_level(Decimal("-0.01"))) == (False, True)
    # "more than fifteen (15) days": inactive on the 16th day.
    assert e.inactive_after_days == 16
    assert e.debt_plan_share_percent == Decimal("20.00") and not e.debt_plan_exempts_initial_minimum


def test_schedule_c_reconnects_for_45_in_business_hours_and_125_otherwise():
    c = load("C")
    assert (c.reconnect_fee_business_hours, c.reconnect_fee_after_hours) == (
        Decimal("45.00"),
        Decimal("125.00"),
    )
    assert c.reconnect_same_day_is_after_hours
    assert (c.business_hours_start, c.business_hours_end) == (time(8, 0), time(16, 0))
    assert (c.late_fee_kind, c.late_fee_amount, c.late_fee_grace_days) == ("flat", Decimal("10.00"), 9)
    assert c.reminder_notice_days_after_due == 10
    assert (c.nonpay_disconnect_rule, c.nonpay_disconnect_day_of_month) == ("day_of_month", 22)
    assert c.collection_fee == Decimal("45.00") and c.usage_due_at_disconnect
    assert (c.returned_payment_fee, c.returned_payment_collection_fee) == (Decimal("15.00"), Decimal("45.00"))
    assert c.online_payment_posting == Policy.OnlinePaymentPosting.NEXT_BUSINESS_DAY


def test_schedule_c_deposits_depend_on_the_credit_reference_and_the_meter():
    c = load("C")
    assert c.required_deposit(favorable_credit=True, first_meter=True) == Decimal("60.00")
    assert c.required_deposit(favorable_credit=False, first_meter=True) == Decimal("250.00")
    assert c.required_deposit(favorable_credit=True, first_meter=False) == Decimal("0.00")
    assert c.required_deposit(favorable_credit=False, first_meter=False) == Decimal("250.00")


def test_schedule_d_charges_one_and_a_half_percent_and_its_own_fees():
    d = load("D")
    assert (d.late_fee_kind, d.late_fee_percent, d.late_fee_grace_days) == ("percent", Decimal("1.50"), 0)
    assert d.due_date_rolls_to_business_day
    assert d.delinquent_notice_business_days_after_due == 2 and d.delinquent_notice_shows_disconnect_date
    assert d.nonpay_disconnect_rule == "after_notice"
    assert (d.disconnect_fee, d.reconnect_fee_after_hours) == (Decimal("50.00"), Decimal("150.00"))
    assert d.reconnect_cutoff_time == time(22, 0)
    assert (d.long_disconnect_days, d.long_disconnect_deposit) == (7, Decimal("500.00"))
    assert d.returned_payment_fee == Decimal("20.00")
    assert (d.check_restriction_returns, d.check_restriction_window_months, d.check_restriction_months) == (
        2,
        12,
        12,
    )
    assert (d.arrangement_broken_limit, d.arrangement_window_months) == (2, 12)
    assert d.online_payment_posting == Policy.OnlinePaymentPosting.IMMEDIATE


def test_schedule_d_cycles_bill_and_fall_due_on_the_published_days():
    load("D")
    cycles = {c.code: c for c in BillingCycle.objects.all()}
    assert {code: (c.bill_day, c.due_day) for code, c in cycles.items()} == {
        "cycle-1": (7, 28),
        "cycle-2": (14, 5),
        "cycle-3": (24, 15),
        "broadband": (3, 24),
    }
    assert cycles["cycle-1"].due_date_for(date(2026, 5, 7)) == date(2026, 5, 28)
    assert cycles["cycle-2"].due_date_for(date(2026, 5, 14)) == date(2026, 6, 5)
    assert cycles["cycle-3"].due_date_for(date(2026, 12, 24)) == date(2027, 1, 15)
    assert cycles["broadband"].due_date_for(date(2026, 5, 3)) == date(2026, 5, 24)


def test_schedule_c_bills_fall_due_on_the_first_of_the_next_month():
    load("C")
    cycle = BillingCycle.objects.get(code="monthly")
    assert cycle.due_date_for(date(2026, 5, 15)) == date(2026, 6, 1)
    assert cycle.due_date_for(date(2026, 12, 15)) == date(2027, 1, 1)


# --- Merging -------------------------------------------------------------------------------------


def test_b_then_c_is_prepaid_program_b_with_postpaid_schedule_c():
    policy = load("B", "C")
    assert policy.name == "Presets B + C"
    assert policy.debt_plan_share_percent == Decimal("35.00")  # from B
    assert policy.restore_level == Decimal("25.00")  # from B
    assert policy.late_fee_amount == Decimal("10.00")  # from C
    assert policy.reconnect_fee_after_hours == Decimal("125.00")  # from C
    assert policy.deposit_first_meter_favorable == Decimal("60.00")  # from C
    # Neither speaks to it: the model default stays.
    assert (
        policy.low_balance_threshold_default
        == Policy._meta.get_field("low_balance_threshold_default").default
    )
    assert list(BillingCycle.objects.values_list("code", flat=True)) == ["monthly"]
    assert "001_4cfe94b7f7bb46e9.txt" in policy.notes and "002_28eb311c328b4f89.txt" in policy.notes


def test_a_later_preset_wins_where_two_speak_to_the_same_setting():
    policy = load("D", "C")
    assert (policy.late_fee_kind, policy.late_fee_amount, policy.late_fee_percent) == ("flat", 10, 0)
    assert (policy.nonpay_disconnect_rule, policy.nonpay_disconnect_day_of_month) == ("day_of_month", 22)
    assert policy.nonpay_disconnect_days_after_notice is None
    other = load("C", "D", on=TODAY + datetime.timedelta(days=1))
    assert (other.late_fee_kind, other.late_fee_percent, other.late_fee_amount) == (
        "percent",
        Decimal("1.50"),
        0,
    )


def test_preset_names_are_case_insensitive():
    assert load("b", "c").name == "Presets B + C"


def test_an_unknown_preset_is_refused_naming_the_known_ones():
    with pytest.raises(presets.UnknownPreset, match=r"Unknown preset 'F'. Known presets: A, B, C, D, E"):
        load("B", "F")
    assert Policy.objects.count() == 0


# --- Loading rules -------------------------------------------------------------------------------


def test_loading_twice_for_the_same_day_is_refused_clearly():
    first = load("B", "C")
    with pytest.raises(ValidationError) as exc:
        load("B", "C")
    assert "A policy version already starts on 2026-05-15" in exc.value.message_dict["effective_from"][0]
    assert list(Policy.objects.all()) == [first]


def test_loading_creates_the_billing_cycles_once_and_keeps_a_managers_edit():
    load("D")
    BillingCycle.objects.filter(code="cycle-1").update(bill_day=8)
    load("D", on=date(2026, 6, 1))
    assert BillingCycle.objects.count() == 4
    assert BillingCycle.objects.get(code="cycle-1").bill_day == 8


def test_a_past_day_is_refused_once_a_version_was_in_force_on_it():
    load("B", "C", on=date(2026, 1, 1))  # a new installation may start its first policy back then
    with pytest.raises(ValidationError) as exc:
        load("E", on=date(2026, 3, 1))
    assert "cannot start in the past" in exc.value.message_dict["effective_from"][0]
    assert Policy.objects.count() == 1


# --- The command ---------------------------------------------------------------------------------


def test_list_prints_all_five_presets_with_their_seed_files():
    out = run("--list")
    for preset in presets.PRESETS.values():
        assert f"{preset.name}  seeds/{preset.source}" in out
        assert preset.description in out
    assert Policy.objects.count() == 0


def test_command_loads_b_and_c_from_today_and_reports_the_cycles():
    out = run("B", "C")
    policy = Policy.objects.get()
    assert policy.effective_from == TODAY
    assert "Created policy version Presets B + C (from 2026-05-15)" in out
    assert "Created billing cycle monthly" in out
    assert "already exists" in run("C", "--effective", "2026-06-01")


def test_command_default_day_is_today_in_the_cooperatives_zone_not_utc():
    # 03:30 UTC on 16 May is still the evening of 15 May in Wisconsin.
    with time_machine.travel(datetime.datetime(2026, 5, 16, 3, 30, tzinfo=datetime.UTC), tick=False):
        run("A")
    assert Policy.objects.get().effective_from == date(2026, 5, 15)


def test_command_warns_when_an_existing_cycle_differs_from_the_preset():
    BillingCycle.objects.create(code="cycle-2", name="Cycle 2", bill_day=15, due_day=5)
    out = run("D")
    assert "Kept billing cycle cycle-2 as it is (billed 15, due 5); the preset says billed 14" in out


def test_command_takes_an_effective_date_given_as_a_date_object():
    call_command("load_policy_preset", "B", "C", effective=date(2026, 6, 1), stdout=io.StringIO())
    assert Policy.objects.get().effective_from == date(2026, 6, 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Name at least one preset (A, B, C, D, E), or use --list"),
        (("B", "Z"), "Unknown preset 'Z'. Known presets: A, B, C, D, E"),
        (("B", "--effective", "2026-13-01"), "--effective must be a date as YYYY-MM-DD (got '2026-13-01')"),
        (("B", "--effective", "1/6/2026"), "--effective must be a date as YYYY-MM-DD"),
    ],
)
def test_command_refuses_bad_input_with_a_clear_message(args, message):
    with pytest.raises(CommandError) as exc:
        run(*args)
    assert message in str(exc.value)
    assert Policy.objects.count() == 0


def test_command_refuses_a_second_version_for_the_same_day():
    run("B", "C")
    with pytest.raises(CommandError, match="effective_from: A policy version already starts on 2026-05-15"):
        run("B", "C")
