"""Test data for the daily run: a tariff, prepaid accounts in service with a meter, and reads."""

import datetime
import itertools
from decimal import Decimal

from accounts import services as account_services
from accounts.models import Account
from accounts.tests import factories
from billing.models import Rider, Tariff, TariffBlock, TaxRate
from meters import services as meter_services
from meters.models import MeterRead

_seq = itertools.count(1)
D = Decimal
FLAT = ((None, D("0.120000")),)


def tariff(
    *,
    effective_from=datetime.date(2020, 1, 1),
    customer_charge="30.00",
    blocks=FLAT,
    summer_blocks=None,
    summer_months="6,7,8,9",
    rider=None,
    tax_percent=None,
) -> Tariff:
    """A residential tariff. `blocks` are (up_to_kwh, rate) pairs for every month, or for the
    months outside `summer_months` when `summer_blocks` is given."""
    t = Tariff.objects.create(
        code="RES", name="Residential", effective_from=effective_from, customer_charge=D(customer_charge)
    )
    if summer_blocks:
        winter = ",".join(str(m) for m in range(1, 13) if str(m) not in summer_months.split(","))
        for up_to, rate in summer_blocks:
            TariffBlock.objects.create(tariff=t, months=summer_months, up_to_kwh=up_to, rate=rate)
    else:
        winter = ""
    for up_to, rate in blocks:
        TariffBlock.objects.create(tariff=t, months=winter, up_to_kwh=up_to, rate=rate)
    if rider is not None:
        Rider.objects.create(
            code="PCA", name="Power cost adjustment", rate=rider, effective_from=effective_from
        )
    if tax_percent is not None:
        TaxRate.objects.create(name="Sales tax", percent=tax_percent, effective_from=effective_from)
    return t


SINCE = datetime.datetime(2020, 1, 1, 12, tzinfo=datetime.UTC)


def prepaid_account(
    *, status=Account.Status.ACTIVE, installed_on=datetime.date(2020, 1, 1), since=SINCE, remote=True, **kw
):
    """A prepaid account in `status` since `since` (default: long before any day a test runs, so
    the daily run sees it in that status all day) with a meter installed at its location."""
    account = factories.account(**kw)
    meter = meter_services.meter_create(serial=f"PP{next(_seq):07d}", remote_disconnect_capable=remote)
    meter_services.meter_install(meter=meter, location=account.location, installed_on=installed_on)
    if status != Account.Status.PENDING:
        account_services.account_change_status(
            account=account, to_status=Account.Status.ACTIVE, actor=None, reason="test"
        )
    if status == Account.Status.DISCONNECTED:
        account_services.account_change_status(account=account, to_status=status, actor=None, reason="test")
    Account.objects.filter(pk=account.pk).update(status_changed_at=since)
    account.refresh_from_db()
    account.meter = meter
    return account


def read(meter, day, kwh, *, quality=MeterRead.Quality.ACTUAL) -> MeterRead:
    return MeterRead.objects.create(
        meter=meter, day=day, kwh=D(str(kwh)), quality=quality, source=MeterRead.Source.MANUAL
    )
