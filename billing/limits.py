"""The policy's guards on the amounts staff and files post (coop.Policy, "Amount guards").

- Above `amount_maximum` a payment, deposit, fee, bill, adjustment or debt transfer is refused:
  such an amount is a typing error (9,999,999,999.99 would also overflow the ledger's balances,
  which hold 12 digits; billing.ledger refuses that too, whatever the policy).
- Above the confirmation limit of its tender (`payment_confirm_above_cash` for cash,
  `payment_confirm_above` for every other tender; 0: never asked) a payment is posted only when
  the clerk confirmed the amount: the payment form's confirmation box, or
  `import_payments --confirm-over-limit` for a file. The confirmation is written into the
  payment's ledger memo, which can never be changed: who confirmed it (the transaction's actor)
  and how.

Both refusals are `ValueRefused` on the field `amount`, so a form shows them on the amount and an
import reports them on the row's amount column.
"""

import datetime
from decimal import Decimal

from django.utils import timezone

from coop.exceptions import PolicyNotConfigured
from coop.models import Policy
from coop.money import to_cents
from coop.validators import ValueRefused

# The form field that confirms an amount above the limit; the services' refusal names it.
CONFIRM_FIELD = "confirm_over_limit"


def confirmation_limit(policy: Policy, tender: str) -> Decimal:
    """The amount above which a payment by `tender` needs a confirmation (0: never)."""
    return policy.payment_confirm_above_cash if tender == "cash" else policy.payment_confirm_above


def over_confirmation_limit(policy: Policy, *, amount: Decimal, tender: str) -> bool:
    limit = confirmation_limit(policy, tender)
    return bool(limit) and amount > limit


def _refuse_above_maximum(policy: Policy, amount: Decimal) -> None:
    if abs(amount) > policy.amount_maximum:
        raise ValueRefused(
            f"${abs(amount):,} is more than the largest amount the policy accepts "
            f"(${policy.amount_maximum:,}). Check the amount; a larger one is split, or posted after "
            "a billing manager changes the policy.",
            field="amount",
        )


def refuse_above_maximum(amount, *, on: datetime.date | None = None) -> None:
    """For the services other than payment_post: refuse an amount above the policy's largest.
    Without a policy in force (or with a value that is not an amount) the service's own checks
    speak; the ledger still refuses an amount that would overflow a balance."""
    try:
        amount = to_cents(amount)
        policy = Policy.objects.in_force(on or timezone.localdate())
    except (TypeError, ValueError, PolicyNotConfigured):
        return
    _refuse_above_maximum(policy, amount)


def payment_amount_check(*, policy: Policy, amount: Decimal, tender, confirmed: str, actor) -> str:
    """Refuse an amount above the maximum, or above the tender's limit without a confirmation.

    `confirmed` says how the amount was confirmed ("" if it was not). Returns what the payment's
    memo records about it: "" for an amount within the limit.
    """
    label = getattr(tender, "label", str(tender)).lower()
    _refuse_above_maximum(policy, amount)
    if not over_confirmation_limit(policy, amount=amount, tender=tender):
        return ""
    limit = confirmation_limit(policy, tender)
    if not confirmed:
        raise ValueRefused(
            f"${amount:,} by {label} is above the policy's ${limit:,} limit for {label} payments. "
            "Check the amount, then confirm it (tick “Confirm the amount” on the form, or run the "
            "file with --confirm-over-limit).",
            field="amount",
        )
    who = actor.get_username() if actor is not None else "no operator named"
    return f"over the ${limit:,} {label} limit, confirmed by {who} ({confirmed})"
