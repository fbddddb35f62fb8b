import datetime
import zoneinfo
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
import time_machine
from django.core.management import CommandError, call_command

from accounts.models import Account
from accounts.services import account_change_status
from accounts.tests import factories
from billing import services
from billing.imports import payment_file_import
from billing.models import Payment
from billing.selectors import account_balances
from coop import roles

D = Decimal
CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
HEADER = "account_number,amount,tender,reference,received_at"
SAMPLE = Path(__file__).parent / "data" / "lockbox_sample.csv"


pytestmark = [
    pytest.mark.django_db,
    pytest.mark.policy(
        prepaid_minimum_payment=D("10.00"),
        check_restriction_returns=2,
        check_restriction_window_months=12,
        check_restriction_months=12,
    ),
    pytest.mark.usefixtures("policy"),
    pytest.mark.frozen(datetime.datetime(2026, 11, 20, 15, 0, tzinfo=CHICAGO)),  # Friday, 3 p.m.
]


def write(tmp_path, *lines, name="payments.csv", bom=False):
    path = tmp_path / name
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def operator():
    """The clerk every import in this file is run by (--operator)."""
    return factories.staff(roles.CLERK, "lockbox-clerk")


def run(path, *args):
    """Run the command; return (exit status, stdout, stderr) as a shell would see them."""
    out, err = StringIO(), StringIO()
    try:
        call_command(
            "import_payments", str(path), "--operator", "lockbox-clerk", *args, stdout=out, stderr=err
        )
        code = 0
    except CommandError as exc:
        err.write(f"CommandError: {exc}\n")
        code = 1
    return code, out.getvalue(), err.getvalue()


def lines_of(text):
    return [line for line in text.splitlines() if line.startswith("line ")]


def local(*args):
    return datetime.datetime(*args, tzinfo=CHICAGO)


def test_a_good_file_posts_every_row_and_the_balances_are_right(tmp_path):
    prepaid = factories.account()
    other = factories.account()
    postpaid = factories.account(billing_mode=Account.BillingMode.POSTPAID)
    path = write(
        tmp_path,
        HEADER,
        f"{prepaid.number},50.00,card,ch_3QxA1,2026-11-19T09:30:00-06:00",
        f"{prepaid.number},25.10,online,pay_88121,2026-11-20T14:59:00Z",
        f"{other.number},$40,ach,ACH 20261118 000123,2026-11-18",
        f"{postpaid.number},5.5,cash,DROPBOX 771,2026-11-20 08:00",
    )

    code, out, err = run(path)

    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "import_payments posted=4 duplicates=0 bad=0 total=$120.60"
    assert account_balances(prepaid).prepaid_credit == D("75.10")
    assert account_balances(other).prepaid_credit == D("40.00")
    assert account_balances(postpaid).amount_due == D("-5.50")
    received = dict(Payment.objects.values_list("reference", "received_at"))
    assert received == {
        "ch_3QxA1": local(2026, 11, 19, 9, 30),
        "pay_88121": datetime.datetime(2026, 11, 20, 14, 59, tzinfo=datetime.UTC),
        "ACH 20261118 000123": local(2026, 11, 18, 12, 0),  # a date alone is noon at the cooperative
        "DROPBOX 771": local(2026, 11, 20, 8, 0),  # no offset: the cooperative's time
    }
    assert Payment.objects.get(reference="ch_3QxA1").tender == Payment.Tender.CARD


def test_the_same_file_imported_twice_posts_nothing_the_second_time(tmp_path):
    accounts = [factories.account() for _ in range(3)]
    path = write(
        tmp_path,
        HEADER,
        *(f"{a.number},{20 + i}.00,online,web-{i},2026-11-19" for i, a in enumerate(accounts)),
    )
    assert run(path)[0] == 0
    receipts = dict(Payment.objects.values_list("reference", "receipt_number"))
    balances = [account_balances(a) for a in accounts]

    code, out, err = run(path)

    assert (code, err) == (0, "")
    assert lines_of(out) == [
        f"line {i + 2}: duplicate of receipt {receipts[f'web-{i}']} (already posted)" for i in range(3)
    ]
    assert out.splitlines()[-1] == "import_payments posted=0 duplicates=3 bad=0 total=$0.00"
    assert Payment.objects.count() == 3
    assert [account_balances(a) for a in accounts] == balances


def test_a_file_with_every_kind_of_bad_row_reports_each_with_its_line_and_posts_nothing(tmp_path):
    good, other = factories.account(), factories.account()
    closed = factories.account()
    account_change_status(account=closed, to_status=Account.Status.CLOSED, actor=None, reason="moved away")
    postpaid = factories.account(billing_mode=Account.BillingMode.POSTPAID)
    g, o, c, p = good.number, other.number, closed.number, postpaid.number
    path = write(
        tmp_path,
        HEADER,  # 1
        f"{g},50.00,cash,G-1,2026-11-19",  # 2 good
        "",  # 3 a blank line still counts
        "9999999,20.00,cash,B-1,2026-11-19",  # 4
        f"{c},20.00,cash,B-2,2026-11-19",  # 5
        f"{g},12.5O,cash,B-3,2026-11-19",  # 6
        f"{g},20.005,cash,B-4,2026-11-19",  # 7
        f"{g},0.00,cash,B-5,2026-11-19",  # 8
        f"{g},-20.00,cash,B-6,2026-11-19",  # 9
        f"{g},20.00,bitcoin,B-7,2026-11-19",  # 10
        f"{g},20.00,cash,,2026-11-19",  # 11
        f"{g},20.00,cash,B-9,11/19/2026",  # 12
        f"{g},20.00,cash,B-10,2026-11-21",  # 13
        f"{g},20.00,check,CHK 300,2026-11-19",  # 14
        f"{o},20.00,check,CHK 300,2026-11-19",  # 15
        f"{g},9.99,cash,B-12,2026-11-19",  # 16
        f"{p},5.00,cash,G-2,2026-11-19",  # 17 good: the prepaid minimum is for prepaid accounts
        f'{g},20.00,cash,"B-13",2026-11-20T15:00:01-06:00',  # 18
    )

    code, out, err = run(path)

    assert code == 1
    assert lines_of(err) == [
        "line 4: account_number: no account numbered 9999999",
        f"line 5: account_number: Account {c} is closed; it takes no payments.",
        "line 6: amount: not a number ('12.5O'); write dollars and cents like 52.75",
        "line 7: amount: more than 2 decimal places (20.005); amounts are dollars and cents",
        "line 8: amount: must be more than $0.00 (got 0.00)",
        "line 9: amount: must be more than $0.00 (got -20.00)",
        "line 10: tender: unknown tender 'bitcoin'; use one of cash, check, card, ach, online, money_order",
        "line 11: reference: missing; every payment needs its processor, lockbox or check reference",
        "line 12: received_at: not a date ('11/19/2026'); use 2026-11-20, or 2026-11-20T14:05:00-06:00 "
        "with the time and offset",
        "line 13: received_at: 2026-11-21 is in the future",
        "line 14: reference: Check reference CHK 300 is on lines 14, 15 with different accounts or amounts; "
        "post the right one by hand",
        "line 15: reference: Check reference CHK 300 is on lines 14, 15 with different accounts or amounts; "
        "post the right one by hand",
        "line 16: amount: The minimum prepaid payment is $10.00; $9.99 is less.",
        "line 18: received_at: 2026-11-20T15:00:01-06:00 is in the future",
    ]
    assert "CommandError: Nothing was posted: 14 bad row(s)." in err
    assert out.splitlines()[-1] == "import_payments posted=0 duplicates=0 bad=14 total=$0.00"
    assert Payment.objects.count() == 0
    assert account_balances(good).prepaid_credit == D("0.00")


def test_check_restriction_and_a_reference_posted_to_another_account_are_bad_rows(tmp_path):
    restricted, other = factories.account(), factories.account()
    for ref, day in (("c1", datetime.date(2026, 3, 10)), ("c2", datetime.date(2026, 11, 2))):
        payment, _ = services.payment_post(account=restricted, amount="20.00", tender="check", reference=ref)
        services.payment_return(payment=payment, reason="nsf", returned_on=day)
    earlier, _ = services.payment_post(account=other, amount="30.00", tender="ach", reference="ACH-9")
    count = Payment.objects.count()
    path = write(
        tmp_path,
        HEADER,
        f"{restricted.number},80.00,check,CHK 5,2026-11-20",
        f"{restricted.number},30.00,ach,ACH-9,2026-11-20",
        f"{restricted.number},80.00,cash,CASH-5,2026-11-20",
    )

    code, out, err = run(path)

    assert code == 1
    assert lines_of(err) == [
        f"line 2: tender: {restricted.member} may not pay by check until November 2, 2027 (returned "
        "checks). Take cash, a certified check or a card.",
        f"line 3: reference: ACH reference ACH-9 was already posted as receipt {earlier.receipt_number} "
        f"($30.00 to account {other.number} on November 20, 2026).",
    ]
    assert Payment.objects.count() == count


def test_skip_bad_posts_the_good_rows_and_reports_the_bad_ones(tmp_path):
    a, b = factories.account(), factories.account()
    path = write(
        tmp_path,
        HEADER,
        f"{a.number},50.00,cash,S-1,2026-11-19",
        f"{a.number},fifty,cash,S-2,2026-11-19",
        f"{b.number},35.00,card,S-3,2026-11-19",
        f"{b.number},5.00,card,S-4,2026-11-19",
    )

    code, out, err = run(path, "--skip-bad")

    assert code == 0
    assert lines_of(err) == [
        "line 3: amount: not a number ('fifty'); write dollars and cents like 52.75",
        "line 5: amount: The minimum prepaid payment is $10.00; $5.00 is less.",
    ]
    assert out.splitlines()[-1] == "import_payments posted=2 duplicates=0 bad=2 total=$85.00"
    assert sorted(Payment.objects.values_list("reference", flat=True)) == ["S-1", "S-3"]
    assert account_balances(a).prepaid_credit == D("50.00")
    assert account_balances(b).prepaid_credit == D("35.00")


def test_missing_and_unknown_columns_are_named_and_nothing_is_posted(tmp_path):
    account = factories.account()
    path = write(
        tmp_path, "account_number,amount,tender,ref,date", f"{account.number},50.00,cash,X-1,2026-11-19"
    )

    code, out, err = run(path)

    assert code == 1
    assert (
        "CommandError: payments.csv: missing required column(s): reference, received_at; "
        "unknown column(s): 'ref', 'date'." in err
    )
    assert Payment.objects.count() == 0


def test_the_tender_column_may_be_left_out_when_tender_is_given(tmp_path):
    account = factories.account()
    without = write(
        tmp_path, "account_number,amount,reference,received_at", f"{account.number},20,C-1,2026-11-19"
    )

    assert "missing required column(s): tender (or give --tender)" in run(without)[2]
    code, out, _ = run(without, "--tender", "check")

    assert code == 0
    assert Payment.objects.get().tender == Payment.Tender.CHECK


def test_a_byte_order_mark_spreadsheet_headers_and_surrounding_spaces_are_accepted(tmp_path):
    account = factories.account()
    path = write(
        tmp_path,
        " Account Number , Amount ,Tender, Reference ,Received At",
        f"  {account.number} ,  42.00 , Money Order ,  MO 1  , 2026-11-19 ",
        ",,,,",  # a spreadsheet's trailing row of empty cells
        bom=True,
    )

    code, out, err = run(path)

    assert (code, err) == (0, "")
    payment = Payment.objects.get()
    assert (payment.amount, payment.tender, payment.reference) == (D("42.00"), "money_order", "MO 1")


def test_dry_run_checks_every_row_and_posts_nothing(tmp_path):
    account = factories.account()
    good = write(tmp_path, HEADER, f"{account.number},50.00,cash,D-1,2026-11-19", name="good.csv")
    bad = write(tmp_path, HEADER, f"{account.number},50.00,cash,D-1,2026-11-19", "1,2,3,4,5", name="bad.csv")

    code, out, _ = run(good, "--dry-run", "-v", "2")
    assert code == 0
    assert lines_of(out) == [f"line 2: would post $50.00 to account {account.number}"]
    assert "import_payments dry-run would_post=1 duplicates=0 bad=0 total=$50.00" in out
    assert out.splitlines()[-1] == "Dry run: nothing was posted."

    code, out, err = run(bad, "--dry-run")
    assert code == 1
    assert "line 3: account_number: no account numbered 1" in err
    assert "CommandError: The file has 1 bad row(s)." in err

    assert Payment.objects.count() == 0
    assert account_balances(account).prepaid_credit == D("0.00")


def test_verbosity_2_prints_each_receipt_posted(tmp_path):
    account = factories.account()
    path = write(tmp_path, HEADER, f"{account.number},50.00,cash,V-1,2026-11-19")

    code, out, _ = run(path, "-v", "2")

    payment = Payment.objects.get()
    assert lines_of(out) == [
        f"line 2: posted receipt {payment.receipt_number} $50.00 to account {account.number}"
    ]


def test_the_same_payment_twice_in_one_file_is_posted_once(tmp_path):
    account = factories.account()
    path = write(
        tmp_path,
        HEADER,
        f"{account.number},50.00,card,T-1,2026-11-19",
        f"{account.number},50,card,T-1,2026-11-19T10:00:00-06:00",
    )

    code, out, _ = run(path)

    assert code == 0
    assert lines_of(out) == ["line 3: duplicate of line 2 (same reference earlier in this file)"]
    assert out.splitlines()[-1] == "import_payments posted=1 duplicates=1 bad=0 total=$50.00"
    assert account_balances(account).prepaid_credit == D("50.00")


def test_times_are_read_in_the_cooperatives_zone_around_daylight_saving(tmp_path):
    account = factories.account()
    path = write(
        tmp_path,
        HEADER,
        f"{account.number},20.00,cash,DST-1,2026-11-01T01:30:00",  # the clocks went back: twice that day
        f"{account.number},20.00,cash,DST-2,2026-11-01T01:30:00-05:00",
        f"{account.number},20.00,cash,DST-3,2026-03-08T02:30:00",  # the clocks went forward: never
        f"{account.number},20.00,cash,DST-4,2026-03-08",
    )

    code, out, err = run(path, "--skip-bad")

    assert lines_of(err) == [
        "line 2: received_at: 2026-11-01T01:30:00 falls in a daylight-saving change in America/Chicago; "
        "give the UTC offset",
        "line 4: received_at: 2026-03-08T02:30:00 falls in a daylight-saving change in America/Chicago; "
        "give the UTC offset",
    ]
    received = dict(Payment.objects.values_list("reference", "received_at"))
    assert received == {
        "DST-2": datetime.datetime(2026, 11, 1, 6, 30, tzinfo=datetime.UTC),
        "DST-4": datetime.datetime(2026, 3, 8, 17, 0, tzinfo=datetime.UTC),  # noon CDT
    }


def test_a_payment_dated_today_before_noon_is_not_stamped_in_the_future(tmp_path):
    account = factories.account()
    path = write(tmp_path, HEADER, f"{account.number},20.00,cash,AM-1,2026-11-20")
    with time_machine.travel(local(2026, 11, 20, 9, 0), tick=False):
        assert run(path)[0] == 0
    assert Payment.objects.get().received_at == local(2026, 11, 20, 9, 0)


def test_the_lockbox_sample_posts_every_item_and_a_second_import_posts_nothing(tmp_path):
    accounts = {n: factories.account(number=str(n)) for n in range(1000101, 1000112)}

    code, out, err = run(SAMPLE)

    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "import_payments posted=12 duplicates=0 bad=0 total=$1177.91"
    assert account_balances(accounts[1000101]).prepaid_credit == D("165.00")
    assert Payment.objects.filter(tender=Payment.Tender.MONEY_ORDER).count() == 3

    code, out, err = run(SAMPLE)

    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "import_payments posted=0 duplicates=12 bad=0 total=$0.00"
    assert Payment.objects.count() == 12


def test_account_numbers_are_checked_a_chunk_at_a_time(tmp_path, operator, django_assert_max_num_queries):
    path = write(tmp_path, HEADER, *(f"{9000000 + i},20.00,cash,N-{i},2026-11-19" for i in range(1200)))

    with django_assert_max_num_queries(8):
        result = payment_file_import(path=path, actor=operator)

    assert result.bad == 1200
    assert not result.applied


def test_a_file_that_is_not_utf8_or_has_extra_values_is_refused_clearly(tmp_path):
    account = factories.account()
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(f"{HEADER}\n{account.number},20.00,cash,Caf\xe9 1,2026-11-19\n".encode("latin-1"))
    extra = write(tmp_path, HEADER, f"{account.number},20.00,cash,E-1,2026-11-19,oops", name="extra.csv")

    code, _, err = run(latin1)
    assert code == 1
    assert "CommandError: latin1.csv: line 2 is not UTF-8 text" in err
    code, _, err = run(extra)
    assert lines_of(err) == ["line 2: row: 1 more value(s) than the header has columns"]
    assert run(tmp_path / "nowhere.csv")[2].startswith("CommandError: ")
    assert Payment.objects.count() == 0


def test_every_problem_of_a_row_is_reported_in_column_order(tmp_path):
    path = write(tmp_path, HEADER, "42,1.001,cheque,,2030-01-01")

    code, _, err = run(path)

    assert [line.split(":")[1].strip() for line in lines_of(err)] == [
        "account_number",
        "amount",
        "tender",
        "reference",
        "received_at",
    ]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_on_postgresql_refused_rows_roll_back_to_their_savepoint_and_the_rest_commits(tmp_path):
    a, b = factories.account(), factories.account()
    path = write(
        tmp_path,
        HEADER,
        f"{a.number},50.00,card,PG-1,2026-11-19",
        f"{b.number},5.00,card,PG-2,2026-11-19",  # refused by payment_post after it locked the account
        f"{b.number},60.00,card,PG-3,2026-11-19",
    )

    code, out, err = run(path, "--skip-bad")

    assert code == 0
    assert lines_of(err) == ["line 3: amount: The minimum prepaid payment is $10.00; $5.00 is less."]
    # Committed for real: the database's zero-sum and append-only triggers ran at commit.
    assert sorted(Payment.objects.values_list("reference", flat=True)) == ["PG-1", "PG-3"]
    audit = StringIO()
    call_command("ledger_audit", stdout=audit)
    assert "ledger_audit ok transactions=2 legs=4 member_balance_total=110.00" in audit.getvalue()


def test_a_payment_dated_before_any_policy_is_a_bad_row(tmp_path):
    account = factories.account()
    path = write(tmp_path, HEADER, f"{account.number},20.00,cash,OLD-1,2025-12-31")

    code, _, err = run(path)

    assert code == 1
    assert lines_of(err)[0].startswith("line 2: received_at: No policy is in force on 2025-12-31.")
