"""The inactive sweep: prepaid accounts disconnected too long are made inactive and final-billed.

Programs B and E (docs/POLICIES.md): an account disconnected for `Policy.inactive_after_days`
days becomes inactive and gets a final bill (B: 7 days, daily charges continuing meanwhile; E:
"more than 15 days", stored as 16). The days are whole local days of the cooperative counted from
the local date of the disconnection: disconnected on 1 March, the account is 7 days off on 8 March.

Final billing, for one account, in one database transaction:

1. The account becomes inactive (`account_change_status`, with the audit record).
2. The final bill (`final-bill:<account id>`): the prepaid balance is settled against arrears.
   A negative balance (energy used on credit) moves to arrears, where the member owes it; a
   positive balance first pays any arrears (credit is not refunded while the member owes).
3. The deposit held pays what is left in arrears (`deposit_apply`).
4. If the policy refunds credit on the final bill, the deposit left over goes to refunds payable
   (`deposit_refund`) and so does the prepaid credit left over (`final-refund:<account id>`).
   Arrears the deposit and credit could not cover stay on the account for collection.

Steps 2 and 4 post under fixed idempotency keys; steps 3 and 4's deposit services post under the
account's own sequence keys, and are kept from running twice by step 1: the account is locked and
re-checked first, and an account that is no longer disconnected is left alone.
"""

import datetime
import logging

from django.db import transaction
from django.db.models import DateTimeField, F, OuterRef, Subquery
from django.db.models.functions import Coalesce

from accounts.models import Account, AccountStatusChange
from accounts.services import account_change_status
from billing import services
from billing.ledger import coop_ledger_account, ledger_post, member_ledger_account
from billing.models import DebtPlan, LedgerAccount, Transaction
from billing.selectors import account_balances, active_plan
from coop.calendar import coop_zone, local_today
from coop.models import Policy

logger = logging.getLogger(__name__)

P = LedgerAccount.Purpose
Status = Account.Status


def _disconnected_since(cutoff: datetime.datetime):
    """Prepaid accounts disconnected before the instant `cutoff`: one set-based query.

    The moment of disconnection is the account's `status_changed_at` (set by every status change,
    so for a disconnected account it is the disconnection), or, for a row carried over without
    it, the latest status change to disconnected in the audit trail.
    """
    audit = (
        AccountStatusChange.objects.filter(account=OuterRef("pk"), to_status=Status.DISCONNECTED)
        .order_by("-changed_at", "-id")
        .values("changed_at")[:1]
    )
    return (
        Account.objects.prepaid()
        .filter(status=Status.DISCONNECTED)
        .annotate(
            disconnected_at=Coalesce(F("status_changed_at"), Subquery(audit), output_field=DateTimeField())
        )
        .filter(disconnected_at__lt=cutoff)
    )


def inactive_candidates(*, today: datetime.date, days: int):
    """Prepaid accounts that have been disconnected for `days` whole local days or more on `today`.

    Disconnected on local day D, an account is (today - D) days off; it qualifies when
    D <= today - days, that is, when it was disconnected before local midnight starting day
    today - days + 1. Comparing instants (not dates cast in SQL) is the same on SQLite and
    PostgreSQL whatever zone the database session is in.
    """
    first_day_too_recent = today - datetime.timedelta(days=days - 1)
    cutoff = datetime.datetime.combine(first_day_too_recent, datetime.time.min, tzinfo=coop_zone())
    return _disconnected_since(cutoff)


def inactive_sweep(*, today: datetime.date | None = None, actor=None) -> int:
    """Make inactive and final-bill every prepaid account disconnected at least as long as the
    policy in force `today` (local date; default today) allows. Returns how many were made inactive.

    Does nothing when the policy has no `inactive_after_days` (blank: never). Each account is done
    in its own database transaction: one that fails is rolled back, logged with its account number,
    and counted, and the others go on. Safe to run again: an account already inactive is not a
    candidate, and one that changed meanwhile is re-checked under its row lock.
    """
    today = today or local_today()
    policy = Policy.objects.in_force(today)
    days = policy.inactive_after_days
    if days is None:
        logger.info("Inactive sweep %s: the policy makes no account inactive.", today)
        return 0
    candidates = inactive_candidates(today=today, days=days)
    made, failed = 0, []
    for pk, number in candidates.order_by("pk").values_list("pk", "number"):
        try:
            with transaction.atomic():
                if _make_inactive(pk, candidates=candidates, policy=policy, today=today, actor=actor):
                    made += 1
        except Exception:
            logger.exception("Inactive sweep %s: account %s could not be final-billed.", today, number)
            failed.append(number)
    if failed:
        logger.error(
            "Inactive sweep %s: %d made inactive, %d failed (accounts %s); they are retried on the next run.",
            today,
            made,
            len(failed),
            ", ".join(failed),
        )
    else:
        logger.info("Inactive sweep %s: %d made inactive.", today, made)
    return made


def _make_inactive(pk: int, *, candidates, policy: Policy, today: datetime.date, actor) -> bool:
    # Lock the row and ask again: since the candidate list was read, a payment may have
    # reconnected the account, or another run may have made it inactive.
    account = candidates.select_for_update().filter(pk=pk).first()
    if account is None:
        return False
    days_off = (today - account.disconnected_at.astimezone(coop_zone()).date()).days
    account_change_status(
        account=account,
        to_status=Status.INACTIVE,
        actor=actor,
        reason=f"Disconnected {days_off} days (policy: inactive after {policy.inactive_after_days})",
    )
    final_bill(account=account, policy=policy, on=today, actor=actor)
    return True


def final_bill(*, account: Account, policy: Policy, on: datetime.date, actor=None) -> None:
    """Steps 2-4 of the module docstring for an account just made inactive (call inside the
    transaction that made it inactive)."""
    balances = account_balances(account)
    # Debit-positive amount moved into arrears: the used-on-credit balance, or minus the part of
    # a positive balance that pays arrears.
    if balances.prepaid_credit < 0:
        to_arrears = -balances.prepaid_credit
        memo = f"Final bill: ${to_arrears} used on credit moved to arrears"
    else:
        to_arrears = -min(balances.prepaid_credit, max(balances.arrears, services.ZERO))
        memo = f"Final bill: ${-to_arrears} of prepaid credit applied to arrears"
    if to_arrears:
        ledger_post(
            kind=Transaction.Kind.ADJUSTMENT,
            legs=[
                (member_ledger_account(account, P.ARREARS), to_arrears),
                (member_ledger_account(account, P.PREPAID_CREDIT), -to_arrears),
            ],
            idempotency_key=f"final-bill:{account.pk}",
            effective_date=on,
            actor=actor,
            memo=memo,
            account=account,
        )
        balances = account_balances(account)

    if balances.deposit_held > 0 and balances.arrears > 0:
        services.deposit_apply(
            account=account,
            actor=actor,
            reason="final bill",
            amount=min(balances.deposit_held, balances.arrears),
            on=on,
        )
        balances = account_balances(account)

    plan = active_plan(account)
    if plan is not None and balances.arrears <= 0:
        services.plan_move(plan, DebtPlan.Status.COMPLETED, ended_on=on)

    if not policy.refund_credit_on_final_bill:
        return
    if balances.deposit_held > 0:
        services.deposit_refund(account=account, actor=actor, reason="final bill", on=on)
    if balances.prepaid_credit > 0:
        # The same posting as services.credit_refund, which is a manager's decision for a closing
        # account; here the policy has already decided (refund_credit_on_final_bill), and the sweep
        # runs unattended, so it posts under its own fixed key instead.
        ledger_post(
            kind=Transaction.Kind.REFUND,
            legs=[
                (member_ledger_account(account, P.PREPAID_CREDIT), balances.prepaid_credit),
                (coop_ledger_account(P.REFUNDS_PAYABLE), -balances.prepaid_credit),
            ],
            idempotency_key=f"final-refund:{account.pk}",
            effective_date=on,
            actor=actor,
            memo="Final bill: remaining credit refunded",
            account=account,
        )
