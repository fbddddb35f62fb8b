"""The clerk's view of an account's money in the admin: the money panel on the account page, the
receipt, and one small form per money action.

The actions are one table, ACTIONS: each names its form, its permission, the one service in
`billing.services` it calls and the message it gives; one view (`MoneyViews.action`) serves them
all. It checks the permission, validates the form and calls the service. A service is one
database transaction, so when it refuses (a `BillingError`, a `CoopError` such as no policy in
force, or a `ValidationError`) nothing is saved and its message is shown on the form as it is: on
the field it names (`exc.field`, as `ValueRefused` does), else above the form. The URLs are added
by the billing admins (billing/admin.py): account actions and receipts under the Payment admin, a
fee's waiver under the ChargedFee admin and a plan's cancellation under the DebtPlan admin. What
the pages read (plan progress, check status, the transactions, the balances after a payment, a
return's fees) is in billing/selectors.py.

Who may do what (the roles are in coop/roles.py; the services check the managers' rules again):

    post / return a payment, charge a fee, collect or apply a deposit   billing.add_payment
    refund a deposit, post an adjustment, write off arrears             billing.post_adjustment
    waive a fee                                                         coop.waive_fee
    enroll in a debt plan / cancel one                                  billing.add_debtplan / change_debtplan

A refund is money leaving the cooperative, so it is a manager's, like `credit_refund`.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponseRedirect
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
from billing.models import ChargedFee, DebtPlan, Payment, ReturnedPayment, Transaction
from billing.selectors import (
    Balances,
    account_balances,
    account_transactions,
    balances_after,
    check_status,
    plan_progress,
    return_fees,
)
from coop.exceptions import CoopError, PolicyNotConfigured
from coop.models import Policy
from coop.money import usd


def balances_display(balances: Balances) -> dict[str, str]:
    return {
        "prepaid_credit": usd(balances.prepaid_credit),
        "arrears": usd(balances.arrears),
        "deposit_held": usd(balances.deposit_held),
        "amount_due": usd(balances.amount_due),
    }


def _may(user, action: str) -> bool:
    return user.has_perm(PERMS[action])


def _error_messages(exc: Exception) -> list[str]:
    if isinstance(exc, ValidationError):
        return exc.messages
    return [str(exc)]


def _account_url(account_id) -> str:
    return reverse("admin:accounts_account_change", args=[account_id]) + "#money"


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
        for name in (action.name for action in ACTIONS if action.subject is Account)
    }
    return TemplateResponse(request, "admin/billing/money_panel.html", context).rendered_content


# --- The action table -----------------------------------------------------------------------------


@dataclass
class Run:
    """One request to an action: what its URL names, the account it concerns, the form, and what
    `prepare` read for the form, the call or the message."""

    request: HttpRequest
    subject: Account | Payment | ChargedFee | DebtPlan
    account: Account
    intro: list[str] = field(default_factory=list)
    form_kwargs: dict = field(default_factory=dict)
    newest_txn: int = 0
    form: forms.Form | None = None

    @property
    def user(self):
        return self.request.user


@dataclass(frozen=True)
class Action:
    """One money action: its form, who may use it, the one service it calls and what it says."""

    name: str  # the URL's name (admin:billing_<name>) and the key of PERMS
    permission: str
    form: type[forms.Form]
    title: str  # formatted with the account and the subject
    submit: str
    call: Callable[[Run, dict], Any]  # the service call, given the form's cleaned data
    message: Callable[[Run, Any], str]  # said on success
    subject: type[Account | Payment | ChargedFee | DebtPlan] = Account  # what the URL's id names
    prepare: Callable[[Run], None] | None = None  # intro lines and form arguments
    on_valid: Callable[[Run], None] | None = None  # a valid POST, before the call
    repeat: Callable[[Run, Any], str | None] | None = None  # "nothing new was posted": a warning
    redirect: Callable[[Run, Any], str] | None = None  # where to go after; else the account page

    @property
    def shows_subject(self) -> bool:  # a payment, fee or plan is shown as the form's target
        return self.subject is not Account


# -- payments --


def _payment_post_prepare(run: Run) -> None:
    today = timezone.localdate()
    policy = _policy_or_none(today)
    prepaid = run.account.billing_mode == Account.BillingMode.PREPAID
    if policy is not None and prepaid and policy.prepaid_minimum_payment:
        run.intro.append(f"The minimum prepaid payment is ${policy.prepaid_minimum_payment}.")
    if policy is not None:
        checks = check_status(run.account, today=today)
        if checks.refused_until:
            run.intro.append(f"{checks}: take cash, a certified check or a card.")
        cash, other = policy.payment_confirm_above_cash, policy.payment_confirm_above
        limits = [
            f"cash above ${cash:,}" if cash else "",
            f"another tender above ${other:,}" if other else "",
        ]
        if cash or other:
            run.intro.append(
                f"A payment by {' or '.join(filter(None, limits))} asks you to confirm the amount."
            )


def _payment_post_on_valid(run: Run) -> None:
    # The amount is above the limit of its tender: show the box that confirms it.
    data = run.form.cleaned_data
    day_policy = _policy_or_none(timezone.localdate(data["received_at"]))
    if day_policy is not None and over_confirmation_limit(
        day_policy, amount=data["amount"], tender=data["tender"]
    ):
        run.form.ask_confirmation()


def _payment_post_call(run: Run, data):
    try:
        return services.payment_post(
            account=run.account,
            amount=data["amount"],
            tender=data["tender"],
            reference=data["reference"],
            received_at=data["received_at"],
            actor=run.user,
            over_limit_confirmed="on the payment form" if data["confirm_over_limit"] else "",
        )
    except PolicyNotConfigured as exc:
        exc.field = "received_at"  # no policy on the day the payment was received
        raise


def _payment_post_repeat(run: Run, result) -> str | None:
    payment, created = result
    if created:
        return None
    return (
        f"{payment.get_tender_display()} reference {payment.reference} was already posted "
        f"on {timezone.localtime(payment.created_at):%B %-d, %Y at %-I:%M %p}. "
        "Nothing new was posted; this is its receipt."
    )


def _receipt_url(payment: Payment) -> str:
    return reverse("admin:billing_payment_receipt", args=[payment.pk])


def _payment_return_prepare(run: Run) -> None:
    payment = run.subject
    run.form_kwargs["received_on"] = timezone.localdate(payment.received_at)
    run.intro += [
        f"{payment.get_tender_display()} ${payment.amount}, reference {payment.reference}, "
        f"received {timezone.localtime(payment.received_at):%B %-d, %Y}.",
        "The payment is reversed and the policy's returned-payment fees are charged at once.",
    ]


# -- deposits --


def _deposit_collect_prepare(run: Run) -> None:
    try:
        required = services.deposit_required(account=run.account)
    except CoopError as exc:
        run.intro.append(str(exc))
    else:
        held = account_balances(run.account).deposit_held
        run.intro.append(f"The policy requires a deposit of ${required}; ${held} is held.")
        if required > held:
            run.form_kwargs["initial"] = {"amount": required - held}
    # Transactions take increasing ids: one at or below the newest before the call was already there.
    run.newest_txn = Transaction.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _deposit_collect_repeat(run: Run, txn) -> str | None:
    if txn.pk > run.newest_txn:
        return None
    # The same deposit entered again: the service returned it.
    return (
        f"{txn.memo} was already collected on {timezone.localtime(txn.posted_at):%B %-d, %Y}. "
        "Nothing new was posted."
    )


# -- debt-management plans --


def _plan_enroll_prepare(run: Run) -> None:
    policy = _policy_or_none(timezone.localdate())
    run.form_kwargs["initial"] = {"share_percent": policy.debt_plan_share_percent} if policy else {}
    run.intro.append(f"Arrears now: ${account_balances(run.account).arrears}.")
    if policy is not None:
        run.intro.append(f"The policy's share is {policy.debt_plan_share_percent}% of each payment.")


# -- managers' corrections --


def _adjustment_prepare(run: Run) -> None:
    where = "prepaid balance" if run.account.billing_mode == Account.BillingMode.PREPAID else "amount due"
    run.intro.append(f"The adjustment moves the {where}, against billing adjustments.")


def _intro(*lines: Callable[[Run], str]) -> Callable[[Run], None]:
    """A `prepare` that only says `lines` (each made from the run) above the form."""

    def prepare(run: Run) -> None:
        run.intro += [line(run) for line in lines]

    return prepare


def _arrears_now(run: Run) -> str:
    return f"Arrears now: ${account_balances(run.account).arrears}."


ACTIONS = (
    Action(
        name="payment_post",
        permission="billing.add_payment",
        form=PaymentPostForm,
        title="Post a payment to account {account.number}",
        submit="Post payment",
        prepare=_payment_post_prepare,
        on_valid=_payment_post_on_valid,
        call=_payment_post_call,
        repeat=_payment_post_repeat,
        message=lambda run, result: f"Payment posted: receipt {result[0].receipt_number}.",
        redirect=lambda run, result: _receipt_url(result[0]),
    ),
    Action(
        name="payment_return",
        permission="billing.add_payment",
        subject=Payment,
        form=PaymentReturnForm,
        title="Return payment {subject.receipt_number}",
        submit="Return payment",
        prepare=_payment_return_prepare,
        call=lambda run, data: services.payment_return(
            payment=run.subject,
            reason=data["reason"],
            note=data["note"],
            returned_on=data["returned_on"],
            actor=run.user,
        ),
        message=lambda run, record: (
            f"Payment {run.subject.receipt_number} returned ({record.get_reason_display().lower()}). "
            "The fees charged for it are listed below."
        ),
        redirect=lambda run, record: _receipt_url(run.subject),
    ),
    Action(
        name="fee_charge",
        permission="billing.add_payment",
        form=FeeChargeForm,
        title="Charge a fee",
        submit="Charge fee",
        call=lambda run, data: services.fee_charge(
            account=run.account, code=data["fee"].code, actor=run.user
        ),
        message=lambda run, fee: f"Charged {fee.description}: ${fee.amount}.",
    ),
    Action(
        name="fee_waive",
        permission="coop.waive_fee",
        subject=ChargedFee,
        form=FeeWaiveForm,
        title="Waive a fee of account {account.number}",
        submit="Waive fee",
        prepare=_intro(
            lambda run: (
                f"{run.subject.description}: ${run.subject.amount}, "
                f"charged {run.subject.charged_on:%B %-d, %Y}."
            )
        ),
        call=lambda run, data: services.fee_waive(fee=run.subject, actor=run.user, reason=data["reason"]),
        message=lambda run, fee: f"Waived {fee.description} (${fee.amount}).",
    ),
    Action(
        name="deposit_collect",
        permission="billing.add_payment",
        form=DepositCollectForm,
        title="Collect a deposit",
        submit="Collect deposit",
        prepare=_deposit_collect_prepare,
        call=lambda run, data: services.deposit_collect(
            account=run.account,
            amount=data["amount"],
            tender=data["tender"],
            reference=data["reference"].strip(),
            actor=run.user,
        ),
        repeat=_deposit_collect_repeat,
        message=lambda run, txn: f"Deposit collected: {txn.memo}.",
    ),
    Action(
        name="deposit_apply",
        permission="billing.add_payment",
        form=DepositApplyForm,
        title="Apply the deposit",
        submit="Apply deposit",
        prepare=_intro(
            lambda run: "The deposit pays arrears first, then the prepaid balance or the amount due."
        ),
        call=lambda run, data: services.deposit_apply(
            account=run.account, actor=run.user, reason=data["reason"], amount=data["amount"]
        ),
        message=lambda run, txn: f"{txn.memo}.",
    ),
    Action(
        name="deposit_refund",
        permission="billing.post_adjustment",
        form=DepositRefundForm,
        title="Refund the deposit",
        submit="Refund deposit",
        call=lambda run, data: services.deposit_refund(
            account=run.account, actor=run.user, reason=data["reason"], amount=data["amount"]
        ),
        message=lambda run, txn: "Deposit refunded: it is in refunds payable, to be paid out.",
    ),
    Action(
        name="plan_enroll",
        permission="billing.add_debtplan",
        form=PlanEnrollForm,
        title="Enroll in a debt-management plan",
        submit="Enroll",
        prepare=_plan_enroll_prepare,
        call=lambda run, data: services.plan_enroll(
            account=run.account,
            actor=run.user,
            share_percent=data["share_percent"],
            override_reason=data["override_reason"],
        ),
        message=lambda run, plan: (
            f"Enrolled ${plan.enrolled_amount} of arrears in a plan taking {plan.share_percent}% "
            "of each payment."
        ),
    ),
    Action(
        name="plan_cancel",
        permission="billing.change_debtplan",
        subject=DebtPlan,
        form=PlanCancelForm,
        title="Cancel the debt-management plan",
        submit="Cancel plan",
        prepare=_intro(
            lambda run: (
                f"{run.subject.share_percent}% of each payment; ${run.subject.enrolled_amount} enrolled on "
                f"{run.subject.enrolled_on:%B %-d, %Y}. The arrears stay on the account."
            )
        ),
        call=lambda run, data: services.plan_cancel(plan=run.subject, actor=run.user, reason=data["reason"]),
        message=lambda run, plan: "The debt-management plan is cancelled.",
    ),
    Action(
        name="adjustment_post",
        permission="billing.post_adjustment",
        form=AdjustmentForm,
        title="Post an adjustment",
        submit="Post adjustment",
        prepare=_adjustment_prepare,
        call=lambda run, data: services.adjustment_post(
            account=run.account, amount=run.form.signed_amount(), actor=run.user, reason=data["reason"]
        ),
        message=lambda run, txn: f"{txn.memo} (${abs(run.form.signed_amount())}).",
    ),
    Action(
        name="arrears_write_off",
        permission="billing.post_adjustment",
        form=WriteOffForm,
        title="Write off arrears",
        submit="Write off",
        prepare=_intro(_arrears_now),
        call=lambda run, data: services.arrears_write_off(
            account=run.account, actor=run.user, reason=data["reason"], amount=data["amount"]
        ),
        message=lambda run, txn: f"{txn.memo}.",
    ),
)
# What each action needs. The buttons on the account page are shown from the same table.
PERMS = {action.name: action.permission for action in ACTIONS}
# What the URL's id names, loaded with what the page shows of it.
SUBJECTS = {
    Account: Account.objects.select_related("member", "location"),
    Payment: Payment.objects.select_related("account__member"),
    ChargedFee: ChargedFee.objects.select_related("account__member"),
    DebtPlan: DebtPlan.objects.select_related("account__member"),
}


# --- The views ------------------------------------------------------------------------------------


class MoneyViews:
    """The views, bound to an admin site (for its header, sidebar and login): the receipt, and one
    view for every action of ACTIONS, as an attribute of the action's name (`views.fee_charge`)."""

    def __init__(self, admin_site):
        self.admin_site = admin_site
        for action in ACTIONS:
            setattr(self, action.name, self._view_of(action))

    def _view_of(self, action: Action):
        def view(request, **ids):
            (object_id,) = ids.values()  # account_id, payment_id, fee_id or plan_id
            return self.action(request, action, object_id)

        view.__name__ = view.__qualname__ = action.name
        return view

    def _render(self, request, template, context):
        context = {**self.admin_site.each_context(request), **context}
        return TemplateResponse(request, template, context)

    def action(self, request, action: Action, object_id):
        """Show the action's form; on a valid POST call its one service and go back with its
        message, or show the service's refusal on the form (nothing was saved)."""
        subject = get_object_or_404(SUBJECTS[action.subject], pk=object_id)
        if not request.user.has_perm(action.permission):
            raise PermissionDenied
        account = subject if action.subject is Account else subject.account
        run = Run(request=request, subject=subject, account=account)
        if action.prepare is not None:
            action.prepare(run)
        if request.method == "POST":
            run.form = action.form(request.POST, **run.form_kwargs)
        else:
            run.form = action.form(**run.form_kwargs)
        form = run.form
        if request.method == "POST" and form.is_valid():
            if action.on_valid is not None:
                action.on_valid(run)
            try:
                result = action.call(run, form.cleaned_data)
            except (CoopError, ValidationError) as exc:
                field_name = getattr(exc, "field", None)
                for message in _error_messages(exc):
                    form.add_error(field_name if field_name in form.fields else None, message)
            else:
                repeat = action.repeat(run, result) if action.repeat is not None else None
                if repeat:
                    messages.warning(request, repeat)
                else:
                    messages.success(request, action.message(run, result))
                url = (
                    action.redirect(run, result) if action.redirect is not None else _account_url(account.pk)
                )
                return HttpResponseRedirect(url)
        balances = account_balances(account)
        return self._render(
            request,
            "admin/billing/action_form.html",
            {
                "title": action.title.format(account=account, subject=subject),
                "account": account,
                "money": balances_display(balances),
                "prepaid": account.billing_mode == Account.BillingMode.PREPAID,
                "form": form,
                "submit": action.submit,
                "intro": run.intro or None,
                "target": subject if action.shows_subject else None,
                "account_url": _account_url(account.pk),
                "opts": Account._meta,
            },
        )

    def payment_receipt(self, request, payment_id):
        if not request.user.has_perm("billing.view_payment"):
            raise PermissionDenied
        payment = get_object_or_404(
            Payment.objects.select_related("account__member", "account__location", "actor"),
            pk=payment_id,
        )
        returned = ReturnedPayment.objects.filter(payment=payment).select_related("actor").first()
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
                "fees": return_fees(returned),
                "coop_name": _coop_name(),
                "account_url": _account_url(account.pk),
                "can_return": returned is None and _may(request.user, "payment_return"),
                "return_url": reverse("admin:billing_payment_return", args=[payment.pk]),
                "opts": Account._meta,
            },
        )


def _coop_name():
    return getattr(settings, "COOP_NAME", "")
