from coop.exceptions import CoopError


class BillingError(CoopError):
    pass


class LedgerError(BillingError):
    """A posting that would break the ledger's rules (unbalanced, not Decimal, reversed twice)."""


class PaymentRefused(BillingError):
    """A payment the rules do not allow (below the minimum, a check under restriction...)."""


class DuplicatePayment(BillingError):
    """The tender and reference were already posted, to another account or for another amount."""


class RatesError(BillingError):
    """No tariff in force, or a tariff that cannot price a day (say what to fix)."""


class DailyRunError(BillingError):
    """The daily run cannot run for the day asked (not over yet, or out of date order)."""
