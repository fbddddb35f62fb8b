"""The clerk's view of an account's money in the admin: the money panel on the account page, the
action forms (each calls one service), the receipt, and the read-only ledger admins."""

import datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Account
from accounts.tests import factories
from billing import services
from billing.models import ChargedFee, DebtPlan, LedgerAccount, Leg, Payment, ReturnedPayment, Transaction
from billing.selectors import account_balances
from coop.models import FeeScheduleEntry

D = Decimal
POSTPAID = Account.BillingMode.POSTPAID
# Friday November 20, 2026, 10:00 in the cooperative's zone (America/Chicago).
NOW = datetime.datetime(2026, 11, 20, 16, 0, tzinfo=datetime.UTC)


pytestmark = [
    pytest.mark.django_db,
    pytest.mark.policy(
        prepaid_minimum_payment=D("20.00"),
        debt_plan_share_percent=D("35"),
        returned_payment_fee=D("15.00"),
        returned_payment_collection_fee=D("45.00"),
        check_restriction_returns=2,
        check_restriction_window_months=12,
        check_restriction_months=12,
        deposit_first_meter_favorable=D("60.00"),
        deposit_first_meter_unfavorable=D("250.00"),
    ),
    pytest.mark.frozen(NOW),
]


@pytest.fixture
def account(policy):
    return factories.account(number="3000100", member=factories.member(first_name="Ada", last_name="Lind"))


def _login(client, user):
    client.force_login(user)
    return client


def _page(client, account, **params):
    response = client.get(reverse("admin:accounts_account_change", args=[account.pk]), params)
    assert response.status_code == 200
    return response


def _messages(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def _pay(account, amount, ref, *, tender="cash", actor=None):
    return services.payment_post(account=account, amount=amount, tender=tender, reference=ref, actor=actor)[0]


def _post_payment(client, account, **fields):
    data = {"amount": "50.00", "tender": "cash", "reference": "BOOK-0001", "received_at": "2026-11-20T09:45"}
    data.update(fields)
    return client.post(reverse("admin:billing_payment_post", args=[account.pk]), data, follow=True)


def url(name, obj):
    return reverse(f"admin:billing_{name}", args=[obj.pk])


# --- The money panel ----------------------------------------------------------------------------


def test_money_panel_shows_balances_deposit_plan_progress_and_the_amount_due(client, clerk, manager, policy):
    account = factories.account(number="3000200", billing_mode=POSTPAID)
    services.fee_charge(account=account, code="collection", actor=clerk)  # $45 due
    services.debt_transfer_to_arrears(account=account, amount="45.00", actor=manager, reason="old debt")
    services.plan_enroll(account=account, actor=manager)
    services.deposit_collect(account=account, amount="100.00", tender="cash", reference="D-1", actor=clerk)
    _pay(account, "100.00", "1001", tender="check", actor=clerk)  # 35% ($35) to arrears, $65 due

    response = _page(_login(client, clerk), account)
    page = response.content.decode()
    assert '<dd id="money-prepaid" class="">$0.00</dd>' in page
    assert '<dd id="money-arrears" class="owed">$10.00</dd>' in page
    assert "$100.00<small>policy requires $250.00</small>" in page
    assert '<dd id="money-due" class="">−$65.00</dd>' in page
    assert "35% of each payment goes to arrears." in page
    assert "Enrolled $45.00 on Nov 20, 2026;" in page
    assert "paid $35.00, remaining $10.00 (77% paid)" in page
    assert "Checks accepted" in page
    # The payment row: its receipt, what it did to each balance, and the net in the member's favour.
    payment = Payment.objects.get(reference="1001")
    assert payment.receipt_number in page
    assert "arrears −$35.00 · amount due −$65.00" in page
    assert "+$100.00" in page


def test_money_panel_says_plainly_until_when_checks_are_refused(client, clerk, policy, account):
    for ref, day in (("501", datetime.date(2026, 1, 10)), ("502", datetime.date(2026, 3, 3))):
        payment = _pay(account, "40.00", ref, tender="check")
        services.payment_return(payment=payment, reason="nsf", returned_on=day, actor=clerk)
    page = _page(_login(client, clerk), account).content.decode()
    assert "Checks refused until March 3, 2027 — 2 returned checks" in page


def test_money_panel_without_a_policy_in_force_says_so_and_the_page_still_opens(client, clerk):
    account = factories.account()
    page = _page(_login(client, clerk), account).content.decode()
    assert "No policy is in force" in page
    assert 'id="money-prepaid"' in page


def test_transactions_are_newest_first_twenty_a_page(client, clerk, account):
    for i in range(45):
        _pay(account, "25.00", f"P{i:03d}")
    client = _login(client, clerk)
    page = _page(client, account).content.decode()
    assert "Page 1 of 3" in page
    receipts = list(
        Payment.objects.filter(account=account).order_by("-id").values_list("receipt_number", flat=True)
    )
    assert receipts[0] in page and receipts[19] in page and receipts[20] not in page
    assert page.index(receipts[0]) < page.index(receipts[19])
    last = _page(client, account, txn_page=3).content.decode()
    assert "Page 3 of 3" in last and receipts[44] in last and receipts[39] not in last


def test_the_transaction_list_runs_as_many_queries_with_50_transactions_as_with_5(client, clerk, account):
    client = _login(client, clerk)
    change = reverse("admin:accounts_account_change", args=[account.pk])

    def queries():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(change).status_code == 200
        return [q["sql"] for q in ctx.captured_queries]

    for i in range(5):
        _pay(account, "25.00", f"F{i}")
    services.fee_charge(account=account, code="trouble-call", actor=clerk)
    few = queries()
    for i in range(45):
        _pay(account, "25.00", f"M{i}")
    services.fee_charge(account=account, code="meter-check", actor=clerk)
    many = queries()
    assert len(many) == len(few), "\n".join(many)


def test_clerk_sees_the_clerk_buttons_and_not_the_managers(client, clerk, account):
    page = _page(_login(client, clerk), account).content.decode()
    assert url("payment_post", account) in page
    assert url("fee_charge", account) in page
    assert url("deposit_collect", account) in page
    for name in ("adjustment_post", "plan_enroll", "arrears_write_off", "deposit_refund"):
        assert url(name, account) not in page, name


def test_auditor_sees_the_money_but_no_buttons_and_cannot_post(client, auditor, account):
    _pay(account, "30.00", "A1")
    page = _page(_login(client, auditor), account).content.decode()
    assert '<dd id="money-prepaid" class="">$30.00</dd>' in page
    assert 'class="money-actions"' in page and 'a class="button' not in page
    assert "/return/" not in page
    response = client.post(url("payment_post", account), {"amount": "50", "tender": "cash", "reference": "X"})
    assert response.status_code == 403
    assert Payment.objects.count() == 1


def test_the_account_page_keeps_its_status_box(client, clerk, account):
    response = _page(_login(client, clerk), account)
    assert response.context["status_form"] is not None
    assert reverse("admin:accounts_account_status", args=[account.pk]) in response.content.decode()


# --- Posting a payment --------------------------------------------------------------------------


def test_posting_a_payment_through_the_form_creates_one_payment_and_shows_the_receipt(client, clerk, account):
    response = _post_payment(_login(client, clerk), account, amount="50.00")
    payment = Payment.objects.get()
    assert (payment.amount, payment.tender, payment.reference, payment.actor) == (
        D("50.00"),
        "cash",
        "BOOK-0001",
        clerk,
    )
    assert payment.received_at == datetime.datetime(2026, 11, 20, 15, 45, tzinfo=datetime.UTC)  # 9:45 CST
    assert response.redirect_chain[-1][0] == url("payment_receipt", payment)
    page = response.content.decode()
    assert f"Receipt {payment.receipt_number}" in page
    assert '<td id="receipt-amount">$50.00</td>' in page
    assert "To prepaid balance</th><td>$50.00" in page
    assert '<td id="receipt-balance">$50.00</td>' in page
    assert "Ada Lind" in page and "3000100" in page
    assert f"Payment posted: receipt {payment.receipt_number}." in _messages(response)


def test_receipt_shows_the_split_and_the_balance_just_after_that_payment(client, clerk, manager, policy):
    account = factories.account(billing_mode=POSTPAID)
    services.fee_charge(account=account, code="collection", actor=clerk)
    services.debt_transfer_to_arrears(account=account, amount="45.00", actor=manager, reason="old debt")
    services.plan_enroll(account=account, actor=manager)
    first = _pay(account, "100.00", "C-1")
    _pay(account, "20.00", "C-2")  # later: the first receipt still says what it said
    page = _login(client, clerk).get(url("payment_receipt", first)).content.decode()
    assert "To arrears (debt plan)</th><td>$35.00" in page
    assert "To amount due</th><td>$65.00" in page
    assert '<td id="receipt-balance">−$65.00</td>' in page
    assert "Arrears after this payment</th><td>$10.00" in page


def test_posting_the_same_reference_again_shows_the_first_receipt_and_posts_nothing(client, clerk, account):
    client = _login(client, clerk)
    _post_payment(client, account)
    again = _post_payment(client, account)
    payment = Payment.objects.get()
    assert again.redirect_chain[-1][0] == url("payment_receipt", payment)
    assert any("was already posted" in m and "Nothing new was posted" in m for m in _messages(again))
    assert Transaction.objects.filter(kind=Transaction.Kind.PAYMENT).count() == 1
    assert account_balances(account).prepaid_credit == D("50.00")

    # The same reference for another amount is a different payment: refused, with the first receipt.
    response = _post_payment(client, account, amount="75.00")
    assert response.status_code == 200
    errors = response.context["form"].non_field_errors()
    assert errors == [
        f"Cash reference BOOK-0001 was already posted as receipt {payment.receipt_number} "
        "($50.00 to account 3000100 on November 20, 2026)."
    ]
    assert Payment.objects.count() == 1


def test_a_payment_below_the_minimum_shows_the_error_and_posts_nothing(client, clerk, account):
    response = _post_payment(_login(client, clerk), account, amount="10.00")
    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "The minimum prepaid payment is $20.00; $10.00 is less."
    ]
    page = response.content.decode()
    assert "Nothing was saved." in page
    assert "The minimum prepaid payment is $20.00." in page  # said before posting, too
    assert not Payment.objects.exists() and not Transaction.objects.exists()


def test_a_check_from_a_restricted_member_is_refused_on_the_form(client, clerk, account):
    for ref, day in (("601", datetime.date(2026, 6, 1)), ("602", datetime.date(2026, 7, 1))):
        services.payment_return(
            payment=_pay(account, "40.00", ref, tender="check"), reason="nsf", returned_on=day
        )
    response = _post_payment(_login(client, clerk), account, tender="check", reference="603", amount="40")
    assert "Checks refused until July 1, 2027 — 2 returned checks" in response.content.decode()
    assert "may not pay by check until July 1, 2027" in response.context["form"].non_field_errors()[0]
    assert not Payment.objects.filter(reference="603").exists()


def test_a_payment_form_with_bad_input_shows_field_errors(client, clerk, account):
    response = _post_payment(
        _login(client, clerk), account, amount="-5", reference="", received_at="2027-01-01T09:00"
    )
    errors = response.context["form"].errors
    assert set(errors) == {"amount", "reference", "received_at"}
    assert errors["received_at"] == ["A payment cannot be received in the future."]
    assert not Payment.objects.exists()


# --- Returning a payment, fees ------------------------------------------------------------------


def test_returning_a_payment_from_its_row_reverses_it_and_shows_the_fees(client, clerk, account):
    payment = _pay(account, "80.00", "4410", tender="check")
    client = _login(client, clerk)
    page = _page(client, account).content.decode()
    assert url("payment_return", payment) in page
    response = client.post(
        url("payment_return", payment),
        {"reason": "nsf", "note": "R01", "returned_on": "2026-11-20"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == url("payment_receipt", payment)
    page = response.content.decode()
    assert "RETURNED November 20, 2026 — Insufficient funds: R01" in page
    assert f"Returned payment fee ({payment.receipt_number})</th><td>$15.00" in page
    assert f"Collection fee ({payment.receipt_number})</th><td>$45.00" in page
    record = ReturnedPayment.objects.get()
    assert (record.payment, record.reason, record.actor) == (payment, "nsf", clerk)
    assert account_balances(account).prepaid_credit == D("-60.00")
    # Once returned, it is not offered again, and a second return is refused by the service.
    assert url("payment_return", payment) not in _page(client, account).content.decode()
    again = client.post(url("payment_return", payment), {"reason": "nsf", "returned_on": "2026-11-20"})
    assert again.context["form"].non_field_errors() == [
        f"Payment {payment.receipt_number} was already returned."
    ]
    assert ChargedFee.objects.count() == 2


def test_clerk_charges_a_fee_from_the_schedule(client, clerk, account):
    entry = FeeScheduleEntry.objects.get(code="trouble-call")
    response = _login(client, clerk).post(url("fee_charge", account), {"fee": entry.pk}, follow=True)
    assert response.redirect_chain[-1][0].endswith("#money")
    fee = ChargedFee.objects.get()
    assert (fee.code, fee.amount, fee.actor) == ("trouble-call", entry.amount, clerk)
    assert f"Charged {entry.description}: ${entry.amount}." in _messages(response)


def test_an_inactive_fee_cannot_be_chosen(client, clerk, account):
    FeeScheduleEntry.objects.filter(code="trouble-call").update(is_active=False)
    entry = FeeScheduleEntry.objects.get(code="trouble-call")
    response = _login(client, clerk).post(url("fee_charge", account), {"fee": entry.pk})
    assert "fee" in response.context["form"].errors
    assert not ChargedFee.objects.exists()


# --- Manager-only actions -----------------------------------------------------------------------


@pytest.fixture
def fee(account, clerk):
    return services.fee_charge(account=account, code="trouble-call", actor=clerk)


@pytest.mark.parametrize(
    "name, data",
    [
        ("fee_waive", {"reason": "goodwill"}),
        ("adjustment_post", {"direction": "credit", "amount": "10", "reason": "x"}),
        ("plan_enroll", {"share_percent": "35", "override_reason": ""}),
        ("arrears_write_off", {"reason": "x"}),
        ("deposit_refund", {}),
        ("plan_cancel", {"reason": "x"}),
    ],
)
def test_clerk_cannot_open_or_post_the_managers_forms(client, clerk, manager, account, fee, name, data):
    services.debt_transfer_to_arrears(account=account, amount="50", actor=manager, reason="old")
    plan = services.plan_enroll(account=account, actor=manager)
    target = {"fee_waive": fee, "plan_cancel": plan}.get(name, account)
    client = _login(client, clerk)
    before = (Transaction.objects.count(), DebtPlan.objects.filter(status="active").count())
    assert client.get(url(name, target)).status_code == 403
    assert client.post(url(name, target), data).status_code == 403
    assert (Transaction.objects.count(), DebtPlan.objects.filter(status="active").count()) == before
    assert url(name, target) not in _page(client, account).content.decode()


def test_manager_waives_a_fee_with_a_reason(client, manager, account, fee):
    client = _login(client, manager)
    assert url("fee_waive", fee) in _page(client, account).content.decode()
    response = client.post(url("fee_waive", fee), {"reason": "Our truck was late"}, follow=True)
    fee.refresh_from_db()
    assert fee.is_waived and fee.waived_by == manager and fee.waive_reason == "Our truck was late"
    assert f"Waived {fee.description} (${fee.amount})." in _messages(response)
    assert account_balances(account).prepaid_credit == D("0.00")
    again = client.post(url("fee_waive", fee), {"reason": "twice"})
    assert again.context["form"].non_field_errors() == [
        f"{fee.description} of 2026-11-20 was already waived."
    ]


def test_manager_posts_a_credit_and_a_debit_adjustment(client, manager, account):
    client = _login(client, manager)
    client.post(
        url("adjustment_post", account), {"direction": "credit", "amount": "12.50", "reason": "Meter misread"}
    )
    client.post(
        url("adjustment_post", account), {"direction": "debit", "amount": "2.50", "reason": "Correction"}
    )
    assert account_balances(account).prepaid_credit == D("10.00")
    memos = list(Transaction.objects.filter(kind="adjustment").order_by("id").values_list("memo", flat=True))
    assert memos == ["Credit adjustment: Meter misread", "Debit adjustment: Correction"]


def test_manager_enrolls_a_plan_at_the_policys_share_and_an_override_needs_a_reason(client, manager, account):
    services.debt_transfer_to_arrears(account=account, amount="300", actor=manager, reason="converted")
    client = _login(client, manager)
    form = client.get(url("plan_enroll", account)).context["form"]
    assert form["share_percent"].value() == D("35")
    refused = client.post(url("plan_enroll", account), {"share_percent": "50", "override_reason": ""})
    assert refused.context["form"].non_field_errors() == [
        "The policy's share is 35.00%; say why this plan takes 50%."
    ]
    assert not DebtPlan.objects.exists()
    client.post(url("plan_enroll", account), {"share_percent": "50", "override_reason": "Hardship"})
    plan = DebtPlan.objects.get()
    assert (plan.share_percent, plan.share_override_reason, plan.enrolled_amount, plan.enrolled_by) == (
        D("50"),
        "Hardship",
        D("300.00"),
        manager,
    )
    page = _page(client, account).content.decode()
    assert "50% of each payment goes to arrears." in page
    assert url("plan_cancel", plan) in page and url("plan_enroll", account) not in page
    client.post(url("plan_cancel", plan), {"reason": "Member asked"})
    plan.refresh_from_db()
    assert (plan.status, plan.cancel_reason) == ("cancelled", "Member asked")


def test_manager_writes_off_part_of_the_arrears_and_not_more_than_there_is(client, manager, account):
    services.debt_transfer_to_arrears(account=account, amount="40", actor=manager, reason="old")
    client = _login(client, manager)
    refused = client.post(url("arrears_write_off", account), {"amount": "50", "reason": "bankrupt"})
    assert refused.context["form"].non_field_errors() == [
        "Account 3000100 has $40.00 of arrears; cannot write off $50.00."
    ]
    client.post(url("arrears_write_off", account), {"amount": "15", "reason": "bankrupt"})
    assert account_balances(account).arrears == D("25.00")


# --- Deposits -----------------------------------------------------------------------------------


def test_deposit_collect_defaults_to_what_the_policy_requires_and_apply_uses_it(client, clerk, account):
    client = _login(client, clerk)
    response = client.get(url("deposit_collect", account))
    assert response.context["form"]["amount"].value() == D("250.00")
    assert "The policy requires a deposit of $250.00; $0.00 is held." in response.content.decode()
    client.post(url("deposit_collect", account), {"amount": "250.00", "tender": "cash", "reference": "DEP-1"})
    assert account_balances(account).deposit_held == D("250.00")
    assert client.get(url("deposit_collect", account)).context["form"]["amount"].value() is None
    client.post(url("deposit_apply", account), {"amount": "", "reason": "Converted to prepaid"})
    balances = account_balances(account)
    assert (balances.deposit_held, balances.prepaid_credit) == (D("0.00"), D("250.00"))
    refused = client.post(url("deposit_apply", account), {"amount": "", "reason": "again"})
    assert refused.context["form"].non_field_errors() == [
        "Account 3000100 holds a deposit of $0.00; cannot use $0.00."
    ]


# --- Read-only ledger admins --------------------------------------------------------------------


@pytest.mark.parametrize(
    "model", [Transaction, Leg, LedgerAccount, Payment, ReturnedPayment, ChargedFee, DebtPlan]
)
def test_nobody_not_even_a_superuser_adds_changes_or_deletes_ledger_rows(client, superuser, account, model):
    payment = _pay(account, "30.00", "S1", tender="check")
    services.payment_return(payment=payment, reason="nsf")
    services.debt_transfer_to_arrears(account=account, amount="10", actor=superuser, reason="x")
    services.plan_enroll(account=account, actor=superuser)
    obj = model.objects.order_by("pk").first()
    name = f"admin:billing_{model._meta.model_name}"
    client = _login(client, superuser)
    before = model.objects.count()

    change = reverse(f"{name}_change", args=[obj.pk])
    response = client.get(change)
    assert response.status_code == 200  # to look at
    assert response.context["has_change_permission"] is False
    assert 'name="_save"' not in response.content.decode()
    assert client.post(change, {}).status_code == 403
    assert client.get(reverse(f"{name}_delete", args=[obj.pk])).status_code == 403
    assert client.post(reverse(f"{name}_delete", args=[obj.pk]), {"post": "yes"}).status_code == 403
    assert client.get(reverse(f"{name}_add")).status_code == 403
    changelist = client.get(reverse(f"{name}_changelist"))
    assert "delete_selected" not in changelist.context["cl"].model_admin.get_actions(changelist.wsgi_request)
    assert model.objects.count() == before


def test_a_transaction_page_shows_its_legs_read_only(client, auditor, account):
    payment = _pay(account, "30.00", "T1")
    response = _login(client, auditor).get(
        reverse("admin:billing_transaction_change", args=[payment.transaction_id])
    )
    inline = response.context["inline_admin_formsets"][0]
    assert {form.instance.amount for form in inline.formset.forms} == {D("30.00"), D("-30.00")}
    assert (
        not inline.has_add_permission
        and not inline.has_change_permission
        and not inline.has_delete_permission
    )


@pytest.mark.parametrize("typed", ["{receipt}", "{receipt_lower}", "7731", "3000100"])
def test_payment_list_finds_a_payment_by_receipt_reference_or_account_number(client, clerk, account, typed):
    payment = _pay(account, "30.00", "7731", tender="check")
    _pay(factories.account(), "30.00", "7732", tender="check")
    q = typed.format(receipt=payment.receipt_number, receipt_lower=payment.receipt_number.lower())
    response = _login(client, clerk).get(reverse("admin:billing_payment_changelist"), {"q": q})
    assert list(response.context["cl"].result_list) == [payment]


@pytest.mark.parametrize(
    "name",
    ["payment", "transaction", "leg", "ledgeraccount", "chargedfee", "returnedpayment", "debtplan"],
)
def test_billing_list_pages_run_as_many_queries_with_many_rows_as_with_few(client, clerk, account, name):
    client = _login(client, clerk)
    changelist = reverse(f"admin:billing_{name}_changelist")

    def queries():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(changelist).status_code == 200
        return len(ctx.captured_queries)

    def activity(n, start):
        for i in range(start, start + n):
            other = factories.account(actor=clerk)
            payment = _pay(other, "30.00", f"L{i}", tender="check", actor=clerk)
            services.payment_return(payment=payment, reason="nsf", actor=clerk)
            services.debt_transfer_to_arrears(account=other, amount="5", actor=clerk, reason="x")
            services.plan_enroll(account=other, actor=_superuser_for_plans())

    activity(2, 0)
    few = queries()
    activity(12, 2)
    assert queries() == few


def _superuser_for_plans():
    user, _ = get_user_model().objects.get_or_create(username="plans", defaults={"is_superuser": True})
    return user


def test_a_ledger_account_lists_its_balance_and_links_to_its_legs(client, auditor, account):
    _pay(account, "30.00", "G1")
    _pay(account, "22.00", "G2")
    credit = LedgerAccount.objects.get(account=account, purpose=LedgerAccount.Purpose.PREPAID_CREDIT)
    client = _login(client, auditor)
    listed = client.get(reverse("admin:billing_ledgeraccount_changelist"), {"q": account.number})
    assert credit in listed.context["cl"].result_list
    assert "-52.00" in listed.content.decode() and "52.00" in listed.content.decode()
    page = client.get(reverse("admin:billing_ledgeraccount_change", args=[credit.pk])).content.decode()
    legs_url = f"{reverse('admin:billing_leg_changelist')}?ledger_account__id__exact={credit.pk}"
    assert legs_url in page
    legs = client.get(legs_url)
    assert legs.status_code == 200
    assert sorted(leg.amount for leg in legs.context["cl"].result_list) == [D("-30.00"), D("-22.00")]
