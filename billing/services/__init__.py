"""Writes that move members' money. Each is one database transaction posting to the ledger.

One module per concern, all re-exported here (`from billing.services import payment_post`):
payments (post, return), fees (charge, waive), plans (the plan's status, enroll, cancel, debt to
arrears), deposits (required, collect, apply, refund), adjustments (post, reverse, write-off),
refunds (credit refund, payout), receivables (postpaid bills and the allocation internals) and
_common (the account lock and what the others share)."""

from billing.exceptions import BillingError, DuplicateReference, IllegalPlanTransition, PaymentRefused
from billing.services._common import ZERO, P
from billing.services.adjustments import adjustment_post, adjustment_reverse, arrears_write_off
from billing.services.deposits import deposit_apply, deposit_collect, deposit_refund, deposit_required
from billing.services.fees import fee_charge, fee_waive
from billing.services.payments import payment_post, payment_return
from billing.services.plans import debt_transfer_to_arrears, plan_cancel, plan_enroll, plan_move
from billing.services.receivables import receivable_add
from billing.services.refunds import credit_refund, refund_pay

__all__ = [
    "BillingError",
    "DuplicateReference",
    "IllegalPlanTransition",
    "P",
    "PaymentRefused",
    "ZERO",
    "adjustment_post",
    "adjustment_reverse",
    "arrears_write_off",
    "credit_refund",
    "debt_transfer_to_arrears",
    "deposit_apply",
    "deposit_collect",
    "deposit_refund",
    "deposit_required",
    "fee_charge",
    "fee_waive",
    "payment_post",
    "payment_return",
    "plan_cancel",
    "plan_enroll",
    "plan_move",
    "receivable_add",
    "refund_pay",
]
