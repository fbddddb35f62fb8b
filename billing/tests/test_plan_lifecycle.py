"""A debt plan's status moves only along DebtPlan.TRANSITIONS, through billing.services.plan_move."""

import datetime
from decimal import Decimal

import pytest

from accounts.tests import factories
from billing import services
from billing.exceptions import BillingError, IllegalPlanTransition
from billing.models import DebtPlan
from coop.lifecycle import IllegalTransition, map_problems

pytestmark = pytest.mark.django_db
P = DebtPlan.Status


@pytest.fixture
def plan(manager):
    factories.policy(debt_plan_share_percent=Decimal("35"))
    account = factories.account()
    services.debt_transfer_to_arrears(
        account=account, amount=Decimal("80.00"), actor=manager, reason="converted"
    )
    return services.plan_enroll(account=account, actor=manager)


def test_the_map_covers_every_plan_status_and_names_no_other():
    assert map_problems(DebtPlan.TRANSITIONS, P.values) == []
    assert DebtPlan.TRANSITIONS[P.CANCELLED] == frozenset()


def test_a_cancelled_plan_cannot_be_cancelled_again_or_resume_and_nothing_changes(plan, manager):
    services.plan_cancel(plan=plan, actor=manager, reason="member asked")
    plan.refresh_from_db()
    before = (plan.status, plan.ended_on, plan.cancel_reason, plan.cancelled_by_id)
    with pytest.raises(
        IllegalPlanTransition, match=f"Debt plan #{plan.pk} of account .* is cancelled and cannot"
    ):
        services.plan_cancel(plan=plan, actor=manager, reason="again")
    with pytest.raises(IllegalTransition, match="is cancelled and cannot become active. .*: none"):
        services.plan_move(plan, P.ACTIVE, ended_on=None)
    plan.refresh_from_db()
    assert (plan.status, plan.ended_on, plan.cancel_reason, plan.cancelled_by_id) == before


def test_a_completed_plan_cannot_be_cancelled(plan, manager):
    services.plan_move(plan, P.COMPLETED, ended_on=datetime.date(2026, 11, 2))
    with pytest.raises(
        BillingError, match="is completed and cannot become cancelled. From completed it can become: Active"
    ):
        services.plan_cancel(plan=plan, actor=manager, reason="mistake")
    plan.refresh_from_db()
    assert (plan.status, plan.cancel_reason, plan.cancelled_by_id) == (P.COMPLETED, "", None)


def test_plan_move_sets_the_status_and_the_fields_given(plan):
    services.plan_move(plan, P.COMPLETED, ended_on=datetime.date(2026, 11, 2))
    plan.refresh_from_db()
    assert (plan.status, plan.ended_on) == (P.COMPLETED, datetime.date(2026, 11, 2))
    services.plan_move(plan, P.ACTIVE, ended_on=None)
    plan.refresh_from_db()
    assert (plan.status, plan.ended_on) == (P.ACTIVE, None)


def test_plan_move_takes_no_status_beside_the_one_it_checks(plan):
    with pytest.raises(TypeError, match="to_status"):
        services.plan_move(plan, P.COMPLETED, status=P.CANCELLED)
    plan.refresh_from_db()
    assert plan.status == P.ACTIVE
