import datetime
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from accounts.tests import factories
from billing.daily import daily_run
from billing.models import Tariff
from billing.tests import factories as bf

pytestmark = pytest.mark.django_db


@pytest.fixture
def ran():
    factories.policy(effective_from=datetime.date(2020, 1, 1))
    bf.tariff(tax_percent=Decimal("5"))
    account = bf.prepaid_account()
    with time_machine.travel("2026-12-15 18:00:00+00:00", tick=False):
        bf.read(account.meter, datetime.date(2026, 12, 14), "12.345")
        daily_run(day=datetime.date(2026, 12, 14))
    return account


def test_the_daily_run_list_shows_each_run_with_its_progress(admin_client, ran):
    page = admin_client.get(reverse("admin:billing_dailyrun_changelist")).content.decode()
    assert "Dec. 14, 2026" in page and "100% (1 / 1)" in page


def test_the_account_page_shows_the_daily_charges_with_their_parts(admin_client, ran):
    page = admin_client.get(reverse("admin:accounts_account_change", args=[ran.pk])).content.decode()
    assert "Daily charges" in page and "12.345" in page and "$1.48" in page  # 12.345 kWh x 0.12


def test_a_tariff_needs_a_complete_ladder_of_blocks_for_every_month(admin_client):
    url = reverse("admin:billing_tariff_add")
    data = {
        "code": "RES",
        "name": "Residential",
        "effective_from": "2027-01-01",
        "customer_charge": "30.00",
        "blocks-TOTAL_FORMS": "2",
        "blocks-INITIAL_FORMS": "0",
        "blocks-0-months": "6,7,8,9",
        "blocks-0-up_to_kwh": "",
        "blocks-0-rate": "0.11",
        "blocks-1-months": "13",
        "blocks-1-up_to_kwh": "",
        "blocks-1-rate": "0.10",
    }
    next_year = datetime.date.today().year + 1
    data["effective_from"] = f"{next_year}-01-01"
    page = admin_client.post(url, data).content.decode()
    assert "13 is not a month number" in page
    data["blocks-1-months"] = "1,2,3"
    page = admin_client.post(url, data).content.decode()
    assert "month 4: no energy rate for this month." in page
    data["effective_from"] = f"{next_year}-01-15"
    page = admin_client.post(url, data).content.decode()
    assert "Rates change on the first day of a month." in page
    assert not Tariff.objects.exists()
    data.update({"effective_from": f"{next_year}-01-01", "blocks-1-months": "1,2,3,4,5,10,11,12"})
    response = admin_client.post(url, data)
    assert response.status_code == 302
    assert Tariff.objects.get().blocks.count() == 2


def test_a_tariff_in_force_is_read_only(admin_client, ran):
    tariff = Tariff.objects.get()  # in force since 2020
    page = admin_client.get(reverse("admin:billing_tariff_change", args=[tariff.pk])).content.decode()
    assert "View tariff" in page and "30.00" in page
    assert 'name="customer_charge"' not in page


@pytest.mark.parametrize(
    ("model", "data"),
    [
        ("tariff", {"code": "RES", "customer_charge": "30.00", "blocks-TOTAL_FORMS": "0"}),
        ("rider", {"code": "PCA", "rate": "0.01"}),
        ("taxrate", {"percent": "5"}),
    ],
)
def test_a_rate_name_with_a_card_number_is_refused_on_the_field(admin_client, model, data):
    """The rates' names are free text a manager types, like every other (issue 5, point 6)."""
    from coop.validators import CARD_NUMBER_MESSAGE

    next_year = datetime.date.today().year + 1
    data = {
        "name": "Residential 4111 1111 1111 1111",
        "effective_from": f"{next_year}-01-01",
        "blocks-INITIAL_FORMS": "0",
        **data,
    }
    response = admin_client.post(reverse(f"admin:billing_{model}_add"), data)
    assert response.status_code == 200
    assert CARD_NUMBER_MESSAGE in response.context["adminform"].form.errors["name"][0]
