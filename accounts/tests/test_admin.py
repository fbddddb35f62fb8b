import datetime
import re

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Account, AccountStatusChange, Member, ServiceLocation
from accounts.tests import factories
from coop.admin_tools import BoundedCountPaginator
from coop.models import BillingCycle
from meters import services as meter_services
from meters.models import Meter, MeterInstallation

pytestmark = pytest.mark.django_db

S = Account.Status
ACCOUNTS = reverse("admin:accounts_account_changelist")
MEMBERS = reverse("admin:accounts_member_changelist")
LOCATIONS = reverse("admin:accounts_servicelocation_changelist")
STATUS_CHANGES = reverse("admin:accounts_accountstatuschange_changelist")


# --- helpers ---------------------------------------------------------------------------------


def _found(response):
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def _messages(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def _bulk_accounts(n, *, start=0):
    """n members, each with a location (and its meter) and a postpaid or prepaid account."""
    cycles = [
        BillingCycle.objects.get_or_create(
            code=f"c{d}", defaults={"name": f"Cycle {d}", "bill_day": d, "due_day": 28}
        )[0]
        for d in (5, 12, 19)
    ]
    ids = range(start, start + n)
    members = Member.objects.bulk_create(
        Member(
            first_name="Bulk",
            last_name=f"Member{i}",
            email=f"bulk{i}@example.org",
            mobile_phone=f"+1715{2000000 + i:07d}",
            line1=f"{i} Main St",
            city="Ladysmith",
            state="WI",
            postal_code="54848",
        )
        for i in ids
    )
    locations = ServiceLocation.objects.bulk_create(
        ServiceLocation(line1=f"N{i} County Road E", city="Hawkins", state="WI", postal_code="54530")
        for i in ids
    )
    meters = Meter.objects.bulk_create(Meter(serial=f"BULK{i:08d}") for i in ids)
    MeterInstallation.objects.bulk_create(
        MeterInstallation(meter=meter, location=location, installed_on=datetime.date(2024, 1, 1))
        for meter, location in zip(meters, locations, strict=True)
    )
    Account.objects.bulk_create(
        Account(
            number=f"{5000000 + i}",
            member=member,
            location=location,
            billing_mode="postpaid" if i % 2 else "prepaid",
            billing_cycle=cycles[i % 3] if i % 2 else None,
            status=S.ACTIVE,
        )
        for i, member, location in zip(ids, members, locations, strict=True)
    )


def _queries_for(client, url, params=None):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, params or {})
    assert response.status_code == 200
    return ctx


@pytest.fixture
def jane():
    """Jane Smith at W123 Birch Hollow Ln with meter LG-77001234, and two members like her."""
    member = factories.member(
        first_name="Jane", last_name="Smith", email="jane.smith@example.org", mobile_phone="+17155325524"
    )
    location = factories.location(line1="W123 Birch Hollow Ln")
    meter = meter_services.meter_create(serial="LG-77001234")
    meter_services.meter_install(meter=meter, location=location, installed_on=datetime.date(2025, 1, 6))
    account = factories.account(member=member, location=location, number="2000123")
    factories.account(
        member=factories.member(first_name="Jane", last_name="Doe", mobile_phone="+17155325525"),
        location=factories.location(line1="N5 Lake Shore Dr"),
    )
    factories.account(member=factories.member(first_name="John", last_name="Smithson"))
    return account


# --- search ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    ["(715) 532-5524", "715-532-5524", "715.532.5524", "7155325524", "+17155325524", "+1 715 532 5524"],
)
def test_account_search_finds_the_member_by_phone_typed_in_any_common_format(admin_client, jane, typed):
    assert _found(admin_client.get(ACCOUNTS, {"q": typed})) == [jane]


@pytest.mark.parametrize(
    "typed",
    [
        "Smith",  # last name (Smithson's account matches too: see below)
        "Jane Smith",  # full name, any order of words
        "smith jane",
        "jane.smith@example.org",  # email
        "JANE.SMITH@",  # email, its beginning
        "2000123",  # account number
        "LG-77001234",  # meter serial
        "lg-7700",  # meter serial, its beginning
        "W123 Birch Hollow Ln",  # street address
        "birch hollow",  # part of it
    ],
)
def test_account_search_finds_the_account_by_name_email_number_serial_or_address(admin_client, jane, typed):
    found = _found(admin_client.get(ACCOUNTS, {"q": typed}))
    assert jane in found
    assert all(a.member.last_name.startswith("Smith") for a in found) if typed == "Smith" else found == [jane]


def test_account_search_ignores_one_and_two_letter_words_beside_longer_ones(admin_client, jane):
    # "Rd", "E", "8": no trigram, so matching them would read whole tables.
    assert _found(admin_client.get(ACCOUNTS, {"q": "W123 Birch Hollow Ln E"})) == [jane]


def test_account_search_takes_a_quoted_phrase_as_one_word(admin_client, jane):
    assert _found(admin_client.get(ACCOUNTS, {"q": '"Birch Hollow"'})) == [jane]
    assert _found(admin_client.get(ACCOUNTS, {"q": '"Hollow Birch"'})) == []


def test_account_search_by_a_different_phone_number_finds_only_that_members_account(admin_client, jane):
    found = _found(admin_client.get(ACCOUNTS, {"q": "(715) 532-5525"}))
    assert [a.member.last_name for a in found] == ["Doe"]
    assert _found(admin_client.get(ACCOUNTS, {"q": "(715) 532-5526"})) == []


def test_account_search_by_serial_lists_an_account_once_however_many_meters_match(admin_client, jane):
    # The location's earlier meter (removed) and the current one both start with "LG-770".
    old = meter_services.meter_create(serial="LG-77000001")
    installation = meter_services.meter_install(
        meter=old, location=factories.location(), installed_on=datetime.date(2020, 1, 1)
    )
    MeterInstallation.objects.filter(pk=installation.pk).update(
        location=jane.location, removed_on=datetime.date(2024, 12, 31)
    )
    assert _found(admin_client.get(ACCOUNTS, {"q": "LG-770"})) == [jane]


def test_member_search_finds_by_name_phone_email_and_account_number(admin_client, jane):
    for typed in ["Jane Smith", "(715) 532-5524", "715.532.5524", "jane.smith@example.org", "2000123"]:
        assert _found(admin_client.get(MEMBERS, {"q": typed})) == [jane.member], typed


def test_location_search_finds_by_address_and_meter_serial(admin_client, jane):
    for typed in ["Birch Hollow", "W123 Birch Hollow Ln", "LG-77001234", "lg-770"]:
        assert _found(admin_client.get(LOCATIONS, {"q": typed})) == [jane.location], typed


def test_account_autocomplete_for_the_member_field_uses_the_same_search(admin_client, jane):
    response = admin_client.get(
        reverse("admin:autocomplete"),
        {"term": "(715) 532-5524", "app_label": "accounts", "model_name": "account", "field_name": "member"},
    )
    assert [r["id"] for r in response.json()["results"]] == [str(jane.member.pk)]


# --- no query per row, no unbounded COUNT ----------------------------------------------------


@pytest.mark.parametrize("url", [ACCOUNTS, MEMBERS, LOCATIONS])
def test_list_page_with_1000_rows_runs_as_many_queries_as_with_10(admin_client, url):
    _bulk_accounts(10)
    few = _queries_for(admin_client, url)
    _bulk_accounts(990, start=10)
    many = _queries_for(admin_client, url)
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


def test_account_list_shows_member_address_mode_status_and_cycle_from_one_query(admin_client):
    _bulk_accounts(3)
    response = admin_client.get(ACCOUNTS)
    page = response.content.decode()
    for text in (
        "5000001",
        "Bulk Member1",
        "N1 County Road E, Hawkins, WI 54530",
        "Postpaid",
        "Active",
        "Cycle 12",
    ):
        assert text in page


def test_account_list_never_runs_an_unbounded_count(admin_client, jane):
    _bulk_accounts(30)
    for params in (
        {},
        {"q": "Smith"},
        {"q": "(715) 532-5524"},
        {"status__exact": "active"},
        {"p": "1"},
        {"_facets": "1"},
    ):
        counts = [
            q["sql"]
            for q in _queries_for(admin_client, ACCOUNTS, params).captured_queries
            if "COUNT(" in q["sql"]
        ]
        assert counts, params  # the paginator does count ...
        for sql in counts:  # ... but only over a LIMITed subquery
            assert re.search(r"COUNT\(\*\).*FROM \(SELECT .* LIMIT \d+\)", sql), sql


def test_list_with_more_rows_than_the_count_limit_says_more_than_and_pages_up_to_the_limit(
    admin_client, monkeypatch
):
    monkeypatch.setattr(BoundedCountPaginator, "limit", 25)
    _bulk_accounts(30)
    response = admin_client.get(ACCOUNTS)
    cl = response.context["cl"]
    assert cl.paginator.capped and cl.result_count == 25
    assert "More than 25 accounts — refine your search or filters." in response.content.decode()
    response = admin_client.get(ACCOUNTS, {"q": "Bulk"})
    assert "more than 25 results — refine your search" in response.content.decode()
    assert admin_client.get(ACCOUNTS, {"q": "Member1"}).context["cl"].paginator.capped is False


# --- roles -----------------------------------------------------------------------------------


def test_clerk_may_add_and_change_but_gets_403_on_every_delete_view(client, clerk, jane):
    client.force_login(clerk)
    assert client.get(reverse("admin:accounts_member_add")).status_code == 200
    assert client.get(reverse("admin:accounts_account_add")).status_code == 200
    assert client.get(reverse("admin:accounts_account_change", args=[jane.pk])).status_code == 200
    for name, obj in [
        ("accounts_member", jane.member),
        ("accounts_account", jane),
        ("accounts_servicelocation", jane.location),
    ]:
        url = reverse(f"admin:{name}_delete", args=[obj.pk])
        assert client.get(url).status_code == 403
        assert client.post(url, {"post": "yes"}).status_code == 403
    assert Account.objects.filter(pk=jane.pk).exists()


def test_auditor_sees_everything_but_gets_403_when_posting_a_change(client, auditor, jane):
    client.force_login(auditor)
    member_url = reverse("admin:accounts_member_change", args=[jane.member.pk])
    assert client.get(member_url).status_code == 200
    assert client.post(member_url, {"first_name": "Hacked"}).status_code == 403
    account_url = reverse("admin:accounts_account_change", args=[jane.pk])
    assert client.get(account_url).status_code == 200
    assert client.post(account_url, {}).status_code == 403
    status_url = reverse("admin:accounts_account_status", args=[jane.pk])
    assert client.post(status_url, {"to_status": "active", "reason": "x"}).status_code == 403
    assert client.get(reverse("admin:accounts_member_add")).status_code == 403
    jane.refresh_from_db()
    assert jane.member.first_name == "Jane" and jane.status == S.PENDING


def test_status_change_records_are_read_only_for_everyone_superusers_included(admin_client, jane, clerk):
    from accounts import services

    services.account_change_status(account=jane, to_status=S.ACTIVE, actor=clerk, reason="enrolled")
    change = AccountStatusChange.objects.get(account=jane)
    assert admin_client.get(STATUS_CHANGES).status_code == 200
    assert admin_client.get(reverse("admin:accounts_accountstatuschange_add")).status_code == 403
    url = reverse("admin:accounts_accountstatuschange_change", args=[change.pk])
    assert admin_client.get(url).status_code == 200  # to look at
    assert admin_client.post(url, {"reason": "rewritten"}).status_code == 403
    assert (
        admin_client.post(reverse("admin:accounts_accountstatuschange_delete", args=[change.pk])).status_code
        == 403
    )
    change.refresh_from_db()
    assert change.reason == "enrolled"


def test_history_is_shown_but_cannot_be_reverted(admin_client, jane):
    history = jane.history.order_by("history_id").first()
    assert admin_client.get(reverse("admin:accounts_account_history", args=[jane.pk])).status_code == 200
    url = reverse("admin:accounts_account_simple_history", args=[jane.pk, history.history_id])
    assert admin_client.post(url, {}).status_code == 403


# --- status changes go through the service ---------------------------------------------------


def _run_status_action(client, accounts, to_status, reason):
    return client.post(
        ACCOUNTS,
        {
            "action": "change_status",
            "_selected_action": [a.pk for a in accounts],
            "to_status": to_status,
            "reason": reason,
            "index": 0,
        },
        follow=True,
    )


def test_status_action_moves_the_accounts_through_the_service_with_who_and_why(
    client, clerk, jane, monkeypatch
):
    from accounts import services

    calls = []
    real = services.account_change_status
    monkeypatch.setattr(services, "account_change_status", lambda **kw: calls.append(kw) or real(**kw))
    client.force_login(clerk)
    response = _run_status_action(client, [jane], "active", "Deposit received")
    assert [(c["account"].pk, c["to_status"], c["actor"], c["reason"]) for c in calls] == [
        (jane.pk, "active", clerk, "Deposit received")
    ]
    assert "Account 2000123 is now active." in _messages(response)
    jane.refresh_from_db()
    assert jane.status == S.ACTIVE
    change = AccountStatusChange.objects.get(account=jane)
    assert (change.from_status, change.to_status, change.actor, change.reason) == (
        "pending",
        "active",
        clerk,
        "Deposit received",
    )


def test_illegal_status_move_shows_the_error_and_changes_nothing(client, clerk, jane):
    client.force_login(clerk)
    response = _run_status_action(client, [jane], "disconnected", "Nonpayment")
    assert (
        "Account 2000123 is pending and cannot become disconnected. "
        "From pending it can become: Active, Closed." in _messages(response)
    )
    jane.refresh_from_db()
    assert jane.status == S.PENDING
    assert not AccountStatusChange.objects.exists()


def test_status_action_on_several_accounts_changes_none_if_one_move_is_illegal(client, clerk, jane):
    from accounts import services

    other = Account.objects.exclude(pk=jane.pk).first()
    services.account_change_status(account=other, to_status=S.CLOSED, actor=clerk, reason="withdrawn")
    client.force_login(clerk)
    response = _run_status_action(client, [jane, other], "active", "Enrolled")
    messages = _messages(response)
    assert any("is closed and cannot become active" in m for m in messages)
    assert "Nothing was changed. Deselect those accounts and try again." in messages
    jane.refresh_from_db()
    assert jane.status == S.PENDING
    assert AccountStatusChange.objects.count() == 1


def test_status_action_without_a_reason_changes_nothing(client, clerk, jane):
    client.force_login(clerk)
    response = _run_status_action(client, [jane], "active", "  ")
    assert "Choose the new status and say why, then run the action again." in _messages(response)
    jane.refresh_from_db()
    assert jane.status == S.PENDING


def test_auditor_is_not_offered_the_status_action_and_cannot_run_it(client, auditor, jane):
    client.force_login(auditor)
    response = client.get(ACCOUNTS)
    assert "change_status" not in response.context["cl"].model_admin.get_actions(response.wsgi_request)
    _run_status_action(client, [jane], "active", "Enrolled")
    jane.refresh_from_db()
    assert jane.status == S.PENDING


def test_change_page_offers_the_allowed_moves_and_its_form_calls_the_service(client, clerk, jane):
    client.force_login(clerk)
    page = client.get(reverse("admin:accounts_account_change", args=[jane.pk]))
    form = page.context["status_form"]
    assert [value for value, _ in form.fields["to_status"].widget.choices] == ["active", "closed"]
    status_url = reverse("admin:accounts_account_status", args=[jane.pk])
    assert status_url in page.content.decode()

    response = client.post(status_url, {"to_status": "active", "reason": "Meter set"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:accounts_account_change", args=[jane.pk])
    assert "Account 2000123 is now active." in _messages(response)
    jane.refresh_from_db()
    assert jane.status == S.ACTIVE

    response = client.post(status_url, {"to_status": "inactive", "reason": "stale page"}, follow=True)
    assert any("is active and cannot become inactive" in m for m in _messages(response))
    jane.refresh_from_db()
    assert jane.status == S.ACTIVE
    assert AccountStatusChange.objects.filter(account=jane).count() == 1


def test_change_page_shows_the_newest_status_changes_read_only(admin_client, jane, clerk):
    now = timezone.now()
    AccountStatusChange.objects.bulk_create(
        AccountStatusChange(
            account=jane,
            from_status="active",
            to_status="disconnected",
            changed_at=now - datetime.timedelta(days=i),
            actor=clerk,
            reason=f"change {i}",
        )
        for i in range(25)
    )
    page = admin_client.get(reverse("admin:accounts_account_change", args=[jane.pk]))
    inline = next(f for f in page.context["inline_admin_formsets"] if f.opts.model is AccountStatusChange)
    shown = [form.instance.reason for form in inline.formset.forms]
    assert shown == [f"change {i}" for i in range(20)]
    assert (
        not inline.has_add_permission
        and not inline.has_change_permission
        and not inline.has_delete_permission
    )
    all_changes = f"{STATUS_CHANGES}?account__id__exact={jane.pk}"
    assert all_changes in page.content.decode()
    assert len(_found(admin_client.get(all_changes))) == 25


def test_saving_an_account_keeps_its_status_and_history_inline_untouched(admin_client, jane, clerk):
    from accounts import services

    services.account_change_status(account=jane, to_status=S.ACTIVE, actor=clerk, reason="enrolled")
    url = reverse("admin:accounts_account_change", args=[jane.pk])
    page = admin_client.get(url)
    data = {"billing_cycle": "", "status": "closed", "member": "", "billing_mode": "postpaid"}
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        data.update(
            {formset.management_form.add_prefix(k): v for k, v in formset.management_form.initial.items()}
        )
        for form in formset.forms:
            data[form.add_prefix("id")] = form.instance.pk
            data[form.add_prefix("account")] = jane.pk
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    jane.refresh_from_db()
    assert (jane.status, jane.billing_mode) == (S.ACTIVE, "prepaid")
    assert AccountStatusChange.objects.get(account=jane).reason == "enrolled"


# --- adding ----------------------------------------------------------------------------------


def test_account_added_in_the_admin_is_opened_by_the_service_with_the_next_number(client, clerk):
    member, location = factories.member(), factories.location()
    factories.account(number="1000041")
    client.force_login(clerk)
    response = client.post(
        reverse("admin:accounts_account_add"),
        {"number": "", "member": member.pk, "location": location.pk, "billing_mode": "prepaid"},
    )
    assert response.status_code == 302
    account = Account.objects.get(member=member)
    assert (account.number, account.status) == ("1000042", S.PENDING)
    assert account.status_changed_at is not None
    assert account.history.get().history_user == clerk


def test_account_for_a_location_with_an_open_account_is_refused_in_the_form(admin_client, jane):
    response = admin_client.post(
        reverse("admin:accounts_account_add"),
        {"member": factories.member().pk, "location": jane.location.pk, "billing_mode": "prepaid"},
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["location"] == [
        "This location already has an open account."
    ]
    assert Account.objects.filter(location=jane.location).count() == 1


MEMBER_FORM = {
    "first_name": "Ann",
    "last_name": "Berg",
    "email": "ann@example.org",
    "line1": "1 Main St",
    "city": "Ladysmith",
    "state": "WI",
    "postal_code": "54848",
    "accounts-TOTAL_FORMS": "0",
    "accounts-INITIAL_FORMS": "0",
}


@pytest.mark.parametrize("bad", ["+44 20 7946 0958", "123"])
def test_member_with_a_phone_invalid_for_the_region_is_refused_in_the_add_form(admin_client, bad):
    response = admin_client.post(reverse("admin:accounts_member_add"), {**MEMBER_FORM, "mobile_phone": bad})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["mobile_phone"]
    assert errors and any("phone number" in e for e in errors)
    assert "errornote" in response.content.decode()
    assert not Member.objects.exists()


def test_member_phone_typed_nationally_is_saved_and_listed_in_national_format(admin_client):
    response = admin_client.post(
        reverse("admin:accounts_member_add"), {**MEMBER_FORM, "mobile_phone": "715.532.5524"}
    )
    assert response.status_code == 302
    assert Member.objects.get().mobile_phone.as_e164 == "+17155325524"
    assert "(715) 532-5524" in admin_client.get(MEMBERS).content.decode()
