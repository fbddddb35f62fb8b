"""The clerk's view of an account's money in the admin: the money panel on the account page, the
receipt, and one small form per money action.

Each action view checks the permission, validates its form and calls exactly one service in
`billing.services`. A service is one database transaction, so when it refuses (a `BillingError`,
a `CoopError` such as no policy in force, or a `ValidationError`) nothing is saved and its message
is shown on the form as it is: on the field it names (`exc.field`, as `ValueRefused` does), else
above the form. The URLs are added by the billing admins (billing/admin.py):
account actions and receipts under the Payment admin, a fee's waiver under the ChargedFee admin
and a plan's cancellation under the DebtPlan admin.

Who may do what (the roles are in coop/roles.py; the services check the managers' rules again):

    post / return a payment, charge a fee, collect or apply a deposit   billing.add_payment
    refund a deposit, post an adjustment, write off arrears             billing.post_adjustment
    waive a fee                                                         coop.waive_fee
    enroll in a debt plan / cancel one                                  billing.add_debtplan / change_debtplan

A refund is money leaving the cooperative, so it is a manager's, like `credit_refund`.
"""

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Prefetch, Sum
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from accounts.models import Account
from billing import services
from billing.forms import (
    AdjustmentForm,
    DepositApplyForm,
    DepositCollectForm,
    DepositRefundForm,
    FeeChargeForm,
    FeeWaiveForm,
    PaymentPostForm,
    PaymentReturnForm,
    PlanCancelForm,
    PlanEnrollForm,
    WriteOffForm,
)
from billing.limits import over_confirmation_limit
from billing.models import ChargedFee, DebtPlan, LedgerAccount, Leg, Payment, ReturnedPayment, Transaction
from billing.selectors import Balances, account_balances, active_plan, add_months, check_restricted_until
from coop.exceptions import CoopError, PolicyNotConfigured
from coop.models import Policy

P = LedgerAccount.Purpose
ZERO = Decimal("0.00")
TRANSACTIONS_PER_PAGE = 20
RETURN_FEE_CODES = ("returned-payment", "returned-payment-collection")

# What each action needs. The buttons on the account page are shown from the same table.
PERMS = {
    "payment_post": "billing.add_payment",
    "payment_return": "billing.add_payment",
    "fee_charge": "billing.add_payment",
    "fee_waive": "coop.waive_fee",
    "deposit_collect": "billing.add_payment",
    "deposit_apply": "billing.add_payment",
    "deposit_refund": "billing.post_adjustment",
    "plan_enroll": "billing.add_debtplan",
    "plan_cancel": "billing.change_debtplan",
    "adjustment_post": "billing.post_adjustment",
    "arrears_write_off": "billing.post_adjustment",
}


def usd(value: Decimal, *, signed: bool = False) -> str:
    """$1,234.50 and −$5.00 (a true minus sign); with `signed`, +$5.00 for a positive amount."""
    sign = "−" if value < 0 else ("+" if signed and value > 0 else "")
    return f"{sign}${abs(value):,.2f}"


def balances_display(balances: Balances) -> dict[str, str]:
    return {
        "prepaid_credit": usd(balances.prepaid_credit),
        "arrears": usd(balances.arrears),
        "deposit_held": usd(balances.deposit_held),
        "amount_due": usd(balances.amount_due),
    }


def _may(user, action: str) -> bool:
    return user.has_perm(PERMS[action])


def _require(request, action: str) -> None:
    if not _may(request.user, action):
        raise PermissionDenied


def _error_messages(exc: Exception) -> list[str]:
    if isinstance(exc, ValidationError):
        return exc.messages
    return [str(exc)]


def _account_url(account_id) -> str:
    return reverse("admin:accounts_account_change", args=[account_id]) + "#money"


# --- Reads for the page ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanProgress:
    plan: DebtPlan
    paid: Decimal  # the plan's share of the payments posted since enrollment (returned ones excluded)
    remaining: Decimal  # the arrears still owed

    @property
    def percent_paid(self) -> int:
        total = self.paid + self.remaining
        return int(self.paid * 100 / total) if total > 0 else 100

    @property
    def display(self) -> dict[str, str]:
        return {
            "enrolled": usd(self.plan.enrolled_amount),
            "paid": usd(self.paid),
            "remaining": usd(self.remaining),
            "share": f"{self.plan.share_percent.normalize():f}%",
        }


def plan_progress(account, balances: Balances) -> PlanProgress | None:
    plan = active_plan(account)
    if plan is None:
        return None
    # Only an active plan takes a share of a payment (payment_post), so the shares of the payments
    # posted since the enrollment day are what this plan has collected.
    paid = Payment.objects.filter(
        account=account,
        status=Payment.Status.POSTED,
        transaction__effective_date__gte=plan.enrolled_on,
    ).aggregate(total=Sum("to_arrears"))["total"]
    return PlanProgress(plan=plan, paid=paid or ZERO, remaining=max(balances.arrears, ZERO))


@dataclass(frozen=True)
class CheckStatus:
    refused_until: datetime.date | None
    returned_checks: int
    window_months: int

    def __str__(self):
        plural = "s" if self.returned_checks != 1 else ""
        if self.refused_until:
            return (
                f"Checks refused until {self.refused_until:%B} {self.refused_until.day}, "
                f"{self.refused_until.year} — {self.returned_checks} returned check{plural}"
            )
        if self.returned_checks:
            return (
                f"Checks accepted — {self.returned_checks} returned check{plural} "
                f"in the last {self.window_months} months"
            )
        return "Checks accepted"


def check_status(account, *, today: datetime.date) -> CheckStatus:
    """The member's check restriction, said plainly, with the returned checks behind it."""
    policy = Policy.objects.in_force(today)
    until = check_restricted_until(account.member, today=today)
    # The returns check_restricted_until looks at: a restriction may rest on a return up to
    # window + restriction months ago.
    months = (
        policy.check_restriction_window_months + policy.check_restriction_months
        if until
        else policy.check_restriction_window_months
    )
    returned = ReturnedPayment.objects.filter(
        payment__account__member_id=account.member_id,
        payment__tender=Payment.Tender.CHECK,
        returned_on__gt=add_months(today, -months),
    ).count()
    return CheckStatus(refused_until=until, returned_checks=returned, window_months=months)


class TransactionRow:
    """One ledger transaction as the account page shows it: what it did to each of the member's
    balances, and the net amount in the member's favour (+) or against (−)."""

    # Each balance as the member reads it (billing.selectors.Balances): credit and deposit are
    # what the cooperative owes the member, arrears and amount due what the member owes.
    BUCKETS = (
        (P.PREPAID_CREDIT, "prepaid", -1),
        (P.ARREARS, "arrears", 1),
        (P.DEPOSIT_HELD, "deposit", -1),
        (P.AMOUNT_DUE, "amount due", 1),
    )

    def __init__(self, txn: Transaction):
        self.txn = txn
        by_purpose: dict[str, Decimal] = {}
        for leg in txn.member_legs:
            purpose = leg.ledger_account.purpose
            by_purpose[purpose] = by_purpose.get(purpose, ZERO) + leg.amount
        self.changes = [
            (label, usd(sign * by_purpose[purpose], signed=True))
            for purpose, label, sign in self.BUCKETS
            if by_purpose.get(purpose)
        ]
        # Legs are debit-positive; every member ledger account moves in the member's favour when
        # credited, so the net is minus the sum of the member's legs.
        self.amount = -sum(by_purpose.values(), ZERO)
        self.amount_display = usd(self.amount, signed=True)
        self.payment = _related_or_none(txn, "payment")
        self.fee = _related_or_none(txn, "charged_fee")


def _related_or_none(obj, name):
    try:
        return getattr(obj, name)
    except (ChargedFee.DoesNotExist, Payment.DoesNotExist):
        return None


def account_transactions(account, *, page_number):
    """A page of the account's transactions, newest first, in four queries however many rows:
    the count, the page (with its payment, fee and actor joined), and the member legs."""
    member_legs = Leg.objects.filter(ledger_account__account=account).select_related("ledger_account")
    queryset = (
        Transaction.objects.filter(account=account)
        .select_related("actor", "payment", "charged_fee")
        .prefetch_related(Prefetch("legs", queryset=member_legs, to_attr="member_legs"))
        .order_by("-posted_at", "-id")  # the (account, -posted_at, -id) index
    )
    page = Paginator(queryset, TRANSACTIONS_PER_PAGE).get_page(page_number)
    return page, [TransactionRow(txn) for txn in page.object_list]


def balances_after(payment: Payment) -> Balances:
    """The account's balances just after `payment` posted, for its receipt (which may be printed
    again later). Postings to one member ledger account are serialized by its row lock and take
    their ids in that order, so the legs up to the payment's transaction are exactly the past.
    (SQLite sums in floating point; the DecimalField converter rounds the total back to the cent,
    exact for any realistic number of legs.)"""
    sums = dict(
        Leg.objects.filter(
            ledger_account__account_id=payment.account_id, transaction_id__lte=payment.transaction_id
        )
        .values_list("ledger_account__purpose")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    return Balances(
        prepaid_credit=-sums.get(P.PREPAID_CREDIT, ZERO),
        arrears=sums.get(P.ARREARS, ZERO),
        deposit_held=-sums.get(P.DEPOSIT_HELD, ZERO),
        amount_due=sums.get(P.AMOUNT_DUE, ZERO),
    )


def _policy_or_none(today):
    try:
        return Policy.objects.in_force(today)
    except CoopError:
        return None


def money_panel(request, account) -> str:
    """The money panel on the account change page (hooked in by billing/admin.py)."""
    user = request.user
    if not user.has_perm("billing.view_transaction"):
        return ""
    today = timezone.localdate()
    balances = account_balances(account)
    context = {
        "account": account,
        "balances": balances,
        "money": balances_display(balances),
        "plan": plan_progress(account, balances),
        "can": {action: _may(user, action) for action in PERMS},
        "prepaid": account.billing_mode == Account.BillingMode.PREPAID,
    }
    try:
        context["deposit_required"] = usd(services.deposit_required(account=account, on=today))
        context["checks"] = check_status(account, today=today)
    except CoopError as exc:  # no policy in force: say so rather than break the account page
        context["policy_error"] = str(exc)
    page, rows = account_transactions(account, page_number=request.GET.get("txn_page"))
    params = request.GET.copy()
    params.pop("txn_page", None)
    context.update(page=page, rows=rows, page_query=params.urlencode())
    context["urls"] = {
        name: reverse(f"admin:billing_{name}", args=[account.pk])
        for name in (
            "payment_post",
            "fee_charge",
            "deposit_collect",
            "deposit_apply",
            "deposit_refund",
            "plan_enroll",
            "adjustment_post",
            "arrears_write_off",
        )
    }
    return TemplateResponse(request, "admin/billing/money_panel.html", context).rendered_content


# --- The action views -----------------------------------------------------------------------------


class MoneyViews:
    """The views, bound to an admin site (for its header, sidebar and login)."""

    def __init__(self, admin_site):
        self.admin_site = admin_site

    # -- helpers --

    def _account(self, account_id) -> Account:
        return get_object_or_404(Account.objects.select_related("member", "location"), pk=account_id)

    def _render(self, request, template, context):
        context = {**self.admin_site.each_context(request), **context}
        return TemplateResponse(request, template, context)

    def _form_view(self, request, *, account, title, form, call, done, submit, intro=None, target=None):
        """Show `form`; on a valid POST run `call(cleaned_data)` (one service) and return
        `done(result)`, or show the service's refusal on the form."""
        if request.method == "POST" and form.is_valid():
            try:
                result = call(form.cleaned_data)
            except (CoopError, ValidationError) as exc:
                field = getattr(exc, "field", None)
                for message in _error_messages(exc):
                    form.add_error(field if field in form.fields else None, message)
            else:
                return done(result)
        balances = account_balances(account)
        return self._render(
            request,
            "admin/billing/action_form.html",
            {
                "title": title,
                "account": account,
                "money": balances_display(balances),
                "prepaid": account.billing_mode == Account.BillingMode.PREPAID,
                "form": form,
                "submit": submit,
                "intro": intro,
                "target": target,
                "account_url": _account_url(account.pk),
                "opts": Account._meta,
            },
        )

    def _done(self, request, account, message):
        messages.success(request, message)
        return HttpResponseRedirect(_account_url(account.pk))

    @staticmethod
    def _bound(form_class, request, **kwargs):
        if request.method == "POST":
            return form_class(request.POST, **kwargs)
        return form_class(**kwargs)

    # -- payments --

    def payment_post(self, request, account_id):
        account = self._account(account_id)
        _require(request, "payment_post")
        form = self._bound(PaymentPostForm, request)
        today = timezone.localdate()
        policy = _policy_or_none(today)
        intro = []
        prepaid = account.billing_mode == Account.BillingMode.PREPAID
        if policy is not None and prepaid and policy.prepaid_minimum_payment:
            intro.append(f"The minimum prepaid payment is ${policy.prepaid_minimum_payment}.")
        if policy is not None:
            checks = check_status(account, today=today)
            if checks.refused_until:
                intro.append(f"{checks}: take cash, a certified check or a card.")
            cash, other = policy.payment_confirm_above_cash, policy.payment_confirm_above
            limits = [
                f"cash above ${cash:,}" if cash else "",
                f"another tender above ${other:,}" if other else "",
            ]
            if cash or other:
                intro.append(
                    f"A payment by {' or '.join(filter(None, limits))} asks you to confirm the amount."
                )
        if request.method == "POST" and form.is_valid():
            # The amount is above the limit of its tender: show the box that confirms it.
            day_policy = _policy_or_none(timezone.localdate(form.cleaned_data["received_at"]))
            if day_policy is not None and over_confirmation_limit(
                day_policy, amount=form.cleaned_data["amount"], tender=form.cleaned_data["tender"]
            ):
                form.ask_confirmation()

        def call(data):
            try:
                return services.payment_post(
                    account=account,
                    amount=data["amount"],
                    tender=data["tender"],
                    reference=data["reference"],
                    received_at=data["received_at"],
                    actor=request.user,
                    over_limit_confirmed="on the payment form" if data["confirm_over_limit"] else "",
                )
            except PolicyNotConfigured as exc:
                exc.field = "received_at"  # no policy on the day the payment was received
                raise

        def done(result):
            payment, created = result
            if created:
                messages.success(request, f"Payment posted: receipt {payment.receipt_number}.")
            else:
                messages.warning(
                    request,
                    f"{payment.get_tender_display()} reference {payment.reference} was already posted "
                    f"on {timezone.localtime(payment.created_at):%B %-d, %Y at %-I:%M %p}. "
                    "Nothing new was posted; this is its receipt.",
                )
            return HttpResponseRedirect(reverse("admin:billing_payment_receipt", args=[payment.pk]))

        return self._form_view(
            request,
            account=account,
            title=f"Post a payment to account {account.number}",
            form=form,
            call=call,
            done=done,
            submit="Post payment",
            intro=intro,
        )

    def payment_receipt(self, request, payment_id):
        if not request.user.has_perm("billing.view_payment"):
            raise PermissionDenied
        payment = get_object_or_404(
            Payment.objects.select_related("account__member", "account__location", "actor"),
            pk=payment_id,
        )
        returned = ReturnedPayment.objects.filter(payment=payment).select_related("actor").first()
        fees = []
        if returned is not None:
            fees = list(
                ChargedFee.objects.filter(
                    account_id=payment.account_id,
                    code__in=RETURN_FEE_CODES,
                    transaction_id__gt=returned.transaction_id,
                    description__contains=payment.receipt_number,
                ).order_by("transaction_id")
            )
        account = payment.account
        return self._render(
            request,
            "admin/billing/receipt.html",
            {
                "title": f"Receipt {payment.receipt_number}",
                "payment": payment,
                "account": account,
                "after": balances_display(balances_after(payment)),
                "amounts": {
                    name: usd(getattr(payment, name))
                    for name in ("amount", "to_credit", "to_arrears", "to_amount_due")
                },
                "prepaid": account.billing_mode == Account.BillingMode.PREPAID,
                "returned": returned,
                "fees": fees,
                "coop_name": _coop_name(),
                "account_url": _account_url(account.pk),
                "can_return": returned is None and _may(request.user, "payment_return"),
                "return_url": reverse("admin:billing_payment_return", args=[payment.pk]),
                "opts": Account._meta,
            },
        )

    def payment_return(self, request, payment_id):
        payment = get_object_or_404(Payment.objects.select_related("account__member"), pk=payment_id)
        _require(request, "payment_return")
        account = payment.account
        form = self._bound(PaymentReturnForm, request, received_on=timezone.localdate(payment.received_at))

        def call(data):
            return services.payment_return(
                payment=payment,
                reason=data["reason"],
                note=data["note"],
                returned_on=data["returned_on"],
                actor=request.user,
            )

        def done(record):
            messages.success(
                request,
                f"Payment {payment.receipt_number} returned ({record.get_reason_display().lower()}). "
                "The fees charged for it are listed below.",
            )
            return HttpResponseRedirect(reverse("admin:billing_payment_receipt", args=[payment.pk]))

        return self._form_view(
            request,
            account=account,
            title=f"Return payment {payment.receipt_number}",
            form=form,
            call=call,
            done=done,
            submit="Return payment",
            intro=[
                f"{payment.get_tender_display()} ${payment.amount}, reference {payment.reference}, "
                f"received {timezone.localtime(payment.received_at):%B %-d, %Y}.",
                "The payment is reversed and the policy's returned-payment fees are charged at once.",
            ],
            target=payment,
        )

    # -- fees --

    def fee_charge(self, request, account_id):
        account = self._account(account_id)
        _require(request, "fee_charge")
        form = self._bound(FeeChargeForm, request)

        def call(data):
            return services.fee_charge(account=account, code=data["fee"].code, actor=request.user)

        def done(fee):
            return self._done(request, account, f"Charged {fee.description}: ${fee.amount}.")

        return self._form_view(
            request,
            account=account,
            title="Charge a fee",
            form=form,
            call=call,
            done=done,
            submit="Charge fee",
        )

    def fee_waive(self, request, fee_id):
        fee = get_object_or_404(ChargedFee.objects.select_related("account__member"), pk=fee_id)
        _require(request, "fee_waive")
        form = self._bound(FeeWaiveForm, request)

        def call(data):
            return services.fee_waive(fee=fee, actor=request.user, reason=data["reason"])

        def done(fee):
            return self._done(request, fee.account, f"Waived {fee.description} (${fee.amount}).")

        return self._form_view(
            request,
            account=fee.account,
            title=f"Waive a fee of account {fee.account.number}",
            form=form,
            call=call,
            done=done,
            submit="Waive fee",
            intro=[f"{fee.description}: ${fee.amount}, charged {fee.charged_on:%B %-d, %Y}."],
            target=fee,
        )

    # -- deposits --

    def deposit_collect(self, request, account_id):
        account = self._account(account_id)
        _require(request, "deposit_collect")
        intro, initial = [], {}
        try:
            required = services.deposit_required(account=account)
        except CoopError as exc:
            intro.append(str(exc))
        else:
            held = account_balances(account).deposit_held
            intro.append(f"The policy requires a deposit of ${required}; ${held} is held.")
            if required > held:
                initial["amount"] = required - held
        form = self._bound(DepositCollectForm, request, initial=initial)

        # Transactions take increasing ids: one at or below the newest before the call was already there.
        newest = Transaction.objects.order_by("-id").values_list("id", flat=True).first() or 0

        def call(data):
            return services.deposit_collect(
                account=account,
                amount=data["amount"],
                tender=data["tender"],
                reference=data["reference"].strip(),
                actor=request.user,
            )

        def done(txn):
            if txn.pk <= newest:  # the same deposit entered again: the service returned it
                messages.warning(
                    request,
                    f"{txn.memo} was already collected on {timezone.localtime(txn.posted_at):%B %-d, %Y}. "
                    "Nothing new was posted.",
                )
                return HttpResponseRedirect(_account_url(account.pk))
            return self._done(request, account, f"Deposit collected: {txn.memo}.")

        return self._form_view(
            request,
            account=account,
            title="Collect a deposit",
            form=form,
            call=call,
            done=done,
            submit="Collect deposit",
            intro=intro,
        )

    def deposit_apply(self, request, account_id):
        account = self._account(account_id)
        _require(request, "deposit_apply")
        form = self._bound(DepositApplyForm, request)

        def call(data):
            return services.deposit_apply(
                account=account, actor=request.user, reason=data["reason"], amount=data["amount"]
            )

        def done(txn):
            return self._done(request, account, f"{txn.memo}.")

        return self._form_view(
            request,
            account=account,
            title="Apply the deposit",
            form=form,
            call=call,
            done=done,
            submit="Apply deposit",
            intro=["The deposit pays arrears first, then the prepaid balance or the amount due."],
        )

    def deposit_refund(self, request, account_id):
        account = self._account(account_id)
        _require(request, "deposit_refund")
        form = self._bound(DepositRefundForm, request)

        def call(data):
            return services.deposit_refund(
                account=account, actor=request.user, reason=data["reason"], amount=data["amount"]
            )

        def done(txn):
            return self._done(request, account, "Deposit refunded: it is in refunds payable, to be paid out.")

        return self._form_view(
            request,
            account=account,
            title="Refund the deposit",
            form=form,
            call=call,
            done=done,
            submit="Refund deposit",
        )

    # -- debt-management plans --

    def plan_enroll(self, request, account_id):
        account = self._account(account_id)
        _require(request, "plan_enroll")
        policy = _policy_or_none(timezone.localdate())
        initial = {"share_percent": policy.debt_plan_share_percent} if policy else {}
        form = self._bound(PlanEnrollForm, request, initial=initial)
        intro = [f"Arrears now: ${account_balances(account).arrears}."]
        if policy is not None:
            intro.append(f"The policy's share is {policy.debt_plan_share_percent}% of each payment.")

        def call(data):
            return services.plan_enroll(
                account=account,
                actor=request.user,
                share_percent=data["share_percent"],
                override_reason=data["override_reason"],
            )

        def done(plan):
            return self._done(
                request,
                account,
                f"Enrolled ${plan.enrolled_amount} of arrears in a plan taking {plan.share_percent}% "
                "of each payment.",
            )

        return self._form_view(
            request,
            account=account,
            title="Enroll in a debt-management plan",
            form=form,
            call=call,
            done=done,
            submit="Enroll",
            intro=intro,
        )

    def plan_cancel(self, request, plan_id):
        plan = get_object_or_404(DebtPlan.objects.select_related("account__member"), pk=plan_id)
        _require(request, "plan_cancel")
        form = self._bound(PlanCancelForm, request)

        def call(data):
            return services.plan_cancel(plan=plan, actor=request.user, reason=data["reason"])

        def done(plan):
            return self._done(request, plan.account, "The debt-management plan is cancelled.")

        return self._form_view(
            request,
            account=plan.account,
            title="Cancel the debt-management plan",
            form=form,
            call=call,
            done=done,
            submit="Cancel plan",
            intro=[
                f"{plan.share_percent}% of each payment; ${plan.enrolled_amount} enrolled on "
                f"{plan.enrolled_on:%B %-d, %Y}. The arrears stay on the account."
            ],
            target=plan,
        )

    # -- managers' corrections --

    def adjustment_post(self, request, account_id):
        account = self._account(account_id)
        _require(request, "adjustment_post")
        form = self._bound(AdjustmentForm, request)

        def call(data):
            return services.adjustment_post(
                account=account, amount=form.signed_amount(), actor=request.user, reason=data["reason"]
            )

        def done(txn):
            return self._done(request, account, f"{txn.memo} (${abs(form.signed_amount())}).")

        where = "prepaid balance" if account.billing_mode == Account.BillingMode.PREPAID else "amount due"
        return self._form_view(
            request,
            account=account,
            title="Post an adjustment",
            form=form,
            call=call,
            done=done,
            submit="Post adjustment",
            intro=[f"The adjustment moves the {where}, against billing adjustments."],
        )

    def arrears_write_off(self, request, account_id):
        account = self._account(account_id)
        _require(request, "arrears_write_off")
        form = self._bound(WriteOffForm, request)

        def call(data):
            return services.arrears_write_off(
                account=account, actor=request.user, reason=data["reason"], amount=data["amount"]
            )

        def done(txn):
            return self._done(request, account, f"{txn.memo}.")

        return self._form_view(
            request,
            account=account,
            title="Write off arrears",
            form=form,
            call=call,
            done=done,
            submit="Write off",
            intro=[f"Arrears now: ${account_balances(account).arrears}."],
        )


def _coop_name():
    return getattr(settings, "COOP_NAME", "")
