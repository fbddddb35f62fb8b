"""No card numbers, anywhere (issue 5, point 6): a reference, memo, note, reason or import field that
contains a payment card number is refused with a clear message that does not repeat it, on every
path (the clerk's admin forms, the services themselves, import_payments), and no log line carries
one."""

import datetime
import io
import logging
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db.models import CharField, TextField
from django.urls import reverse

from accounts.tests import factories
from billing import services
from billing.ledger import coop_ledger_account, ledger_post, member_ledger_account
from billing.models import ChargedFee, DebtPlan, LedgerAccount, Payment, ReturnedPayment, Transaction
from coop import roles
from coop.validators import CardNumberRefused, contains_card_number, luhn_ok, mask_card_numbers

D = Decimal
P = LedgerAccount.Purpose
NOW = datetime.datetime(2026, 11, 20, 16, 0, tzinfo=datetime.UTC)  # 10:00 in Chicago
PAN = "4111 1111 1111 1111"
TYPED = f"{PAN} exp 12/29 cvv 123"  # what a careless clerk types as a reference
DIGITS = PAN.replace(" ", "")


# --- The check itself ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        TYPED,
        DIGITS,
        "4111-1111-1111-1111",
        "paid with card 4111111111111111, thanks",
        "378282246310005",  # American Express, 15 digits
        "6011 1111 1111 1117",  # Discover
        "4222222222222",  # Visa, 13 digits
        "6304 0000 0000 0000 018",  # Maestro, 19 digits
        "4111 1111 1111 1111 1229 123",  # the card, then its expiry and code, all spaced
        "card:5555555555554444/exp",
        "3782 822463 10005",  # American Express as printed
        "ref 2026-4111111111111111",  # an unbroken card after other digits
        # Pasted from a web page or a PDF, or typed carelessly: other spaces and dashes.
        "4111\u00a01111\u00a01111\u00a01111",  # no-break spaces
        "4111\u20091111\u20091111\u20091111",  # thin spaces
        "4111  1111  1111  1111",  # two spaces
        "4111 - 1111 - 1111 - 1111",
        "4111\u20131111\u20131111\u20131111",  # en dashes
        "4111111111111111".translate({48 + d: 0xFF10 + d for d in range(10)}),  # full-width digits
    ],
)
def test_a_card_number_is_found_with_or_without_spaces_or_dashes_anywhere_in_the_text(text):
    assert contains_card_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "BOOK-0001",
        "check 1042",
        "4111 1111 1111 1112",  # 16 digits, fails the Luhn check
        "411111111111",  # 12 digits: too short to be a card
        "41111111111111111111",  # 20 digits in one piece: no card (windows are not searched)
        "ch_3QxA1 pay_88121 2026-11-20",
        "last four 1111",
        "CH-261120-0000125",  # a date and a sequence number: passes Luhn, but no card is laid out so
        "3000100-1042",
        "1042\n1043\n1044\n1045",  # numbers on lines of their own are not one number
        "meters 1234 5678, 9012 3456",
    ],
)
def test_other_texts_are_not_card_numbers(text):
    assert not contains_card_number(text)


def test_luhn():
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")


def test_masking_keeps_only_the_last_four_digits_and_the_rest_of_the_text():
    assert mask_card_numbers(f"ref {TYPED}") == "ref **** **** **** 1111 exp 12/29 cvv 123"
    assert mask_card_numbers("nothing here 1234") == "nothing here 1234"


def test_a_log_line_with_a_card_number_is_masked_by_the_configured_handlers():
    """The filter is installed on the handlers of settings.LOGGING: what reaches the console
    (message, arguments and traceback) has no card number."""
    handlers = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and not type(h).__module__.startswith("_pytest")
    ]
    assert handlers, "settings.LOGGING configures a console handler on the root logger"
    stream = io.StringIO()
    old = handlers[0].setStream(stream)
    try:
        log = logging.getLogger("billing.test")
        log.warning("payment reference %s refused", TYPED)
        log.warning(f"inline {DIGITS}")
        try:
            raise ValueError(f"bad reference {PAN}")
        except ValueError:
            log.exception("import failed")
    finally:
        handlers[0].setStream(old)
    output = stream.getvalue()
    assert "payment reference **** **** **** 1111 exp 12/29 cvv 123 refused" in output
    assert "inline ************1111" in output
    assert "ValueError: bad reference **** **** **** 1111" in output
    assert DIGITS not in output and PAN not in output


def _handlers_reached(logger):
    """Every handler a record logged on `logger` reaches (up the hierarchy while it propagates)."""
    while logger is not None:
        yield from logger.handlers
        logger = logger.parent if logger.propagate else None


@pytest.mark.parametrize(
    "name", ["django.request", "django.server", "django.db.backends", "django-q", "billing"]
)
def test_every_handler_a_record_reaches_masks_card_numbers(name):
    """Django's own loggers (django.request logs each 500 with its URL, django.server each request
    line) and the project's reach only handlers with the filter."""
    # (pytest adds its own capturing handlers to the root logger while tests run.)
    handlers = [
        h for h in _handlers_reached(logging.getLogger(name)) if not type(h).__module__.startswith("_pytest")
    ]
    assert handlers
    for handler in handlers:
        assert any(type(f).__name__ == "CardNumberLogFilter" for f in handler.filters), (name, handler)


# --- The services: every free text on a money record ---------------------------------------------


pytestmark = [
    pytest.mark.django_db,
    pytest.mark.policy(debt_plan_share_percent=D("35")),
    pytest.mark.frozen(NOW),
]


@pytest.fixture
def account(policy):
    return factories.account(number="3000100")


def _writes():
    return (
        Transaction.objects.count(),
        Payment.objects.count(),
        ReturnedPayment.objects.count(),
        ChargedFee.objects.filter(waiver_transaction__isnull=False).count(),
        DebtPlan.objects.exclude(status="active").count(),
        DebtPlan.objects.count(),
    )


def _with_arrears(account, manager):
    services.debt_transfer_to_arrears(account=account, amount="300", actor=manager, reason="converted")


def _refund(account, manager):
    services.deposit_collect(account=account, amount="60", tender="cash", reference="BOOK-1", actor=manager)
    return services.deposit_refund(account=account, actor=manager, reason="account closed")


SERVICE_CALLS = {
    "payment_post reference": lambda a, m: services.payment_post(
        account=a, amount="50", tender="card", reference=TYPED, actor=m
    ),
    "deposit_collect reference": lambda a, m: services.deposit_collect(
        account=a, amount="60", tender="card", reference=TYPED, actor=m
    ),
    "refund_pay reference": lambda a, m: services.refund_pay(refund=_refund(a, m), actor=m, reference=TYPED),
    "payment_return note": lambda a, m: services.payment_return(
        payment=services.payment_post(account=a, amount="50", tender="check", reference="CK 1")[0],
        reason="nsf",
        note=f"member said use {DIGITS}",
        actor=m,
    ),
    "fee_charge memo": lambda a, m: services.fee_charge(
        account=a, code="trouble-call", actor=m, memo=f"call {PAN}"
    ),
    "fee_waive reason": lambda a, m: services.fee_waive(
        fee=services.fee_charge(account=a, code="trouble-call", actor=m), actor=m, reason=TYPED
    ),
    "deposit_apply reason": lambda a, m: (
        services.deposit_collect(account=a, amount="60", tender="cash", reference="B-2", actor=m),
        services.deposit_apply(account=a, actor=m, reason=TYPED),
    ),
    "adjustment_post reason": lambda a, m: services.adjustment_post(
        account=a, amount="5", actor=m, reason=TYPED
    ),
    "adjustment_reverse reason": lambda a, m: services.adjustment_reverse(
        adjustment=services.adjustment_post(account=a, amount="5", actor=m, reason="misread"),
        actor=m,
        reason=TYPED,
    ),
    "arrears_write_off reason": lambda a, m: (
        _with_arrears(a, m),
        services.arrears_write_off(account=a, actor=m, reason=TYPED),
    ),
    "debt_transfer_to_arrears reason": lambda a, m: services.debt_transfer_to_arrears(
        account=a, amount="10", actor=m, reason=TYPED
    ),
    "plan_enroll override_reason": lambda a, m: (
        _with_arrears(a, m),
        services.plan_enroll(account=a, actor=m, share_percent="50", override_reason=TYPED),
    ),
    "plan_cancel reason": lambda a, m: (
        _with_arrears(a, m),
        services.plan_cancel(
            plan=services.plan_enroll(account=a, actor=m, share_percent="50", override_reason="hardship"),
            actor=m,
            reason=TYPED,
        ),
    ),
    "ledger memo": lambda a, m: ledger_post(
        kind=Transaction.Kind.ADJUSTMENT,
        legs=[
            (coop_ledger_account(P.ADJUSTMENTS), D("1.00")),
            (member_ledger_account(a, P.PREPAID_CREDIT), D("-1.00")),
        ],
        idempotency_key="card-test",
        effective_date=datetime.date(2026, 11, 20),
        memo=f"Card {DIGITS}",
        account=a,
    ),
}


@pytest.mark.parametrize("name", SERVICE_CALLS)
def test_every_service_refuses_a_card_number_in_its_free_text_and_writes_nothing(name, account, manager):
    field = name.split()[-1]
    with pytest.raises(CardNumberRefused) as refused:
        SERVICE_CALLS[name](account, manager)
    assert refused.value.field == field
    message = str(refused.value)
    assert "card number" in message and "last four digits" in message
    assert DIGITS not in message.replace(" ", "").replace("-", "")
    # Nothing anywhere holds the number: no memo, reference, note or reason.
    assert not Transaction.objects.filter(memo__contains="1111").exists()
    assert not Payment.objects.filter(reference__contains="1111").exists()
    assert not ReturnedPayment.objects.filter(note__contains="1111").exists()
    assert not ChargedFee.objects.filter(waive_reason__contains="1111").exists()
    assert not DebtPlan.objects.filter(cancel_reason__contains="1111").exists()
    assert not DebtPlan.objects.filter(share_override_reason__contains="1111").exists()


def test_the_refused_service_call_rolls_back_everything_it_had_done(account, manager):
    """A refusal inside one service is one transaction: the payment_return of a card note leaves
    the payment posted, not returned, and charges no fee."""
    payment, _ = services.payment_post(account=account, amount="50", tender="check", reference="CK 9")
    before = _writes()
    with pytest.raises(CardNumberRefused):
        services.payment_return(payment=payment, reason="nsf", note=TYPED, actor=manager)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.POSTED and _writes() == before


# --- The clerk's admin forms ----------------------------------------------------------------------


def url(name, obj):
    return reverse(f"admin:billing_{name}", args=[obj.pk])


def _field_error(response, field):
    assert response.status_code == 200
    return response.context["form"].errors.get(field, [])


def _refused_on(response, field):
    errors = _field_error(response, field)
    assert errors and "card number" in errors[0] and "last four digits" in errors[0], errors
    body = response.content.decode()
    # The page shows the error, not the number: the typed value is not sent back to the browser.
    assert "card number" in body
    return body


def test_the_clerk_cannot_post_a_card_number_as_a_payment_reference(client, clerk, account):
    client.force_login(clerk)
    before = _writes()
    response = client.post(
        url("payment_post", account),
        {"amount": "50.00", "tender": "card", "reference": TYPED, "received_at": "2026-11-20T09:45"},
    )
    _refused_on(response, "reference")
    assert _writes() == before
    assert not Payment.objects.exists()


def test_the_deposit_form_refuses_a_card_number_reference(client, clerk, account):
    client.force_login(clerk)
    before = _writes()
    response = client.post(
        url("deposit_collect", account), {"amount": "60.00", "tender": "card", "reference": DIGITS}
    )
    _refused_on(response, "reference")
    assert _writes() == before


@pytest.mark.parametrize(
    "action, data, field",
    [
        ("deposit_apply", {"reason": TYPED}, "reason"),
        ("adjustment_post", {"direction": "credit", "amount": "5.00", "reason": TYPED}, "reason"),
        ("arrears_write_off", {"reason": TYPED}, "reason"),
        ("plan_enroll", {"share_percent": "50", "override_reason": TYPED}, "override_reason"),
    ],
)
def test_the_managers_account_forms_refuse_a_card_number_in_the_reason(
    client, manager, account, action, data, field
):
    _with_arrears(account, manager)
    services.deposit_collect(account=account, amount="60", tender="cash", reference="B-9", actor=manager)
    client.force_login(manager)
    before = _writes()
    _refused_on(client.post(url(action, account), data), field)
    assert _writes() == before


def test_the_return_fee_waiver_and_plan_cancel_forms_refuse_a_card_number(client, manager, account):
    payment, _ = services.payment_post(account=account, amount="50", tender="check", reference="CK 7")
    fee = services.fee_charge(account=account, code="trouble-call", actor=manager)
    _with_arrears(account, manager)
    plan = services.plan_enroll(account=account, actor=manager)
    client.force_login(manager)
    before = _writes()
    _refused_on(
        client.post(
            url("payment_return", payment), {"reason": "nsf", "note": TYPED, "returned_on": "2026-11-20"}
        ),
        "note",
    )
    _refused_on(client.post(url("fee_waive", fee), {"reason": TYPED}), "reason")
    _refused_on(client.post(url("plan_cancel", plan), {"reason": TYPED}), "reason")
    assert _writes() == before


# --- import_payments --------------------------------------------------------------------------------


HEADER = "account_number,amount,tender,reference,received_at"


def _import(tmp_path, *rows, args=()):
    path = tmp_path / "lockbox.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    out, err = StringIO(), StringIO()
    if not get_user_model().objects.filter(username="lockbox-clerk").exists():
        factories.staff(roles.CLERK, "lockbox-clerk")
    with pytest.raises(CommandError) as refused:
        call_command(
            "import_payments", str(path), "--operator", "lockbox-clerk", *args, stdout=out, stderr=err
        )
    return out.getvalue() + err.getvalue() + str(refused.value)


def test_import_payments_refuses_a_row_whose_reference_is_a_card_number_and_posts_nothing(tmp_path, account):
    output = _import(
        tmp_path,
        "3000100,50.00,card,ch_3QxA1,2026-11-19",
        f'3000100,25.00,card,"{TYPED}",2026-11-19',
        f"3000100,30.00,card,{DIGITS},2026-11-19",
    )
    assert "line 3: reference: looks like a payment card number" in output
    assert "line 4: reference: looks like a payment card number" in output
    assert "Nothing was posted: 2 bad row(s)" in output
    assert not Payment.objects.exists() and not Transaction.objects.exists()
    assert DIGITS not in output and PAN not in output


def test_import_payments_never_quotes_a_card_number_found_in_another_column(tmp_path, account):
    output = _import(
        tmp_path, f"{DIGITS},50.00,card,ch_1,2026-11-19", f"3000100,{DIGITS},card,ch_2,2026-11-19"
    )
    assert "line 2: account_number: looks like a payment card number" in output
    assert "line 3: amount: looks like a payment card number" in output
    assert DIGITS not in output and not Payment.objects.exists()


def test_import_payments_never_quotes_a_card_number_repeated_with_different_amounts(tmp_path, account):
    output = _import(
        tmp_path, f"3000100,50.00,card,{DIGITS},2026-11-19", f"3000100,60.00,card,{DIGITS},2026-11-19"
    )
    assert DIGITS not in output
    assert "line 2: reference: looks like" in output and "line 3: reference: looks like" in output


def test_import_payments_never_quotes_a_card_number_in_a_file_without_its_header_row(tmp_path, account):
    """A lockbox file exported without its header row: the first row is read as the header, and
    the refusal names its unknown columns, masked."""
    path = tmp_path / "lockbox.csv"
    path.write_text(f"3000100,50.00,card,{DIGITS},2026-11-19\n", encoding="utf-8")
    factories.staff(roles.CLERK, "lockbox-clerk")
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="unknown column") as refused:
        call_command("import_payments", str(path), "--operator", "lockbox-clerk", stdout=out, stderr=err)
    output = out.getvalue() + err.getvalue() + str(refused.value)
    assert DIGITS not in output and "************1111" in output
    assert not Payment.objects.exists()


# --- Accounts, service orders and the cooperative's settings ------------------------------------


def test_the_account_status_form_refuses_a_card_number_in_the_reason(client, clerk, account):
    from accounts.models import AccountStatusChange

    client.force_login(clerk)
    response = client.post(
        reverse("admin:accounts_account_status", args=[account.pk]),
        {"to_status": "active", "reason": f"paid by {TYPED}"},
        follow=True,
    )
    shown = [str(m) for m in response.context["messages"]]
    assert any(m.startswith("Reason: This looks like a payment card number") for m in shown), shown
    assert not AccountStatusChange.objects.exists()
    account.refresh_from_db()
    assert account.status == "pending"


def test_the_account_status_service_and_action_refuse_a_card_number(client, clerk, account):
    from accounts.models import AccountStatusChange
    from accounts.services import account_change_status

    with pytest.raises(CardNumberRefused):
        account_change_status(account=account, to_status="active", actor=clerk, reason=TYPED)
    client.force_login(clerk)
    response = client.post(
        reverse("admin:accounts_account_changelist"),
        {"action": "change_status", "_selected_action": [account.pk], "to_status": "active", "reason": TYPED},
        follow=True,
    )
    shown = [str(m) for m in response.context["messages"]]
    assert any("looks like a payment card number" in m for m in shown), shown
    assert not AccountStatusChange.objects.exists()


def test_a_disconnect_hold_note_with_a_card_number_is_refused_on_the_field(client, manager, account):
    from accounts.models import ServiceHold

    client.force_login(manager)
    response = client.post(
        reverse("admin:accounts_servicehold_add"),
        {
            "account": account.pk,
            "kind": "medical",
            "starts_on": "2026-11-20",
            "expires_on": "2026-12-20",
            "note": f"certificate paid with {DIGITS}",
        },
    )
    assert response.status_code == 200
    assert "looks like a payment card number" in response.context["adminform"].form.errors["note"][0]
    assert not ServiceHold.objects.exists()


def test_a_members_address_and_an_office_closure_reason_refuse_a_card_number(client, manager, account):
    from coop.models import OfficeClosure

    superuser = factories.superuser()
    client.force_login(superuser)
    response = client.post(
        reverse("admin:coop_officeclosure_add"),
        {"start_date": "2026-12-24", "end_date": "2026-12-24", "reason": TYPED},
    )
    assert "looks like a payment card number" in response.context["adminform"].form.errors["reason"][0]
    assert not OfficeClosure.objects.exists()
    member = account.member
    response = client.post(
        reverse("admin:accounts_member_change", args=[member.pk]),
        {
            "first_name": member.first_name,
            "last_name": member.last_name,
            "line1": f"{PAN} Main St",
            "city": "Ladysmith",
            "state": "WI",
            "postal_code": "54848",
        },
    )
    assert "looks like a payment card number" in response.context["adminform"].form.errors["line1"][0]
    member.refresh_from_db()
    assert "1111" not in member.line1


def test_a_service_order_reason_with_a_card_number_is_refused(account, clerk):
    from meters import services as meter_services
    from meters.models import ServiceOrder

    with pytest.raises(CardNumberRefused):
        meter_services.order_request(account=account, kind="disconnect", reason=TYPED, actor=clerk)
    order = meter_services.order_request(account=account, kind="disconnect", reason="nonpay", actor=clerk)
    with pytest.raises(CardNumberRefused):
        meter_services.order_cancel(order_id=order.pk, reason=f"paid {DIGITS}", actor=clerk)
    order.refresh_from_db()
    assert order.status != ServiceOrder.Status.CANCELLED and "1111" not in order.last_error


def test_every_admin_page_staff_can_write_refuses_card_numbers_in_its_free_text():
    """Every writable admin page (and its inlines) of the roles' apps has the card-number check on
    its free-text fields, so a new page cannot be added without it."""
    from django.contrib import admin

    from coop.admin_tools import NoCardNumbersMixin, NoWritesMixin

    missing = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in roles.ROLE_APPS or isinstance(model_admin, NoWritesMixin):
            continue
        if not isinstance(model_admin, NoCardNumbersMixin):
            missing.append(type(model_admin).__name__)
        missing += [
            inline.__name__
            for inline in model_admin.inlines
            if not issubclass(inline, NoWritesMixin | NoCardNumbersMixin)
            and any(
                isinstance(f, CharField | TextField) and not f.choices and f.editable
                for f in inline.model._meta.fields
            )
        ]
    assert missing == []


def test_a_meter_serial_that_passes_the_luhn_check_is_still_a_serial(client, clerk):
    """A serial is the maker's number, not free text: about one 16-digit serial in ten passes the
    Luhn check, and such a meter must still be entered. The model and maker fields are free text."""
    from meters.models import Meter

    assert luhn_ok("4111111111111111")
    client.force_login(clerk)
    form = {
        "serial": "4111111111111111",
        "manufacturer": "Itron",
        "model": "4111 1111 1111 1111",
        "installations-TOTAL_FORMS": "0",
        "installations-INITIAL_FORMS": "0",
    }
    response = client.post(reverse("admin:meters_meter_add"), form)
    assert response.status_code == 200
    assert "card number" in response.context["adminform"].form.errors["model"][0]
    assert "serial" not in response.context["adminform"].form.errors
    form["model"] = "Centron"
    response = client.post(reverse("admin:meters_meter_add"), form)
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    assert Meter.objects.filter(serial="4111111111111111").exists()
