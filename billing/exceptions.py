from coop.exceptions import CoopError


class BillingError(CoopError):
    pass


class LedgerError(BillingError):
    """A posting that would break the ledger's rules (unbalanced, not Decimal, reversed twice)."""
