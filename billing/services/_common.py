"""What every billing service shares: the account lock, where a charge lands, the staff key sequence
and the manager check."""

from decimal import Decimal

from accounts.models import Account
from billing.exceptions import BillingError
from billing.models import LedgerAccount, Transaction

P = LedgerAccount.Purpose
ZERO = Decimal("0.00")


def _lock_account(account) -> Account:
    """Serialize money movements of one member account (payments, returns, fees, plan changes)."""
    return Account.objects.select_for_update().select_related("member").get(pk=account.pk)


def _receivable_purpose(account) -> str:
    """Where a charge lands: prepaid charges come off the prepaid balance; postpaid ones are due."""
    return P.PREPAID_CREDIT if account.billing_mode == Account.BillingMode.PREPAID else P.AMOUNT_DUE


def _is_postpaid(account) -> bool:
    return account.billing_mode == Account.BillingMode.POSTPAID


def _require_manager(actor, what: str):
    if actor is None or not actor.has_perm("billing.post_adjustment"):
        raise BillingError(f"Only a billing manager may {what}.")


def _next_key(account, prefix: str) -> str:
    """A per-account sequence key for staff-initiated postings (the account row is locked)."""
    return f"{prefix}:{account.pk}:{Transaction.objects.filter(account=account).count() + 1}"
