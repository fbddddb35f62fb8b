import datetime

import pytest

from accounts.models import ServiceLocation
from accounts.selectors import prepaid_eligibility_problems
from accounts.tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def program_b():
    # Program B: single-phase residential, self-contained meter, 200-amp service.
    return factories.policy(
        name="Program B",
        prepaid_single_phase_only=True,
        prepaid_residential_only=True,
        prepaid_self_contained_meter_only=True,
        prepaid_required_amperage=200,
    )


def test_a_standard_home_is_eligible_for_prepaid(program_b):
    assert prepaid_eligibility_problems(location=factories.location(), on=datetime.date(2026, 6, 1)) == []


def test_every_reason_a_location_is_not_eligible_is_listed(program_b):
    location = factories.location(
        phase=ServiceLocation.Phase.THREE,
        rate_class=ServiceLocation.RateClass.SMALL_COMMERCIAL,
        meter_base=ServiceLocation.MeterBase.CT,
        amperage=400,
    )
    problems = prepaid_eligibility_problems(location=location, on=datetime.date(2026, 6, 1))
    assert problems == [
        "Prepaid service is only for single-phase services.",
        "Prepaid service is only for residential services.",
        "Prepaid service needs a self-contained meter base.",
        "Prepaid service needs 200-amp service (this location has 400 A).",
    ]


def test_a_policy_change_next_month_leaves_this_months_eligibility_unchanged(program_b):
    location = factories.location(amperage=400)
    factories.policy_scheduled(effective_from=datetime.date(2026, 7, 1), name="Program B, any service size")
    assert prepaid_eligibility_problems(location=location, on=datetime.date(2026, 6, 30)) != []
    assert prepaid_eligibility_problems(location=location, on=datetime.date(2026, 7, 1)) == []
