"""Debt-management plans: the one function that moves a plan's status, enrolling, cancelling, and
moving old debt into arrears."""

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing.events import DebtPlanChanged
from billing.exceptions import BillingError, IllegalPlanTransition
from billing.ledger import coop_ledger_account, ledger_post, member_ledger_account
from billing.limits import refuse_above_maximum
from billing.models import Credit, DebtPlan, Transaction
from billing.selectors import account_balances, active_plan
from billing.services._common import ZERO, P, _is_postpaid, _lock_account, _next_key
from billing.services.receivables import _add_credit
from coop import events
from coop.lifecycle import check_transition
from coop.models import Policy
from coop.money import to_cents
from coop.validators import check_texts


def plan_move(plan: DebtPlan, to_status: str, **fields) -> DebtPlan:
    """The one place a debt plan's status changes: refuses a move DebtPlan.TRANSITIONS does not
    allow (IllegalPlanTransition, nothing written), else sets the status and `fields` (ended_on,
    cancel_reason ...) and saves them. The caller holds the plan's row lock or its account's (every
    plan write happens under the account's lock, `_lock_account`, or the plan's own)."""
    if "status" in fields:  # the status is `to_status`, checked; never a field set beside it
        raise TypeError("plan_move() takes the new status as to_status, not as a field.")
    check_transition(
        DebtPlan.TRANSITIONS,
        plan.status,
        to_status,
        what=lambda: f"Debt plan #{plan.pk} of account {plan.account.number}",
        choices=DebtPlan.Status,
        error=IllegalPlanTransition,
    )
    plan.status = DebtPlan.Status(to_status)
    for name, value in fields.items():
        setattr(plan, name, value)
    plan.save(update_fields=["status", *fields])
    return plan


@transaction.atomic
def plan_enroll(*, account, actor, share_percent=None, override_reason: str = "", on=None) -> DebtPlan:
    """Enroll an account's arrears in a debt-management plan (managers only)."""
    check_texts(override_reason=override_reason)
    on = on or timezone.localdate()
    account = _lock_account(account)
    policy = Policy.objects.in_force(on)
    if active_plan(account) is not None:
        raise BillingError(f"Account {account.number} already has an active plan.")
    arrears = account_balances(account).arrears
    if arrears <= 0:
        raise BillingError(f"Account {account.number} has no arrears to put in a plan.")
    share = Decimal(share_percent) if share_percent is not None else policy.debt_plan_share_percent
    if share != policy.debt_plan_share_percent and not override_reason.strip():
        raise BillingError(
            f"The policy's share is {policy.debt_plan_share_percent}%; say why this plan takes {share}%."
        )
    if not 0 < share <= 100:
        raise BillingError(f"A plan's share must be more than 0% and at most 100% (got {share}%).")
    plan = DebtPlan.objects.create(
        account=account,
        share_percent=share,
        share_override_reason=override_reason.strip(),
        enrolled_amount=arrears,
        enrolled_on=on,
        enrolled_by=actor,
    )
    events.publish(DebtPlanChanged(plan_id=plan.pk))
    return plan


@transaction.atomic
def plan_cancel(*, plan: DebtPlan, actor, reason: str) -> DebtPlan:
    check_texts(reason=reason)
    if not reason.strip():
        raise BillingError("Say why the plan is cancelled.")
    plan = DebtPlan.objects.select_for_update().get(pk=plan.pk)
    plan_move(
        plan,
        DebtPlan.Status.CANCELLED,
        ended_on=timezone.localdate(),
        cancel_reason=reason.strip(),
        cancelled_by=actor,
    )
    events.publish(DebtPlanChanged(plan_id=plan.pk))
    return plan


@transaction.atomic
def debt_transfer_to_arrears(*, account, amount, actor, reason: str, on=None) -> Transaction:
    """Move old debt into arrears, for example when a member converts to prepaid and enrolls the
    debt in a plan (program B: outstanding fees and unbilled energy paid in full or put in the
    debt-management program).

    What the account has due (its postpaid amount due) moves first; any remainder is debt not yet
    billed (unbilled energy, outstanding fees) and is recognised as energy revenue now. So the
    amount due never goes below zero by a transfer.
    """
    check_texts(reason=reason)
    refuse_above_maximum(amount, on=on)
    amount = to_cents(amount)
    if amount <= 0 or not reason.strip():
        raise BillingError("A transfer needs an amount above $0.00 and a reason.")
    account = _lock_account(account)
    on = on or timezone.localdate()
    from_due = min(amount, max(account_balances(account).amount_due, ZERO))
    txn, _ = ledger_post(
        kind=Transaction.Kind.ADJUSTMENT,
        legs=[
            (member_ledger_account(account, P.ARREARS), amount),
            (member_ledger_account(account, P.AMOUNT_DUE), -from_due),
            (coop_ledger_account(P.ENERGY_REVENUE), -(amount - from_due)),
        ],
        idempotency_key=_next_key(account, "arrears-transfer"),
        effective_date=on,
        actor=actor,
        memo=f"Debt moved to arrears: {reason.strip()}",
        account=account,
    )
    if from_due and _is_postpaid(account):
        # The debt now in arrears is no longer due: it pays the oldest receivables.
        _add_credit(account, kind=Credit.Kind.ARREARS_TRANSFER, txn=txn, amount=from_due)
    return txn
