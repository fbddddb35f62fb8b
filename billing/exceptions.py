from coop.exceptions import CoopError
from coop.lifecycle import IllegalTransition


class BillingError(CoopError):
    pass


class LedgerError(BillingError):
    """A posting that would break the ledger's rules (unbalanced, not Decimal, reversed twice)."""


class IllegalPlanTransition(BillingError, IllegalTransition):
    """A debt-plan status move that the plan lifecycle (DebtPlan.TRANSITIONS) does not allow."""


class PaymentRefused(BillingError):
    """A payment the rules do not allow (below the minimum, a check under restriction...)."""


class DuplicateReference(BillingError):
    """An idempotency key (a processor reference, a check number, a bill's name) already used for
    other money: another kind, account, amount or tender (billing.ledger.ledger_same_as_before).
    Nothing was posted."""


# Payments' name for it: the tender and reference were already posted, to another account or for
# another amount.
DuplicatePayment = DuplicateReference


class RatesError(BillingError):
    """No tariff in force, or a tariff that cannot price a day (say what to fix)."""


class DailyRunError(BillingError):
    """The daily run cannot run for the day asked (not over yet, or out of date order)."""
