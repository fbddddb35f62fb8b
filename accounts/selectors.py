"""Reads about members and accounts that more than one place needs."""

import datetime

from accounts.models import ServiceLocation
from coop.models import Policy


def prepaid_eligibility_problems(*, location: ServiceLocation, on: datetime.date) -> list[str]:
    """Why `location` cannot take prepaid service under the policy in force on `on` (empty: it can).

    The service rules come from the policy (program A: single-phase only; program B: single-phase
    residential, self-contained meter, 200-amp service). Member-side requirements (portal account,
    signed application, appointment) are checked by the enrollment process.
    """
    policy = Policy.objects.in_force(on)
    problems = []
    if policy.prepaid_single_phase_only and location.phase != ServiceLocation.Phase.SINGLE:
        problems.append("Prepaid service is only for single-phase services.")
    if policy.prepaid_residential_only and location.rate_class != ServiceLocation.RateClass.RESIDENTIAL:
        problems.append("Prepaid service is only for residential services.")
    if (
        policy.prepaid_self_contained_meter_only
        and location.meter_base != ServiceLocation.MeterBase.SELF_CONTAINED
    ):
        problems.append("Prepaid service needs a self-contained meter base.")
    if policy.prepaid_required_amperage and location.amperage != policy.prepaid_required_amperage:
        problems.append(
            f"Prepaid service needs {policy.prepaid_required_amperage}-amp service "
            f"(this location has {location.amperage} A)."
        )
    return problems
